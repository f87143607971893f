//! Criterion benchmarks: hashing throughput (the two digests in parallel vs each alone) and queue
//! operations on a store holding 10,000 items (goal: listing and picking the next under 50 ms).
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

criterion_group!(benches, hashing, queue);
criterion_main!(benches);
