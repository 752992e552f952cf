#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Parse a large searchset Bundle (Observations and their included Patients) three ways, on the
//! same bytes: into `serde_json::Value`; into the typed fhir-r4 `Bundle` with every entry typed;
//! and the way `FhirClient::search::<Observation>` parses a page (`SearchPage::from_slice`,
//! tolerant: the Bundle, then matches as `Observation`, includes as `Resource`). Serializing the
//! typed Bundle back is measured beside them. Throughput is reported in bytes per second.
//!
//! The allocator is mimalloc, as in the `smart-fhir` binary. `BENCH_OBSERVATIONS` sets the size
//! (default 40 000 Observations, about 43 MB).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fhir_client::SearchPage;
use fhir_client::r4::{Bundle, Mode, Observation};
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

    // Every entry must be typed, or the comparison is not fair.
    let (bundle, issues) = fhir_client::r4::from_slice::<Bundle>(&bytes, Mode::Strict).unwrap();
    assert!(issues.is_empty(), "{issues:?}");
    assert_eq!(bundle.entry.len(), bundle_len(&bytes));
    let source = url::Url::parse("http://127.0.0.1/fhir/Observation").unwrap();
    let page = SearchPage::<Observation>::from_slice(&bytes, &source, Mode::Tolerant).unwrap();
    assert_eq!(page.matches.len() + page.included.len(), bundle.entry.len());
    drop(page);

    let mut group = c.benchmark_group("searchset");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("serde_json::Value", |b| {
        b.iter(|| serde_json::from_slice::<Value>(&bytes).unwrap())
    });
    group.bench_function("typed fhir-r4 Bundle (every entry typed)", |b| {
        b.iter(|| fhir_client::r4::from_slice::<Bundle>(&bytes, Mode::Tolerant).unwrap())
    });
    group.bench_function("SearchPage<Observation>::from_slice", |b| {
        b.iter(|| SearchPage::<Observation>::from_slice(&bytes, &source, Mode::Tolerant).unwrap())
    });
    group.bench_function("serialize the typed Bundle", |b| {
        b.iter(|| fhir_client::r4::to_vec(&bundle))
    });
    group.finish();
}

fn bundle_len(bytes: &[u8]) -> usize {
    serde_json::from_slice::<Value>(bytes).unwrap()["entry"]
        .as_array()
        .map_or(0, Vec::len)
}

criterion_group!(benches, parse);
criterion_main!(benches);
