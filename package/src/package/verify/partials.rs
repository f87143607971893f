//! Live recordings in a package: partial recordings (`package.json` `partials`, no received
//! original) and the fragment records a finished live recording carries.
//!
//! A partial is checked with [`ChainCheck`]: every record `clips/<clip>/fragments/NNNNNN.json`
//! is signed by the device key in the package (`.sig`), is strictly `fieldcap.fragment/1`, and
//! follows the one before it (same recording, next index, next byte, `prev` naming it); the media
//! file, fed through the chain piece by piece, matches each piece's digests and each record's
//! running digests of the whole so far, and ends exactly where the last record ends. The entry
//! in the index must name that chain (count, bytes, head, last capture time). The server's
//! acknowledgements (`acks/`) must be signed by the server key and name each record.
//!
//! It is reported as partial: what it proves and what it does not ([`PARTIAL_MEANING`]).

use super::Verification;
use crate::package::{ack_files, fragment_files, PackageIndex, PackagePartial};
use ed25519_dalek::VerifyingKey;
use fieldcap_evidence::error::{Error, Result};
use fieldcap_evidence::fragment::{ChainCheck, FragmentAck};
use std::collections::HashMap;
use std::io::Read;

/// What a verified partial recording proves, and what it does not.
pub const PARTIAL_MEANING: &str = "the recording continued past this point or was cut short: this proves the bytes up to here were sealed by the device in this order, not what came after";

/// The checks of every partial recording of the index.
pub(super) fn check(c: &mut Verification<'_>, index: &PackageIndex, server: &VerifyingKey, device_keys: &HashMap<String, VerifyingKey>) {
    for p in &index.partials {
        let r = partial(c, p, server, device_keys);
        c.res("partial recording", &p.media.path, r);
    }
}

fn partial(c: &Verification<'_>, p: &PackagePartial, server: &VerifyingKey, device_keys: &HashMap<String, VerifyingKey>) -> Result<String> {
    if !p.partial {
        return Err(Error::Integrity(format!("the index lists {} among partial recordings without \"partial\": true", p.clip_id)));
    }
    let key = device_keys.get(&p.device_id).ok_or_else(|| Error::Integrity(format!("no verified key of device {} in the package", p.device_id)))?;
    let mut chain = ChainCheck::new(key);
    for i in 0..p.fragments {
        let (rf, sf) = fragment_files(&p.clip_id, i);
        let (body, sig) = (c.read(&rf)?, c.read(&sf)?);
        let rec = chain.push(&body, &sig).map_err(|e| Error::Integrity(format!("{rf}: {}", strip(&e))))?;
        if rec.clip_id != p.clip_id {
            return Err(Error::Integrity(format!("{rf} is a record of another recording")));
        }
        let (af, asf) = ack_files(&p.clip_id, i);
        if let (Ok(ab), Ok(asig)) = (c.read(&af), c.read(&asf)) {
            fieldcap_evidence::identity::verify(server, &ab, &asig).map_err(|_| Error::Integrity(format!("{asf} is not the server's signature over {af}")))?;
            let ack: FragmentAck = serde_json::from_slice(&ab).map_err(|_| Error::Integrity(format!("{af} is not a fieldcap.fragment-ack/1")))?;
            if ack.index != i || ack.clip_id != p.clip_id || ack.record_sha256 != fieldcap_evidence::hashing::sha256_hex(&body) {
                return Err(Error::Integrity(format!("{af} acknowledges another record than {rf}")));
            }
        }
    }
    // The media file through the chain.
    let mut f = std::fs::File::open(c.dir.join(&p.media.path)).map_err(|_| Error::NotFound(format!("{} cannot be read", p.media.path)))?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(format!("reading {}", p.media.path), e))?;
        if n == 0 {
            break;
        }
        chain.push_bytes(&buf[..n]).map_err(|e| Error::Integrity(format!("{}: {}", p.media.path, strip(&e))))?;
    }
    let s = chain.finish().map_err(|e| Error::Integrity(format!("{}: {}", p.media.path, strip(&e))))?;
    if s.count != p.fragments || s.bytes != p.bytes || s.head != p.head || s.last_captured_at != p.last_captured_at {
        return Err(Error::Integrity(format!(
            "the index describes {} fragments, {} bytes, head {}; the chain in the package has {} fragments, {} bytes, head {}",
            p.fragments, p.bytes, p.head, s.count, s.bytes, s.head
        )));
    }
    if p.media.bytes != s.bytes || p.media.sha256 != s.last.total_sha256 || p.media.blake3 != s.last.total_blake3 {
        return Err(Error::Integrity(format!("the index lists other digests for {} than the last fragment record names", p.media.path)));
    }
    Ok(format!(
        "partial recording: {} fragments, {} bytes, last fragment captured at {}; {PARTIAL_MEANING}",
        s.count, s.bytes, s.last_captured_at
    ))
}

