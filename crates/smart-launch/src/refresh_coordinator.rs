//! [`RefreshCoordinator`]: one refresh of a token set at a time across processes that share it.
//!
//! A [`crate::RefreshingToken`] already refreshes once however many callers of one process wait. When several
//! processes (app instances behind a load balancer) hold the same token set, each would send its own refresh; a
//! server that rotates refresh tokens sees the second one reuse a rotated token and, as OAuth 2.0 Security BCP
//! (RFC 9700 §4.14.2) asks, revokes the whole grant. A coordinator set on
//! [`crate::SmartClientConfig::refresh_coordinator`] wraps every refresh: it lets one process send it (a lock
//! with an expiry in a store they share) and hands its result to the others.

use crate::error::Error;
use crate::token::TokenSet;
use crate::token_source::BoxFuture;

/// Runs the refresh of a token set at most once among everyone sharing the coordinator's store.
pub trait RefreshCoordinator: Send + Sync + std::fmt::Debug {
    /// Refreshes `tokens` by awaiting `refresh`, unless another holder of the same token set is doing it or has
    /// done it: then waits for that refresh and returns its result without awaiting `refresh`.
    fn coordinate<'a>(
        &'a self,
        tokens: &'a TokenSet,
        refresh: BoxFuture<'a, Result<TokenSet, Error>>,
    ) -> BoxFuture<'a, Result<TokenSet, Error>>;
}
