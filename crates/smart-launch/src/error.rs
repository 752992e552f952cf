//! The crate's one error type.
//!
//! Every variant is named for what went wrong, and every message is a sentence a person can act on.
//! Raw server bodies are kept (truncated) so that a support engineer can see what the server said.

/// Everything that can go wrong while launching, exchanging, refreshing or verifying.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A scope string does not follow the SMART / OAuth 2.0 scope syntax.
    #[error("The scope {scope:?} is not valid: {reason}. Fix the scope in the configuration.")]
    InvalidScope {
        /// The offending scope token.
        scope: String,
        /// Why it was refused.
        reason: String,
    },

    /// An EHR launch (or discovery) named an issuer that is not in the allow-list.
    #[error(
        "The issuer {issuer} is not in this app's list of allowed issuers, so the launch was refused \
         before contacting it. Add it to the allowed issuers if you trust it."
    )]
    IssuerNotAllowed {
        /// The issuer (FHIR base URL) as received.
        issuer: String,
    },

    /// A URL given by the caller or by a server could not be parsed or resolved.
    #[error("The URL {url:?} is not valid: {reason}.")]
    InvalidUrl {
        /// The URL text.
        url: String,
        /// Why it was refused.
        reason: String,
    },

    /// Neither `.well-known/smart-configuration` nor the CapabilityStatement told us the endpoints.
    #[error(
        "Could not discover the SMART endpoints of {issuer}: {reason}. Check that the FHIR base URL is \
         right and that the server supports SMART App Launch."
    )]
    Discovery {
        /// The FHIR base URL that was asked.
        issuer: String,
        /// What failed, for each source tried.
        reason: String,
    },

    /// The server does not advertise an endpoint this operation needs.
    #[error("The server at {issuer} does not offer a {endpoint} endpoint, so this cannot be done.")]
    EndpointMissing {
        /// The FHIR base URL.
        issuer: String,
        /// Which endpoint (e.g. `revocation`).
        endpoint: &'static str,
    },

    /// A request could not be sent, or its response could not be received.
    #[error(
        "The request to {url} failed: {}. Check the network and the server address.",
        chain(source)
    )]
    Http {
        /// The URL requested.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },

    /// An OAuth endpoint answered with a redirect; OAuth calls never follow redirects.
    #[error(
        "The server at {url} answered with a redirect (HTTP {status}) to an OAuth request; redirects \
         are never followed for OAuth calls. Check the endpoint URL."
    )]
    UnexpectedRedirect {
        /// The URL requested.
        url: String,
        /// The HTTP status.
        status: u16,
    },

    /// A server answered, but its body is not what the protocol requires.
    #[error(
        "The {what} from {url} could not be read: {reason} (at `{path}`). The server's response does \
         not follow the specification."
    )]
    MalformedResponse {
        /// What was being read (e.g. `token response`).
        what: &'static str,
        /// The URL requested.
        url: String,
        /// Where in the document parsing failed (serde path; `.` for the root).
        path: String,
        /// The parser's message.
        reason: String,
        /// The start of the raw body, for diagnosis (never contains our secrets, only the server's reply).
        body: String,
    },

    /// The authorization server redirected back with `error=…` (the user denied access, for example).
    #[error("The authorization server refused the request: {error}{}{}. Start the launch again.",
        description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default(),
        uri.as_deref().map(|u| format!(", see {u}")).unwrap_or_default())]
    Authorization {
        /// The OAuth error code, such as `access_denied`.
        error: String,
        /// `error_description`, when given.
        description: Option<String>,
        /// `error_uri`, when given.
        uri: Option<String>,
    },

    /// The redirect URL lacks a parameter the protocol requires.
    #[error("The redirect back from the authorization server has no `{parameter}`. Start the launch again.")]
    MissingParameter {
        /// The missing query parameter.
        parameter: &'static str,
    },

    /// The `state` in the redirect is not the one this launch sent.
    #[error(
        "The `state` in the redirect does not match the launch that was started, so the response was \
         refused (it may be forged or belong to another browser tab). Start the launch again."
    )]
    StateMismatch,

    /// No pending launch was found for a state (already used, or never started here).
    #[error(
        "No launch is waiting for this redirect: it was already completed or never started here. \
         Start the launch again."
    )]
    UnknownState,

    /// The pending launch is older than its time limit.
    #[error("The launch was started {age_seconds} seconds ago and has expired. Start the launch again.")]
    LaunchExpired {
        /// How old the pending launch was.
        age_seconds: i64,
    },

    /// The token endpoint refused a request (code exchange, refresh, client credentials).
    #[error("The authorization server's token endpoint refused the request (HTTP {status}){}{}{}. {}",
        error.as_deref().map(|e| format!(": {e}")).unwrap_or_default(),
        description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default(),
        uri.as_deref().map(|u| format!(", see {u}")).unwrap_or_default(),
        if *status >= 500 { "The server failed; try again later." } else { "Start the launch again." })]
    TokenEndpoint {
        /// The HTTP status.
        status: u16,
        /// The OAuth `error` code, when the body had one.
        error: Option<String>,
        /// The `error_description`, when the body had one.
        description: Option<String>,
        /// The `error_uri` (a page about the error), when the body had one.
        uri: Option<String>,
        /// The start of the raw body.
        body: String,
    },

    /// Another OAuth endpoint (revocation, introspection) refused a request.
    #[error("The {endpoint} endpoint refused the request (HTTP {status}){}.",
        error.as_deref().map(|e| format!(": {e}")).unwrap_or_default())]
    EndpointRejected {
        /// Which endpoint.
        endpoint: &'static str,
        /// The HTTP status.
        status: u16,
        /// The OAuth `error` code, when the body had one.
        error: Option<String>,
        /// The start of the raw body.
        body: String,
    },

    /// The access token expired (or was rejected) and there is no refresh token to get a new one.
    #[error("The access token has expired and there is no refresh token to renew it. Launch the app again.")]
    NoRefreshToken,

    /// A fixed token was rejected by the server and cannot be renewed.
    #[error("The server rejected the access token and this token source cannot renew it. Get a new token.")]
    TokenNotRenewable,

    /// The id_token failed verification.
    #[error("The id_token could not be trusted: {0} Start the launch again.")]
    IdToken(#[from] IdTokenError),

    /// `openid` was requested and granted, yet the token response carried no id_token.
    #[error(
        "The authorization server granted the `openid` scope but sent no id_token, so the user could \
         not be identified. Start the launch again; if it keeps happening, the EHR's OpenID Connect \
         support is misconfigured."
    )]
    MissingIdToken,

    /// An EHR endpoint uses plain `http` on a host that is not this machine.
    #[error(
        "The {what} {url} uses plain http on a host that is not this machine, so tokens and patient \
         data would travel unencrypted; it was refused before any request. Use the server's https \
         address, or set `insecure_http = true` for a test server you trust."
    )]
    InsecureUrl {
        /// Which endpoint (`FHIR base`, `token endpoint`, …).
        what: &'static str,
        /// The URL.
        url: String,
    },

    /// A private key could not be loaded, generated or used for signing.
    #[error("The private key could not be used: {reason}. Check the key file (PEM, RSA or P-384).")]
    Key {
        /// What failed.
        reason: String,
    },

    /// The configuration given to this crate is inconsistent.
    #[error("The SMART client configuration is invalid: {reason}.")]
    Config {
        /// What is wrong.
        reason: String,
    },

    /// A [`crate::RefreshCoordinator`] could not tell whether another process is refreshing these tokens (its
    /// shared store failed), so no refresh was sent: sending one could reuse a rotated refresh token.
    #[error(
        "The tokens were not refreshed because the store shared with the app's other instances failed: {reason}. \
         Try again in a moment."
    )]
    RefreshCoordination {
        /// What failed.
        reason: String,
    },
}

