//! The tokens of a completed launch as a [`TokenSource`]: refreshed ahead of expiry (by at most half
//! the token's lifetime), one refresh at a time however many callers wait.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, watch};

use crate::error::Error;
use crate::refresh_coordinator::RefreshCoordinator;
use crate::secret::AccessToken;
use crate::token::{TokenClient, TokenSet};
use crate::token_source::{BoxFuture, TokenSource};

/// Holds a launch's [`TokenSet`] and refreshes it when needed.
///
/// Single-flight: the token set sits behind an async mutex that a refresh holds, so callers that
/// arrive during a refresh wait for it and then use its result. Every new token set is published
/// on [`RefreshingToken::subscribe`] so the app can store it.
pub struct RefreshingToken {
    client: TokenClient,
    tokens: Mutex<TokenSet>,
    refresh_ahead: Duration,
    updates: watch::Sender<TokenSet>,
    clock: Clock,
    /// Shares each refresh with other processes holding the same tokens, when set.
    coordinator: Option<Arc<dyn RefreshCoordinator>>,
}

/// Where a [`RefreshingToken`] reads the time (the system clock unless a test injects another).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

impl std::fmt::Debug for RefreshingToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshingToken")
            .field("refresh_ahead", &self.refresh_ahead)
            .finish_non_exhaustive()
    }
}

impl RefreshingToken {
    /// Hold `tokens`, refreshing them `refresh_ahead` before they expire (at most half their
    /// lifetime before: see [`TokenSet::refresh_due`]).
    pub fn new(client: TokenClient, tokens: TokenSet, refresh_ahead: Duration) -> Self {
        Self::with_clock(client, tokens, refresh_ahead, Arc::new(Utc::now))
    }

    /// [`RefreshingToken::new`] reading the time from `clock`.
    pub fn with_clock(client: TokenClient, tokens: TokenSet, refresh_ahead: Duration, clock: Clock) -> Self {
        let (updates, _) = watch::channel(tokens.clone());
        RefreshingToken {
            client,
            tokens: Mutex::new(tokens),
            refresh_ahead,
            updates,
            clock,
            coordinator: None,
        }
    }

    /// Sends every refresh through `coordinator`, so that processes sharing these tokens refresh them once.
    pub fn with_coordinator(mut self, coordinator: Arc<dyn RefreshCoordinator>) -> Self {
        self.coordinator = Some(coordinator);
        self
    }

    /// The current token set.
    pub async fn tokens(&self) -> TokenSet {
        self.tokens.lock().await.clone()
    }

    /// A receiver that sees every refreshed token set (to persist it server-side).
    pub fn subscribe(&self) -> watch::Receiver<TokenSet> {
        self.updates.subscribe()
    }

    /// Refresh now, whatever the expiry.
    pub async fn refresh_now(&self) -> Result<TokenSet, Error> {
        let mut tokens = self.tokens.lock().await;
        self.refresh_locked(&mut tokens).await?;
        Ok(tokens.clone())
    }

    async fn refresh_locked(&self, tokens: &mut TokenSet) -> Result<(), Error> {
        let current: &TokenSet = tokens;
        let refresh = self.client.refresh_at(current, (self.clock)());
        let next = match &self.coordinator {
            Some(coordinator) => coordinator.coordinate(current, Box::pin(refresh)).await?,
            None => refresh.await?,
        };
        *tokens = next;
        self.updates.send_replace(tokens.clone());
        Ok(())
    }

    async fn current_or_refresh(&self) -> Result<AccessToken, Error> {
        let mut tokens = self.tokens.lock().await;
        let now = (self.clock)();
        if !tokens.refresh_due(self.refresh_ahead, now) {
            return Ok(tokens.access_token.clone());
        }
        if tokens.refresh_token.is_none() {
            // Nothing to refresh with: use the token while it lasts.
            if tokens.expires_within(Duration::ZERO, now) {
                return Err(Error::NoRefreshToken);
            }
            return Ok(tokens.access_token.clone());
        }
        self.refresh_locked(&mut tokens).await?;
        Ok(tokens.access_token.clone())
    }

    async fn replace_rejected(&self, rejected: AccessToken) -> Result<AccessToken, Error> {
        let mut tokens = self.tokens.lock().await;
        if tokens.access_token != rejected {
            // Another caller already replaced it.
            return Ok(tokens.access_token.clone());
        }
        self.refresh_locked(&mut tokens).await?;
        Ok(tokens.access_token.clone())
    }
}

impl TokenSource for RefreshingToken {
    fn access_token(&self) -> BoxFuture<'_, Result<AccessToken, Error>> {
        Box::pin(self.current_or_refresh())
    }

    fn refresh_after_unauthorized(
        &self,
        rejected: &AccessToken,
    ) -> BoxFuture<'_, Result<AccessToken, Error>> {
        Box::pin(self.replace_rejected(rejected.clone()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::client_auth::ClientAuth;
    use crate::secret::{ClientId, RefreshToken};

    /// A coordinator that answers every refresh with the token set another process got, never sending one.
    #[derive(Debug, Default)]
    struct RefreshedElsewhere {
        asked: AtomicUsize,
    }

    impl RefreshCoordinator for RefreshedElsewhere {
        fn coordinate<'a>(
            &'a self,
            tokens: &'a TokenSet,
            _refresh: BoxFuture<'a, Result<TokenSet, Error>>,
        ) -> BoxFuture<'a, Result<TokenSet, Error>> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            let mut next = tokens.clone();
            next.access_token = AccessToken::new("from-another-instance");
            Box::pin(async move { Ok(next) })
        }
    }

    fn tokens() -> TokenSet {
        // Nothing listens on port 9: a refresh sent to it would fail the test.
        let url = url::Url::parse("http://127.0.0.1:9/fhir").unwrap();
        TokenSet {
            access_token: AccessToken::new("old"),
            token_type: "Bearer".into(),
            expires_at: None,
            refresh_token: Some(RefreshToken::new("r")),
            scope: crate::ScopeSet::default(),
            id_token: None,
            issued_at: Utc::now(),
            fhir_base: url.clone(),
            token_endpoint: url.join("token").unwrap(),
        }
    }

    #[tokio::test]
    async fn a_coordinated_refresh_uses_the_coordinators_result_and_publishes_it() {
        let client = TokenClient::new(ClientId::new("app"), ClientAuth::None).unwrap();
        let coordinator = Arc::new(RefreshedElsewhere::default());
        let source = RefreshingToken::new(client, tokens(), Duration::from_secs(30))
            .with_coordinator(coordinator.clone());
        let updates = source.subscribe();
        let renewed = source
            .refresh_after_unauthorized(&AccessToken::new("old"))
            .await
            .unwrap();
        assert_eq!(renewed.secret(), "from-another-instance");
        assert_eq!(coordinator.asked.load(Ordering::SeqCst), 1);
        assert_eq!(updates.borrow().access_token.secret(), "from-another-instance");
        // A second caller with the rejected token finds it replaced: no second refresh.
        source
            .refresh_after_unauthorized(&AccessToken::new("old"))
            .await
            .unwrap();
        assert_eq!(coordinator.asked.load(Ordering::SeqCst), 1);
    }
}
