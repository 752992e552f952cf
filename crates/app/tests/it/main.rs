//! Integration tests of the app: real sockets, the sandbox EHR, a cookie-keeping HTTP client, and
//! a headless Chromium for the end-to-end test.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod browser;
mod common;
mod errors;
mod fake_ehr;
mod instances;
mod lab_units;
mod launch;
mod logs;
mod oidc;
mod personas;
mod revocation;
mod safety;
mod session;
mod summary;
mod timeline;
