//! One-pass, two-digest hashing of media files.
//!
//! Sealing must read a (possibly multi-GiB) file exactly once and produce both SHA-256 (what
//! `sha256sum` and courts expect) and BLAKE3 (fast, `b3sum`). The calling thread reads into a
//! small pool of fixed buffers and feeds BLAKE3; a worker thread feeds SHA-256, the slower of the
//! two, so on a two-core phone both cores hash at once. Memory is bounded by the pool
//! (`POOL` × `CHUNK`), whatever the file size.
//!
//! Streams handed over chunk by chunk use [`StreamingDigests`] instead: the chunks are hashed on
//! worker threads while the caller does something else with them (the release scrubber writes
//! them; the sync client sends them), so the digests cover exactly the bytes handled and the
//! hashing overlaps the I/O. The sync client runs it in its BLAKE3-only mode
//! ([`StreamingDigests::blake3_only`]): either digest catches a changed file, BLAKE3 costs a
//! fraction of SHA-256's CPU (battery, on a phone), and the server re-hashes both anyway.
//!
//! ```
//! let d = fieldcap_evidence::hashing::hash_reader(&b"abc"[..], &mut |_| {}).unwrap();
//! assert_eq!(d.bytes, 3);
//! assert_eq!(d.sha256_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
//! ```

use sha2::Digest as _;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

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

