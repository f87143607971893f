//! What both format walkers share: bounds-checked random access to the file being planned
//! ([`Src`]), the plan being collected ([`Ctx`]), the limits that keep a hostile file from
//! costing unbounded time or memory, and how names taken from the file are printed.

use crate::{io_err, malformed, Blank, Category, Fill, R};
use std::io::{Read, Seek, SeekFrom};

/// Deepest nesting the walkers follow (real files need about 7: moov/trak/udta/meta/ilst/item/data).
pub(crate) const MAX_DEPTH: u32 = 16;
/// Most boxes or segments read in one file (a fragmented two-hour recording has some 30 000).
const MAX_BOXES: u64 = 1_000_000;
/// Most ranges one file may need blanked; more means a hostile or broken file.
const MAX_BLANKS: usize = 100_000;
/// Read window of the planner: small reads (box headers, markers) are served from it.
const WINDOW: usize = 64 << 10;

/// Random access to the file being planned, with a small window so that the many tiny reads
/// (box headers, JPEG markers) do not each cost a system call. Every read is bounds-checked
/// against the file length first: a structure that claims to run past the end is malformed.
pub(crate) struct Src<T> {
    r: T,
    /// Length of the file.
    pub(crate) len: u64,
    win_start: u64,
    win: Vec<u8>,
}

impl<T: Read + Seek> Src<T> {
    pub(crate) fn new(r: T, len: u64) -> Self {
        Src { r, len, win_start: 0, win: Vec::new() }
    }

    fn check(&self, off: u64, n: u64) -> R<u64> {
        match off.checked_add(n) {
            Some(end) if end <= self.len => Ok(end),
            _ => malformed(format!("a structure at offset {off} runs past the end of the file")),
        }
    }

    fn fill_window(&mut self, off: u64) -> R<()> {
        let want = (self.len - off).min(WINDOW as u64) as usize;
        self.win.resize(want, 0);
        self.r.seek(SeekFrom::Start(off)).map_err(io_err("seeking in the media file"))?;
        self.r.read_exact(&mut self.win).map_err(io_err("reading the media file"))?;
        self.win_start = off;
        Ok(())
    }

    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> R<()> {
        let end = self.check(off, buf.len() as u64)?;
        if buf.len() > WINDOW {
            self.r.seek(SeekFrom::Start(off)).map_err(io_err("seeking in the media file"))?;
            return self.r.read_exact(buf).map_err(io_err("reading the media file"));
        }
        if off < self.win_start || end > self.win_start + self.win.len() as u64 {
            self.fill_window(off)?;
        }
        let s = (off - self.win_start) as usize;
        buf.copy_from_slice(&self.win[s..s + buf.len()]);
        Ok(())
    }

    /// Up to [`WINDOW`] bytes starting at `off` and ending at or before `end`.
    pub(crate) fn window_at(&mut self, off: u64, end: u64) -> R<&[u8]> {
        let end = end.min(self.len);
        if off >= end {
            return malformed(format!("a structure at offset {off} runs past the end of the file"));
        }
        if off < self.win_start || off >= self.win_start + self.win.len() as u64 {
            self.fill_window(off)?;
        }
        let s = (off - self.win_start) as usize;
        let n = ((end - off) as usize).min(self.win.len() - s);
        Ok(&self.win[s..s + n])
    }

    pub(crate) fn bytes(&mut self, off: u64, n: u64) -> R<Vec<u8>> {
        self.check(off, n)?;
        let mut v = vec![0u8; n as usize];
        self.read_at(off, &mut v)?;
        Ok(v)
    }
    pub(crate) fn u8_at(&mut self, off: u64) -> R<u8> {
        let mut b = [0u8; 1];
        self.read_at(off, &mut b)?;
        Ok(b[0])
    }
    pub(crate) fn be16(&mut self, off: u64) -> R<u16> {
        let mut b = [0u8; 2];
        self.read_at(off, &mut b)?;
        Ok(u16::from_be_bytes(b))
    }
    pub(crate) fn be32(&mut self, off: u64) -> R<u32> {
        let mut b = [0u8; 4];
        self.read_at(off, &mut b)?;
        Ok(u32::from_be_bytes(b))
    }
    pub(crate) fn be64(&mut self, off: u64) -> R<u64> {
        let mut b = [0u8; 8];
        self.read_at(off, &mut b)?;
        Ok(u64::from_be_bytes(b))
    }
    pub(crate) fn fourcc_at(&mut self, off: u64) -> R<[u8; 4]> {
        let mut b = [0u8; 4];
        self.read_at(off, &mut b)?;
        Ok(b)
    }
}

/// The plan being collected: the ranges to blank so far, and how many boxes or segments were
/// read (both capped).
#[derive(Default)]
pub(crate) struct Ctx {
    pub(crate) blanks: Vec<Blank>,
    items: u64,
}

impl Ctx {
    /// Plans `[offset, end)` to be overwritten with `fill` (nothing if the range is empty).
    pub(crate) fn blank(&mut self, what: impl Into<String>, category: Category, offset: u64, end: u64, fill: Fill) -> R<()> {
        if end <= offset {
            return Ok(());
        }
        if self.blanks.len() >= MAX_BLANKS {
            return malformed("more metadata items than any camera writes");
        }
        self.blanks.push(Blank { what: what.into(), category, offset, len: end - offset, fill });
        Ok(())
    }
    /// Counts one more box or segment read.
    pub(crate) fn count(&mut self) -> R<()> {
        self.items += 1;
        if self.items > MAX_BOXES {
            return malformed("more boxes or segments than any camera writes");
        }
        Ok(())
    }
}

pub(crate) fn too_deep<T>() -> R<T> {
    malformed("metadata nested deeper than any camera writes")
}

/// Printable form of a name taken from the file (four-character code, key, identifier), for
/// reports: `©` for 0xA9, ASCII letters, digits and a few punctuation marks; anything else
/// (quotes, braces, backslashes, control bytes) becomes `?`, so a hostile name cannot break the
/// JSON or shell text it ends up in.
pub(crate) fn clean(name: &[u8]) -> String {
    name.iter()
        .take(80)
        .map(|&b| match b {
            0xA9 => '©',
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b' ' | b':' | b'/' | b'+' | b'#' | b'@' | b',' | b'(' | b')' => b as char,
            _ => '?',
        })
        .collect()
}
