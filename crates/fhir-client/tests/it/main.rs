#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Integration tests of fhir-client: one binary, one module per area.

mod round_trip;
