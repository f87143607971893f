//! The one pass that writes a scrubbed copy: the source is read in [`CHUNK`]-sized pieces, the
//! planned ranges are overwritten on the way (so unscrubbed bytes never reach the copy), and
//! SHA-256 and BLAKE3 of both what was read and what was written are computed by the streaming
//! hash workers in the same pass. Memory stays bounded whatever the file's size.

use crate::{io_err, Blank, ScrubError, R};
use fieldcap_evidence::hashing::{Digests, StreamingDigests, CHUNK};
use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::Arc;

/// The planned ranges as sorted, non-overlapping `(start, end, byte)`; where two overlap the
/// merged range is zeroed (blank either way).
pub(crate) fn merge(blanks: &[Blank]) -> Vec<(u64, u64, u8)> {
    let mut v: Vec<(u64, u64, u8)> = blanks.iter().map(|b| (b.offset, b.offset.saturating_add(b.len), b.fill.byte())).collect();
    v.sort();
    let mut out: Vec<(u64, u64, u8)> = Vec::with_capacity(v.len());
    for (s, e, f) in v {
        match out.last_mut() {
            Some(last) if s < last.1 => {
                last.1 = last.1.max(e);
                if last.2 != f {
                    last.2 = 0;
                }
            }
            _ => out.push((s, e, f)),
        }
    }
    out
}

fn read_full(r: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Copies `len` bytes from `input` to `out` with `ranges` ([`merge`]d) overwritten, fsyncs `out`,
/// and returns the digests of the source as read and of the copy as written. A source whose
/// length is not `len` when the copy ends is an error.
pub(crate) fn copy_patched(input: &mut File, len: u64, out: &mut File, ranges: &[(u64, u64, u8)]) -> R<(Digests, Digests)> {
    let mut src_d = StreamingDigests::new().map_err(io_err("starting the hash workers"))?;
    let mut out_d = StreamingDigests::new().map_err(io_err("starting the hash workers"))?;
    let (mut pos, mut next) = (0u64, 0usize);
    loop {
        let mut buf = vec![0u8; CHUNK];
        let n = read_full(input, &mut buf).map_err(io_err("reading the media file"))?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        let end = pos + n as u64;
        let chunk = Arc::new(buf);
        src_d.update(chunk.clone()).map_err(io_err("hashing the media file"))?;
        // Ranges are sorted and disjoint, so their ends increase too: skip the finished ones.
        while next < ranges.len() && ranges[next].1 <= pos {
            next += 1;
        }
        let mut patched: Option<Vec<u8>> = None;
        let mut i = next;
        while i < ranges.len() && ranges[i].0 < end {
            let (a, b, f) = ranges[i];
            let (s, e) = ((a.max(pos) - pos) as usize, (b.min(end) - pos) as usize);
            patched.get_or_insert_with(|| chunk.to_vec())[s..e].fill(f);
            i += 1;
        }
        let outc = patched.map(Arc::new).unwrap_or(chunk);
        out.write_all(&outc).map_err(io_err("writing the scrubbed copy"))?;
        out_d.update(outc).map_err(io_err("hashing the scrubbed copy"))?;
        pos = end;
    }
    if pos != len {
        return Err(ScrubError::Io { context: "copying the media file".into(), source: io::Error::other("the file changed length while it was being copied") });
    }
    out.sync_all().map_err(io_err("syncing the scrubbed copy"))?;
    let source = src_d.finish().map_err(io_err("hashing the media file"))?;
    let output = out_d.finish().map_err(io_err("hashing the scrubbed copy"))?;
    Ok((source, output))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::test_files::*;
    use crate::Category;
    use fieldcap_evidence::hashing::CHUNK;

    #[test]
    fn a_copy_larger_than_one_chunk_is_patched_across_chunk_boundaries() {
        // A free box spanning the 1 MiB chunk boundary, then a location after it.
        let pad = vec![0x5Au8; CHUNK + 1000];
        let udta = bx(b"udta", &qt_text(b"\xA9xyz", "+33.7406-118.2760/"));
        let moov = bx(b"moov", &cat(&[full(b"mvhd", &[0u8; 96]), trak(b"vide", &[]), udta]));
        let f = cat(&[bx(b"ftyp", b"isom"), bx(b"free", &pad), bx(b"mdat", &mdat_payload()), moov]);
        let (plan, out) = scrub_bytes(&f, "video/mp4");
        assert_only_blanked(&f, &out, &plan);
        assert!(plan.blanks.iter().any(|b| b.category == Category::Padding && b.len == pad.len() as u64));
        assert!(!find(&out, b"118.2760"));
    }
}
