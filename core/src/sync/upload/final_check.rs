//! The held-back final chunk: the last piece of an upload leaves only once the whole file, as
//! hashed while it was sent (and, on a resume, as read back for the bytes the server already
//! held), has the signed manifest's length and BLAKE3. (The device takes BLAKE3 only: either
//! digest catches a change; the server re-hashes both, SHA-256 included, before any receipt.)
//!
//! Why hold it back: the server re-verifies on completion, so nothing altered could be
//! receipted either way; but a changed file sent to the end would leave a whole altered copy on
//! the server, and a court would then have to be told why it exists. Held back, the server never
//! holds the whole of a changed file: the item is flagged on the device (`before_final_chunk`),
//! and the partial upload is terminated.

use super::super::pass::{Pass, Step, Stop};
use super::Upload;
use crate::error::Error;
use crate::manifest::Media;

impl Pass<'_> {
    /// Before the final chunk of `up` is sent: true when the length and BLAKE3 of the whole
    /// equal the signed manifest's (SHA-256 is the server's to re-check); otherwise the item is
    /// flagged, the partial upload terminated, and false returned. The digest is taken (once):
    /// later chunks are not hashed again.
    pub(super) fn final_chunk_may_go(&mut self, up: &mut Upload, media: &Media) -> Step<bool> {
        let Some(h) = up.hasher.take() else { return Ok(true) };
        let same = match h.finish_blake3() {
            Ok(d) => d.bytes == media.bytes && d.blake3_hex() == media.blake3,
            // The prefix read back ended early: the file is shorter than it was.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => false,
            Err(e) => return Err(Stop::Fatal(Error::io("reading the media file back", e))),
        };
        if !same {
            self.flag_media(&up.row, "mismatch", "before_final_chunk", Some(&up.url))?;
        }
        Ok(same)
    }
}
