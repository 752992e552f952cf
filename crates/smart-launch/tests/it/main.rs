#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Integration tests: real HTTP against the sandbox EHR started on 127.0.0.1:0 (`common.rs`), and, for the
//! faults the sandbox cannot produce, against a small in-test server (`fault_server.rs`).

mod backend;
mod common;
mod conformance;
mod discovery;
mod fault_server;
mod id_token;
mod launch;
mod openid;
mod personas;
mod refresh;
mod tokens;
mod trace;
