//! Streams one FHIR search through fhir-client's paging (`search_all`, following `next` links) and prints one JSON
//! line: how many resources, how long, and the process's peak RSS (VmHWM) every 10,000 resources.
//!
//! ```sh
//! FHIR_BEARER_TOKEN=… stream_search http://127.0.0.1:9000/fhir 'Observation?_count=1000' 100000
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use fhir_client::FhirClient;
use fhir_client::r4::Observation;
use fhir_client::search::SearchParams;
use futures::TryStreamExt;
use smart_launch::{AccessToken, StaticToken};

fn vm_hwm_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: stream_search FHIR_BASE 'Observation?_count=1000' LIMIT (token in FHIR_BEARER_TOKEN)";
    let base = args.next().ok_or(usage)?;
    let query = args.next().ok_or(usage)?;
    let limit: usize = args.next().ok_or(usage)?.parse()?;
    let token = std::env::var("FHIR_BEARER_TOKEN").map_err(|_| "set FHIR_BEARER_TOKEN to an access token")?;

    let (resource_type, params) = query.split_once('?').unwrap_or((query.as_str(), ""));
    if resource_type != "Observation" {
        return Err(format!("only Observation searches are measured, not {resource_type}").into());
    }
    let mut search = SearchParams::new();
    for pair in params.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        search = search.raw(k, v);
    }

    let client = FhirClient::with_token_source(base, Arc::new(StaticToken::new(AccessToken::new(token))))?;
    let started = Instant::now();
    let mut stream = Box::pin(client.search_all::<Observation>(search));
    let mut count = 0usize;
    let mut checkpoints = Vec::new();
    while count < limit {
        let Some(observation) = stream.try_next().await? else {
            break;
        };
        drop(observation);
        count += 1;
        if count % 10_000 == 0 {
            checkpoints.push(serde_json::json!({
                "resources": count,
                "seconds": started.elapsed().as_secs_f64(),
                "vmhwm_kb": vm_hwm_kb(),
            }));
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "resources": count,
            "seconds": seconds,
            "resources_per_s": count as f64 / seconds,
            "vmhwm_kb": vm_hwm_kb(),
            "checkpoints": checkpoints,
        })
    );
    Ok(())
}
