#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Integration tests of fhir-client: one binary, one module per area, each test with its own
//! FHIR server on 127.0.0.1:0.

mod common;
mod faults;
mod rest;
mod round_trip;
