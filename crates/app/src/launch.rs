//! The SMART launch as the app runs it: standalone (`/authorize`), EHR (`/launch?iss=…&launch=…`),
//! and the OAuth callback; plus [`LaunchRecord`], what a completed launch leaves in the session, and
//! [`revoke_tokens`], which tells the EHR at log-out that its tokens are no longer wanted.
//!
//! The protocol work is [`smart_launch`]'s: discovery, the authorize request (state, PKCE, nonce),
//! the state check, the code exchange and the id_token verification. This module decides where
//! things are kept: the pending launch in the session store keyed by its state and bound to the
//! session that started it (so it can be completed once, and only from that browser); the tokens
//! and context in the session, whose id is rotated on success.
//!
//! Every failed launch logs one `warn` line, `launch failed`, with the stage and the reason
//! ([`smart_launch::Error::reason`]: never a token, code, state or secret).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use http::Uri;
use serde::{Deserialize, Serialize};
use smart_launch::discovery::normalize_base;
use smart_launch::{
    AuthorizeRequest, CallbackParams, ClientAuth, ClientId, CompletedLaunch, LaunchContext, LaunchTrace,
    PendingLaunch, ScopeSet, SigningKey, SmartClient, SmartClientConfig, SmartConfiguration, Step, TokenSet,
};
use url::Url;

use crate::error::AppError;
use crate::session::{PENDING_LAUNCH_TTL, Session};
use crate::state::AppState;
use crate::style::Theme;
use crate::timeline;

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
    /// The signed-in user as the EHR describes them (the `fhirUser` resource, read with the first summary).
    #[serde(default)]
    pub signed_in_user: Option<SignedInUser>,
}

/// The signed-in user: the `fhirUser` reference and the name its FHIR resource gives.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedInUser {
    /// `Practitioner/123`.
    pub reference: String,
    /// The display name (`Dr. Jane Smith`), when the resource could be read and has one.
    pub name: Option<String>,
}

impl SignedInUser {
    /// The name, else the reference.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.reference)
    }
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
    /// Discovery and step A, continued by the callback.
    #[serde(default)]
    trace: LaunchTrace,
}

/// `GET /authorize`: start a standalone launch against the configured EHR.
pub async fn authorize(State(state): State<AppState>, session: Session) -> Result<Response, AppError> {
    let mut trace = LaunchTrace::new();
    async {
        let (request, pending) = state
            .smart()
            .standalone_launch_traced(&state.config().fhir_base, &mut trace)
            .await?;
        keep_pending(&state, &session, LaunchKind::Standalone, pending, &mut trace).await?;
        Ok(send_to_ehr(&request))
    }
    .await
    .inspect_err(|e| {
        log_failure("standalone launch", e);
        keep_failed_timeline(&session, trace, Step::Discovery, e, Visitor::MayStartSession);
    })
}

/// Whether a failed launch may give a visitor without a session one, to keep its timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visitor {
    /// The visitor pressed the app's own launch button (`/authorize`), which would have stored a
    /// pending launch anyway: a short-lived session keeps the timeline so `/inspect` can show it.
    MayStartSession,
    /// A request anyone can send (a callback, an EHR launch with any `iss`): the timeline is kept only
    /// in a session the browser already has, so a stranger's junk stores nothing (issue 12 point 3).
    OnlyExistingSession,
}

/// Keeps the timeline of a launch that failed in the session, ending at the failing step (`step`
/// when the library did not record one).
fn keep_failed_timeline(
    session: &Session,
    mut trace: LaunchTrace,
    step: Step,
    error: &AppError,
    visitor: Visitor,
) {
    if visitor == Visitor::OnlyExistingSession && session.current_id().is_none() {
        return;
    }
    if trace.failed_step().is_none() {
        trace.fail(step, failure_reason(error));
    }
    session.ensure_id();
    session.set_timeline(timeline::bound(trace));
}

/// The browser's way to the EHR: a redirect, or, when the EHR takes `authorize-post` and the app is
/// configured for it, a page that POSTs the form (its own CSP names the EHR as a form target).
fn send_to_ehr(request: &AuthorizeRequest) -> Response {
    match &request.post {
        None => Redirect::to(request.url.as_str()).into_response(),
        Some(post) => {
            let csp = crate::pages::authorize_post::content_security_policy(post);
            let mut response = Html(crate::pages::authorize_post::page(post).into_string()).into_response();
            if let Ok(value) = http::HeaderValue::from_str(&csp) {
                response
                    .headers_mut()
                    .insert(http::header::CONTENT_SECURITY_POLICY, value);
            }
            response
        }
    }
}

/// Logs a failed launch once, at `warn`, naming the stage and the reason (never a secret).
fn log_failure(stage: &'static str, error: &AppError) {
    let reason = failure_reason(error);
    tracing::warn!(stage, status = error.status().as_u16(), reason = %reason, "launch failed");
}

