//! `GET`/`POST /logout` and `/reset`: the confirm pages and the actions (the ended launch's tokens revoked at the
//! EHR).

use axum::extract::State;
use axum::response::Redirect;
use maud::Markup;

use super::csrf;
use crate::error::AppError;
use crate::revoke;
use crate::session::Session;
use crate::state::AppState;
use crate::views::confirm;

/// The form body of the logout and reset actions.
#[derive(Debug, serde::Deserialize)]
pub struct CsrfForm {
    /// The session's CSRF token.
    csrf: Option<String>,
}

/// The "Change patient" confirm page.
pub async fn logout_confirm(session: Session) -> Markup {
    let theme = session.launch().and_then(|l| l.theme);
    confirm::logout(&session.csrf_token(), theme.as_ref())
}

/// "Change patient": forget the completed launch (its tokens revoked at the EHR, best effort), keep
/// the session, go back to the start page.
pub async fn logout(
    State(state): State<AppState>,
    session: Session,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Result<Redirect, AppError> {
    end_launch(&state, &session, &form, Session::clear_launch).await
}

/// The "Reset" confirm page.
pub async fn reset_confirm(session: Session) -> Markup {
    let theme = session.launch().and_then(|l| l.theme);
    confirm::reset(&session.csrf_token(), theme.as_ref())
}

/// "Reset": delete the session (and its pending launches) and its cookie; a completed launch's
/// tokens are revoked at the EHR first (best effort).
pub async fn reset(
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
        revoke::revoke_tokens(state, record).await;
    }
    Ok(Redirect::to("/"))
}
