//! The SMART launch as the app runs it: standalone (`/authorize`), EHR (`/launch?iss=…&launch=…`),
//! and the OAuth callback. What a completed launch leaves in the session is [`LaunchRecord`]; telling the EHR
//! at log-out that its tokens are no longer wanted is [`crate::revoke`].
//!
//! The protocol work is [`smart_launch`]'s: discovery, the authorize request (state, PKCE, nonce),
//! the state check, the code exchange and the id_token verification. This module decides where
//! things are kept: the pending launch in the session store keyed by its state and bound to the
//! session that started it (so it can be completed once, and only from that browser); the tokens
//! and context in the session, whose id is rotated on success.
//!
//! Every failed launch logs one `warn` line, `launch failed`, with the stage and the reason
//! ([`smart_launch::Error::reason`]: never a token, code, state or secret).

use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use http::Uri;
use serde::{Deserialize, Serialize};
use smart_launch::discovery::normalize_base;
use smart_launch::{AuthorizeRequest, CallbackParams, LaunchTrace, PendingLaunch, Step};
use url::Url;

use crate::error::AppError;
use crate::launch_record::{LaunchKind, LaunchRecord, timeline};
use crate::session::Session;
use crate::state::AppState;
use crate::views::authorize_post;

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
            let csp = authorize_post::content_security_policy(post);
            let mut response = Html(authorize_post::page(post).into_string()).into_response();
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
