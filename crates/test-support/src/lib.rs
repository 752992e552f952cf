//! What the workspace's integration tests share (issue 11 point 1). Dev-only: no shipped crate depends on it.
//!
//! - [`TestClock`]: the system time plus an offset a test moves forward, so that a token expires on demand
//!   instead of after a sleep.
//! - [`browser`]: a browser-like client with a cookie jar that follows redirects by hand and reads forms, and
//!   the click-through of the sandbox's pages.
//! - [`chromium`]: a headless Chromium through chromedriver, for end-to-end tests.
//! - [`consent`]: the sandbox's sign-in, picker and consent pages walked as a user would (one copy for every
//!   crate's tests).
//! - [`sandbox::TestSandbox`]: the real sandbox EHR on port 0 over a temp-dir database, with the fixed key below,
//!   reached directly or through a listener that records every request.
//! - [`ISSUER_KEY_PEM`]: one fixed RSA key for every test sandbox's id_tokens, instead of a 2048-bit key
//!   generated per test (slow in a debug build).

// Test helpers: a failed step is a failed test, so they panic with what went wrong instead of returning errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod browser;
pub mod chromium;
mod clock;
pub mod consent;
pub mod sandbox;

pub use clock::TestClock;

/// The RSA private key (PKCS#1 PEM) every test sandbox signs id_tokens with (`SandboxConfig::issuer_key_pem`).
/// Public, committed, for tests only (`keys/README.md`).
pub const ISSUER_KEY_PEM: &str = include_str!("../keys/sandbox-issuer-rsa2048.pem");
