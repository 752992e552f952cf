//! The session glue between axum and [`crate::session`]: the middleware that loads the request's session
//! before a handler runs and saves it afterwards, and the [`Session`] extractor handlers take.

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::SET_COOKIE;
use http::request::Parts;

use crate::error::AppError;
use crate::session::{Session, commit, session_id_from_headers};
use crate::state::AppState;

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Session>().cloned().ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!(
                "the session layer is not installed on this route"
            ))
        })
    }
}

/// Middleware: loads the session named by the cookie, runs the handler, then saves the session and
/// sets (or clears) the cookie.
pub async fn session_layer(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let store = state.sessions();
    let presented = session_id_from_headers(request.headers());
    let session = match Session::load(store, presented.clone()).await {
        Ok(session) => session,
        Err(e) => return AppError::Session(e).into_response(),
    };
    request.extensions_mut().insert(session.clone());
    let mut response = next.run(request).await;
    match commit(&session, store, presented.is_some(), state.secure_cookies()).await {
        Ok(Some(cookie)) => {
            response.headers_mut().append(SET_COOKIE, cookie);
        }
        Ok(None) => {}
        Err(e) => return AppError::Session(e).into_response(),
    }
    response
}
