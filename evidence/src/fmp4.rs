//! Structure checks of fragmented MP4 pieces (ISO/IEC 14496-12 §8.8), as a live recording hands
//! them over: an **initialization segment** (`ftyp` + `moov` with `mvex`, no media), then **media
//! fragments** (`moof` + `mdat`, optionally after `styp`/`sidx`/`prft`/`emsg`), and at most one
//! trailing `mfra` (the random-access index ffmpeg writes at the end).
//!
//! These checks run before a piece is appended (device) or stored (server): every box header
//! must be whole and the boxes must tile the piece exactly (a truncated piece is refused), the
//! fragment's `mfhd` sequence numbers must increase across the recording (a fragment out of
//! order, repeated or from another recording's start is refused) and every `traf` must name a
//! track the initialization segment declares. They do not decode samples: a piece that passes is
//! well-formed fMP4 as far as its boxes go, nothing more.
//!
//! ```
//! use fieldcap_evidence::fmp4::{check_init, Error};
//! let e = check_init(b"\0\0\0\x08moov").unwrap_err();
//! assert!(matches!(e, Error::Malformed(_)));
//! ```

/// Why a piece was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The piece is not well-formed fragmented MP4 (truncated, a bad box size, an unexpected box).
    #[error("not a well-formed fragmented MP4 piece: {0}")]
    Malformed(String),
    /// The fragment is well-formed but does not continue this recording (its sequence number or
    /// track does not follow).
    #[error("the fragment does not continue this recording: {0}")]
    OutOfSequence(String),
}

type R<T> = std::result::Result<T, Error>;

fn malformed<T>(m: impl Into<String>) -> R<T> {
    Err(Error::Malformed(m.into()))
}

fn fourcc(t: &[u8]) -> String {
    t.iter().map(|&b| if b.is_ascii_graphic() { b as char } else { '?' }).collect()
}

/// One box: type, payload range within the buffer.
#[derive(Debug, Clone, Copy)]
struct Bx {
    typ: [u8; 4],
    start: usize,
    body: usize,
    end: usize,
}

/// The boxes tiling `buf[start..end]` exactly.
fn boxes(buf: &[u8], start: usize, end: usize, what: &str) -> R<Vec<Bx>> {
    let mut out = Vec::new();
    let mut pos = start;
    while pos < end {
        if end - pos < 8 {
            return malformed(format!("{what}: truncated box header at byte {pos}"));
        }
        let size = u32::from_be_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]) as u64;
        let mut typ = [0u8; 4];
        typ.copy_from_slice(&buf[pos + 4..pos + 8]);
        let (hdr, size) = match size {
            0 => return malformed(format!("{what}: box '{}' at byte {pos} runs to the end of the file (size 0), which a fragment cannot", fourcc(&typ))),
            1 => {
                if end - pos < 16 {
                    return malformed(format!("{what}: truncated 64-bit box header at byte {pos}"));
                }
                let mut l = [0u8; 8];
                l.copy_from_slice(&buf[pos + 8..pos + 16]);
                (16u64, u64::from_be_bytes(l))
            }
            s => (8u64, s),
        };
        if size < hdr {
            return malformed(format!("{what}: box '{}' at byte {pos} is smaller than its header", fourcc(&typ)));
        }
        let box_end = (pos as u64).checked_add(size).filter(|&e| e <= end as u64);
        let Some(box_end) = box_end else {
            return malformed(format!("{what}: box '{}' at byte {pos} is cut short ({size} bytes announced, {} left)", fourcc(&typ), end - pos));
        };
        out.push(Bx { typ, start: pos, body: pos + hdr as usize, end: box_end as usize });
        pos = box_end as usize;
        if out.len() > 100_000 {
            return malformed(format!("{what}: more than 100000 boxes"));
        }
    }
    Ok(out)
}

fn be32(buf: &[u8], at: usize, end: usize, what: &str) -> R<u32> {
    if at + 4 > end {
        return malformed(format!("{what} is truncated"));
    }
    Ok(u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]))
}

