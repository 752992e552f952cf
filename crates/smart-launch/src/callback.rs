//! The redirect back from the authorization server: reading it, checking it against the pending
//! launch (state, expiry), and an in-memory store of pending launches that hands each out once.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::authorize::PendingLaunch;
use crate::context::LaunchContext;
use crate::error::Error;
use crate::id_token::{FhirUser, IdTokenClaims};
use crate::scope::ScopeComparison;
use crate::secret::{AuthorizationCode, CsrfState};
use crate::token::TokenSet;

/// The error codes of an authorization response (RFC 6749 §4.1.2.1).
pub const AUTHORIZATION_ERRORS: [&str; 7] = [
    "invalid_request",
    "unauthorized_client",
    "access_denied",
    "unsupported_response_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
];

/// The query parameters of the redirect back to the app.
#[derive(Debug, Default)]
pub struct CallbackParams {
    code: Option<AuthorizationCode>,
    state: Option<CsrfState>,
    error: Option<String>,
    error_description: Option<String>,
    error_uri: Option<String>,
}

impl CallbackParams {
    /// Read the parameters from the full redirect URL.
    pub fn from_url(url: &Url) -> CallbackParams {
        Self::from_query(url.query().unwrap_or_default())
    }

    /// Read the parameters from a query string (without the `?`).
    pub fn from_query(query: &str) -> CallbackParams {
        let mut params = CallbackParams::default();
        for (key, value) in url::form_urlencoded::parse(query.trim_start_matches('?').as_bytes()) {
            let value = value.into_owned();
            // First occurrence wins; a repeated parameter cannot override it.
            match key.as_ref() {
                "code" if params.code.is_none() => params.code = Some(AuthorizationCode::new(value)),
                "state" if params.state.is_none() => params.state = Some(CsrfState::new(value)),
                "error" if params.error.is_none() => params.error = Some(value),
                "error_description" if params.error_description.is_none() => {
                    params.error_description = Some(value)
                }
                "error_uri" if params.error_uri.is_none() => params.error_uri = Some(value),
                _ => {}
            }
        }
        params
    }

    /// The `state`, to look up the pending launch with.
    pub fn state(&self) -> Option<&CsrfState> {
        self.state.as_ref()
    }

    /// The parameters as a [`crate::trace`] shows them: `code` redacted, `state` by fingerprint,
    /// the server's error as sent.
    pub fn trace_fields(&self) -> Vec<crate::trace::TraceField> {
        use crate::trace::TraceField;
        let mut fields = Vec::new();
        if self.code.is_some() {
            fields.push(TraceField::redacted("code"));
        }
        if let Some(state) = &self.state {
            fields.push(TraceField::fingerprint("state", state.secret()));
        }
        let errors = [
            ("error", &self.error),
            ("error_description", &self.error_description),
            ("error_uri", &self.error_uri),
        ];
        for (name, value) in errors {
            if let Some(value) = value {
                fields.push(TraceField::text(name, value.as_str()));
            }
        }
        fields
    }

    /// The OAuth `error` code, when the server sent one.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The error of a redirect that carries no `state`, so matches no pending launch. Anyone can send
    /// a browser to the redirect URI, so nothing such a redirect carries is kept beyond a registered
    /// error code (RFC 6749 §4.1.2.1; any other becomes `server_error`): no `error_description`, no
    /// `error_uri`, which [`CallbackParams::verify`] passes on once the state matched. Without an
    /// `error` either, the redirect lacks its `state`.
    pub fn error_without_state(&self) -> Error {
        match &self.error {
            Some(error) => Error::Authorization {
                error: AUTHORIZATION_ERRORS
                    .into_iter()
                    .find(|known| known == error)
                    .unwrap_or("server_error")
                    .to_owned(),
                description: None,
                uri: None,
            },
            None => Error::MissingParameter { parameter: "state" },
        }
    }

    /// Check the redirect against `pending` at `now` and return the authorization code.
    ///
    /// In order: an `error` becomes [`Error::Authorization`]; a missing or different `state`
    /// becomes [`Error::StateMismatch`] (compared in constant time); an expired launch becomes
    /// [`Error::LaunchExpired`]; a missing `code` becomes [`Error::MissingParameter`].
    pub fn verify(self, pending: &PendingLaunch, now: DateTime<Utc>) -> Result<AuthorizationCode, Error> {
        if let Some(error) = self.error {
            return Err(Error::Authorization {
                error,
                description: self.error_description,
                uri: self.error_uri,
            });
        }
        match &self.state {
            None => return Err(Error::MissingParameter { parameter: "state" }),
            Some(state) if state != pending.state() => return Err(Error::StateMismatch),
            Some(_) => {}
        }
        if pending.is_expired_at(now) {
            return Err(Error::LaunchExpired {
                age_seconds: (now - pending.created_at()).num_seconds(),
            });
        }
        let code = self.code.filter(|c| !c.secret().is_empty());
        code.ok_or(Error::MissingParameter { parameter: "code" })
    }
}

/// A finished launch: the tokens, the context, and who the user is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CompletedLaunch {
    /// The tokens (serializable; keep them server-side).
    pub tokens: TokenSet,
    /// The launch context (patient, encounter, …).
    pub context: LaunchContext,
    /// The verified id_token claims, when an id_token came.
    pub id_token_claims: Option<IdTokenClaims>,
    /// The user's FHIR resource from `fhirUser`, typed.
    pub fhir_user: Option<FhirUser>,
    /// What was granted compared with what was requested.
    pub scope_comparison: ScopeComparison,
}