/// Why a launch failed, in words that never hold a secret.
fn failure_reason(error: &AppError) -> String {
    match error {
        AppError::Launch(e) => e.reason(),
        AppError::BadRequest(message) => message.clone(),
        AppError::Session(_) => "the session store failed".to_owned(),
        other => format!("{:?}", other.status()),
    }
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
    let mut trace = LaunchTrace::new();
    start_ehr_launch(&state, &session, query, &mut trace)
        .await
        .inspect_err(|e| {
            log_failure("EHR launch", e);
            keep_failed_timeline(&session, trace, Step::Discovery, e, Visitor::OnlyExistingSession);
        })
}

async fn start_ehr_launch(
    state: &AppState,
    session: &Session,
    query: EhrLaunchQuery,
    trace: &mut LaunchTrace,
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
        return Err(smart_launch::Error::IssuerNotAllowed { issuer: shown }.into());
    }
    let (request, pending) = state.smart().ehr_launch_traced(&iss, &launch, trace).await?;
    keep_pending(state, session, LaunchKind::Ehr, pending, trace).await?;
    Ok(send_to_ehr(&request))
}

/// Keeps the pending launch in the session store under its state, bound to this session.
async fn keep_pending(
    state: &AppState,
    session: &Session,
    kind: LaunchKind,
    pending: PendingLaunch,
    trace: &mut LaunchTrace,
) -> Result<(), AppError> {
    let key = pending.state().secret().to_owned();
    let issuer = pending.fhir_base().clone();
    *trace = timeline::bound(std::mem::take(trace));
    let stored = StoredPending {
        kind,
        pending,
        trace: trace.clone(),
    };
    let text = serde_json::to_string(&stored).map_err(|e| AppError::Internal(e.into()))?;
    let session_id = session.ensure_id();
    state.sessions().put_pending(&key, &session_id, text).await?;
    // The launch in progress replaces the last one's timeline; the callback continues it.
    session.set_timeline(trace.clone());
    tracing::info!(kind = ?kind, issuer = %issuer, "launch started");
    Ok(())
}

/// `GET /fhir-app/`: the redirect back from the authorization server.
pub async fn callback(
    State(state): State<AppState>,
    session: Session,
    uri: Uri,
) -> Result<Response, AppError> {
    // The launch this browser has in progress, continued below (a stored pending launch has its own).
    let mut trace = session
        .timeline()
        .filter(|t| {
            t.steps
                .last()
                .is_some_and(|s| s.step == Step::AuthorizationRequest)
        })
        .unwrap_or_default();
    complete_launch(&state, &session, uri, &mut trace)
        .await
        .inspect_err(|e| {
            log_failure("callback", e);
            keep_failed_timeline(
                &session,
                std::mem::take(&mut trace),
                Step::AuthorizationGrant,
                e,
                Visitor::OnlyExistingSession,
            );
        })
}

async fn complete_launch(
    state: &AppState,
    session: &Session,
    uri: Uri,
    trace: &mut LaunchTrace,
) -> Result<Response, AppError> {
    let query = uri.query().unwrap_or_default();
    let params = CallbackParams::from_query(query);
    let received = params.trace_fields();
    let Some(state_param) = params.state().cloned() else {
        // Without a state nothing can be looked up; an error from the server is still worth showing.
        let error = params.error_without_state();
        fail_callback(trace, received, &error);
        return Err(error.into());
    };
    let stored = state
        .sessions()
        .take_pending(state_param.secret(), session.current_id().as_ref())
        .await?;
    let Some(stored) = stored else {
        let error = smart_launch::Error::UnknownState;
        fail_callback(trace, received, &error);
        return Err(error.into());
    };
    let stored: StoredPending = serde_json::from_str(&stored).map_err(|e| AppError::Internal(e.into()))?;
    let requested = stored.pending.requested_scope().clone();
    *trace = stored.trace;
    let completed = state
        .smart()
        .complete_traced(stored.pending, params, trace)
        .await?;
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
    session.set_timeline(timeline::bound(std::mem::take(trace)));
    session.set_launch(LaunchRecord {
        kind: stored.kind,
        requested,
        launch: completed,
        endpoints: (*endpoints).clone(),
        theme,
        completed_at: state.now(),
        // Read with the first summary, at the same time as its reads (`home::index`): the callback makes one
        // round trip to the EHR (the code exchange) and the first page one more, however many reads it needs.
        signed_in_user: None,
    });
    state.forget_summary(session);
    // A session id seen before login is worthless after it.
    session.rotate_id();
    Ok(Redirect::to("/").into_response())
}