/// [`hash_reader`] that also writes every byte read to `sink`, from the calling thread, in the
/// same pass: sealing encrypts a file into the store while it hashes it, reading it once.
pub fn hash_reader_into<R: Read>(mut reader: R, sink: &mut dyn io::Write, progress: &mut dyn FnMut(u64)) -> io::Result<Digests> {
    use std::sync::Arc;
    std::thread::scope(|scope| {
        // Buffers are shared: the SHA-256 worker hashes one while this thread feeds BLAKE3 and
        // the sink with it; a buffer is reused once both are done with it.
        let (sha_tx, sha_rx) = sync_channel::<Arc<Vec<u8>>>(POOL);
        let (back_tx, back_rx) = channel::<Arc<Vec<u8>>>();
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
            // A free buffer: a fresh one while the pool is not full, else one the worker returned
            // (this thread dropped its handle before taking the next, so it is unshared again).
            let mut buf = if allocated < POOL {
                allocated += 1;
                vec![0u8; CHUNK]
            } else {
                let shared = back_rx.recv().map_err(|_| io::Error::other("hash worker stopped"))?;
                Arc::try_unwrap(shared).unwrap_or_else(|_| vec![0u8; CHUNK])
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
            let buf = Arc::new(buf);
            sha_tx.send(buf.clone()).map_err(|_| io::Error::other("hash worker stopped"))?;
            b3.update(&buf);
            sink.write_all(&buf)?;
            drop(buf);
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

/// Chunks queued per worker before [`StreamingDigests::update`] waits for the workers (both
/// digests), and prefix pieces queued per worker (every mode).
const STREAM_QUEUE: usize = 4;

/// Which digests a [`StreamingDigests`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamMode {
    /// SHA-256 and BLAKE3, on a worker each; up to [`STREAM_QUEUE`] (4) chunks queue per worker.
    Both,
    /// BLAKE3 alone, on one worker, and no queue: [`update`](StreamingDigests::update) hands the
    /// chunk straight to the worker, waiting while it still hashes the previous one. So at most
    /// one chunk is being hashed while the caller holds the next: the memory an uploader needs
    /// stays at two chunk buffers whatever the chunk size.
    Blake3Only,
}

/// Length and BLAKE3 of a stream hashed in [`StreamMode::Blake3Only`] (or of any stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blake3Digest {
    /// Number of bytes hashed.
    pub bytes: u64,
    /// BLAKE3 of the whole stream.
    pub blake3: [u8; 32],
}

impl Blake3Digest {
    /// Lowercase hex BLAKE3.
    pub fn blake3_hex(&self) -> String {
        hex::encode(self.blake3)
    }
}

/// One shared chunk of a stream.
type Chunk = Arc<Vec<u8>>;

/// SHA-256 and BLAKE3 (or BLAKE3 alone, [`StreamMode`]) of a byte stream handed over chunk by
/// chunk, hashed on worker threads (SHA-256 on one, BLAKE3 on another) while the caller does
/// something else with the same chunks: the sync client sends them to the server, so the digests
/// cover exactly the bytes sent, at no extra wall time while the workers keep up.
///
/// Chunks are shared, not copied: [`update`](StreamingDigests::update) takes an `Arc<Vec<u8>>`
/// and queues it for the workers, at most a few chunks each (none in BLAKE3-only mode); beyond
/// that `update` waits for them, so memory stays bounded whatever the stream's length. The stream may begin with a
/// *prefix* that a third thread reads from a reader
/// ([`with_prefix`](StreamingDigests::with_prefix)): when an upload resumes, the bytes already
/// on the server are read back from the file and hashed while the rest is being sent. Chunks
/// given to `update` are hashed after the whole prefix, whatever the timing.
///
/// [`finish`](StreamingDigests::finish) (both digests) or
/// [`finish_blake3`](StreamingDigests::finish_blake3) (any mode) waits for the workers and
/// returns the length and digests of prefix + chunks, or the prefix's read error (a reader that ends before the
/// announced prefix length gives `UnexpectedEof`). Dropping the value without finishing stops
/// the prefix reader at its next piece, lets the workers drop what is queued unhashed, and joins
/// every thread, so nothing is left running.
///
/// ```
/// use std::sync::Arc;
/// use fieldcap_evidence::hashing::{Digests, StreamingDigests};
/// let mut s = StreamingDigests::with_prefix(&b"ab"[..], 2).unwrap();
/// s.update(Arc::new(b"c".to_vec())).unwrap();
/// s.update(Arc::new(b"def".to_vec())).unwrap();
/// assert_eq!(s.finish().unwrap(), Digests::of_bytes(b"abcdef"));
/// ```
pub struct StreamingDigests {
    mode: StreamMode,
    /// The SHA-256 worker's queue (`None` in BLAKE3-only mode, and once finishing).
    sha_tx: Option<SyncSender<Chunk>>,
    b3_tx: Option<SyncSender<Chunk>>,
    sha: Option<JoinHandle<(u64, [u8; 32])>>,
    b3: Option<JoinHandle<(u64, [u8; 32])>>,
    prefix: Option<JoinHandle<io::Result<()>>>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for StreamingDigests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingDigests").field("mode", &self.mode).field("prefix_reader", &self.prefix.is_some()).finish_non_exhaustive()
    }
}

/// Spawns one worker: it hashes the prefix chunks until that channel closes, then the stream
/// chunks until theirs closes; once `stop` is set it only drains.
fn spawn_worker<H: Send + 'static>(
    name: &str,
    prefix: Option<Receiver<Chunk>>,
    stream: Receiver<Chunk>,
    stop: Arc<AtomicBool>,
    mut hasher: H,
    update: fn(&mut H, &[u8]),
    finalize: fn(H) -> [u8; 32],
) -> io::Result<JoinHandle<(u64, [u8; 32])>> {
    std::thread::Builder::new().name(name.into()).spawn(move || {
        let mut n = 0u64;
        for buf in prefix.into_iter().flatten().chain(stream) {
            if !stop.load(Ordering::Relaxed) {
                update(&mut hasher, buf.as_slice());
                n += buf.len() as u64;
            }
        }
        (n, finalize(hasher))
    })
}

fn worker_stopped() -> io::Error {
    io::Error::other("a hash worker stopped")
}

impl StreamingDigests {
    /// Starts the two workers for a stream that begins with the first chunk given to
    /// [`update`](StreamingDigests::update).
    pub fn new() -> io::Result<StreamingDigests> {
        Self::start::<io::Empty>(StreamMode::Both, None)
    }

