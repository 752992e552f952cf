#![doc = include_str!("../README.md")]

pub mod bulk;
mod client;
pub mod coding;
mod error;
mod json;
pub mod model;
pub mod name;
pub mod observe;
mod paging;
pub mod quantity;
pub mod reference;
mod request;
pub mod retry;
pub mod search;

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