/// Pending launches in memory, keyed by state; each can be taken once.
///
/// Web apps usually keep pending launches in their session store instead; this one serves
/// command-line tools, tests and single-process apps.
#[derive(Debug, Default)]
pub struct PendingLaunches {
    launches: Mutex<HashMap<String, PendingLaunch>>,
}

impl PendingLaunches {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keep a pending launch (expired ones are dropped at the same time).
    pub fn insert(&self, pending: PendingLaunch) {
        let now = Utc::now();
        if let Ok(mut map) = self.launches.lock() {
            map.retain(|_, p| !p.is_expired_at(now));
            map.insert(pending.state().secret().to_owned(), pending);
        }
    }

    /// Take the pending launch for `state`; a second take of the same state finds nothing.
    pub fn take(&self, state: &CsrfState) -> Result<PendingLaunch, Error> {
        let mut map = self.launches.lock().map_err(|_| Error::UnknownState)?;
        map.remove(state.secret()).ok_or(Error::UnknownState)
    }

    /// How many launches are waiting.
    pub fn len(&self) -> usize {
        self.launches.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// True when none are waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::authorize::{AuthorizeParams, build_authorize_request};
    use crate::discovery::SmartConfiguration;
    use crate::scope::ScopeSet;
    use crate::secret::ClientId;

    fn pending(now: DateTime<Utc>) -> PendingLaunch {
        let config = SmartConfiguration::from_well_known(
            &Url::parse("https://ehr.example/fhir").unwrap(),
            json!({"authorization_endpoint": "https://ehr.example/auth", "token_endpoint": "https://ehr.example/token"}),
        )
        .unwrap();
        let client = ClientId::new("app");
        let redirect = Url::parse("http://localhost/cb").unwrap();
        let scope = ScopeSet::parse("openid").unwrap();
        let params = AuthorizeParams {
            client_id: &client,
            redirect_uri: &redirect,
            scope: &scope,
            launch: None,
            aud: None,
            ttl: Duration::from_secs(60),
            prefer_post: false,
        };
        build_authorize_request(&config, &params, now).1
    }

    fn redirect(query: &str) -> CallbackParams {
        CallbackParams::from_url(&Url::parse(&format!("http://localhost/cb?{query}")).unwrap())
    }

    #[test]
    fn a_redirect_without_state_keeps_only_a_registered_error_code() {
        let shown = |query: &str| match redirect(query).error_without_state() {
            Error::Authorization {
                error,
                description,
                uri,
            } => {
                assert_eq!((description, uri), (None, None));
                error
            }
            Error::MissingParameter { parameter } => format!("missing {parameter}"),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(
            shown("error=access_denied&error_description=Click+here+evil.example"),
            "access_denied"
        );
        assert_eq!(
            shown("error=<script>&error_uri=https://evil.example"),
            "server_error"
        );
        assert_eq!(shown("code=abc"), "missing state");
    }

    #[test]
    fn matching_state_yields_the_code() {
        let now = Utc::now();
        let p = pending(now);
        let code = redirect(&format!("code=abc&state={}", p.state().secret()))
            .verify(&p, now)
            .unwrap();
        assert_eq!(code.secret(), "abc");
    }

    #[test]
    fn wrong_or_missing_state_is_rejected() {
        let now = Utc::now();
        let p = pending(now);
        assert!(matches!(
            redirect("code=abc&state=forged").verify(&p, now),
            Err(Error::StateMismatch)
        ));
        assert!(matches!(
            redirect("code=abc").verify(&p, now),
            Err(Error::MissingParameter { parameter: "state" })
        ));
    }

    #[test]
    fn expired_pending_launch_is_rejected() {
        let now = Utc::now();
        let p = pending(now);
        let later = now + chrono::Duration::seconds(61);
        let err = redirect(&format!("code=abc&state={}", p.state().secret()))
            .verify(&p, later)
            .unwrap_err();
        assert!(matches!(err, Error::LaunchExpired { age_seconds: 61 }));
    }

    #[test]
    fn error_redirect_becomes_a_typed_error() {
        let now = Utc::now();
        let p = pending(now);
        let err =
            redirect("error=access_denied&error_description=User+said+no&error_uri=https%3A%2F%2Fx&state=s")
                .verify(&p, now)
                .unwrap_err();
        match err {
            Error::Authorization {
                error,
                description,
                uri,
            } => {
                assert_eq!(error, "access_denied");
                assert_eq!(description.as_deref(), Some("User said no"));
                assert_eq!(uri.as_deref(), Some("https://x"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_code_is_rejected() {
        let now = Utc::now();
        let p = pending(now);
        let err = redirect(&format!("state={}", p.state().secret()))
            .verify(&p, now)
            .unwrap_err();
        assert!(matches!(err, Error::MissingParameter { parameter: "code" }));
    }

    #[test]
    fn pending_launches_are_handed_out_once() {
        let store = PendingLaunches::new();
        let p = pending(Utc::now());
        let state = p.state().clone();
        store.insert(p);
        assert!(store.take(&state).is_ok());
        assert!(matches!(store.take(&state), Err(Error::UnknownState)));
        assert!(store.is_empty());
    }
}
