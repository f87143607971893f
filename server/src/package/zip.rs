//! A minimal ZIP writer (stored entries, no compression; ZIP64 where sizes or offsets need it),
//! so `fieldcap package --zip` needs no extra dependency. Media is already compressed; storing
//! keeps every file byte-identical and lets `unzip` / any archive tool extract it.
//!
//! The archive is written to a temporary sibling, fsynced and renamed, so it appears whole or not
//! at all.
//!
//! ```
//! let d = tempfile::tempdir().unwrap();
//! std::fs::create_dir(d.path().join("p")).unwrap();
//! std::fs::write(d.path().join("p/a.txt"), b"hello").unwrap();
//! fieldcap_server::package::zip::zip_dir(&d.path().join("p"), &d.path().join("p.zip")).unwrap();
//! assert!(std::fs::metadata(d.path().join("p.zip")).unwrap().len() > 5);
//! ```

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    for (i, e) in t.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
        *e = c;
    }
    t
}

struct Entry {
    name: String,
    crc: u32,
    size: u64,
    offset: u64,
}

/// Zips the folder `src` into `dst` (which must not exist); entry names are relative to `src`.
pub fn zip_dir(src: &Path, dst: &Path) -> Result<()> {
    if dst.exists() {
        return Err(Error::BadRequest("the zip file already exists".into()));
    }
    let tmp = dst.with_extension(format!("zip.tmp-{}", std::process::id()));
    let r = write_zip(src, &tmp).and_then(|_| std::fs::rename(&tmp, dst).map_err(|e| Error::io("moving the zip into place", e)));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

fn write_zip(src: &Path, tmp: &Path) -> Result<()> {
    let io = |e| Error::io("writing the zip", e);
    let table = crc_table();
    let files = fieldcap_package::clip::list_files(src)?;
    let f = File::create(tmp).map_err(io)?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let mut pos: u64 = 0;
    let mut entries = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    for name in files {
        let path = src.join(&name);
        let size = std::fs::metadata(&path).map_err(io)?.len();
        // Local header with ZIP64 extra (sizes known up front; CRC patched via data descriptor-free
        // rewrite is avoided by computing the CRC first).
        let mut crc = !0u32;
        let mut r = File::open(&path).map_err(io)?;
        loop {
            let n = r.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            for b in &buf[..n] {
                crc = table[((crc ^ *b as u32) & 0xff) as usize] ^ (crc >> 8);
            }
        }
        let crc = !crc;
        let offset = pos;
        let nb = name.as_bytes();
        let mut h = Vec::with_capacity(64 + nb.len());
        h.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        h.extend_from_slice(&45u16.to_le_bytes()); // version needed (ZIP64)
        h.extend_from_slice(&0x0800u16.to_le_bytes()); // UTF-8 names
        h.extend_from_slice(&0u16.to_le_bytes()); // stored
        h.extend_from_slice(&0u16.to_le_bytes()); // time
        h.extend_from_slice(&0x21u16.to_le_bytes()); // date 1980-01-01
        h.extend_from_slice(&crc.to_le_bytes());
        h.extend_from_slice(&u32::MAX.to_le_bytes());
        h.extend_from_slice(&u32::MAX.to_le_bytes());
        h.extend_from_slice(&(nb.len() as u16).to_le_bytes());
        h.extend_from_slice(&20u16.to_le_bytes());
        h.extend_from_slice(nb);
        h.extend_from_slice(&1u16.to_le_bytes());
        h.extend_from_slice(&16u16.to_le_bytes());
        h.extend_from_slice(&size.to_le_bytes());
        h.extend_from_slice(&size.to_le_bytes());
        w.write_all(&h).map_err(io)?;
        pos += h.len() as u64;
        let mut r = File::open(&path).map_err(io)?;
        let copied = std::io::copy(&mut r, &mut w).map_err(io)?;
        if copied != size {
            return Err(Error::Internal("a package file changed while it was zipped".into()));
        }
        pos += size;
        entries.push(Entry { name, crc, size, offset });
    }
    let cd_start = pos;
    for e in &entries {
        let nb = e.name.as_bytes();
        let mut h = Vec::with_capacity(80 + nb.len());
        h.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        h.extend_from_slice(&(0x0300u16 | 45).to_le_bytes()); // made by Unix, 4.5
        h.extend_from_slice(&45u16.to_le_bytes());
        h.extend_from_slice(&0x0800u16.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(&0x21u16.to_le_bytes());
        h.extend_from_slice(&e.crc.to_le_bytes());
        h.extend_from_slice(&u32::MAX.to_le_bytes());
        h.extend_from_slice(&u32::MAX.to_le_bytes());
        h.extend_from_slice(&(nb.len() as u16).to_le_bytes());
        h.extend_from_slice(&28u16.to_le_bytes()); // extra
        h.extend_from_slice(&0u16.to_le_bytes()); // comment
        h.extend_from_slice(&0u16.to_le_bytes()); // disk
        h.extend_from_slice(&0u16.to_le_bytes()); // internal attrs
        h.extend_from_slice(&(0o100644u32 << 16).to_le_bytes()); // external attrs
        h.extend_from_slice(&u32::MAX.to_le_bytes()); // offset in ZIP64 extra
        h.extend_from_slice(nb);
        h.extend_from_slice(&1u16.to_le_bytes());
        h.extend_from_slice(&24u16.to_le_bytes());
        h.extend_from_slice(&e.size.to_le_bytes());
        h.extend_from_slice(&e.size.to_le_bytes());
        h.extend_from_slice(&e.offset.to_le_bytes());
        w.write_all(&h).map_err(io)?;
        pos += h.len() as u64;
    }
    let cd_size = pos - cd_start;
    let n = entries.len() as u64;
    let mut t = Vec::with_capacity(100);
    // ZIP64 end of central directory record and locator.
    t.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
    t.extend_from_slice(&44u64.to_le_bytes());
    t.extend_from_slice(&45u16.to_le_bytes());
    t.extend_from_slice(&45u16.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(&n.to_le_bytes());
    t.extend_from_slice(&n.to_le_bytes());
    t.extend_from_slice(&cd_size.to_le_bytes());
    t.extend_from_slice(&cd_start.to_le_bytes());
    t.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(&pos.to_le_bytes());
    t.extend_from_slice(&1u32.to_le_bytes());
    // Classic end of central directory, pointing to ZIP64.
    t.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    t.extend_from_slice(&0u16.to_le_bytes());
    t.extend_from_slice(&0u16.to_le_bytes());
    t.extend_from_slice(&u16::MAX.to_le_bytes());
    t.extend_from_slice(&u16::MAX.to_le_bytes());
    t.extend_from_slice(&u32::MAX.to_le_bytes());
    t.extend_from_slice(&u32::MAX.to_le_bytes());
    t.extend_from_slice(&0u16.to_le_bytes());
    w.write_all(&t).map_err(io)?;
    let f = w.into_inner().map_err(|e| Error::io("writing the zip", e.into_error()))?;
    f.sync_all().map_err(io)?;
    Ok(())
}
