//! The router: which path goes to which handler, and the layers around them.
//!
//! | path | what |
//! |---|---|
//! | `GET /`, `GET /index.html` | the patient page when launched, else the authorize link |
//! | `GET /authorize` | starts a standalone launch (redirects to the EHR) |
//! | `GET /fhir-app/` (the redirect URI) | the OAuth callback |
//! | `GET /launch?iss=&launch=` | EHR launch |
//! | `GET`/`POST /logout` | change patient (confirm page / action; tokens revoked at the EHR) |
//! | `GET`/`POST /reset` | forget everything (confirm page / action; tokens revoked at the EHR) |
//! | `GET /inspect` | the launch as a developer sees it (never token values) |
//! | `GET /inspect/timeline` | the last launch step by step: discovery, A–F, checks, spec links (never a secret) |
//! | `GET /static/app.css`, `GET /static/authorize-post.js`, `GET /health` | stylesheet, the authorize-post auto-submit, liveness |
//! | `GET /.well-known/jwks.json` | the app's public keys, when it has a private key (register this URL with the EHR) |
//! | anything else | a 404 page |

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderName, HeaderValue};
use maud::Markup;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::csrf;
use crate::error::AppError;
use crate::launch;
use crate::pages::{authorize_post, confirm, layout};
use crate::session::{Session, session_layer};
use crate::state::AppState;
use crate::{home, inspect, timeline};

/// The form body of the logout and reset actions.
#[derive(Debug, serde::Deserialize)]
pub struct CsrfForm {
    /// The session's CSRF token.
    csrf: Option<String>,
}

/// Builds the app's router with its session, security-header and request-log layers.
pub fn router(state: AppState) -> Router {
    let callback_path = state.redirect_uri().path().to_owned();
    let mut app = Router::new()
        .route("/", get(home::index))
        .route("/index.html", get(home::index))
        .route("/authorize", get(launch::authorize))
        .route("/fhir-app/", get(launch::callback))
        .route("/launch", get(launch::ehr_launch))
        .route("/logout", get(logout_confirm).post(logout))
        .route("/reset", get(reset_confirm).post(reset))
        .route("/inspect", get(inspect::inspect))
        .route("/inspect/timeline", get(timeline::timeline));
    if callback_path != "/fhir-app/" && !callback_path.is_empty() && callback_path.starts_with('/') {
        // A configured redirect URI with another path is served too.
        app = app.route(&callback_path, get(launch::callback));
    }
    let app = app
        .layer(axum::middleware::from_fn_with_state(state.clone(), session_layer))
        // Pages may show patient data: never cache them.
        .layer(SetResponseHeaderLayer::if_not_present(
            CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    Router::new()
        .route(layout::STYLESHEET_PATH, get(stylesheet))
        .route(authorize_post::SCRIPT_PATH, get(authorize_post_script))
        .route(JWKS_PATH, get(jwks))
        .route("/health", get(|| async { "ok" }))
        .merge(app)
        .fallback(not_found)
        // A page that sets its own policy (the authorize-post form, which posts to the EHR) keeps it.
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                 form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
            ),
        ))
        // The callback URL carries the code: it must not travel on in a Referer header.
        // The pages may not be framed by another site (clickjacking); for old browsers without CSP level 2 too.
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ))
        .layer(axum::middleware::from_fn(crate::request_log::log_requests))
        .with_state(state)
}

async fn stylesheet() -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8")),
            (CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        layout::STYLESHEET,
    )
        .into_response()
}

/// Where the app publishes its public keys (`private_key_jwt`); register `{public_url}` + this.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

async fn authorize_post_script() -> Response {
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        authorize_post::SCRIPT,
    )
        .into_response()
}

/// The public JWKS of an app configured with a private key; EHRs fetch it to check the client's
/// assertions, and may cache it for the hour `Cache-Control` allows.
async fn jwks(State(state): State<AppState>) -> Result<Response, AppError> {
    let keys = state.smart().public_jwks().ok_or(AppError::NotFound)?;
    Ok((
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        axum::Json(keys),
    )
        .into_response())
}

async fn not_found() -> AppError {
    AppError::NotFound
}

async fn logout_confirm(session: Session) -> Markup {
    let theme = session.launch().and_then(|l| l.theme);
    confirm::logout(&session.csrf_token(), theme.as_ref())
}

/// "Change patient": forget the completed launch (its tokens revoked at the EHR, best effort), keep
/// the session, go back to the start page.
async fn logout(
    State(state): State<AppState>,
    session: Session,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Result<Redirect, AppError> {
    end_launch(&state, &session, &form, Session::clear_launch).await
}

async fn reset_confirm(session: Session) -> Markup {
    let theme = session.launch().and_then(|l| l.theme);
    confirm::reset(&session.csrf_token(), theme.as_ref())
}

/// "Reset": delete the session (and its pending launches) and its cookie; a completed launch's
/// tokens are revoked at the EHR first (best effort).
async fn reset(
    State(state): State<AppState>,
    session: Session,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Result<Redirect, AppError> {
    end_launch(&state, &session, &form, Session::destroy).await
}

/// What log-out and reset share: the CSRF check, then `forget` (which ends the launch or the whole
/// session), then the ended launch's tokens revoked at the EHR, then back to the start page.
async fn end_launch(
    state: &AppState,
    session: &Session,
    form: &CsrfForm,
    forget: fn(&Session),
) -> Result<Redirect, AppError> {
    csrf::verify(session, form.csrf.as_deref())?;
    let record = session.launch();
    forget(session);
    if let Some(record) = record {
        launch::revoke_tokens(state, record).await;
    }
    Ok(Redirect::to("/"))
}
