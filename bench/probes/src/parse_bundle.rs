//! Times parsing one FHIR Bundle file three ways and prints one JSON line (median nanoseconds per parse):
//! - `value`: `serde_json::from_slice::<serde_json::Value>` (untyped);
//! - `bundle`: `serde_json::from_slice::<r4::resources::Bundle>` (the Bundle typed, its entries' resources kept as
//!   JSON values, as the `fhir` crate models them);
//! - `via_value`: `bundle` and then every entry's resource into the typed `r4::resources::Resource` (the
//!   Bundle's entries built as JSON first, then converted: what `fhir_client` did before `SearchPage::from_slice`);
//! - `typed`: `fhir_client::SearchPage::<Observation>::from_slice` — what `FhirClient::search::<Observation>` does
//!   with a page: matches parsed straight from the bytes into `Observation`, includes into `Resource`, outcomes
//!   into `OperationOutcome`. The full typed parse, and the one compared.
//!
//! The allocator is mimalloc, as in the `smart-fhir` binary.
//!
//! ```sh
//! parse_bundle BUNDLE.json [SECONDS_PER_WAY]
//! parse_bundle BUNDLE.json SECONDS typed     # only the page parse, for a profiler (`perf record`)
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

mod timing;
use timing::median_ns as time;

use fhir_client::SearchPage;
use fhir_client::r4::resources::{Bundle, Observation, Resource};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn page(bytes: &[u8], source: &url::Url) -> usize {
    let page = SearchPage::<Observation>::from_slice(bytes, "Observation", source)
        .expect("the file is a searchset of valid R4 resources");
    let n = page.matches.len() + page.included.len() + page.outcomes.len();
    black_box(page);
    n
}

fn typed(bytes: &[u8]) -> usize {
    let bundle: Bundle = serde_json::from_slice(bytes).expect("the file is a FHIR R4 Bundle");
    let mut n = 0;
    for entry in bundle.entry {
        if let Some(resource) = entry.resource {
            let r: Resource = serde_json::from_value(resource).expect("every entry is a valid R4 resource");
            black_box(&r);
            n += 1;
        }
    }
    n
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: parse_bundle BUNDLE.json [SECONDS_PER_WAY]");
    let seconds: f64 = args
        .next()
        .map_or(3.0, |s| s.parse().expect("SECONDS_PER_WAY is a number"));
    let bytes = std::fs::read(&path).expect("the Bundle file can be read");
    let entries = typed(&bytes);
    let budget = Duration::from_secs_f64(seconds);
    let source = url::Url::parse("http://127.0.0.1/fhir/Observation").expect("a valid URL");
    if args.next().as_deref() == Some("typed") {
        let full = time(budget, || {
            black_box(page(black_box(&bytes), &source));
        });
        println!("{}", serde_json::json!({ "file": path, "typed_ns": full }));
        return;
    }
    let value = time(budget, || {
        black_box(serde_json::from_slice::<serde_json::Value>(black_box(&bytes)).unwrap());
    });
    let bundle = time(budget, || {
        black_box(serde_json::from_slice::<Bundle>(black_box(&bytes)).unwrap());
    });
    let via_value = time(budget, || {
        black_box(typed(black_box(&bytes)));
    });
    assert_eq!(
        page(&bytes, &source),
        entries,
        "the page parse must see every entry"
    );
    let full = time(budget, || {
        black_box(page(black_box(&bytes), &source));
    });
    println!(
        "{}",
        serde_json::json!({
            "file": path, "bytes": bytes.len(), "entries": entries,
            "value_ns": value, "bundle_ns": bundle, "via_value_ns": via_value, "typed_ns": full,
            "allocator": "mimalloc",
        })
    );
}
