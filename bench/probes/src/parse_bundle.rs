//! Times parsing one FHIR Bundle file three ways (`value`, `bundle`, `typed`) and prints one JSON line (median nanoseconds per parse):
//! - `value`: `serde_json::from_slice::<serde_json::Value>` (untyped);
//! - `bundle`: `fhir_r4::from_slice::<Bundle>` (the Bundle and every entry typed, tolerant reading);
//! - `typed`: `fhir_client::SearchPage::<Observation>::from_slice` — what `FhirClient::search::<Observation>` does
//!   with a page: the typed Bundle, its matches as `Observation`, includes as `Resource`, outcomes as
//!   `OperationOutcome`. The full typed parse, and the one compared.
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
use fhir_client::r4::{Bundle, Mode, Observation};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn page(bytes: &[u8], source: &url::Url) -> usize {
    let page = SearchPage::<Observation>::from_slice(bytes, source, Mode::Tolerant)
        .expect("the file is a searchset of valid R4 resources");
    let n = page.matches.len() + page.included.len() + page.outcomes.len();
    black_box(page);
    n
}

fn typed(bytes: &[u8]) -> usize {
    let (bundle, _) = fhir_client::r4::from_slice::<Bundle>(bytes, Mode::Tolerant).expect("the file is a FHIR R4 Bundle");
    let n = bundle.entry.iter().filter(|e| e.resource.is_some()).count();
    black_box(bundle);
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
            "value_ns": value, "bundle_ns": bundle, "typed_ns": full,
            "allocator": "mimalloc",
        })
    );
}
