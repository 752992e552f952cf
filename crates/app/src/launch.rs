//! The SMART launch as the app runs it: standalone (`/authorize`), EHR (`/launch?iss=…&launch=…`),
//! and the OAuth callback; plus [`LaunchRecord`], what a completed launch leaves in the session, and
//! [`revoke_tokens`], which tells the EHR at log-out that its tokens are no longer wanted.
//!
//! The protocol work is [`smart_launch`]'s: discovery, the authorize request (state, PKCE, nonce),
//! the state check, the code exchange and the id_token verification. This module decides where
//! things are kept: the pending launch in the session store keyed by its state and bound to the
//! session that started it (so it can be completed once, and only from that browser); the tokens
//! and context in the session, whose id is rotated on success.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use http::Uri;
use serde::{Deserialize, Serialize};
use smart_launch::discovery::normalize_base;
use smart_launch::{
    CallbackParams, ClientAuth, ClientId, CompletedLaunch, LaunchContext, PendingLaunch, RevocableToken,
    ScopeSet, SigningAlgorithm, SigningKey, SmartClient, SmartClientConfig, SmartConfiguration, TokenSet,
};
use url::Url;

use crate::error::AppError;
use crate::session::{PENDING_LAUNCH_TTL, Session};
use crate::state::AppState;
use crate::style::Theme;

/// How the launch started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LaunchKind {
    /// From the app (`/authorize`).
    Standalone,
    /// From the EHR (`/launch?iss=…&launch=…`).
    Ehr,
}

/// A completed launch, stored server-side in the session (never in a cookie).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchRecord {
    /// Standalone or EHR launch.
    pub kind: LaunchKind,
    /// The tokens, context, id_token claims and scope comparison.
    pub launch: CompletedLaunch,
    /// The server's SMART configuration as discovered at launch time.
    pub endpoints: SmartConfiguration,
    /// The scopes the app asked for.
    pub requested: ScopeSet,
    /// The EHR's look, from `smart_style_url`.
    pub theme: Option<Theme>,
    /// When the code exchange completed.
    pub completed_at: DateTime<Utc>,
}

impl LaunchRecord {
    /// The tokens.
    pub fn tokens(&self) -> &TokenSet {
        &self.launch.tokens
    }

    /// The launch context.
    pub fn context(&self) -> &LaunchContext {
        &self.launch.context
    }

    /// The FHIR base the tokens are for.
    pub fn fhir_base(&self) -> &Url {
        &self.launch.tokens.fhir_base
    }
}

/// A pending launch as the session store keeps it.
#[derive(Debug, Serialize, Deserialize)]
struct StoredPending {
    kind: LaunchKind,
    pending: PendingLaunch,
}

/// `GET /authorize`: start a standalone launch against the configured EHR.
pub async fn authorize(State(state): State<AppState>, session: Session) -> Result<Response, AppError> {
    let (request, pending) = state.smart().standalone_launch(&state.config().fhir_base).await?;
    keep_pending(&state, &session, LaunchKind::Standalone, pending).await?;
    Ok(Redirect::to(request.url.as_str()).into_response())
}

/// The query of an EHR launch.
#[derive(Debug, Deserialize)]
pub struct EhrLaunchQuery {
    /// The EHR's FHIR base URL.
    iss: Option<String>,
    /// The EHR's opaque launch id.
    launch: Option<String>,
}

