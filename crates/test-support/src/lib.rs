//! What the workspace's integration tests share (issue 11 point 1). Dev-only: no shipped crate depends on it.
//!
//! - [`TestClock`]: the system time plus an offset a test moves forward, so that a token expires on demand
//!   instead of after a sleep.

mod clock;

pub use clock::TestClock;
