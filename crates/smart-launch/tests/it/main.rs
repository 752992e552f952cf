#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Integration tests: real HTTP against an authorization server started on 127.0.0.1:0.

mod backend;
mod common;
mod discovery;
mod id_token;
mod launch;
mod tokens;
