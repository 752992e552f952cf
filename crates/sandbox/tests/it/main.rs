#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Integration tests of the sandbox: real servers on 127.0.0.1:0, real HTTP, a SQLite file in a temp dir.

mod auth_authorize;
mod auth_clients;
mod auth_discovery;
mod auth_token;
mod bulk;
mod common;
mod conformance;
mod fhir_access;
mod fhir_base_paths;
mod fhir_data;
mod fhir_everything;
mod fhir_patch;
mod fhir_read;
mod fhir_search;
mod fhir_support;
mod fhir_write;
mod import;
mod launch_ehr;
mod launch_smart_launch;
mod launch_standalone;
mod persona_cerner;
mod persona_epic;
mod persona_support;
mod safety_access;
mod safety_auth;
mod safety_limits;
mod safety_retention;
mod safety_server;
mod safety_store;
