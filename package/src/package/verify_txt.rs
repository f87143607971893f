//! `VERIFY.txt`: the verification procedure for stock tools only (OpenSSL 3, coreutils, b3sum,
//! grep, sed, find), written into every package as a POSIX `sh` script.
//!
//! Run as `sh VERIFY.txt FINGERPRINT`, where FINGERPRINT is the council office's published
//! server key fingerprint ([`crate::pin`]), it checks that the package's server key is that key,
//! then what stock tools can check — the index signature, every file against the signed index
//! (both digests, nothing added or missing), both sums files line by line against the index,
//! device certificates and key ids, and per item the manifest and receipt signatures and the
//! digests they name — and says in its last step what it leaves to `fieldcap verify` (Merkle
//! proofs, device chains, custody signatures).
//!
//! Every check prints `ok: …` or `FAILED: …`. The script counts its failures itself (no
//! `set -e`, so pasting it into a shell or editing a `set` line changes nothing) and runs every
//! check; its last line is the verdict: `ALL STOCK-TOOL CHECKS PASSED` (exit 0) only when no
//! check failed *and* the server key is the expected one, otherwise `NOT PASSED` (exit 1) —
//! also when no fingerprint was given, and (an `EXIT` trap set before any check) when the
//! script ends without reaching its verdict. Right after the index signature it checks its own
//! SHA-256 against the signed index, so a damaged copy says so before anything it might skip. docs/VERIFY.md §2 describes the same steps; tests run
//! the script on clean and tampered packages.

use super::PackageIndex;
use ed25519_dalek::VerifyingKey;
use fieldcap_evidence::identity::{device_id_for, key_fingerprint};

/// The script's preamble after the package's own description: the counters and helpers, and
/// step 0, the server key against the expected fingerprint given as the first argument.
const PIN_STEP: &str = r#"failures=0
verdict=none
# Whatever ends the script before its verdict (a damaged line, an error) ends it not passed.
trap 'if [ "$verdict" != passed ]; then [ "$verdict" = given ] || echo "NOT PASSED: the script ended before its verdict ($failures check(s) FAILED so far): VERIFY.txt is damaged or was interrupted"; exit 1; fi' EXIT
fail() { failures=$((failures + 1)); echo "FAILED: $*"; }
ok() { echo "ok: $*"; }
# check DESCRIPTION COMMAND...: runs the command quietly; ok or FAILED with the description.
check() { d=$1; shift; if "$@" >/dev/null 2>&1; then ok "$d"; else fail "$d"; fi; }

# 0. The server key is the one the council office publishes.
want=$(printf '%s' "${1:-}" | tr -d ': \t' | tr 'A-F' 'a-f')
fp=; kid=
if openssl pkey -pubin -in server.pub.pem -noout >/dev/null 2>&1; then
  fp=$(openssl pkey -pubin -in server.pub.pem -outform DER | sha256sum | cut -c1-64)
  kid=$(openssl pkey -pubin -in server.pub.pem -outform DER | tail -c 32 | sha256sum | cut -c1-32)
  echo "server key of this package (server.pub.pem): fingerprint $fp (key id $kid)"
fi
pinned=no
if [ -z "$fp" ]; then
  fail "server.pub.pem cannot be read as a public key"
elif [ -z "$want" ]; then
  echo "NOT PINNED: no expected server key fingerprint given. Get the council office's published fingerprint out of band (its web site, a letter or a phone call; never from this package) and run: sh VERIFY.txt FINGERPRINT"
elif [ "$want" = "$fp" ] || [ "$want" = "$kid" ]; then
  pinned=yes
  ok "server.pub.pem is the expected server key ($want)"
