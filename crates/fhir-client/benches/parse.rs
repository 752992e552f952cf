#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Parse a large searchset Bundle (Observations and Patients) three ways, on the same bytes:
//! into `serde_json::Value`, into the typed `Bundle` (entries stay JSON), and fully typed
//! (`Bundle` + every entry as an R4 `Resource`). Throughput is reported in bytes per second.
//!
//! `BENCH_OBSERVATIONS` sets the size (default 40 000 Observations, about 46 MB).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fhir_client::r4::resources::{Bundle, Resource};
use serde_json::Value;

#[path = "synthetic_bundle.rs"]
mod synthetic_bundle;

fn parse(c: &mut Criterion) {
    let observations = std::env::var("BENCH_OBSERVATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40_000);
    let bytes = synthetic_bundle::searchset_bundle(observations);
    eprintln!("bundle: {observations} Observations, {} bytes", bytes.len());

    // The fully typed parse must see every entry, or the comparison is not fair.
    let bundle: Bundle = serde_json::from_slice(&bytes).unwrap();
    let typed = typed_entries(bundle);
    assert_eq!(typed.len(), bundle_len(&bytes));

    let mut group = c.benchmark_group("searchset");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("serde_json::Value", |b| {
        b.iter(|| serde_json::from_slice::<Value>(&bytes).unwrap())
    });
    group.bench_function("typed Bundle (entries as JSON)", |b| {
        b.iter(|| serde_json::from_slice::<Bundle>(&bytes).unwrap())
    });
    group.bench_function("typed Bundle + typed entries", |b| {
        b.iter(|| typed_entries(serde_json::from_slice::<Bundle>(&bytes).unwrap()))
    });
    group.finish();
}

fn typed_entries(bundle: Bundle) -> Vec<Resource> {
    bundle
        .entry
        .into_iter()
        .filter_map(|e| e.resource)
        .map(|r| serde_json::from_value::<Resource>(r).unwrap())
        .collect()
}

fn bundle_len(bytes: &[u8]) -> usize {
    serde_json::from_slice::<Value>(bytes).unwrap()["entry"]
        .as_array()
        .map_or(0, Vec::len)
}

criterion_group!(benches, parse);
criterion_main!(benches);
