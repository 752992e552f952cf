//! `GET /inspect/timeline`: the session's last launch step by step (see [`crate::launch_record::timeline`]).

use axum::response::{IntoResponse, Response};

use crate::session::Session;
use crate::views;

/// The timeline page.
pub async fn timeline(session: Session) -> Response {
    let theme = session.with_launch(|r| r.theme.clone()).flatten();
    match session.timeline() {
        Some(trace) => views::timeline::page(&trace, theme.as_ref()).into_response(),
        None => views::timeline::nothing_yet().into_response(),
    }
}
