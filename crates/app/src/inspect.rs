//! `GET /inspect`: the launch as a developer wants to see it — never the token values.

use axum::response::{IntoResponse, Response};
use chrono::Utc;

use crate::pages;
use crate::session::Session;

/// The launch inspector.
pub async fn inspect(session: Session) -> Response {
    match session.launch() {
        Some(record) => pages::inspect::launched(&record, Utc::now()).into_response(),
        None => pages::inspect::nothing_yet().into_response(),
    }
}