/// `GET /launch?iss=…&launch=…`: an EHR launch. `iss` must be on the allow-list before anything is
/// fetched from it.
pub async fn ehr_launch(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<EhrLaunchQuery>,
) -> Result<Response, AppError> {
    let iss = query.iss.filter(|i| !i.trim().is_empty()).ok_or_else(|| {
        AppError::BadRequest(
            "The EHR launch is missing its `iss` parameter (the EHR's FHIR address). Launch the app from the EHR again."
                .to_owned(),
        )
    })?;
    let launch = query.launch.filter(|l| !l.trim().is_empty()).ok_or_else(|| {
        AppError::BadRequest(
            "The EHR launch is missing its `launch` parameter. Launch the app from the EHR again.".to_owned(),
        )
    })?;
    if !state.smart().is_issuer_allowed(&iss) {
        let shown = Url::parse(&iss)
            .map(|u| normalize_base(&u).to_string())
            .unwrap_or_else(|_| iss.clone());
        tracing::warn!(issuer = %shown, "refused an EHR launch from an issuer not on the allow-list");
        return Err(smart_launch::Error::IssuerNotAllowed { issuer: shown }.into());
    }
    let (request, pending) = state.smart().ehr_launch(&iss, &launch).await?;
    keep_pending(&state, &session, LaunchKind::Ehr, pending).await?;
    Ok(Redirect::to(request.url.as_str()).into_response())
}

/// Keeps the pending launch in the session store under its state, bound to this session.
async fn keep_pending(
    state: &AppState,
    session: &Session,
    kind: LaunchKind,
    pending: PendingLaunch,
) -> Result<(), AppError> {
    let key = pending.state().secret().to_owned();
    let issuer = pending.fhir_base().clone();
    let text =
        serde_json::to_string(&StoredPending { kind, pending }).map_err(|e| AppError::Internal(e.into()))?;
    let session_id = session.ensure_id();
    state.sessions().put_pending(&key, &session_id, text).await?;
    tracing::info!(kind = ?kind, issuer = %issuer, "launch started");
    Ok(())
}

/// `GET /fhir-app/`: the redirect back from the authorization server.
pub async fn callback(
    State(state): State<AppState>,
    session: Session,
    uri: Uri,
) -> Result<Response, AppError> {
    let query = uri.query().unwrap_or_default();
    let params = CallbackParams::from_query(query);
    let Some(state_param) = params.state().cloned() else {
        // Without a state nothing can be looked up; an error from the server is still worth showing.
        return Err(error_without_state(query).into());
    };
    let stored = state
        .sessions()
        .take_pending(state_param.secret(), session.current_id().as_ref())
        .await?
        .ok_or(smart_launch::Error::UnknownState)?;
    let stored: StoredPending = serde_json::from_str(&stored).map_err(|e| AppError::Internal(e.into()))?;
    let requested = stored.pending.requested_scope().clone();
    let completed = state.smart().complete(stored.pending, params).await?;
    let endpoints = state.smart().discover(&completed.tokens.fhir_base).await?;
    let theme = match completed.context.smart_style_url.as_deref().map(Url::parse) {
        Some(Ok(url)) => state.themes().get_or_fetch(state.http(), &url).await,
        _ => None,
    };
    tracing::info!(
        kind = ?stored.kind,
        patient_in_context = completed.context.patient.is_some(),
        all_scopes_granted = completed.scope_comparison.all_granted(),
        "launch completed"
    );
    session.set_launch(LaunchRecord {
        kind: stored.kind,
        requested,
        launch: completed,
        endpoints: (*endpoints).clone(),
        theme,
        completed_at: Utc::now(),
    });
    state.forget_summary(&session);
    // A session id seen before login is worthless after it.
    session.rotate_id();
    Ok(Redirect::to("/").into_response())
}

/// The error of a redirect that carries no `state`: the server's own error when it sent one.
fn error_without_state(query: &str) -> smart_launch::Error {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    match get("error") {
        Some(error) => smart_launch::Error::Authorization {
            error,
            description: get("error_description"),
            uri: get("error_uri"),
        },
        None => smart_launch::Error::MissingParameter { parameter: "state" },
    }
}

