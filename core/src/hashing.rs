//! One-pass, two-digest hashing of media files.
//!
//! Sealing must read a (possibly multi-GiB) file exactly once and produce both SHA-256 (what
//! `sha256sum` and courts expect) and BLAKE3 (fast, `b3sum`). The calling thread reads into a
//! small pool of fixed buffers and feeds BLAKE3; a worker thread feeds SHA-256, the slower of the
//! two, so on a two-core phone both cores hash at once. Memory is bounded by the pool
//! (`POOL` × `CHUNK`), whatever the file size.
//!
//! ```
//! let d = fieldcap_core::hashing::hash_reader(&b"abc"[..], &mut |_| {}).unwrap();
//! assert_eq!(d.bytes, 3);
//! assert_eq!(d.sha256_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
//! ```

use sha2::Digest as _;
use std::io::{self, Read};
use std::sync::mpsc::{channel, sync_channel};

/// Size of one read.
pub const CHUNK: usize = 1 << 20;
/// Number of buffers in flight.
const POOL: usize = 4;

/// Length and digests of one byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digests {
    /// Number of bytes hashed.
    pub bytes: u64,
    /// SHA-256 of the whole stream.
    pub sha256: [u8; 32],
    /// BLAKE3 of the whole stream.
    pub blake3: [u8; 32],
}

impl Digests {
    /// Lowercase hex SHA-256.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
    /// Lowercase hex BLAKE3.
    pub fn blake3_hex(&self) -> String {
        hex::encode(self.blake3)
    }
    /// Digests of an in-memory slice (small inputs, tests).
    pub fn of_bytes(data: &[u8]) -> Digests {
        Digests {
            bytes: data.len() as u64,
            sha256: sha2::Sha256::digest(data).into(),
            blake3: *blake3::hash(data).as_bytes(),
        }
    }
}

/// Hashes everything `reader` yields with SHA-256 and BLAKE3 in parallel.
///
/// SHA-256 is the slower digest (about 4× BLAKE3 per byte on one core), so it gets a worker
/// thread of its own, while the calling thread reads the next buffer and feeds BLAKE3. On two
/// cores the wall time is then that of SHA-256 alone.
///
/// `progress` is called with the running byte count after each read.
pub fn hash_reader<R: Read>(mut reader: R, progress: &mut dyn FnMut(u64)) -> io::Result<Digests> {
    std::thread::scope(|scope| {
        let (sha_tx, sha_rx) = sync_channel::<Vec<u8>>(POOL);
        let (back_tx, back_rx) = channel::<Vec<u8>>();
        let sha_worker = scope.spawn(move || {
            let mut h = sha2::Sha256::new();
            for buf in sha_rx {
                h.update(buf.as_slice());
                let _ = back_tx.send(buf);
            }
            <[u8; 32]>::from(h.finalize())
        });

        let mut b3 = blake3::Hasher::new();
        let mut allocated = 0usize;
        let mut total = 0u64;
        let result: io::Result<()> = (|| loop {
            // A free buffer: a fresh one while the pool is not full, else one the worker returned.
            let mut buf = if allocated < POOL {
                allocated += 1;
                vec![0u8; CHUNK]
            } else {
                back_rx.recv().map_err(|_| io::Error::other("hash worker stopped"))?
            };
            buf.resize(CHUNK, 0);
            let mut filled = 0;
            while filled < CHUNK {
                match reader.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if filled == 0 {
                return Ok(());
            }
            buf.truncate(filled);
            total += filled as u64;
            b3.update(&buf);
            sha_tx.send(buf).map_err(|_| io::Error::other("hash worker stopped"))?;
            progress(total);
            if filled < CHUNK {
                return Ok(());
            }
        })();
        drop(sha_tx);
        let sha256 = sha_worker.join().map_err(|_| io::Error::other("SHA-256 worker panicked"))?;
        result?;
        Ok(Digests { bytes: total, sha256, blake3: *b3.finalize().as_bytes() })
    })
}

/// Hashes a file by path (see [`hash_reader`]).
pub fn hash_file(path: &std::path::Path, progress: &mut dyn FnMut(u64)) -> io::Result<Digests> {
    let f = std::fs::File::open(path)?;
    hash_reader(f, progress)
}

/// SHA-256 of a byte slice, lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_single_threaded_digests_across_chunk_boundaries() {
        for len in [0usize, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let d = hash_reader(&data[..], &mut |_| {}).unwrap();
            assert_eq!(d, Digests::of_bytes(&data), "len {len}");
        }
    }

    #[test]
    fn short_reads_are_handled() {
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(out.len()).min(7777);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let data = vec![7u8; 3 * CHUNK + 5];
        let d = hash_reader(Trickle(&data), &mut |_| {}).unwrap();
        assert_eq!(d, Digests::of_bytes(&data));
    }
}