/// The fragment records a finished live recording carries (`clips/<clip>/fragments/`), if any:
/// the chain verifies against the device key and the media file, and its head is the one the
/// manifest names.
pub(super) fn finished(c: &mut Verification<'_>, clip_id: &str, device_key: Option<&VerifyingKey>, media_path: Option<&str>, head: Option<(u64, &str)>) {
    let (first, _) = fragment_files(clip_id, 0);
    if !c.digests.contains_key(&first) {
        if let Some((count, _)) = head {
            // Filmed offline (or every piece refused): the server received the recording whole,
            // by its ordinary upload, and holds none of its fragment records.
            c.res(
                "fragment chain of a live recording",
                &format!("clips/{clip_id}/manifest.json"),
                Ok(format!("the manifest names a chain of {count} fragment records; the server received none while it was filmed (the recording came whole, checked by the manifest's digests)")),
            );
        }
        return;
    }
    let r = (|| -> Result<String> {
        let key = device_key.ok_or_else(|| Error::Integrity("no verified device key for the fragment records".into()))?;
        let (count, want_head) = head.ok_or_else(|| Error::Integrity("fragment records are in the package but the manifest names no fragment chain".into()))?;
        let mut chain = ChainCheck::new(key);
        // The server holds the records it received while the recording was filmed: all of them,
        // or a prefix when the rest came with the whole file (the phone went offline, or the
        // last pieces were sealed as the recording ended).
        let mut held = 0u64;
        for i in 0..count {
            let (rf, sf) = fragment_files(clip_id, i);
            if !c.digests.contains_key(&rf) {
                break;
            }
            chain.push(&c.read(&rf)?, &c.read(&sf)?).map_err(|e| Error::Integrity(format!("{rf}: {}", strip(&e))))?;
            held += 1;
        }
        if c.digests.contains_key(&fragment_files(clip_id, held).0) {
            return Err(Error::Integrity(format!("the package carries more fragment records than the {count} the manifest names")));
        }
        let prefix = chain.summary().bytes;
        if let Some(mp) = media_path {
            let data = c.read(mp)?;
            let end = usize::try_from(prefix).ok().filter(|&e| e <= data.len()).ok_or_else(|| Error::Integrity(format!("{mp} is shorter than its fragment records say")))?;
            chain.push_bytes(&data[..end]).map_err(|e| Error::Integrity(format!("{mp}: {}", strip(&e))))?;
        }
        let s = if media_path.is_some() { chain.finish().map_err(|e| Error::Integrity(strip(&e)))? } else { chain.summary() };
        if held == count {
            if s.head != want_head {
                return Err(Error::Integrity("the last fragment record is not the chain head the manifest names".into()));
            }
            return Ok(format!("{} fragment records, signed by the device, chained, and matching the media file", s.count));
        }
        Ok(format!(
            "{held} of the {count} fragment records the manifest names were received while it was filmed (the rest came with the whole file): signed by the device, chained, and matching the media file's first {} bytes",
            s.bytes
        ))
    })();
    c.res("fragment chain of a live recording", &first, r);
}

fn strip(e: &Error) -> String {
    e.to_string().trim_start_matches("invalid input: ").trim_start_matches("integrity check failed: ").to_string()
}
