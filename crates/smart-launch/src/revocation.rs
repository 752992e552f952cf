//! Token revocation (RFC 7009).

use url::Url;

use crate::error::{Error, truncate_body};
use crate::secret::{AccessToken, RefreshToken};
use crate::token::{TokenClient, TokenSet};

/// What revoking a launch's tokens came to, token by token.
#[derive(Debug)]
pub struct Revocation {
    /// The refresh token's result; `None` when the launch had no refresh token.
    pub refresh: Option<Result<(), Error>>,
    /// The access token's result.
    pub access: Result<(), Error>,
}

impl Revocation {
    /// True when every token was revoked.
    pub fn is_complete(&self) -> bool {
        self.access.is_ok() && self.refresh.as_ref().is_none_or(Result::is_ok)
    }
}

/// A token to revoke, with its type hint.
#[derive(Clone, Copy, Debug)]
pub enum RevocableToken<'a> {
    /// An access token (`token_type_hint=access_token`).
    Access(&'a AccessToken),
    /// A refresh token (`token_type_hint=refresh_token`); revoking it usually ends the grant.
    Refresh(&'a RefreshToken),
}

impl TokenClient {
    /// Revoke a token at `endpoint`. Per RFC 7009 the server answers 200 also for tokens it does not
    /// know, so success means "this token no longer works".
    pub async fn revoke(&self, endpoint: &Url, token: RevocableToken<'_>) -> Result<(), Error> {
        let (value, hint) = match token {
            RevocableToken::Access(t) => (t.secret(), "access_token"),
            RevocableToken::Refresh(t) => (t.secret(), "refresh_token"),
        };
        let form = vec![("token", value.to_owned()), ("token_type_hint", hint.to_owned())];
        let body = self.post_form(endpoint, form).await?;
        if body.is_success() {
            return Ok(());
        }
        let error = body.oauth_error().error;
        Err(Error::EndpointRejected {
            endpoint: "revocation",
            status: body.status,
            error,
            body: truncate_body(&body.text),
        })
    }

    /// Revoke a launch's tokens at `endpoint`: the refresh token (which ends the grant) and the access
    /// token, both requests sent at once. The caller bounds the time ([`tokio::time::timeout`]).
    pub async fn revoke_tokens(&self, endpoint: &Url, tokens: &TokenSet) -> Revocation {
        let refresh = async {
            match &tokens.refresh_token {
                Some(token) => Some(self.revoke(endpoint, RevocableToken::Refresh(token)).await),
                None => None,
            }
        };
        let access = self.revoke(endpoint, RevocableToken::Access(&tokens.access_token));
        let (refresh, access) = futures::future::join(refresh, access).await;
        Revocation { refresh, access }
    }
}
