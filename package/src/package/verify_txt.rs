//! `VERIFY.txt`: the verification procedure for stock tools only (OpenSSL 3, coreutils, b3sum,
//! grep, find), written into every package as a POSIX `sh` script.
//!
//! It covers what stock tools can check — sums, the index signature and its file list, device
//! certificates and key ids, and per item the manifest and receipt signatures and the digests
//! they name — and says in its last step what it leaves to `fieldcap verify` (Merkle proofs,
//! device chains, custody signatures). docs/VERIFY.md §2 describes the same steps; a test runs
//! the script on clean and tampered packages.

use super::PackageIndex;

/// The stock-tool procedure (`VERIFY.txt`) for an index: a POSIX `sh` script whose comments say
/// what each step proves. `sh VERIFY.txt` inside the package (or pasting it) runs every check
/// and stops at the first failure.
pub fn verify_txt(index: &PackageIndex) -> String {
    let mut s = String::new();
    let p = |s: &mut String, l: &str| {
        s.push_str(l);
        s.push('\n');
    };
    p(&mut s, "# Fieldcap evidence package: verification with stock tools only.");
    p(&mut s, "# Tools: OpenSSL 3 (openssl), GNU coreutils (sha256sum, sort, cut), b3sum, grep, find.");
    p(&mut s, "# Run inside this folder:  sh VERIFY.txt   (or paste the lines). It stops at the first");
    p(&mut s, "# failure; the last line printed is then the check that failed.");
    p(&mut s, "#");
    p(&mut s, &format!("# Package {} ({} profile), exported {} for: {}", index.package_id, index.profile, index.created_at, one_line(&index.recipient)));
    p(&mut s, &format!("# Server key id {} - compare with the key the council office publishes:", index.server_key_id));
    p(&mut s, "#   openssl pkey -pubin -in server.pub.pem -outform DER | tail -c 32 | sha256sum | cut -c1-32");
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
    p(&mut s, "set -e");
    p(&mut s, "");
    p(&mut s, "# 1. Every file is intact (SHA-256 and BLAKE3), and no file was added or removed.");
    p(&mut s, "sha256sum --check --strict --quiet SHA256SUMS");
    p(&mut s, "b3sum --check --quiet B3SUMS");
    p(&mut s, "[ \"$(find . -type f ! -name SHA256SUMS ! -name B3SUMS | sed 's|^\\./||' | LC_ALL=C sort)\" = \"$(cut -c67- SHA256SUMS | LC_ALL=C sort)\" ] || { echo 'FAILED: the files differ from the list in SHA256SUMS'; exit 1; }");
    p(&mut s, "[ \"$(cut -c67- B3SUMS | LC_ALL=C sort)\" = \"$(cut -c67- SHA256SUMS | LC_ALL=C sort)\" ] || { echo 'FAILED: B3SUMS and SHA256SUMS list different files'; exit 1; }");
    p(&mut s, "");
    p(&mut s, "# 2. The server signed the index, and the index names every file with the same SHA-256.");
    p(&mut s, "openssl pkeyutl -verify -pubin -inkey server.pub.pem -rawin -in package.json -sigfile package.json.sig");
    p(&mut s, "while read -r h f; do case \"$f\" in package.json|package.json.sig) continue;; esac; grep -qF \"\\\"path\\\":\\\"$f\\\",\\\"sha256\\\":\\\"$h\\\"\" package.json || { echo \"FAILED: $f is not in the signed index with that digest\"; exit 1; }; done < SHA256SUMS");
    p(&mut s, "");
    p(&mut s, "# 3. Device certificates were issued by the server.");
    for d in &index.devices {
        let b = format!("devices/{}", d.device_id);
        p(&mut s, &format!("openssl pkeyutl -verify -pubin -inkey server.pub.pem -rawin -in {b}.cert.json -sigfile {b}.cert.sig"));
        p(&mut s, &format!("[ \"$(openssl pkey -pubin -in {b}.pub.pem -outform DER | tail -c 32 | sha256sum | cut -c1-32)\" = {} ] || {{ echo 'FAILED: {b}.pub.pem is not the key of device {}'; exit 1; }}", d.device_id, d.device_id));
    }
    p(&mut s, "");
    p(&mut s, "# 4. Each item: manifest signature, media digest in the manifest, receipt signature, and the");
    p(&mut s, "#    receipt names this manifest.");
    for it in &index.items {
        let c = format!("clips/{}", it.clip_id);
        p(&mut s, &format!("echo 'item {}'", it.clip_id));
        if it.derived {
            p(&mut s, &format!("openssl pkeyutl -verify -pubin -inkey server.pub.pem -rawin -in {c}/manifest.json -sigfile {c}/manifest.sig"));
            p(&mut s, &format!("o=$(grep -o '\"original_manifest_sha256\":\"[0-9a-f]*\"' {c}/manifest.json | cut -d'\"' -f4); grep -qF \"\\\"manifest_sha256\\\":\\\"$o\\\"\" {c}/receipt.json || {{ echo 'FAILED: {c}/receipt.json does not name the original of {c}/manifest.json'; exit 1; }}"));
        } else {
            p(&mut s, &format!("openssl pkeyutl -verify -pubin -inkey devices/{}.pub.pem -rawin -in {c}/manifest.json -sigfile {c}/manifest.sig", it.device_id));
            p(&mut s, &format!("m=$(sha256sum {c}/manifest.json | cut -c1-64); grep -qF \"\\\"manifest_sha256\\\":\\\"$m\\\"\" {c}/receipt.json || {{ echo 'FAILED: {c}/receipt.json does not name {c}/manifest.json'; exit 1; }}"));
        }
        p(&mut s, &format!("openssl pkeyutl -verify -pubin -inkey server.pub.pem -rawin -in {c}/receipt.json -sigfile {c}/receipt.sig"));
        p(&mut s, &format!("grep -qF '\"clip_id\":\"{}\"' {c}/receipt.json || {{ echo 'FAILED: {c}/receipt.json is for another item'; exit 1; }}", it.clip_id));
        match &it.media {
            Some(m) if it.derived => {
                // The released copy is named in "released_media"; the receipt names the original,
                // whose digests are in the derived manifest's "media".
                p(&mut s, &format!("h=$(sha256sum {} | cut -c1-64); grep -o '\"released_media\":{{[^}}]*}}' {c}/manifest.json | grep -qF \"\\\"sha256\\\":\\\"$h\\\"\" || {{ echo 'FAILED: {} is not the released copy {c}/manifest.json names'; exit 1; }}", m.path, m.path));
                p(&mut s, &format!("o=$(grep -o '\"media\":{{[^}}]*}}' {c}/manifest.json | grep -o '\"sha256\":\"[0-9a-f]*\"' | cut -d'\"' -f4); [ -n \"$o\" ] && grep -qF \"\\\"sha256\\\":\\\"$o\\\"\" {c}/receipt.json || {{ echo 'FAILED: {c}/receipt.json names other media than the original in {c}/manifest.json'; exit 1; }}"));
            }
            Some(m) => {
                p(&mut s, &format!("h=$(sha256sum {} | cut -c1-64); grep -qF \"\\\"sha256\\\":\\\"$h\\\"\" {c}/manifest.json || {{ echo 'FAILED: {} is not the media {c}/manifest.json names'; exit 1; }}", m.path, m.path));
                p(&mut s, &format!("grep -qF \"\\\"sha256\\\":\\\"$h\\\"\" {c}/receipt.json || {{ echo 'FAILED: {c}/receipt.json names other media'; exit 1; }}"));
            }
            None if it.media_withheld.is_some() => {
                p(&mut s, &format!("grep -qF '\"media_withheld\":' {c}/manifest.json || {{ echo 'FAILED: {c} has no media file and {c}/manifest.json does not say it was withheld'; exit 1; }}"));
                p(&mut s, &format!("echo '  media withheld from this release (media_withheld in {c}/manifest.json says why)'"));
            }
            None => {}
        }
    }
    p(&mut s, "");
    p(&mut s, "# 5. Not covered by stock tools: the Merkle proofs in log/ (RFC 6962 / RFC 9162 inclusion and");
    p(&mut s, "#    consistency against the signed checkpoint in log/checkpoint.txt), the device chains");
    p(&mut s, "#    (seq/prev, listed in package.json) and the custody signatures in custody.jsonl. docs/VERIFY.md");
    p(&mut s, "#    describes them precisely; `fieldcap verify .` performs them, or write your own verifier");
    p(&mut s, "#    from docs/FORMATS.md.");
    p(&mut s, "echo 'ALL STOCK-TOOL CHECKS PASSED'");
    s
}

fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}