    /// Starts the workers for a stream whose first `len` bytes are read from `reader`, on a
    /// thread of its own, in pieces of [`CHUNK`] bytes; chunks given to
    /// [`update`](StreamingDigests::update) follow them. `len` may be 0 (no prefix).
    pub fn with_prefix<R: Read + Send + 'static>(reader: R, len: u64) -> io::Result<StreamingDigests> {
        Self::start(StreamMode::Both, Some((reader, len)))
    }

    /// Like [`new`](StreamingDigests::new), BLAKE3 only ([`StreamMode::Blake3Only`]).
    pub fn blake3_only() -> io::Result<StreamingDigests> {
        Self::start::<io::Empty>(StreamMode::Blake3Only, None)
    }

    /// Like [`with_prefix`](StreamingDigests::with_prefix), BLAKE3 only
    /// ([`StreamMode::Blake3Only`]). The chunks given to [`update`](StreamingDigests::update)
    /// wait until the whole prefix is hashed.
    pub fn blake3_only_with_prefix<R: Read + Send + 'static>(reader: R, len: u64) -> io::Result<StreamingDigests> {
        Self::start(StreamMode::Blake3Only, Some((reader, len)))
    }

    /// What this stream computes.
    pub fn mode(&self) -> StreamMode {
        self.mode
    }

    fn start<R: Read + Send + 'static>(mode: StreamMode, prefix: Option<(R, u64)>) -> io::Result<StreamingDigests> {
        let prefix = prefix.filter(|(_, len)| *len > 0);
        let stop = Arc::new(AtomicBool::new(false));
        // From here on, dropping `s` (a failed spawn below) stops and joins what was started.
        let mut s = StreamingDigests { mode, sha_tx: None, b3_tx: None, sha: None, b3: None, prefix: None, stop: stop.clone() };
        // The prefix reader feeds every worker through a queue of its own.
        let mut prefix_txs = Vec::new();
        let mut prefix_queue = || {
            prefix.as_ref().map(|_| {
                let (tx, rx) = sync_channel::<Chunk>(STREAM_QUEUE);
                prefix_txs.push(tx);
                rx
            })
        };
        if mode == StreamMode::Both {
            let (sha_tx, sha_rx) = sync_channel::<Chunk>(STREAM_QUEUE);
            s.sha_tx = Some(sha_tx);
            s.sha = Some(spawn_worker(
                "fieldcap-sha256",
                prefix_queue(),
                sha_rx,
                stop.clone(),
                sha2::Sha256::new(),
                |h, b| h.update(b),
                |h| h.finalize().into(),
            )?);
        }
        // BLAKE3-only: no queue, the caller hands each chunk straight to the worker.
        let (b3_tx, b3_rx) = sync_channel::<Chunk>(if mode == StreamMode::Both { STREAM_QUEUE } else { 0 });
        s.b3_tx = Some(b3_tx);
        s.b3 = Some(spawn_worker(
            "fieldcap-blake3",
            prefix_queue(),
            b3_rx,
            stop.clone(),
            blake3::Hasher::new(),
            |h, b| {
                h.update(b);
            },
            |h| *h.finalize().as_bytes(),
        )?);
        if let Some((mut reader, len)) = prefix {
            s.prefix = Some(std::thread::Builder::new().name("fieldcap-hash-prefix".into()).spawn(move || {
                // Buffers come back for reuse once every worker has hashed them (a fresh one
                // per piece would cost a page fault per 4 KiB).
                let mut kept: Vec<Chunk> = Vec::new();
                let mut left = len;
                while left > 0 {
                    if stop.load(Ordering::Relaxed) {
                        return Err(io::Error::other("stopped"));
                    }
                    let n = left.min(CHUNK as u64) as usize;
                    // Only this thread clones the kept handles, so a count of 1 stays 1.
                    let mut buf = match kept.iter().position(|b| Arc::strong_count(b) == 1) {
                        Some(i) => Arc::try_unwrap(kept.swap_remove(i)).unwrap_or_default(),
                        None => Vec::new(),
                    };
                    buf.resize(n, 0);
                    reader.read_exact(&mut buf)?;
                    let buf = Arc::new(buf);
                    if kept.len() < 2 * STREAM_QUEUE + 2 {
                        kept.push(buf.clone());
                    }
                    for tx in &prefix_txs {
                        tx.send(buf.clone()).map_err(|_| worker_stopped())?;
                    }
                    left -= n as u64;
                }
                Ok(())
            })?);
        }
        Ok(s)
    }

    /// Queues the next chunk of the stream for the workers; waits while their queues are full
    /// (in BLAKE3-only mode, until the worker takes it). Fails only if a worker has stopped (it
    /// panicked).
    pub fn update(&mut self, chunk: Arc<Vec<u8>>) -> io::Result<()> {
        let b3 = self.b3_tx.as_ref().ok_or_else(worker_stopped)?;
        match (self.mode, &self.sha_tx) {
            (StreamMode::Both, Some(sha)) => sha.send(chunk.clone()).map_err(|_| worker_stopped())?,
            (StreamMode::Both, None) => return Err(worker_stopped()),
            (StreamMode::Blake3Only, _) => {}
        }
        b3.send(chunk).map_err(|_| worker_stopped())
    }

    /// Ends the stream: waits until the prefix and every chunk are hashed and returns the
    /// length and both digests, or the prefix reader's error. A BLAKE3-only stream has no
    /// SHA-256 to give: `ErrorKind::Unsupported` (use
    /// [`finish_blake3`](StreamingDigests::finish_blake3)).
    pub fn finish(self) -> io::Result<Digests> {
        if self.mode != StreamMode::Both {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "SHA-256 was not computed (a BLAKE3-only stream)"));
        }
        let (bytes, sha256, blake3) = self.join()?;
        let sha256 = sha256.ok_or_else(worker_stopped)?;
        Ok(Digests { bytes, sha256, blake3 })
    }

    /// Ends the stream (in any mode): waits until the prefix and every chunk are hashed and
    /// returns the length and BLAKE3, or the prefix reader's error.
    pub fn finish_blake3(self) -> io::Result<Blake3Digest> {
        let (bytes, _, blake3) = self.join()?;
        Ok(Blake3Digest { bytes, blake3 })
    }

    /// Closes the queues and joins every thread: (length, SHA-256 if computed, BLAKE3).
    fn join(mut self) -> io::Result<(u64, Option<[u8; 32]>, [u8; 32])> {
        self.sha_tx = None;
        self.b3_tx = None;
        if let Some(p) = self.prefix.take() {
            p.join().map_err(|_| io::Error::other("the prefix reader panicked"))??;
        }
        let sha = match self.sha.take() {
            Some(h) => Some(h.join().map_err(|_| io::Error::other("the SHA-256 worker panicked"))?),
            None => None,
        };
        let (n_b3, blake3) = self.b3.take().ok_or_else(worker_stopped)?.join().map_err(|_| io::Error::other("the BLAKE3 worker panicked"))?;
        if let Some((n_sha, _)) = sha {
            if n_sha != n_b3 {
                return Err(io::Error::other("the hash workers saw different lengths"));
            }
        }
        Ok((n_b3, sha.map(|(_, d)| d), blake3))
    }
}