/// Splits a whole fragmented MP4 file into the pieces a live recorder hands over: the
/// initialization segment (every box before the first fragment-level box), then one piece per
/// movie fragment (`styp`/`sidx`/`prft`/`emsg` before it, its `moof` and `mdat`), then a trailing
/// `mfra` as its own piece. Returns byte ranges; the pieces are not checked (see
/// [`check_init`] and [`check_fragment`]).
pub fn split_pieces(buf: &[u8]) -> R<Vec<std::ops::Range<usize>>> {
    let top = boxes(buf, 0, buf.len(), "file")?;
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut seen_init = false;
    for b in &top {
        let box_start = b.start;
        match &b.typ {
            b"styp" | b"sidx" | b"ssix" | b"prft" | b"emsg" | b"moof" | b"mfra" if !seen_init => {
                if box_start == 0 {
                    return malformed("the file starts with a fragment, not an initialization segment");
                }
                out.push(0..box_start);
                start = box_start;
                seen_init = true;
                if &b.typ == b"mfra" {
                    out.push(box_start..b.end);
                    start = b.end;
                }
            }
            b"mfra" => {
                if start < box_start {
                    out.push(start..box_start);
                }
                out.push(box_start..b.end);
                start = b.end;
            }
            b"mdat" if seen_init => {
                out.push(start..b.end);
                start = b.end;
            }
            _ => {}
        }
    }
    if !seen_init {
        return malformed("the file has no movie fragment: record fragmented MP4 (-movflags frag_keyframe+empty_moov)");
    }
    if start < buf.len() {
        out.push(start..buf.len());
    }
    Ok(out)
}

/// What the initialization segment declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitInfo {
    /// Track ids (`tkhd`), in file order.
    pub track_ids: Vec<u32>,
    /// Media timescale (`mdhd`, units per second) of each track, in the same order (0 if absent).
    pub timescales: Vec<u32>,
}

impl InitInfo {
    /// The timescale of a track, if declared.
    pub fn timescale(&self, track: u32) -> Option<u32> {
        self.track_ids.iter().position(|&t| t == track).and_then(|i| self.timescales.get(i).copied()).filter(|&t| t > 0)
    }
}

/// Checks an initialization segment: `ftyp` first, one `moov` with `mvex` (a fragmented movie)
/// and at least one track, no media data (`mdat`, `moof`).
pub fn check_init(buf: &[u8]) -> R<InitInfo> {
    let top = boxes(buf, 0, buf.len(), "initialization segment")?;
    if top.first().map(|b| &b.typ) != Some(b"ftyp") {
        return malformed("the initialization segment does not start with 'ftyp'");
    }
    let mut moov = None;
    for b in &top {
        match &b.typ {
            b"ftyp" | b"free" | b"skip" | b"uuid" => {}
            b"moov" if moov.is_none() => moov = Some(*b),
            b"moov" => return malformed("the initialization segment has two 'moov' boxes"),
            b"mdat" | b"moof" => return malformed(format!("the initialization segment carries media ('{}'): record with empty_moov / fragmented output", fourcc(&b.typ))),
            t => return malformed(format!("unexpected box '{}' in the initialization segment", fourcc(t))),
        }
    }
    let Some(moov) = moov else {
        return malformed("the initialization segment has no 'moov'");
    };
    let inner = boxes(buf, moov.body, moov.end, "moov")?;
    if !inner.iter().any(|b| &b.typ == b"mvex") {
        return malformed("the movie is not fragmented ('moov' has no 'mvex')");
    }
    let mut track_ids = Vec::new();
    let mut timescales = Vec::new();
    for t in inner.iter().filter(|b| &b.typ == b"trak") {
        let kids = boxes(buf, t.body, t.end, "trak")?;
        let Some(tkhd) = kids.iter().find(|b| &b.typ == b"tkhd") else {
            return malformed("a track has no 'tkhd'");
        };
        if tkhd.end - tkhd.body < 4 {
            return malformed("'tkhd' is truncated");
        }
        let version = buf[tkhd.body];
        // version 0: creation(4) modification(4) track_ID; version 1: 8 + 8.
        let at = tkhd.body + 4 + if version == 1 { 16 } else { 8 };
        track_ids.push(be32(buf, at, tkhd.end, "'tkhd'")?);
        let mut scale = 0;
        if let Some(mdia) = kids.iter().find(|b| &b.typ == b"mdia") {
            let mk = boxes(buf, mdia.body, mdia.end, "mdia")?;
            if let Some(mdhd) = mk.iter().find(|b| &b.typ == b"mdhd") {
                if mdhd.end > mdhd.body {
                    let at = mdhd.body + 4 + if buf[mdhd.body] == 1 { 16 } else { 8 };
                    scale = be32(buf, at, mdhd.end, "'mdhd'")?;
                }
            }
        }
        timescales.push(scale);
    }
    if track_ids.is_empty() {
        return malformed("the movie has no track");
    }
    Ok(InitInfo { track_ids, timescales })
}

