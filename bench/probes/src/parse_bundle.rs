//! Times parsing one FHIR Bundle file three ways and prints one JSON line (median nanoseconds per parse):
//! - `value`: `serde_json::from_slice::<serde_json::Value>` (untyped);
//! - `bundle`: `serde_json::from_slice::<r4::resources::Bundle>` (the Bundle typed, its entries' resources kept as
//!   JSON values, as the `fhir` crate models them);
//! - `typed`: `bundle` and then every entry's resource into the typed `r4::resources::Resource` (what
//!   `fhir_client`'s search pages do) — the full typed parse.
//!
//! ```sh
//! parse_bundle BUNDLE.json [SECONDS_PER_WAY]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use fhir_client::r4::resources::{Bundle, Resource};

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

/// Median nanoseconds per call over 7 batches filling about `budget`.
fn time(budget: Duration, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    f();
    let once = t.elapsed().max(Duration::from_micros(1));
    let per_batch = (budget.as_secs_f64() / 7.0 / once.as_secs_f64()).max(1.0) as u32;
    let mut samples: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(per_batch)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[3]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: parse_bundle BUNDLE.json [SECONDS_PER_WAY]");
    let seconds: f64 = args.next().map_or(3.0, |s| s.parse().expect("SECONDS_PER_WAY is a number"));
    let bytes = std::fs::read(&path).expect("the Bundle file can be read");
    let entries = typed(&bytes);
    let budget = Duration::from_secs_f64(seconds);
    let value = time(budget, || {
        black_box(serde_json::from_slice::<serde_json::Value>(black_box(&bytes)).unwrap());
    });
    let bundle = time(budget, || {
        black_box(serde_json::from_slice::<Bundle>(black_box(&bytes)).unwrap());
    });
    let full = time(budget, || {
        black_box(typed(black_box(&bytes)));
    });
    println!(
        "{}",
        serde_json::json!({
            "file": path, "bytes": bytes.len(), "entries": entries,
            "value_ns": value, "bundle_ns": bundle, "typed_ns": full,
        })
    );
}
