#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Write the benchmark's searchset Bundle to a file, for parsing it with other tools
//! (e.g. python-fhirclient) on exactly the same bytes.
//!
//! `cargo run -p fhir-client --example make_bench_bundle -- OUT.json [OBSERVATIONS]`
//! (default 40 000 Observations, about 46 MB, the same as `cargo bench --bench parse`).

#[path = "../benches/synthetic_bundle.rs"]
mod synthetic_bundle;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: make_bench_bundle OUT.json [OBSERVATIONS]");
        std::process::exit(2);
    };
    let observations = match args.next().map(|n| n.parse::<usize>()) {
        None => 40_000,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("OBSERVATIONS must be a number: {e}");
            std::process::exit(2);
        }
    };
    let bytes = synthetic_bundle::searchset_bundle(observations);
    if let Err(e) = std::fs::write(&path, &bytes) {
        eprintln!("could not write {path}: {e}");
        std::process::exit(1);
    }
    println!("wrote {path}: {observations} Observations, {} bytes", bytes.len());
}
