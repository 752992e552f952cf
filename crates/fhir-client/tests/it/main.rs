#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Integration tests of fhir-client: one binary, one module per area, each test with its own
//! FHIR server on 127.0.0.1:0 — the real sandbox EHR (`common`), or for faults a real server
//! cannot be made to produce, the scripted fault server (`fault_server`).

mod bulk;
mod common;
mod fault_server;
mod faults;
mod rest;
mod tolerant;
