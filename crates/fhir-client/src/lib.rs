#![doc = include_str!("../README.md")]

// The map, by layer from the bottom up: a module uses only modules of the groups above it (no cycles).

// Plain pieces: the one error type, search parameters, retry timing, request observation, and the helpers that
// read models for people (codings, names, quantities).
pub mod coding;
mod error;
pub mod name;
pub mod observe;
pub mod quantity;
pub mod retry;
pub mod search;

// One request sent (bearer token, timeouts, retries); references parsed and resolved.
pub mod reference;
mod request;

// Answers read into the R4 models; the Bulk Data client.
pub mod bulk;
pub mod model;

// Search results as pages.
mod paging;

// The client itself, typed and untyped.
mod client;
mod json;

pub use bulk::BulkClient;
pub use client::{EverythingParams, FhirClient, FhirClientBuilder, HttpPool, ResolveContext};
pub use error::{FhirError, Issue};
/// The FHIR R4 (4.0.1) models the client reads and writes: the workspace's own `fhir-r4` crate
/// (every resource and data type, lossless, tolerant or strict; see its documentation).
pub use fhir_r4 as r4;
pub use model::Read;
pub use observe::{RequestObservation, RequestObserver};
pub use paging::SearchPage;
pub use retry::RetryPolicy;

/// Reads test JSON strictly into a model (unit tests only).
#[cfg(test)]
pub(crate) fn from_json<T: r4::FromJson>(value: serde_json::Value) -> T {
    r4::from_str(&value.to_string(), r4::Mode::Strict)
        .expect("valid R4 JSON")
        .0
}