/// Why an id_token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdTokenError {
    /// The token is not a well-formed JWT.
    #[error("it is not a well-formed signed JWT ({0}).")]
    Malformed(String),
    /// The signature does not verify with the issuer's key.
    #[error("its signature does not match the issuer's published key.")]
    BadSignature,
    /// The header names a key id that the issuer's JWKS does not contain (even after a refetch).
    #[error("it was signed with key {kid:?}, which the issuer does not publish.")]
    UnknownKey {
        /// The `kid` from the header (empty when none).
        kid: String,
    },
    /// The header's algorithm is not accepted.
    #[error("it uses the signing algorithm {alg}, which is not accepted.")]
    UnsupportedAlgorithm {
        /// The `alg` from the header.
        alg: String,
    },
    /// `aud` does not contain our client id.
    #[error("it was issued for another client (aud does not contain our client id).")]
    WrongAudience,
    /// `iss` is not the issuer we launched against.
    #[error("it was issued by {found:?}, not by the expected issuer {expected:?}.")]
    WrongIssuer {
        /// The `iss` found in the token.
        found: String,
        /// The issuer the EHR's configuration names.
        expected: String,
    },
    /// `iss` names another issuer than the EHR's, and nothing the EHR publishes vouches for it.
    #[error(
        "it was issued by {found:?}, which the EHR's configuration does not name as its issuer ({reason})."
    )]
    IssuerNotTrusted {
        /// The `iss` found in the token.
        found: String,
        /// Why it was not accepted.
        reason: String,
    },
    /// `aud` has several values and `azp` (the party the token was issued to) is missing.
    #[error("it names several audiences but no authorized party (azp), so it may be meant for another app.")]
    MissingAuthorizedParty,
    /// `azp` is not our client id.
    #[error("it was issued to the client {found:?} (azp), not to this app.")]
    WrongAuthorizedParty {
        /// The `azp` found in the token.
        found: String,
    },
    /// `exp` is in the past.
    #[error("it has expired.")]
    Expired,
    /// `nonce` differs from the one sent in the authorize request.
    #[error("its nonce does not match the one this launch sent.")]
    WrongNonce,
    /// The issuer publishes no `jwks_uri`.
    #[error("the issuer publishes no jwks_uri, so the signature cannot be checked.")]
    NoJwksUri,
    /// The JWKS could not be fetched or read.
    #[error("the issuer's keys could not be fetched ({0}).")]
    Jwks(String),
    /// The issuer's OpenID Connect configuration could not be fetched or read.
    #[error("the OpenID configuration at {url} could not be read ({reason}).")]
    OpenIdConfiguration {
        /// The `.well-known/openid-configuration` URL.
        url: String,
        /// What failed.
        reason: String,
    },
}

