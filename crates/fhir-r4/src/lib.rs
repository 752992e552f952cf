//! FHIR R4 (4.0.1) models generated from the HL7 StructureDefinitions, with their own JSON reader and writer.
//!
//! - **Complete**: all 146 resources and every complex data type; BackboneElements as nested structs
//!   (`ObservationComponent`), choice elements as enums (`ObservationValue`), any resource as [`Resource`].
//! - **Lossless**: decimals keep their text ([`Decimal`]), primitive extensions (`_field`, with `null`s in arrays)
//!   are kept ([`Primitive`]), members the model does not know are kept ([`Unknown`]) and written back in place.
//! - **Tolerant or strict** ([`Mode`]): every problem is an [`Issue`] with its FHIR path; tolerant reading makes
//!   the unambiguous coercions (`"1"` → integer) and keeps the rest as unknown members, strict reading fails.
//!
//! ```
//! use fhir_r4::{Mode, Observation, ObservationValue};
//!
//! let json = br#"{"resourceType":"Observation","status":"final",
//!     "code":{"text":"Glucose"},"valueQuantity":{"value":6.30,"unit":"mmol/l"},"x-vendor":1}"#;
//! let (obs, issues) = fhir_r4::from_slice::<Observation>(json, Mode::Tolerant)?;
//! assert_eq!(obs.status.as_ref().and_then(|s| s.as_str()), Some("final"));
//! let Some(ObservationValue::Quantity(q)) = &obs.value else { panic!("a quantity") };
//! assert_eq!(q.value.as_ref().and_then(|v| v.value()).map(|d| d.as_str()), Some("6.30"));
//! assert_eq!(issues[0].to_string(), "Observation.x-vendor: not an R4 element here (kept as an unknown member)");
//! assert_eq!(
//!     fhir_r4::to_string(&obs),
//!     r#"{"resourceType":"Observation","status":"final","code":{"text":"Glucose"},"valueQuantity":{"value":6.30,"unit":"mmol/l"},"x-vendor":1}"#
//! );
//! # Ok::<(), fhir_r4::Error>(())
//! ```
//!
//! The models in `src/generated` are written by `crates/fhir-r4-codegen` (run `crates/fhir-r4-codegen/regen`);
//! the runtime they use is in `src/rt`.

// The generated docs quote the HL7 definitions' short texts, bare URLs included.
#[allow(rustdoc::bare_urls)]
mod generated;
mod resource_type;
pub mod rt;

pub use resource_type::ResourceType;

pub use generated::*;
pub use rt::{
    Base64Binary, Boolean, Canonical, Code, Date, DateTime, Decimal, Error, FhirDecimal, FhirString,
    FromJson, Id, Instant, Integer, Issue, IssueKind, Markdown, Mode, Oid, PositiveInt, Primitive,
    PrimitiveElement, TextValue, Time, ToJson, Unknown, UnknownMember, UnsignedInt, Uri, Url, Uuid, Xhtml,
    from_slice, from_str, to_string, to_vec,
};

/// The README's example, run by `cargo test --doc`.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
