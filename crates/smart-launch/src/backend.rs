//! SMART Backend Services: `client_credentials` with a signed JWT assertion and `system/` scopes,
//! as a [`TokenSource`] that fetches a new token when the old one nears expiry.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;
use url::Url;

use crate::client_auth::{ClientAuth, SigningKey};
use crate::discovery::Discovery;
use crate::error::Error;
use crate::http;
use crate::scope::{Scope, ScopeContext, ScopeSet};
use crate::secret::{AccessToken, ClientId};
use crate::token::TokenClient;
use crate::token_source::{BoxFuture, TokenSource};

/// A backend service's access token, fetched with `client_credentials` and renewed near expiry.
#[derive(Debug)]
pub struct BackendToken {
    client: TokenClient,
    token_endpoint: Url,
    scope: ScopeSet,
    renew_ahead: Duration,
    current: Mutex<Option<(AccessToken, Option<DateTime<Utc>>)>>,
}

impl BackendToken {
    /// A backend token source for `token_endpoint`. Every resource scope must be a `system/` scope.
    pub fn new(
        client_id: ClientId,
        key: Arc<SigningKey>,
        token_endpoint: Url,
        scope: ScopeSet,
    ) -> Result<Self, Error> {
        if let Some(bad) = scope
            .iter()
            .find(|s| !matches!(s, Scope::Resource(r) if r.context == ScopeContext::System))
        {
            return Err(Error::InvalidScope {
                scope: bad.to_string(),
                reason: "backend services may only ask for system/ scopes".into(),
            });
        }
        let client = TokenClient {
            http: http::oauth_client(Duration::from_secs(30))?,
            client_id,
            auth: ClientAuth::PrivateKeyJwt(key),
        };
        Ok(BackendToken {
            client,
            token_endpoint,
            scope,
            renew_ahead: Duration::from_secs(60),
            current: Mutex::new(None),
        })
    }

    /// Discover the token endpoint of `fhir_base`, then as [`BackendToken::new`].
    pub async fn discover(
        fhir_base: &Url,
        client_id: ClientId,
        key: Arc<SigningKey>,
        scope: ScopeSet,
    ) -> Result<Self, Error> {
        let config = Discovery::new(Duration::from_secs(0))?
            .discover(fhir_base)
            .await?;
        Self::new(client_id, key, config.token_endpoint.clone(), scope)
    }

    /// Renew this long before expiry (default 60 s).
    pub fn with_renew_ahead(mut self, renew_ahead: Duration) -> Self {
        self.renew_ahead = renew_ahead;
        self
    }

    async fn fetch_locked(
        &self,
        current: &mut Option<(AccessToken, Option<DateTime<Utc>>)>,
    ) -> Result<AccessToken, Error> {
        let now = Utc::now();
        let response = self
            .client
            .client_credentials(&self.token_endpoint, &self.scope)
            .await?;
        let expires_at = response
            .expires_in
            .and_then(|s| i64::try_from(s).ok())
            .and_then(chrono::Duration::try_seconds)
            .and_then(|d| now.checked_add_signed(d));
        *current = Some((response.access_token.clone(), expires_at));
        Ok(response.access_token)
    }

    async fn current_or_fetch(&self) -> Result<AccessToken, Error> {
        let mut current = self.current.lock().await;
        let ahead = chrono::Duration::from_std(self.renew_ahead).unwrap_or(chrono::Duration::zero());
        if let Some((token, expires_at)) = current.as_ref() {
            let fresh = expires_at.is_none_or(|at| {
                Utc::now()
                    .checked_add_signed(ahead)
                    .is_some_and(|limit| at > limit)
            });
            if fresh {
                return Ok(token.clone());
            }
        }
        self.fetch_locked(&mut current).await
    }

    async fn replace_rejected(&self, rejected: AccessToken) -> Result<AccessToken, Error> {
        let mut current = self.current.lock().await;
        if let Some((token, _)) = current.as_ref()
            && *token != rejected
        {
            return Ok(token.clone());
        }
        self.fetch_locked(&mut current).await
    }
}

impl TokenSource for BackendToken {
    fn access_token(&self) -> BoxFuture<'_, Result<AccessToken, Error>> {
        Box::pin(self.current_or_fetch())
    }

    fn refresh_after_unauthorized(
        &self,
        rejected: &AccessToken,
    ) -> BoxFuture<'_, Result<AccessToken, Error>> {
        Box::pin(self.replace_rejected(rejected.clone()))
    }
}
