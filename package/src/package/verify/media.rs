//! Each item's media file against its manifest. In a full package the file is the original and
//! matches the manifest's `media`. In a release it is the scrubbed copy the derived manifest names
//! in `released_media` (as long as the original; only metadata overwritten in place), or — where
//! the derived manifest says `media_withheld` — there is no media file of that item at all. A
//! release made before media was scrubbed holds the original unchanged. Either way the receipt
//! names the original's digests (checked in `receipts.rs`).

use super::{Facts, Verification};
use crate::package::{media_file_name, PackageItem};
use fieldcap_evidence::error::Error;

/// The media checks of one item; `facts` is what its manifest says, if it could be read.
pub(super) fn check(c: &mut Verification<'_>, it: &PackageItem, facts: Option<&Facts>) {
    let dir = format!("clips/{}", it.clip_id);
    let mf = format!("{dir}/manifest.json");
    let manifest_media = facts.and_then(|f| f.media.as_ref());
    let released = facts.and_then(|f| f.released.as_ref());
    let withheld = facts.and_then(|f| f.withheld.as_deref());
    if released.is_some() && (withheld.is_some() || manifest_media.is_none()) {
        c.fail("media matches the manifest", &mf, "released_media is named together with media_withheld, or for an item without media".into());
    } else if withheld.is_some() && manifest_media.is_none() {
        c.fail("media matches the manifest", &mf, "media_withheld is named for an item without media".into());
    }
    match (&it.media, manifest_media) {
        (Some(pm), Some(mm)) => {
            // A release made before media scrubbing holds the original: no released_media.
            let (want, what) = match released {
                Some(r) => ((r.bytes, r.sha256.as_str(), r.blake3.as_str()), "the released copy the derived manifest names"),
                None => ((mm.bytes, mm.sha256.as_str(), mm.blake3.as_str()), "the media the manifest names"),
            };
            let r = c.digest_of(&pm.path).copied().and_then(|d| {
                if withheld.is_some() {
                    Err(Error::Integrity(format!("the derived manifest says the media is withheld, but the index lists {}", pm.path)))
                } else if (d.bytes, d.sha256_hex().as_str(), d.blake3_hex().as_str()) != want {
                    Err(Error::Integrity(format!("{} differs from {what}", pm.path)))
                } else if (pm.bytes, pm.sha256.as_str(), pm.blake3.as_str()) != want {
                    Err(Error::Integrity(format!("the index lists other digests for {} than {what}", pm.path)))
                } else if released.is_some_and(|r| r.bytes != mm.bytes) {
                    // Scrubbing overwrites in place: a copy of another length is something else.
                    Err(Error::Integrity(format!("the released copy {} is not as long as the original", pm.path)))
                } else if pm.path != format!("{dir}/{}", media_file_name(&mm.mime)) || pm.mime != mm.mime {
                    Err(Error::Integrity("media file name does not follow its MIME type".into()))
                } else {
                    Ok(match (released, it.derived) {
                        (Some(r), _) => format!(
                            "{} bytes, SHA-256 and BLAKE3 match the released copy in the derived manifest ({} metadata range(s) overwritten in a copy of the original of SHA-256 {}, which the receipt names)",
                            d.bytes,
                            r.scrubbed.len(),
                            mm.sha256
                        ),
                        (None, true) => format!("{} bytes, SHA-256 and BLAKE3 match the manifest (the original, copied unchanged: metadata inside the file was not scrubbed in this release)", d.bytes),
                        (None, false) => format!("{} bytes, SHA-256 and BLAKE3 match the manifest", d.bytes),
                    })
                }
            });
            c.res("media matches the manifest", &pm.path, r);
        }
        (None, Some(_)) if it.derived && withheld.is_some() => {
            // Withheld: no media file of this item may be in the package.
            let prefix = format!("{dir}/media.");
            let present = c.digests.keys().find(|f| f.starts_with(&prefix));
            let r = match present {
                Some(f) => Err(Error::Integrity(format!("the media is said to be withheld, but {f} is in the package"))),
                None => Ok(format!("media withheld from this release: {}", withheld.unwrap_or_default())),
            };
            c.res("media withheld", &mf, r);
        }
        (None, None) => {}
        (Some(pm), None) if facts.is_some() => c.fail("media matches the manifest", &pm.path, "the manifest names no media".into()),
        (None, Some(_)) => c.fail("media matches the manifest", &mf, "the manifest names media the index does not list".into()),
        _ => {}
    }
}
