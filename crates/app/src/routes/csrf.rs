//! CSRF protection for state-changing requests.
//!
//! Every session has one random token (see [`crate::session::Session::csrf_token`]); every POST form
//! carries it in a hidden `csrf` field ([`crate::views::layout::CSRF_FIELD`]), and [`verify`] compares it with the session's copy in
//! constant time. The session cookie is `SameSite=Lax` as a second line of defence. The OAuth redirect
//! itself is protected by `state`, which is bound to the session that started the launch.

use smart_launch::secret::constant_time_eq;

use crate::error::AppError;
use crate::session::Session;

/// Checks a submitted token against the session's; [`AppError::Csrf`] when it is missing or differs.
pub fn verify(session: &Session, submitted: Option<&str>) -> Result<(), AppError> {
    match (session.stored_csrf(), submitted) {
        (Some(expected), Some(submitted))
            if !expected.is_empty() && constant_time_eq(&expected, submitted) =>
        {
            Ok(())
        }
        _ => Err(AppError::Csrf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_token_is_accepted_and_others_are_not() {
        let session = Session::default();
        assert!(verify(&session, Some("anything")).is_err(), "no token yet");
        let token = session.csrf_token();
        assert!(verify(&session, Some(&token)).is_ok());
        assert!(verify(&session, None).is_err());
        assert!(verify(&session, Some("")).is_err());
        assert!(verify(&session, Some(&token[1..])).is_err());
    }
}
