//! OAuth 2.0 error responses of the token, introspection and revocation endpoints (RFC 6749 §5.2).

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use smart_launch::OAuthErrorBody;

/// An OAuth error answered as JSON with `Cache-Control: no-store`.
#[derive(Debug)]
pub(crate) struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// Add `WWW-Authenticate: Basic` (the client tried HTTP Basic authentication and failed).
    pub basic_challenge: bool,
}

impl OAuthError {
    pub(crate) fn new(error: &'static str, description: impl Into<String>) -> Self {
        let status = if error == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        Self {
            status,
            error,
            description: description.into(),
            basic_challenge: false,
        }
    }

    pub(crate) fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }

    pub(crate) fn invalid_client(description: impl Into<String>) -> Self {
        Self::new("invalid_client", description)
    }

    pub(crate) fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new("invalid_grant", description)
    }

    /// The sandbox failed: 500 `server_error`, or 503 `temporarily_unavailable` (RFC 6749 §4.1.2.1's code for
    /// a server that cannot answer now) when its database file is gone. The detail is logged, not sent.
    pub(crate) fn server_error(err: crate::error::SandboxError) -> Self {
        tracing::error!(error = %err, "authorization server failure");
        if err.is_database_gone() {
            return Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                error: "temporarily_unavailable",
                description: crate::error::DATABASE_GONE_ADVICE.to_owned(),
                basic_challenge: false,
            };
        }
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "server_error",
            description: "The sandbox failed to process the request; see its log.".to_owned(),
            basic_challenge: false,
        }
    }
}

impl From<crate::error::SandboxError> for OAuthError {
    fn from(err: crate::error::SandboxError) -> Self {
        OAuthError::server_error(err)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = OAuthErrorBody::new(self.error, self.description);
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(crate::limits::RETRY_AFTER_SECONDS),
            );
        }
        if self.basic_challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="smart-fhir-sandbox""#),
            );
        }
        response
    }
}

/// A JSON body answered with `Cache-Control: no-store` (token and introspection responses).
pub(crate) fn no_store_json(body: &impl Serialize) -> Response {
    let mut response = axum::Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
