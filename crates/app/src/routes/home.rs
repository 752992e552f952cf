//! `GET /` and `/index.html`: the patient summary after a launch, the authorize link before.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use fhir_client::FhirClient;

use crate::error::AppError;
use crate::fetch::{self, FetchFailure, Fetched};
use crate::launch_record::{LaunchKind, LaunchRecord, SignedInUser, timeline};
use crate::session::Session;
use crate::state::AppState;
use crate::summary::Summary;
use crate::views::home::{self as page, AuthAvailability, SummaryView};
use crate::window::Window;

/// The start page: the authorize link before a launch; after one, the summary — rendered a moment ago
/// ([`AppState::cached_summary`]), else fetched now, one fetch per session at a time.
pub async fn index(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    session: Session,
) -> Result<Response, AppError> {
    let csrf = session.csrf_token();
    let window = window_of(query.as_deref());
    // The common case first, without copying the launch record: a summary rendered a moment ago.
    let Some((token_expiry, theme)) = session.with_launch(|r| (r.tokens().expires_at, r.theme.clone()))
    else {
        let availability = availability(&state).await?;
        return Ok(page::start(&csrf, &availability, state.config().fhir_base.as_str()).into_response());
    };
    let cached = || {
        state
            .cached_summary(&session, token_expiry)
            .filter(|v| v.window == window)
    };
    if let Some(view) = cached() {
        return Ok(page::authorized(&csrf, &view, theme.as_ref()).into_response());
    }
    // One fetch per session at a time; whoever waited may find the summary fetched meanwhile.
    let _turn = state.summary_turn(&session).await;
    if let Some(view) = cached() {
        return Ok(page::authorized(&csrf, &view, theme.as_ref()).into_response());
    }
    let Some(mut record) = session.launch() else {
        return Err(AppError::NotLaunched);
    };
    let (fetched, user) = fetch_summary(&state, &session, &record, window).await;
    match fetched {
        Ok(fetched) => {
            let view = keep_summary(&state, &session, &mut record, fetched, user);
            Ok(page::authorized(&csrf, &view, record.theme.as_ref()).into_response())
        }
        Err(FetchFailure::Relaunch(e)) => {
            tracing::info!(reason = %e, "the session's tokens are no longer usable; starting over");
            session.clear_launch();
            state.forget_summary(&session);
            match record.kind {
                // A standalone launch can simply be started again.
                LaunchKind::Standalone => Ok(Redirect::to("/authorize").into_response()),
                // An EHR launch can only be restarted from the EHR.
                LaunchKind::Ehr => Err(AppError::NotLaunched),
            }
        }
        Err(FetchFailure::Ehr(e)) => Err(AppError::Fhir(e)),
    }
}

/// Fetches the summary and, the first time, the signed-in user's name beside it; the first page after a
/// launch is steps E and F of its timeline.
async fn fetch_summary(
    state: &AppState,
    session: &Session,
    record: &LaunchRecord,
    window: Window,
) -> (Result<Fetched, FetchFailure>, Option<SignedInUser>) {
    // The signed-in user's resource is read once, beside the first summary's reads (not before them).
    let read_user = record.signed_in_user.is_none() && record.launch.fhir_user.is_some();
    // The first page after a launch is steps E and F of its timeline.
    let log = session
        .timeline()
        .filter(timeline::awaits_first_page)
        .map(|_| Arc::new(timeline::RequestLog::default()));
    let observer = log.clone().map(|l| l as Arc<dyn fhir_client::RequestObserver>);
    let (fetched, user) = tokio::join!(fetch::summary_observed(state, record, window, observer), async {
        if read_user {
            fetch::user::read_signed_in_user(state, &record.launch).await
        } else {
            None
        }
    });
    if let Some(log) = &log {
        let summary = match &fetched {
            Ok(f) => Ok(&f.summary),
            Err(FetchFailure::Relaunch(e) | FetchFailure::Ehr(e)) => Err(e.to_string()),
        };
        record_first_page(session, log, summary);
    }
    (fetched, user)
}

/// Keeps what a fetch brought: the signed-in user and renewed tokens in the session's launch record, the
/// rendered summary in the cache. Returns the rendered summary.
fn keep_summary(
    state: &AppState,
    session: &Session,
    record: &mut LaunchRecord,
    fetched: Fetched,
    user: Option<SignedInUser>,
) -> Arc<SummaryView> {
    let mut changed = user.is_some();
    if user.is_some() {
        record.signed_in_user = user;
    }
    if let Some(tokens) = fetched.renewed_tokens {
        record.launch.tokens = tokens;
        changed = true;
    }
    if changed {
        session.set_launch(record.clone());
    }
    let mut view = SummaryView::new(&fetched.summary, state.now());
    view.signed_in_as = record.signed_in_user.as_ref().map(|u| u.label().to_owned());
    let view = Arc::new(view);
    state.cache_summary(session, view.clone());
    view
}

/// Adds E (the requests `log` saw) and F (what each summary section got, or why the page failed)
/// to the session's timeline, when it is waiting for them.
fn record_first_page(session: &Session, log: &timeline::RequestLog, summary: Result<&Summary, String>) {
    let Some(trace) = session.timeline().filter(timeline::awaits_first_page) else {
        return;
    };
    session.set_timeline(timeline::with_first_page(trace, log, summary));
}

/// The `window` query parameter (any other parameter, or a malformed query, is ignored).
fn window_of(query: Option<&str>) -> Window {
    let value = query.and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(name, _)| name == "window")
            .map(|(_, value)| value.into_owned())
    });
    Window::from_query(value.as_deref())
}

/// Whether the configured EHR offers SMART authorization: discovery first; when that finds
/// nothing but the server answers its CapabilityStatement, it is a server without OAuth.
async fn availability(state: &AppState) -> Result<AuthAvailability, AppError> {
    let base = &state.config().fhir_base;
    match state.smart().discover(base).await {
        Ok(_) => Ok(AuthAvailability::OAuth),
        Err(discovery_error @ smart_launch::Error::Discovery { .. }) => {
            let open = FhirClient::open(base.as_str()).map_err(AppError::Fhir)?;
            match open.capabilities().await {
                Ok(_) => Ok(AuthAvailability::NoAuth),
                Err(_) => Err(discovery_error.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}