/// Tells the EHR that a launch's tokens are no longer wanted (log-out, reset): when its discovery
/// advertised a `revocation_endpoint`, the refresh token (which ends the grant) and the access
/// token are revoked there (RFC 7009).
///
/// Best effort: the user is logged out whatever happens here. A refusal, an unreachable endpoint or
/// one slower than [`REVOKE_TIMEOUT`] is logged as a warning (never with a token) and forgotten.
/// The work runs in its own task, so a browser that gives up waiting does not cancel it halfway.
pub async fn revoke_tokens(state: &AppState, record: LaunchRecord) {
    let state = state.clone();
    let task = tokio::spawn(async move { revoke_within(&state, &record, REVOKE_TIMEOUT).await });
    if let Err(e) = task.await {
        tracing::warn!(error = %e, "the token revocation task failed; logging out anyway");
    }
}

/// The revocation requests of [`revoke_tokens`], both sent at once and given `timeout` together.
async fn revoke_within(state: &AppState, record: &LaunchRecord, timeout: Duration) {
    let Some(endpoint) = record.endpoints.revocation_endpoint.as_ref() else {
        tracing::debug!("the EHR offers no revocation endpoint; its tokens stay valid until they expire");
        return;
    };
    let tokens = record.tokens();
    let client = state.smart().token_client();
    let refresh = async {
        match &tokens.refresh_token {
            Some(token) => Some(client.revoke(endpoint, RevocableToken::Refresh(token)).await),
            None => None,
        }
    };
    let access = client.revoke(endpoint, RevocableToken::Access(&tokens.access_token));
    match tokio::time::timeout(timeout, futures::future::join(refresh, access)).await {
        Ok((refresh, access)) => {
            let results = [("refresh", refresh), ("access", Some(access))];
            let mut revoked = true;
            for (kind, result) in results {
                if let Some(Err(e)) = result {
                    revoked = false;
                    tracing::warn!(
                        endpoint = %endpoint,
                        token = kind,
                        error = %e,
                        "the EHR did not revoke the {kind} token; logging out anyway"
                    );
                }
            }
            if revoked {
                tracing::info!(endpoint = %endpoint, "the launch's tokens were revoked at the EHR");
            }
        }
        Err(_) => tracing::warn!(
            endpoint = %endpoint,
            timeout_secs = timeout.as_secs(),
            "the EHR's revocation endpoint did not answer in time; logging out anyway"
        ),
    }
}

/// How long log-out waits for the EHR to revoke the tokens before going on without it.
pub const REVOKE_TIMEOUT: Duration = Duration::from_secs(3);

/// Builds the SMART client for `config`: client id, redirect URI, scopes, credentials, allow-list.
pub fn smart_client(
    config: &crate::config::AppConfig,
    redirect_uri: Url,
) -> Result<SmartClient, smart_launch::Error> {
    let auth = match (&config.client_secret, &config.private_key) {
        (Some(secret), _) => ClientAuth::ClientSecretBasic(secret.clone()),
        (None, Some(path)) => {
            let pem = std::fs::read_to_string(path).map_err(|e| smart_launch::Error::Key {
                reason: format!("{} cannot be read ({e})", path.display()),
            })?;
            let kid = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "app".into());
            let key = SigningKey::from_pem(&pem, SigningAlgorithm::RS384, kid.clone())
                .or_else(|_| SigningKey::from_pem(&pem, SigningAlgorithm::ES384, kid))?;
            ClientAuth::PrivateKeyJwt(Arc::new(key))
        }
        (None, None) => ClientAuth::None,
    };
    let mut smart = SmartClientConfig::new(
        ClientId::new(config.client_id.clone()),
        redirect_uri,
        config.scope.clone(),
    )
    .with_client_auth(auth);
    smart.allowed_issuers = config.allowed_issuers.clone();
    smart.pending_launch_ttl = PENDING_LAUNCH_TTL;
    smart.discovery_ttl = DISCOVERY_TTL;
    smart.refresh_ahead = REFRESH_AHEAD;
    smart.http_timeout = Duration::from_secs(15);
    SmartClient::new(smart)
}

/// How long discovered SMART configurations are reused.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(300);

/// Access tokens are refreshed this long before they expire.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(30);
