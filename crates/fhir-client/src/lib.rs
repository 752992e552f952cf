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
//! (`value[x]` as enums) are modelled. The typed models drop JSON members they do not know and
//! refuse resources missing a required element; [`Lossless<T>`](Lossless) (and
//! [`FhirClient::read_lossless`] / [`FhirClient::update_lossless`]) keeps and tolerates both.
//! `Bundle.entry.resource` is kept as JSON by the model: [`SearchPage`] types it for you.
//!
//! Helpers: [`name::patient_display_name`] (never fails; "Unnamed patient (MR 123)"),
//! [`name::display_human_name`] (python-fhirclient's "prefix given family, suffix"),
//! [`coding`] (codes by system), [`quantity::display_quantity`] ("72.50 kg"),
//! [`reference::parse_reference`] ((base, type, id, version)) and [`FhirClient::resolve`].
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

pub use client::{EverythingParams, FhirClient, FhirClientBuilder, HttpPool, ResolveContext};
pub use error::{FhirError, Issue};
/// The FHIR R4 (4.0.1) models: `resources`, `types`, `codes` (from the `fhir` crate).
pub use fhir::r4;
pub use lossless::Lossless;
pub use paging::SearchPage;
pub use retry::RetryPolicy;
