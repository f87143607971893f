//! Criterion benchmarks: hashing throughput (the two digests in parallel vs each alone) and queue
//! operations on a store holding 10,000 items (goal: listing and picking the next under 50 ms);
//! live capture: sealing one 2 s fragment at a 1080p bitrate (1.5 MB; goal: under 1 % of one core,
//! i.e. under 20 ms per fragment).
//!
//! Run: `cargo bench -p fieldcap-core --bench core_bench`
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fieldcap_core::manifest::Observation;
use fieldcap_core::seal::ObservationRequest;
use fieldcap_testkit::bytes::seeded;
use fieldcap_testkit::device::open_store;
use sha2::Digest;

fn hashing(c: &mut Criterion) {
    let data = seeded(64 << 20, 1);
    let mut g = c.benchmark_group("hashing_64MiB");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    g.bench_function("sha256+blake3 parallel (seal path)", |b| {
        b.iter(|| fieldcap_core::hashing::hash_reader(&data[..], &mut |_| {}).expect("hash"))
    });
    g.bench_function("sha256 alone", |b| b.iter(|| sha2::Sha256::digest(&data)));
    g.bench_function("blake3 alone (1 thread)", |b| b.iter(|| blake3::hash(&data)));
    g.finish();
}

fn queue(c: &mut Criterion) {
    // Built once and kept under target/ (10,000 durable commits take a while).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data/queue-10k");
    let store = open_store(&dir);
    let have = store.list_items().expect("list").len();
    for i in have..10_000 {
        store
            .observe(ObservationRequest { observation: Observation { text: format!("observation {i}"), ..Default::default() }, ..Default::default() })
            .expect("observe");
    }
    let mut g = c.benchmark_group("queue_10k");
    g.bench_with_input(BenchmarkId::new("list_items", 10_000), &store, |b, s| b.iter(|| s.list_items().expect("list").len()));
    g.bench_with_input(BenchmarkId::new("next_queued(1)", 10_000), &store, |b, s| b.iter(|| s.next_queued(1).expect("next").len()));
    g.bench_with_input(BenchmarkId::new("open_store_with_recovery", 10_000), &dir, |b, d| {
        b.iter(|| open_store(d).device_id().len())
    });
    g.finish();
}

/// A structurally valid fMP4 initialization segment (one video track, id 1).
fn live_init() -> Vec<u8> {
    use fieldcap_testkit::media::bx;
    let mut tkhd = vec![0u8; 12];
    tkhd.extend_from_slice(&1u32.to_be_bytes());
    tkhd.extend_from_slice(&[0u8; 68]);
    let mut mdhd = vec![0u8; 12];
    mdhd.extend_from_slice(&15360u32.to_be_bytes());
    mdhd.extend_from_slice(&[0u8; 8]);
    let trak = bx(b"trak", &[bx(b"tkhd", &tkhd), bx(b"mdia", &bx(b"mdhd", &mdhd))].concat());
    let moov = bx(b"moov", &[bx(b"mvhd", &[0u8; 100]), trak, bx(b"mvex", &bx(b"trex", &[0u8; 24]))].concat());
    [bx(b"ftyp", b"isom\0\0\0\0isomiso6"), moov].concat()
}

/// One media fragment: `moof` (sequence `seq`, track 1, decode time) + `mdat` of `payload`.
fn live_fragment(seq: u32, payload: &[u8]) -> Vec<u8> {
    use fieldcap_testkit::media::bx;
    let mut mfhd = vec![0u8; 4];
    mfhd.extend_from_slice(&seq.to_be_bytes());
    let mut tfhd = vec![0, 2, 0, 0];
    tfhd.extend_from_slice(&1u32.to_be_bytes());
    let mut tfdt = vec![1, 0, 0, 0];
    tfdt.extend_from_slice(&(u64::from(seq) * 30720).to_be_bytes());
    let traf = bx(b"traf", &[bx(b"tfhd", &tfhd), bx(b"tfdt", &tfdt)].concat());
    [bx(b"moof", &[bx(b"mfhd", &mfhd), traf].concat()), bx(b"mdat", payload)].concat()
}

fn live(c: &mut Criterion) {
    let t = tempfile::tempdir().expect("tempdir");
    let store = open_store(t.path());
    let clip = store.begin_live(fieldcap_core::seal::CaptureRequest::default(), "mp4").expect("begin");
    store.append_live(&clip, &live_init()).expect("init");
    let payload = seeded(1_500_000, 7);
    let mut seq = 0u32;
    let mut g = c.benchmark_group("live_capture");
    g.throughput(Throughput::Bytes(payload.len() as u64));
    g.sample_size(30);
    g.bench_function("append_live 1.5 MB fragment (check, append+fsync, digests, sign, record)", |b| {
        b.iter_batched(
            || {
                seq += 1;
                live_fragment(seq, &payload)
            },
            |f| store.append_live(&clip, &f).expect("append"),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, hashing, queue, live);
criterion_main!(benches);
