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
use axum::routing::get;
use http::header::CACHE_CONTROL;
use http::{HeaderName, HeaderValue};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::state::{AppState, JWKS_PATH};
use crate::views::{authorize_post, layout};

mod assets;
mod csrf;
mod home;
mod inspect;
mod launch;
mod logout;
mod session_layer;
mod timeline;

use assets::{authorize_post_script, jwks, not_found, stylesheet};
use logout::{logout, logout_confirm, reset, reset_confirm};
use session_layer::session_layer;

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
