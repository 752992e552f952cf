#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Parse a large searchset Bundle (Observations and their included Patients) four ways, on the
//! same bytes: into `serde_json::Value`; into the typed `Bundle` (the `fhir` crate's model keeps
//! `entry.resource` as JSON); that `Bundle` plus every entry converted into an R4 `Resource`; and
//! the way `FhirClient::search::<Observation>` parses a page (`SearchPage::from_slice`: matches
//! straight from the bytes into `Observation`, includes into `Resource`, no JSON tree in between).
//! Throughput is reported in bytes per second.
//!
//! The allocator is mimalloc, as in the `smart-fhir` binary. `BENCH_OBSERVATIONS` sets the size
//! (default 40 000 Observations, about 43 MB).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fhir_client::SearchPage;
use fhir_client::r4::resources::{Bundle, Observation, Resource};
use serde_json::Value;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let source = url::Url::parse("http://127.0.0.1/fhir/Observation").unwrap();
    let page = SearchPage::<Observation>::from_slice(&bytes, "Observation", &source).unwrap();
    assert_eq!(page.matches.len() + page.included.len(), typed.len());
    drop((typed, page));

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
    group.bench_function("SearchPage<Observation>::from_slice", |b| {
        b.iter(|| SearchPage::<Observation>::from_slice(&bytes, "Observation", &source).unwrap())
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
