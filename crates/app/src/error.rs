//! The app's errors: [`AppError`], what a request can fail with, and how each becomes a page; and
//! [`StartError`], why the app could not start.
//!
//! Handlers return `Result<_, AppError>` and use `?`. Expected failures get a status that fits
//! (400 for a bad or stale request, 401 when authorization was refused, 403 for a failed CSRF check,
//! 502 when the EHR failed) and a page that says what happened and offers "Start over". Only
//! [`AppError::Internal`] answers 500; its detail is logged once, by the request-log middleware,
//! and never shown.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use maud::html;

use crate::views::layout;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The SMART launch failed: discovery, the authorize redirect, the code exchange, the id_token.
    #[error("{0}")]
    Launch(#[from] smart_launch::Error),
    /// The FHIR server failed or could not be reached.
    #[error("{0}")]
    Fhir(#[from] fhir_client::FhirError),
    /// The request itself is malformed (a missing parameter, for example).
    #[error("{0}")]
    BadRequest(String),
    /// A POST came without this session's CSRF token.
    #[error(
        "This form was not sent from this app's own page (its security token is missing or out of date). \
         Go back, reload the page and try again."
    )]
    Csrf,
    /// No page lives at this address.
    #[error("There is no page at this address. Check the link, or go to the start page.")]
    NotFound,
    /// A page needs a completed launch and the session has none.
    #[error("You are not signed in to an EHR in this browser session. Start over to launch the app.")]
    NotLaunched,
    /// The session database failed.
    #[error("{0}")]
    Session(#[from] crate::session::SessionError),
    /// Anything unexpected. The user sees a plain sentence; the detail is logged.
    #[error("{0}")]
    Internal(#[from] anyhow::Error),
}

/// The detail of an unexpected error, handed from [`AppError::into_response`] to the request log.
#[derive(Debug, Clone)]
pub struct InternalErrorDetail(pub String);

/// Marks a 503 answered because the shared session store is unreachable: the store logs the outage once (a
/// `warn` when it starts, an `info` when it ends), so the request log does not warn about each request.
#[derive(Debug, Clone, Copy)]
pub struct StoreOutage;

/// How long a browser is told to wait before trying again during a session-store outage.
pub const OUTAGE_RETRY_AFTER_SECS: u32 = 5;

impl AppError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        use smart_launch::Error as L;
        match self {
            AppError::Launch(e) => match e {
                L::Authorization { error, .. } if error == "access_denied" => StatusCode::UNAUTHORIZED,
                L::Authorization { .. }
                | L::StateMismatch
                | L::UnknownState
                | L::LaunchExpired { .. }
                | L::MissingParameter { .. }
                | L::IssuerNotAllowed { .. }
                | L::InvalidUrl { .. }
                | L::InvalidScope { .. } => StatusCode::BAD_REQUEST,
                L::TokenEndpoint { status, .. } if *status < 500 => StatusCode::UNAUTHORIZED,
                L::IdToken(_) | L::NoRefreshToken | L::TokenNotRenewable => StatusCode::UNAUTHORIZED,
                _ => StatusCode::BAD_GATEWAY,
            },
            AppError::Fhir(_) => StatusCode::BAD_GATEWAY,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Csrf => StatusCode::FORBIDDEN,
            AppError::NotLaunched => StatusCode::UNAUTHORIZED,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Session(crate::session::SessionError::Unavailable(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::Session(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether this is the shared session store being unreachable (answered 503, logged once per outage).
    pub fn is_store_outage(&self) -> bool {
        matches!(
            self,
            AppError::Session(crate::session::SessionError::Unavailable(_))
        )
    }

    /// The page heading.
    fn title(&self) -> &'static str {
        match self {
            AppError::Launch(_) if self.status() == StatusCode::BAD_GATEWAY => "The EHR could not be reached",
            AppError::Launch(_) | AppError::NotLaunched => "Authorization Error",
            AppError::Fhir(_) => "The EHR could not be reached",
            AppError::BadRequest(_) => "Bad request",
            AppError::Csrf => "Form expired",
            AppError::Session(crate::session::SessionError::Unavailable(_)) => "Temporarily unavailable",
            AppError::NotFound => "Page not found",
            AppError::Session(_) | AppError::Internal(_) => "Something went wrong",
        }
    }

    /// The sentence shown to the user.
    /// The server's page about the error (`error_uri`), when it sent an http(s) one.
    fn error_uri(&self) -> Option<url::Url> {
        let uri = match self {
            AppError::Launch(smart_launch::Error::Authorization { uri, .. })
            | AppError::Launch(smart_launch::Error::TokenEndpoint { uri, .. }) => uri.as_deref()?,
            _ => return None,
        };
        url::Url::parse(uri)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
    }

    fn user_message(&self) -> String {
        match self {
            AppError::Session(crate::session::SessionError::Unavailable(_)) => {
                "The app cannot reach its session store just now. Your sign-in is kept; try again in a moment."
                    .to_owned()
            }
            AppError::Session(_) | AppError::Internal(_) => {
                "The app failed unexpectedly. The problem has been logged; start over, and if it happens \
                 again tell the app's operator."
                    .to_owned()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let title = self.title();
        let body = html! {
            section.card.error role="alert" {
                h1 { (title) }
                p { (self.user_message()) }
                @if let Some(uri) = self.error_uri() {
                    p { "The EHR explains this error at " a href=(uri.as_str()) rel="noreferrer" { (uri.as_str()) } "." }
                }
                p.actions { a.button href="/" { "Start over" } }
            }
        };
        let mut response = (status, layout::page(title, None, body)).into_response();
        if self.is_store_outage() {
            response.extensions_mut().insert(StoreOutage);
            response.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from(OUTAGE_RETRY_AFTER_SECS),
            );
        } else if status.is_server_error() {
            // Logged once by the request-log middleware, with the request id.
            response
                .extensions_mut()
                .insert(InternalErrorDetail(format!("{self:#}")));
        }
        response
    }
}

/// The app could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The listen address could not be bound.
    #[error(
        "The app could not listen on {addr}: {source}. Is another program using the port? Choose another with `listen`."
    )]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The session database could not be opened.
    #[error("The session database {path} could not be opened: {source}")]
    Sessions {
        /// The file.
        path: std::path::PathBuf,
        /// What failed.
        #[source]
        source: crate::session::SessionError,
    },
    /// The SMART client could not be set up (a private key that cannot be read, for example).
    #[error("The SMART client could not be set up: {0}")]
    Launch(#[source] smart_launch::Error),
    /// The HTTP client could not be built (TLS set-up).
    #[error("The HTTP client could not be built: {0}.")]
    HttpClient(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_failures_never_answer_500() {
        let cases = [
            (
                AppError::Launch(smart_launch::Error::Authorization {
                    error: "access_denied".into(),
                    description: None,
                    uri: None,
                }),
                StatusCode::UNAUTHORIZED,
            ),
            (
                AppError::Launch(smart_launch::Error::UnknownState),
                StatusCode::BAD_REQUEST,
            ),
            (
                AppError::Launch(smart_launch::Error::StateMismatch),
                StatusCode::BAD_REQUEST,
            ),
            (
                AppError::Launch(smart_launch::Error::TokenEndpoint {
                    status: 400,
                    error: Some("invalid_grant".into()),
                    description: None,
                    uri: None,
                    body: String::new(),
                }),
                StatusCode::UNAUTHORIZED,
            ),
            (
                AppError::Launch(smart_launch::Error::TokenEndpoint {
                    status: 503,
                    error: None,
                    description: None,
                    uri: None,
                    body: String::new(),
                }),
                StatusCode::BAD_GATEWAY,
            ),
            (
                AppError::Launch(smart_launch::Error::IdToken(
                    smart_launch::IdTokenError::BadSignature,
                )),
                StatusCode::UNAUTHORIZED,
            ),
            (AppError::Csrf, StatusCode::FORBIDDEN),
        ];
        for (error, status) in cases {
            assert_eq!(error.status(), status, "{error}");
        }
    }

    #[tokio::test]
    async fn launch_errors_render_the_authorization_error_page() {
        let response = AppError::Launch(smart_launch::Error::UnknownState).into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains("Authorization Error"));
        assert!(body.contains("Start over"));
        assert!(body.contains("No launch is waiting"));
    }

    #[test]
    fn a_session_store_outage_is_a_503_with_retry_after_and_no_internal_detail() {
        let unreachable = redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        let response =
            AppError::Session(crate::session::SessionError::Unavailable(unreachable)).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "5");
        assert!(response.extensions().get::<StoreOutage>().is_some());
        assert!(response.extensions().get::<InternalErrorDetail>().is_none());
    }

    #[test]
    fn internal_detail_is_not_shown_but_kept_for_the_log() {
        let response = AppError::Internal(anyhow::anyhow!("disk on fire at /var/x")).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let detail = response.extensions().get::<InternalErrorDetail>().unwrap();
        assert!(detail.0.contains("disk on fire"));
    }
}