impl Drop for StreamingDigests {
    fn drop(&mut self) {
        // Unfinished: stop the prefix reader, let the workers drain without hashing, join all.
        self.stop.store(true, Ordering::Relaxed);
        self.sha_tx = None;
        self.b3_tx = None;
        if let Some(h) = self.prefix.take() {
            let _ = h.join();
        }
        if let Some(h) = self.sha.take() {
            let _ = h.join();
        }
        if let Some(h) = self.b3.take() {
            let _ = h.join();
        }
    }
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
            let d = hash_reader(&data[..], &mut |_| {}).expect("ok");
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
        let d = hash_reader(Trickle(&data), &mut |_| {}).expect("ok");
        assert_eq!(d, Digests::of_bytes(&data));
    }

    /// Cuts `data` at the given fractions (sorted, deduplicated) into owned chunks.
    fn split(data: &[u8], cuts: &[f64]) -> Vec<Arc<Vec<u8>>> {
        let mut at: Vec<usize> = cuts.iter().map(|f| ((data.len() as f64) * f) as usize).collect();
        at.push(data.len());
        at.sort_unstable();
        let mut out = Vec::new();
        let mut from = 0;
        for to in at {
            out.push(Arc::new(data[from..to].to_vec()));
            from = to;
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Any split of any stream, with any prefix read from a reader, gives the digests of
        /// the whole stream.
        #[test]
        fn streaming_equals_one_shot_for_random_splits(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..(3 * CHUNK + 100)),
            cuts in proptest::collection::vec(0.0f64..1.0, 0..12),
            prefix_frac in 0.0f64..1.0,
            with_prefix in proptest::prelude::any::<bool>(),
        ) {
            let p = if with_prefix { ((data.len() as f64) * prefix_frac) as usize } else { 0 };
            let mut s = if with_prefix {
                StreamingDigests::with_prefix(std::io::Cursor::new(data[..p].to_vec()), p as u64).expect("start")
            } else {
                StreamingDigests::new().expect("start")
            };
            for c in split(&data[p..], &cuts) {
                s.update(c).expect("update");
            }
            proptest::prop_assert_eq!(s.finish().expect("finish"), Digests::of_bytes(&data));
        }

        /// The same in BLAKE3-only mode: the BLAKE3 of the whole stream, whatever the split.
        #[test]
        fn blake3_only_equals_one_shot_for_random_splits(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..(3 * CHUNK + 100)),
            cuts in proptest::collection::vec(0.0f64..1.0, 0..12),
            prefix_frac in 0.0f64..1.0,
        ) {
            let p = ((data.len() as f64) * prefix_frac) as usize;
            let mut s = StreamingDigests::blake3_only_with_prefix(std::io::Cursor::new(data[..p].to_vec()), p as u64).expect("start");
            for c in split(&data[p..], &cuts) {
                s.update(c).expect("update");
            }
            let d = s.finish_blake3().expect("finish");
            proptest::prop_assert_eq!((d.bytes, d.blake3), (data.len() as u64, *blake3::hash(&data).as_bytes()));
        }
    }

    #[test]
    fn blake3_only_has_no_sha256_to_give_and_both_gives_blake3_alone_too() {
        let mut s = StreamingDigests::blake3_only().expect("start");
        assert_eq!(s.mode(), StreamMode::Blake3Only);
        assert!(s.sha.is_none() && s.sha_tx.is_none(), "no SHA-256 worker runs");
        s.update(Arc::new(b"abc".to_vec())).expect("update");
        assert_eq!(s.finish().expect_err("no SHA-256").kind(), io::ErrorKind::Unsupported);
        let mut s = StreamingDigests::new().expect("start");
        s.update(Arc::new(b"abc".to_vec())).expect("update");
        let d = s.finish_blake3().expect("finish");
        assert_eq!(d.blake3_hex(), Digests::of_bytes(b"abc").blake3_hex());
    }

    #[test]
    fn blake3_only_holds_at_most_one_chunk_besides_the_callers() {
        // No queue: when update returns, the worker has taken the chunk, and it let go of the
        // one before (it takes the next only after hashing the previous).
        let mut s = StreamingDigests::blake3_only().expect("start");
        let first = Arc::new(vec![1u8; CHUNK]);
        s.update(first.clone()).expect("update");
        s.update(Arc::new(vec![2u8; CHUNK])).expect("update");
        assert_eq!(Arc::strong_count(&first), 1, "the first chunk is released once the second is taken");
        let d = s.finish_blake3().expect("finish");
        assert_eq!(d.bytes, 2 * CHUNK as u64);
    }

    #[test]
    fn streaming_many_chunks_and_a_multi_piece_prefix() {
        let data: Vec<u8> = (0..(7 * CHUNK + 333)).map(|i| (i * 131 % 253) as u8).collect();
        let p = 2 * CHUNK + 5; // three prefix pieces
        let mut s = StreamingDigests::with_prefix(std::io::Cursor::new(data.clone()), p as u64).expect("ok");
        for c in data[p..].chunks(64 * 1024 + 7) {
            s.update(Arc::new(c.to_vec())).expect("ok");
        }
        assert_eq!(s.finish().expect("finish"), Digests::of_bytes(&data));
        assert_eq!(StreamingDigests::new().expect("start").finish().expect("finish"), Digests::of_bytes(b""));
    }

    #[test]
    fn a_prefix_shorter_than_announced_is_unexpected_eof() {
        let mut s = StreamingDigests::with_prefix(&[1u8; 10][..], 11).expect("ok");
        s.update(Arc::new(vec![2u8; 5])).expect("ok");
        assert_eq!(s.finish().expect_err("fails").kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn dropping_unfinished_stops_the_prefix_reader_and_joins() {
        /// An endless, slow reader: only the stop flag ends the prefix thread.
        struct Slow;
        impl Read for Slow {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                std::thread::sleep(std::time::Duration::from_millis(1));
                let n = out.len().min(4096);
                out[..n].fill(9);
                Ok(n)
            }
        }
        let t = std::time::Instant::now();
        let s = StreamingDigests::with_prefix(Slow, u64::MAX).expect("ok");
        for _ in 0..3 * STREAM_QUEUE {
            // The stream queues fill while the prefix is still being read; a send then waits.
            if s.sha_tx.as_ref().expect("open").try_send(Arc::new(vec![0u8; 8])).is_err() {
                break;
            }
        }
        drop(s);
        assert!(t.elapsed() < std::time::Duration::from_secs(5), "drop returned promptly");
    }
}
