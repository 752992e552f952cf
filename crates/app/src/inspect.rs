//! `GET /inspect`: the launch as a developer wants to see it — never the token values.

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::pages;
use crate::session::Session;
use crate::state::AppState;

/// The launch inspector.
pub async fn inspect(State(state): State<AppState>, session: Session) -> Response {
    match session.launch() {
        Some(record) => pages::inspect::launched(&record, state.now()).into_response(),
        None => pages::inspect::nothing_yet().into_response(),
    }
}
