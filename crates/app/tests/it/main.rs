//! Integration tests of the app: real sockets, the sandbox EHR, a cookie-keeping HTTP client.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