/// What a media fragment holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentInfo {
    /// `mfhd` sequence numbers of its movie fragments, in order (empty for a trailing `mfra`).
    pub sequence_numbers: Vec<u32>,
    /// Whether the piece is the trailing random-access index (`mfra`) alone.
    pub is_trailer: bool,
    /// (track, `tfdt` base media decode time) of the first movie fragment's track runs, where
    /// present.
    pub decode_times: Vec<(u32, u64)>,
}

impl FragmentInfo {
    /// Start of the piece in seconds (first track with a decode time and a timescale).
    pub fn start_seconds(&self, init: &InitInfo) -> Option<f64> {
        self.decode_times.iter().find_map(|&(t, d)| init.timescale(t).map(|s| d as f64 / s as f64))
    }
}

/// Checks a media fragment against the recording's initialization segment and the last sequence
/// number seen (`None` before the first fragment).
pub fn check_fragment(buf: &[u8], init: &InitInfo, last_sequence: Option<u32>) -> R<FragmentInfo> {
    let top = boxes(buf, 0, buf.len(), "fragment")?;
    let mut seqs = Vec::new();
    let mut pending_moof = false;
    let mut last = last_sequence;
    let mut trailer = false;
    let mut decode_times = Vec::new();
    for b in &top {
        if trailer {
            return malformed("a box follows the trailing 'mfra'");
        }
        match &b.typ {
            b"styp" | b"sidx" | b"ssix" | b"prft" | b"emsg" | b"free" | b"skip" if !pending_moof => {}
            b"moof" => {
                if pending_moof {
                    return malformed("a 'moof' without its 'mdat'");
                }
                let seq = check_moof(buf, b, init, if seqs.is_empty() { Some(&mut decode_times) } else { None })?;
                if let Some(l) = last {
                    if seq <= l {
                        return Err(Error::OutOfSequence(format!("movie fragment {seq} does not follow {l}")));
                    }
                }
                last = Some(seq);
                seqs.push(seq);
                pending_moof = true;
            }
            b"mdat" if pending_moof => pending_moof = false,
            b"mdat" => return malformed("an 'mdat' without a 'moof' before it"),
            b"mfra" if !pending_moof && top.len() == 1 => trailer = true,
            t => return malformed(format!("unexpected box '{}' in a fragment", fourcc(t))),
        }
    }
    if pending_moof {
        return malformed("the fragment ends after a 'moof' with no 'mdat' (truncated)");
    }
    if seqs.is_empty() && !trailer {
        return malformed("the piece holds no movie fragment ('moof' + 'mdat')");
    }
    if trailer && last_sequence.is_none() {
        return Err(Error::OutOfSequence("the trailing 'mfra' comes before any fragment".into()));
    }
    Ok(FragmentInfo { sequence_numbers: seqs, is_trailer: trailer, decode_times })
}

