//! Token revocation (RFC 7009).

use url::Url;

use crate::error::{Error, truncate_body};
use crate::secret::{AccessToken, RefreshToken};
use crate::token::TokenClient;

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
}
