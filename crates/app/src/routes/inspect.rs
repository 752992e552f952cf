//! `GET /inspect`: the launch as a developer wants to see it — never the token values.

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::session::Session;
use crate::state::AppState;
use crate::views;

/// The launch inspector.
pub async fn inspect(State(state): State<AppState>, session: Session) -> Response {
    match session.launch() {
        Some(record) => views::inspect::launched(&record, state.now()).into_response(),
        None => views::inspect::nothing_yet().into_response(),
    }
}