elif { [ ${#want} -ne 64 ] && [ ${#want} -ne 32 ]; } || [ -n "$(printf '%s' "$want" | tr -d '0-9a-f')" ]; then
  fail "the argument is not a server key fingerprint (64 hex digits) or key id (32 hex digits)"
else
  fail "server.pub.pem is not the expected server key: its fingerprint is $fp (key id $kid), the expected one is $want"
fi

# 1. The server signed the index, package.json, which lists every other file (but its signature
#    and the two sums files) with its length, SHA-256 and BLAKE3.
check "package.json.sig: the server's signature over package.json" openssl pkeyutl -verify -pubin -inkey server.pub.pem -rawin -in package.json -sigfile package.json.sig
# This script is the one the server signed (a damaged copy could skip checks after this line).
if grep -qF "\"path\":\"VERIFY.txt\",\"sha256\":\"$(sha256sum < VERIFY.txt | cut -c1-64)\"" package.json; then ok "VERIFY.txt is the script the signed index lists"; else fail "VERIFY.txt is not the script the signed index lists: its later checks cannot be trusted; use fieldcap verify"; fi
entries=$(grep -o '"files":\[[^]]*\]' package.json | grep -o '{"blake3":"[0-9a-f]*","bytes":[0-9]*,"path":"[^"]*","sha256":"[0-9a-f]*"}' | sed 's/^{"blake3":"\([0-9a-f]*\)","bytes":[0-9]*,"path":"\([^"]*\)","sha256":"\([0-9a-f]*\)"}$/\3 \1 \2/')
[ -n "$entries" ] || fail "package.json lists no files"

# 2. Every file is the one the signed index lists (SHA-256 and BLAKE3), and no file was added.
n=0
while read -r h b f; do
  [ -n "$f" ] || continue
  case "$f" in /*|*..*) fail "package.json names a path outside the package: $f"; continue;; esac
  if [ ! -f "$f" ]; then fail "$f is in the signed index but missing"; continue; fi
  n=$((n + 1))
  [ "$(sha256sum < "$f" | cut -c1-64)" = "$h" ] || fail "$f: its SHA-256 differs from the signed index"
  [ "$(b3sum --no-names < "$f")" = "$b" ] || fail "$f: its BLAKE3 differs from the signed index"
done <<EOF
$entries
EOF
echo "checked $n files against the signed index"
listed=$(printf '%s\n' "$entries" | cut -d' ' -f3-)
while IFS= read -r f; do
  case "$f" in ''|package.json|package.json.sig|SHA256SUMS|B3SUMS) continue;; esac
  printf '%s\n' "$listed" | grep -qxF -- "$f" || fail "$f is in the folder but not in the signed index"
done <<EOF
$(find . -type f | sed 's|^\./||' | LC_ALL=C sort)
EOF

# 3. SHA256SUMS and B3SUMS ("<hex>  <path>" per file, for sha256sum --check and b3sum --check)
#    agree line by line with the signed index (and with package.json and its signature).
sums() {
  if [ ! -f "$1" ]; then fail "$1 is missing"; return; fi
  before=$failures
  n=0
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    if ! printf '%s\n' "$line" | grep -qE '^[0-9a-f]{64}  [^ ]'; then
      fail "$1 is damaged: line $n is not \"<64 hex digits>  <path>\""
    elif ! printf '%s\n' "$2" | grep -qxF -- "$line"; then
      fail "$1 line $n (${line#*  }) does not agree with the signed index"
    fi
  done < "$1"
  while IFS= read -r line; do
    [ -z "$line" ] || grep -qxF -- "$line" "$1" || fail "$1 does not list ${line#*  } as the signed index does"
  done <<EOF
$2
EOF
  [ "$failures" -ne "$before" ] || ok "$1 agrees with the signed index ($n lines)"
}
sums SHA256SUMS "$(printf '%s\n' "$entries" | while read -r h b f; do printf '%s  %s\n' "$h" "$f"; done; for f in package.json package.json.sig; do printf '%s  %s\n' "$(sha256sum < $f | cut -c1-64)" $f; done)"
sums B3SUMS "$(printf '%s\n' "$entries" | while read -r h b f; do printf '%s  %s\n' "$b" "$f"; done; for f in package.json package.json.sig; do printf '%s  %s\n' "$(b3sum --no-names < $f)" $f; done)"
"#;

/// The last step and the verdict, which no FAILED line can reach the passing branch of.
const VERDICT: &str = r#"
# 6. Not covered by stock tools: the Merkle proofs in log/ (RFC 6962 / RFC 9162 inclusion and
#    consistency against the signed checkpoint in log/checkpoint.txt), the device chains
#    (seq/prev, listed in package.json) and the custody signatures in custody.jsonl. docs/VERIFY.md
#    describes them precisely; `fieldcap verify . --server-key FINGERPRINT` performs them, or
#    write your own verifier from docs/FORMATS.md.
echo
if [ "$failures" -eq 0 ] && [ "$pinned" = yes ]; then
  verdict=passed
  echo "ALL STOCK-TOOL CHECKS PASSED (server key fingerprint $fp, as expected)"
elif [ "$failures" -eq 0 ]; then
  verdict=given
  echo "NOT PASSED: every check holds, but only against the key this package carries, which anyone can make; give the council office's published fingerprint: sh VERIFY.txt FINGERPRINT"
  false
else
  verdict=given
  echo "NOT PASSED: $failures check(s) FAILED (the FAILED lines above name them)"
  false
fi
"#;

/// The stock-tool procedure (`VERIFY.txt`) for an index signed by `server_key`: a POSIX `sh`
/// script whose comments say what each step proves. `sh VERIFY.txt FINGERPRINT` inside the
/// package runs every check; see the module documentation.
pub fn verify_txt(index: &PackageIndex, server_key: &VerifyingKey) -> String {
    let mut s = String::new();
    let p = |s: &mut String, l: &str| {
        s.push_str(l);
        s.push('\n');
    };
    p(&mut s, "# Fieldcap evidence package: verification with stock tools only.");
    p(&mut s, "# Tools: OpenSSL 3 (openssl), GNU coreutils (sha256sum, sort, cut, tr), b3sum, grep, sed, find.");
    p(&mut s, "#");
    p(&mut s, "# Run inside this folder:   sh VERIFY.txt FINGERPRINT");
    p(&mut s, "#");
    p(&mut s, "# FINGERPRINT is the council office's published server key fingerprint: 64 hex digits, the");
    p(&mut s, "# SHA-256 of the server's public key in DER form (its 32-digit key id is accepted too). Get it");
    p(&mut s, "# OUT OF BAND - the office's web site, a letter, a phone call - NEVER from this package: whoever");
    p(&mut s, "# made a forged package put their own key in it, and every signature in it would verify.");
    p(&mut s, "# This package says its server key is (compare, do not copy):");
    p(&mut s, &format!("#   fingerprint {}", key_fingerprint(server_key)));
    p(&mut s, &format!("#   key id      {}", device_id_for(server_key)));
    p(&mut s, "# Compute it yourself: openssl pkey -pubin -in server.pub.pem -outform DER | sha256sum");
    p(&mut s, "#");
    p(&mut s, "# Every check prints \"ok: ...\" or \"FAILED: ...\". The script counts the failures itself and runs");
    p(&mut s, "# every check; its last line is ALL STOCK-TOOL CHECKS PASSED (exit status 0) only when no check");
    p(&mut s, "# failed and the server key is the expected one, otherwise NOT PASSED (exit status 1).");
    p(&mut s, "# To paste the lines into a shell instead of running the file, first type: set -- FINGERPRINT");
    p(&mut s, "#");
    p(&mut s, &format!("# Package {} ({} profile), exported {} for: {}", index.package_id, index.profile, index.created_at, one_line(&index.recipient)));
    if index.profile == "release" {
        p(&mut s, "#");
        p(&mut s, "# RELEASE PROFILE: clips/*/manifest.json are NEW documents derived by the server from the");
        p(&mut s, "# device-signed originals (coarsened locations, no operator identity). They are signed by the");
        p(&mut s, "# server (server.pub.pem), not by the device, and name the original's SHA-256 in");
        p(&mut s, "# \"original_manifest_sha256\", which the server's receipt also names. The originals are kept");
        p(&mut s, "# unchanged by the council office and are not in this package.");
        p(&mut s, "# The media files are copies of the originals in which location and identity metadata inside");
        p(&mut s, "# the file (e.g. an MP4 location atom, EXIF GPS) were overwritten with bytes of the same length;");
        p(&mut s, "# audio, video and image data are unchanged. Each derived manifest names the original's digests");
        p(&mut s, "# in \"media\" (which the receipt names) and the copy's in \"released_media\", with the list of");
        p(&mut s, "# what was overwritten. Media that could not be made safe is left out (\"media_withheld\").");
    }
    p(&mut s, "");
    s.push_str(PIN_STEP);
    p(&mut s, "");
    p(&mut s, "# 4. Device certificates were issued by the server, and each device key has its id.");
    for d in &index.devices {
        let b = format!("devices/{}", d.device_id);
        p(&mut s, &format!("check '{b}.cert.sig: the server issued {b}.cert.json' openssl pkeyutl -verify -pubin -inkey server.pub.pem -rawin -in {b}.cert.json -sigfile {b}.cert.sig"));
        p(&mut s, &format!("if [ \"$(openssl pkey -pubin -in {b}.pub.pem -outform DER 2>/dev/null | tail -c 32 | sha256sum | cut -c1-32)\" = {} ]; then ok '{b}.pub.pem is the key of device {}'; else fail '{b}.pub.pem is not the key of device {}'; fi", d.device_id, d.device_id, d.device_id));
    }
    p(&mut s, "");
    p(&mut s, "# 5. Each item: manifest signature, media digest in the manifest, receipt signature, and the");
    p(&mut s, "#    receipt names this manifest.");
    for it in &index.items {
        let c = format!("clips/{}", it.clip_id);
        p(&mut s, &format!("echo 'item {}'", it.clip_id));
        if it.derived {
            p(&mut s, &format!("check '{c}/manifest.sig: the server signed the derived {c}/manifest.json' openssl pkeyutl -verify -pubin -inkey server.pub.pem -rawin -in {c}/manifest.json -sigfile {c}/manifest.sig"));
            p(&mut s, &format!("o=$(grep -o '\"original_manifest_sha256\":\"[0-9a-f]*\"' {c}/manifest.json | cut -d'\"' -f4); [ -n \"$o\" ] && grep -qF \"\\\"manifest_sha256\\\":\\\"$o\\\"\" {c}/receipt.json || fail '{c}/receipt.json does not name the original of {c}/manifest.json'"));
        } else {
            p(&mut s, &format!("check '{c}/manifest.sig: the device signed {c}/manifest.json' openssl pkeyutl -verify -pubin -inkey devices/{}.pub.pem -rawin -in {c}/manifest.json -sigfile {c}/manifest.sig", it.device_id));
            p(&mut s, &format!("m=$(sha256sum < {c}/manifest.json | cut -c1-64); grep -qF \"\\\"manifest_sha256\\\":\\\"$m\\\"\" {c}/receipt.json || fail '{c}/receipt.json does not name {c}/manifest.json'"));
        }
        p(&mut s, &format!("check '{c}/receipt.sig: the server signed {c}/receipt.json' openssl pkeyutl -verify -pubin -inkey server.pub.pem -rawin -in {c}/receipt.json -sigfile {c}/receipt.sig"));
        p(&mut s, &format!("grep -qF '\"clip_id\":\"{}\"' {c}/receipt.json || fail '{c}/receipt.json is for another item'", it.clip_id));
        match &it.media {
            Some(m) if it.derived => {
                // The released copy is named in "released_media"; the receipt names the original,
                // whose digests are in the derived manifest's "media".
                p(&mut s, &format!("h=$(sha256sum < {} | cut -c1-64); grep -o '\"released_media\":{{[^}}]*}}' {c}/manifest.json | grep -qF \"\\\"sha256\\\":\\\"$h\\\"\" || fail '{} is not the released copy {c}/manifest.json names'", m.path, m.path));
                p(&mut s, &format!("o=$(grep -o '\"media\":{{[^}}]*}}' {c}/manifest.json | grep -o '\"sha256\":\"[0-9a-f]*\"' | cut -d'\"' -f4); [ -n \"$o\" ] && grep -qF \"\\\"sha256\\\":\\\"$o\\\"\" {c}/receipt.json || fail '{c}/receipt.json names other media than the original in {c}/manifest.json'"));
            }
            Some(m) => {
                p(&mut s, &format!("h=$(sha256sum < {} | cut -c1-64); grep -qF \"\\\"sha256\\\":\\\"$h\\\"\" {c}/manifest.json || fail '{} is not the media {c}/manifest.json names'", m.path, m.path));
                p(&mut s, &format!("grep -qF \"\\\"sha256\\\":\\\"$h\\\"\" {c}/receipt.json || fail '{c}/receipt.json names other media'"));
            }
            None if it.media_withheld.is_some() => {
                p(&mut s, &format!("grep -qF '\"media_withheld\":' {c}/manifest.json || fail '{c} has no media file and {c}/manifest.json does not say it was withheld'"));
                p(&mut s, &format!("echo '  media withheld from this release (media_withheld in {c}/manifest.json says why)'"));
            }
            None => {}
        }
    }
    if !index.partials.is_empty() {
        p(&mut s, "");
        p(&mut s, "# 5b. Partial live recordings (no received original: the phone was taken, broke or stopped");
        p(&mut s, "#     sending mid-recording). Each fragment record is signed by the device and names the SHA-256");
        p(&mut s, "#     of the record before it (\"prev\"); the last record names the SHA-256 of the whole recording");
        p(&mut s, "#     up to its end (\"total_sha256\" of the first \"total_bytes\" bytes), which the media file is.");
        p(&mut s, "#     This proves the bytes up to there were sealed by the device in this order; it says nothing");
        p(&mut s, "#     of what came after (the recording continued past this point or was cut short).");
        for pt in &index.partials {
            p(&mut s, &format!("echo 'partial recording {}: {} fragments, {} bytes, last fragment captured at {}'", pt.clip_id, pt.fragments, pt.bytes, one_line(&pt.last_captured_at)));
            for i in 0..pt.fragments {
                let (rf, sf) = super::fragment_files(&pt.clip_id, i);
                p(&mut s, &format!("check '{sf}: the device signed {rf}' openssl pkeyutl -verify -pubin -inkey devices/{}.pub.pem -rawin -in {rf} -sigfile {sf}", pt.device_id));
                if i > 0 {
                    let (pf, _) = super::fragment_files(&pt.clip_id, i - 1);
                    p(&mut s, &format!("grep -qF \"\\\"prev\\\":\\\"$(sha256sum < {pf} | cut -c1-64)\\\"\" {rf} || fail '{rf} does not name {pf} as its prev'"));
                }
            }
            let (last, _) = super::fragment_files(&pt.clip_id, pt.fragments.saturating_sub(1));
            p(&mut s, &format!("[ \"$(wc -c < {})\" -eq {} ] || fail '{} is not {} bytes long'", pt.media.path, pt.bytes, pt.media.path, pt.bytes));
            p(&mut s, &format!("t=$(grep -o '\"total_sha256\":\"[0-9a-f]*\"' {last} | cut -d'\"' -f4); [ -n \"$t\" ] && [ \"$(head -c {} {} | sha256sum | cut -c1-64)\" = \"$t\" ] || fail '{} is not the recording {last} seals (total_sha256)'", pt.bytes, pt.media.path, pt.media.path));
            p(&mut s, &format!("grep -qF '\"clip_id\":\"{}\"' {last} || fail '{last} is a record of another recording'", pt.clip_id));
        }
        p(&mut s, &format!("echo '  {}'", super::verify::PARTIAL_MEANING.replace('\'', "")));
    }
    s.push_str(VERDICT);
    s
}

fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}
