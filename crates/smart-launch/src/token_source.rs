//! Where FHIR clients get their bearer token from.

use std::future::Future;
use std::pin::Pin;

use crate::error::Error;
use crate::secret::AccessToken;

/// A boxed, `Send` future (the same shape as `futures::future::BoxFuture`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A source of access tokens for FHIR requests, shared as `Arc<dyn TokenSource>`.
///
/// Implementations: [`StaticToken`] (a fixed token), the refreshing holder of a completed launch's
/// tokens, and the backend-services (`client_credentials`) source.
pub trait TokenSource: Send + Sync {
    /// A currently valid access token. Implementations refresh ahead of expiry, and when many
    /// callers ask at once only one refresh request is made.
    fn access_token(&self) -> BoxFuture<'_, Result<AccessToken, Error>>;

    /// The server answered 401 to a request made with `rejected`: get a new token. If another caller
    /// already replaced `rejected`, the replacement is returned without a new refresh.
    fn refresh_after_unauthorized(&self, rejected: &AccessToken)
    -> BoxFuture<'_, Result<AccessToken, Error>>;
}

/// A fixed access token that cannot be renewed (for tests, scripts and tokens obtained elsewhere).
#[derive(Clone, Debug)]
pub struct StaticToken {
    token: AccessToken,
}

impl StaticToken {
    /// Wrap a token.
    pub fn new(token: AccessToken) -> Self {
        StaticToken { token }
    }
}

impl TokenSource for StaticToken {
    fn access_token(&self) -> BoxFuture<'_, Result<AccessToken, Error>> {
        let token = self.token.clone();
        Box::pin(async move { Ok(token) })
    }

    fn refresh_after_unauthorized(
        &self,
        _rejected: &AccessToken,
    ) -> BoxFuture<'_, Result<AccessToken, Error>> {
        Box::pin(async { Err(Error::TokenNotRenewable) })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn static_token_gives_its_token_and_cannot_refresh() {
        let source: Arc<dyn TokenSource> = Arc::new(StaticToken::new(AccessToken::new("t")));
        assert_eq!(source.access_token().await.unwrap().secret(), "t");
        let err = source
            .refresh_after_unauthorized(&AccessToken::new("t"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::TokenNotRenewable));
    }
}
