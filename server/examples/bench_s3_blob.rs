//! Benchmark (scripts/bench_s3_blob.sh, not part of the tests): writes FIELDCAP_BENCH_MIB MiB
//! (default 1024) through a blob store the way the tus endpoint does — 1 MiB writes, a sync
//! every 64 MiB and at the end — then stores it as an original, once on the local store and
//! once on the S3 store (moto on 127.0.0.1, or FIELDCAP_TEST_S3_ENDPOINT); prints both times and
//! the ratio.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use fieldcap_server::store::{BlobStore, LocalBlobStore};
use fieldcap_testkit::s3::TestS3;
use sha2::{Digest, Sha256};
use std::time::Instant;

const MIB: usize = 1024 * 1024;

/// (seconds writing and syncing, seconds storing the original).
fn run(store: &dyn BlobStore, mib: usize) -> (f64, f64) {
    let clip = uuid::Uuid::now_v7().hyphenated().to_string();
    let mut chunk = fieldcap_testkit::bytes::seeded(MIB, 42);
    let mut h = Sha256::new();
    let t0 = Instant::now();
    let mut w = store.open_partial(&clip, 0).unwrap();
    for i in 0..mib {
        chunk[..8].copy_from_slice(&(i as u64).to_le_bytes()); // every MiB differs
        w.write_all(&chunk).unwrap();
        h.update(&chunk);
        if (i + 1) % 64 == 0 {
            w.sync().unwrap();
        }
    }
    w.sync().unwrap();
    drop(w);
    let written = t0.elapsed().as_secs_f64();
    let sha = hex::encode(h.finalize());
    let t1 = Instant::now();
    store.store_partial(&clip, &sha).unwrap();
    let stored = t1.elapsed().as_secs_f64();
    assert!(store.contains(&sha).unwrap());
    (written, stored)
}

/// Peak resident memory of this process so far (VmHWM), MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok()).unwrap_or(0.0);
    kb / 1024.0
}

fn report(name: &str, mib: usize, (w, s): (f64, f64)) -> f64 {
    let t = w + s;
    println!("{name}: {mib} MiB in {t:.2} s ({:.0} MiB/s): written and synced {w:.2} s, stored as the original {s:.2} s; peak RSS so far {:.0} MiB", mib as f64 / t, peak_rss_mib());
    t
}

fn main() {
    let mib: usize = std::env::var("FIELDCAP_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let dir = tempfile::tempdir().unwrap();
    let local = LocalBlobStore::open(&dir.path().join("blobs"), &dir.path().join("uploads")).unwrap();
    let t_local = report("local store", mib, run(&local, mib));
    let Some(s3) = TestS3::start() else {
        eprintln!("no S3 server (install moto with scripts/start_s3.sh)");
        std::process::exit(1);
    };
    let t_s3 = report("S3 store   ", mib, run(&s3.store(), mib));
    println!("ratio S3/local: {:.1}", t_s3 / t_local);
}
