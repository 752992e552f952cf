#![doc = include_str!("../README.md")]

pub mod bulk;
mod client;
pub mod coding;
mod error;
mod json;
pub mod lossless;
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
/// The FHIR R4 (4.0.1) models: `resources`, `types`, `codes` (from the `fhir` crate).
pub use fhir::r4;
pub use lossless::Lossless;
pub use observe::{RequestObservation, RequestObserver};
pub use paging::SearchPage;
pub use retry::RetryPolicy;
