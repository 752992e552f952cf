//! # fhir-client
//!
//! A FHIR R4 (4.0.1) client: typed models, the RESTful interactions (read, vread, history,
//! search with paging, create, update with `If-Match`, patch, delete, batch/transaction,
//! capabilities, `Patient/$everything`), reference resolution, retries with backoff, and
//! authorization through a [`smart_launch::TokenSource`] (one refresh-and-retry on 401).
//!
//! The models are the [`fhir`](https://crates.io/crates/fhir) crate's R4 module, re-exported as
//! [`r4`]: `fhir_client::r4::resources::{Patient, Observation, Bundle, …}` and
//! `fhir_client::r4::types::{HumanName, CodeableConcept, Quantity, …}`. Decimals keep their written
//! precision (`0.50` stays `0.50`), primitive extensions (`_birthDate`) and choice types
//! (`value[x]` as enums) are modelled.
//!
//! ```no_run
//! use std::sync::Arc;
//! use fhir_client::r4::resources::{Observation, Patient};
//! use fhir_client::search::{SearchParams, Token};
//! use fhir_client::{FhirClient, coding::system, name::patient_display_name};
//! use smart_launch::{AccessToken, StaticToken};
//!
//! # async fn demo() -> Result<(), fhir_client::FhirError> {
//! let tokens = Arc::new(StaticToken::new(AccessToken::new("…")));
//! let client = FhirClient::with_token_source("https://ehr.example/fhir", tokens)?;
//! let patient: Patient = client.read("123").await?;
//! println!("{}", patient_display_name(&patient));
//! let params = SearchParams::new()
//!     .patient("123")
//!     .token("category", Token::new(system::OBSERVATION_CATEGORY, "vital-signs"));
//! let page = client.search::<Observation>(&params).await?;
//! for observation in &page.matches {
//!     println!("{:?}", observation.effective);
//! }
//! # Ok(()) }
//! ```

mod client;
pub mod coding;
mod error;
pub mod lossless;
pub mod name;
mod paging;
pub mod quantity;
pub mod reference;
mod request;
pub mod retry;
pub mod search;

pub use client::{FhirClient, FhirClientBuilder, ResolveContext};
pub use error::{FhirError, Issue};
/// The FHIR R4 (4.0.1) models: `resources`, `types`, `codes` (from the `fhir` crate).
pub use fhir::r4;
pub use lossless::Lossless;
pub use paging::SearchPage;
pub use retry::RetryPolicy;