fn check_moof(buf: &[u8], moof: &Bx, init: &InitInfo, mut times: Option<&mut Vec<(u32, u64)>>) -> R<u32> {
    let kids = boxes(buf, moof.body, moof.end, "moof")?;
    let Some(mfhd) = kids.iter().find(|b| &b.typ == b"mfhd") else {
        return malformed("'moof' has no 'mfhd'");
    };
    let seq = be32(buf, mfhd.body + 4, mfhd.end, "'mfhd'")?;
    let mut trafs = 0;
    for traf in kids.iter().filter(|b| &b.typ == b"traf") {
        trafs += 1;
        let tk = boxes(buf, traf.body, traf.end, "traf")?;
        let Some(tfhd) = tk.iter().find(|b| &b.typ == b"tfhd") else {
            return malformed("'traf' has no 'tfhd'");
        };
        let track = be32(buf, tfhd.body + 4, tfhd.end, "'tfhd'")?;
        if !init.track_ids.contains(&track) {
            return Err(Error::OutOfSequence(format!("the fragment names track {track}, which the initialization segment does not declare")));
        }
        if let (Some(times), Some(tfdt)) = (times.as_deref_mut(), tk.iter().find(|b| &b.typ == b"tfdt")) {
            if tfdt.end > tfdt.body {
                let t = if buf[tfdt.body] == 1 {
                    (u64::from(be32(buf, tfdt.body + 4, tfdt.end, "'tfdt'")?) << 32) | u64::from(be32(buf, tfdt.body + 8, tfdt.end, "'tfdt'")?)
                } else {
                    u64::from(be32(buf, tfdt.body + 4, tfdt.end, "'tfdt'")?)
                };
                times.push((track, t));
            }
        }
    }
    if trafs == 0 {
        return malformed("'moof' has no 'traf'");
    }
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(typ: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(typ);
        v.extend_from_slice(body);
        v
    }

    fn init() -> Vec<u8> {
        let mut tkhd = vec![0u8; 4 + 8];
        tkhd.extend_from_slice(&7u32.to_be_bytes());
        tkhd.extend_from_slice(&[0u8; 8]);
        let trak = bx(b"trak", &bx(b"tkhd", &tkhd));
        let moov = bx(b"moov", &[bx(b"mvhd", &[0u8; 20]), trak, bx(b"mvex", &[])].concat());
        [bx(b"ftyp", b"isom\0\0\0\0"), moov].concat()
    }

    fn frag(seq: u32, track: u32) -> Vec<u8> {
        let mut mfhd = vec![0u8; 4];
        mfhd.extend_from_slice(&seq.to_be_bytes());
        let mut tfhd = vec![0u8; 4];
        tfhd.extend_from_slice(&track.to_be_bytes());
        let moof = bx(b"moof", &[bx(b"mfhd", &mfhd), bx(b"traf", &bx(b"tfhd", &tfhd))].concat());
        [moof, bx(b"mdat", b"frames")].concat()
    }

    #[test]
    fn a_whole_file_splits_into_init_fragments_and_trailer() {
        let mfra = bx(b"mfra", &[0u8; 8]);
        let f1 = [bx(b"styp", b"msdh\0\0\0\0"), frag(1, 7)].concat();
        let f2 = frag(2, 7);
        let whole = [init(), f1.clone(), f2.clone(), mfra.clone()].concat();
        let parts: Vec<&[u8]> = split_pieces(&whole).unwrap().into_iter().map(|r| &whole[r]).collect();
        assert_eq!(parts, vec![&init()[..], &f1[..], &f2[..], &mfra[..]]);
        assert!(split_pieces(&init()).is_err());
    }

    #[test]
    fn an_init_and_its_fragments_pass() {
        let info = check_init(&init()).unwrap();
        assert_eq!(info.track_ids, vec![7]);
        assert_eq!(check_fragment(&frag(1, 7), &info, None).unwrap().sequence_numbers, vec![1]);
        assert_eq!(check_fragment(&frag(2, 7), &info, Some(1)).unwrap().sequence_numbers, vec![2]);
        assert!(check_fragment(&bx(b"mfra", &[0u8; 8]), &info, Some(2)).unwrap().is_trailer);
    }

    #[test]
    fn truncated_foreign_and_reordered_pieces_are_refused() {
        let info = check_init(&init()).unwrap();
        let f = frag(3, 7);
        for cut in [1, 8, f.len() - 1] {
            assert!(matches!(check_fragment(&f[..cut], &info, Some(2)), Err(Error::Malformed(_))), "cut at {cut}");
        }
        assert!(matches!(check_fragment(&f, &info, Some(3)), Err(Error::OutOfSequence(_))));
        assert!(matches!(check_fragment(&frag(4, 9), &info, Some(3)), Err(Error::OutOfSequence(_))));
        assert!(matches!(check_fragment(&init(), &info, None), Err(Error::Malformed(_))));
        assert!(matches!(check_init(&frag(1, 7)), Err(Error::Malformed(_))));
        let i = init();
        assert!(matches!(check_init(&i[..i.len() - 2]), Err(Error::Malformed(_))));
        // A movie that is not fragmented.
        let plain = [bx(b"ftyp", b"isom\0\0\0\0"), bx(b"moov", &bx(b"mvhd", &[0u8; 20]))].concat();
        assert!(check_init(&plain).unwrap_err().to_string().contains("mvex"));
    }
}