/// Reads the `fhirUser` resource with the launch's token (a FHIR read of that URL) for the user's
/// name. Best effort: a refused or odd answer leaves the reference alone, logged at `warn`.
pub(crate) async fn read_signed_in_user(
    state: &AppState,
    completed: &CompletedLaunch,
) -> Option<SignedInUser> {
    let user = completed.fhir_user.as_ref()?;
    let reference = user.reference();
    let name = match fetch_user_name(state, &user.url, completed).await {
        Ok(name) => name,
        Err(reason) => {
            tracing::warn!(user = %reference, reason = %reason, "the signed-in user's resource could not be read");
            None
        }
    };
    Some(SignedInUser { reference, name })
}

async fn fetch_user_name(
    state: &AppState,
    url: &Url,
    completed: &CompletedLaunch,
) -> Result<Option<String>, String> {
    smart_launch::require_secure(url, "fhirUser", state.config().insecure_http).map_err(|e| e.reason())?;
    let response = state
        .http()
        .get(url.clone())
        .bearer_auth(completed.tokens.access_token.secret())
        .header(http::header::ACCEPT, "application/fhir+json, application/json")
        .send()
        .await
        .map_err(|e| format!("the request failed ({e})"))?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status().as_u16()));
    }
    let resource: serde_json::Value = response.json().await.map_err(|e| format!("not JSON ({e})"))?;
    Ok(human_name(&resource))
}

/// The display form of a resource's first `name` (`text`, else prefix, given and family joined).
fn human_name(resource: &serde_json::Value) -> Option<String> {
    let name = resource.get("name")?.as_array()?.first()?;
    if let Some(text) = name
        .get("text")
        .and_then(|t| t.as_str())
        .filter(|t| !t.trim().is_empty())
    {
        return Some(text.trim().to_owned());
    }
    let words = |key: &str| -> Vec<String> {
        match name.get(key) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    };
    let parts: Vec<String> = [words("prefix"), words("given"), words("family")].concat();
    let joined = parts.join(" ");
    (!joined.trim().is_empty()).then(|| joined.trim().to_owned())
}

/// Ends the timeline at B: the redirect's parameters (the code redacted, the state by fingerprint)
/// and why it was refused before a pending launch was found.
fn fail_callback(
    trace: &mut LaunchTrace,
    received: Vec<smart_launch::trace::TraceField>,
    error: &smart_launch::Error,
) {
    let mut step = smart_launch::TraceStep::new(Step::AuthorizationGrant);
    step.received = received;
    step.failure = Some(error.reason());
    trace.push(step);
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
    match tokio::time::timeout(timeout, client.revoke_tokens(endpoint, tokens)).await {
        Ok(revocation) => {
            let results = [
                ("refresh", revocation.refresh.as_ref()),
                ("access", Some(&revocation.access)),
            ];
            for (kind, result) in results {
                if let Some(Err(e)) = result {
                    tracing::warn!(
                        endpoint = %endpoint,
                        token = kind,
                        error = %e,
                        "the EHR did not revoke the {kind} token; logging out anyway"
                    );
                }
            }
            if revocation.is_complete() {
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

/// Builds the SMART client for `config`: client id, redirect URI, scopes, credentials, allow-list, and the
/// coordinator that makes every refresh happen once among the instances sharing the session store.
pub fn smart_client(
    config: &crate::config::AppConfig,
    redirect_uri: Url,
    refresh_coordinator: Arc<dyn smart_launch::RefreshCoordinator>,
) -> Result<SmartClient, smart_launch::Error> {
    let auth = match (&config.client_secret, &config.private_key) {
        (Some(secret), _) => ClientAuth::ClientSecretBasic(secret.clone()),
        (None, Some(path)) => {
            let kid = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "app".into());
            ClientAuth::PrivateKeyJwt(Arc::new(SigningKey::read_pem_file(path, kid)?))
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
    smart.prefer_authorize_post = config.authorize_post;
    smart.allow_insecure_http = config.insecure_http;
    smart.refresh_coordinator = Some(refresh_coordinator);
    SmartClient::new(smart)
}

/// How long discovered SMART configurations are reused.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(300);

/// Access tokens are refreshed this long before they expire (at most half their lifetime before:
/// [`TokenSet::refresh_due`]).
pub const REFRESH_AHEAD: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_users_name_comes_from_text_or_its_parts() {
        let text = json!({"name": [{"text": " Dr. Jane Smith "}]});
        assert_eq!(human_name(&text).as_deref(), Some("Dr. Jane Smith"));
        let parts = json!({"name": [{"prefix": ["Dr."], "given": ["Jane", "Q"], "family": "Smith"}]});
        assert_eq!(human_name(&parts).as_deref(), Some("Dr. Jane Q Smith"));
        assert_eq!(human_name(&json!({"name": []})), None);
        assert_eq!(human_name(&json!({"resourceType": "Practitioner"})), None);
    }
}