impl Error {
    /// Why the operation failed, in a few words fit for a log line: the variant and the facts a
    /// support engineer needs (status, OAuth error code, issuer, the id_token check that failed).
    /// It never contains a token, code, state, verifier, secret or a server's raw body.
    pub fn reason(&self) -> String {
        match self {
            Error::InvalidScope { scope, .. } => format!("invalid scope {scope:?}"),
            Error::IssuerNotAllowed { issuer } => format!("issuer {issuer} is not allowed"),
            Error::InvalidUrl { url, .. } => format!("invalid URL {url:?}"),
            Error::Discovery { issuer, .. } => format!("discovery failed at {issuer}"),
            Error::EndpointMissing { endpoint, .. } => format!("no {endpoint} endpoint"),
            Error::Http { url, .. } => format!("request to {url} failed"),
            Error::UnexpectedRedirect { url, status } => format!("redirect (HTTP {status}) from {url}"),
            Error::MalformedResponse { what, url, path, .. } => {
                format!("malformed {what} from {url} at `{path}`")
            }
            Error::Authorization { error, .. } => format!("authorization refused: {error}"),
            Error::MissingParameter { parameter } => format!("redirect without `{parameter}`"),
            Error::StateMismatch => "state mismatch".to_owned(),
            Error::UnknownState => "no pending launch for this state".to_owned(),
            Error::LaunchExpired { age_seconds } => format!("launch expired after {age_seconds} s"),
            Error::TokenEndpoint { status, error, .. } => format!(
                "token endpoint refused (HTTP {status}{})",
                error.as_deref().map(|e| format!(", {e}")).unwrap_or_default()
            ),
            Error::EndpointRejected { endpoint, status, .. } => {
                format!("{endpoint} endpoint refused (HTTP {status})")
            }
            Error::NoRefreshToken => "no refresh token".to_owned(),
            Error::TokenNotRenewable => "token not renewable".to_owned(),
            Error::IdToken(e) => format!("id_token: {}", e.reason()),
            Error::MissingIdToken => "openid granted but no id_token".to_owned(),
            Error::InsecureUrl { what, url } => format!("plain http {what} {url}"),
            Error::Key { .. } => "unusable private key".to_owned(),
            Error::Config { .. } => "invalid client configuration".to_owned(),
            Error::RefreshCoordination { .. } => "refresh coordination store failed".to_owned(),
        }
    }
}

