//! What the router serves besides the pages: the stylesheet, the authorize-post script, the app's public keys,
//! and the 404 page.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};

use crate::error::AppError;
use crate::state::AppState;
use crate::views::{authorize_post, layout};

/// The stylesheet, cacheable for an hour.
pub async fn stylesheet() -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8")),
            (CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        layout::STYLESHEET,
    )
        .into_response()
}

/// The authorize-post auto-submit script, cacheable for an hour.
pub async fn authorize_post_script() -> Response {
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
pub async fn jwks(State(state): State<AppState>) -> Result<Response, AppError> {
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

/// The fallback: a 404 page.
pub async fn not_found() -> AppError {
    AppError::NotFound
}