impl IdTokenError {
    /// The failed check in a few words (for [`Error::reason`]); never the token itself.
    pub fn reason(&self) -> String {
        match self {
            IdTokenError::Malformed(_) => "malformed".to_owned(),
            IdTokenError::BadSignature => "bad signature".to_owned(),
            IdTokenError::UnknownKey { kid } => format!("unknown key {kid:?}"),
            IdTokenError::UnsupportedAlgorithm { alg } => format!("algorithm {alg} not accepted"),
            IdTokenError::WrongAudience => "wrong audience".to_owned(),
            IdTokenError::WrongIssuer { found, expected } => {
                format!("wrong issuer {found:?} (expected {expected:?})")
            }
            IdTokenError::IssuerNotTrusted { found, .. } => format!("untrusted issuer {found:?}"),
            IdTokenError::MissingAuthorizedParty => "several audiences, no azp".to_owned(),
            IdTokenError::WrongAuthorizedParty { found } => format!("wrong azp {found:?}"),
            IdTokenError::Expired => "expired".to_owned(),
            IdTokenError::WrongNonce => "wrong nonce".to_owned(),
            IdTokenError::NoJwksUri => "no jwks_uri".to_owned(),
            IdTokenError::Jwks(_) => "keys could not be fetched".to_owned(),
            IdTokenError::OpenIdConfiguration { url, .. } => {
                format!("OpenID configuration at {url} unreadable")
            }
        }
    }
}

/// An error and its causes, joined (`error sending request: connection refused`).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Cut a server body to a size that is useful in an error message.
pub(crate) fn truncate_body(body: &str) -> String {
    const LIMIT: usize = 2048;
    if body.len() <= LIMIT {
        return body.to_owned();
    }
    let mut end = LIMIT;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &body[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_sentences() {
        let e = Error::Authorization {
            error: "access_denied".into(),
            description: Some("The user said no".into()),
            uri: None,
        };
        assert_eq!(
            e.to_string(),
            "The authorization server refused the request: access_denied (The user said no). Start the launch again."
        );
        let e = Error::TokenEndpoint {
            status: 500,
            error: None,
            description: None,
            uri: None,
            body: String::new(),
        };
        assert!(e.to_string().contains("try again later"));
    }

    #[test]
    fn long_bodies_are_truncated_on_char_boundaries() {
        let body = "é".repeat(3000);
        let cut = truncate_body(&body);
        assert!(cut.len() < body.len());
        assert!(cut.ends_with('…'));
    }
}
