//! Errors of the FHIR server, each answered with an OperationOutcome and the status that fits.

use crate::auth::FhirFailure;
use crate::error::{BearerError, SandboxError, bearer_challenge};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

/// The media type of every FHIR response.
pub(crate) const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// Why a FHIR request failed.
#[derive(Debug)]
pub(crate) enum FhirError {
    /// 400: the request cannot be understood.
    BadRequest(String),
    /// 401: no usable bearer token.
    Unauthorized(BearerError),
    /// 403: the token does not allow this (for a reason no other scope would change: compartment, constraints).
    Forbidden(String),
    /// 403: the token lacks a scope; `scope` names one that would allow the request (sent in the
    /// `WWW-Authenticate: Bearer error="insufficient_scope"` challenge, RFC 6750 §3.1).
    InsufficientScope {
        /// What was refused and why.
        message: String,
        /// A scope that would allow it, e.g. `patient/Observation.r`.
        scope: String,
    },
    /// 404: no such resource or endpoint.
    NotFound(String),
    /// 405: the method is not supported here.
    MethodNotAllowed(String),
    /// 406: the client wants a format other than JSON.
    NotAcceptable(String),
    /// 410: the resource was deleted.
    Gone(String),
    /// 412: `If-Match` names an old version.
    PreconditionFailed(String),
    /// 413: the request (its body, or what it would make the server build or answer) exceeds one of the limits
    /// in [`crate::fhir::limits`].
    PayloadTooLarge(String),
    /// 415: the body is not FHIR JSON.
    UnsupportedMediaType(String),
    /// 422: the resource breaks a rule the server enforces.
    Unprocessable(String),
    /// 500 / 503 / 429 because the launch asked for it.
    Simulated(FhirFailure),
    /// 500: something failed inside the server (details logged, not sent).
    Internal(String),
    /// 503: the server cannot store anything now (its database file is gone); details logged, not sent.
    Unavailable(String),
}

impl FhirError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            FhirError::BadRequest(_) => StatusCode::BAD_REQUEST,
            FhirError::Unauthorized(e) => e.status(),
            FhirError::Forbidden(_) | FhirError::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            FhirError::NotFound(_) => StatusCode::NOT_FOUND,
            FhirError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            FhirError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            FhirError::Gone(_) => StatusCode::GONE,
            FhirError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            FhirError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            FhirError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            FhirError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            FhirError::Simulated(f) => f.status(),
            FhirError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            FhirError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            FhirError::BadRequest(_) => "invalid",
            FhirError::Unauthorized(_) => "login",
            FhirError::Forbidden(_) | FhirError::InsufficientScope { .. } => "forbidden",
            FhirError::NotFound(_) => "not-found",
            FhirError::Gone(_) => "deleted",
            FhirError::MethodNotAllowed(_)
            | FhirError::NotAcceptable(_)
            | FhirError::UnsupportedMediaType(_) => "not-supported",
            FhirError::PreconditionFailed(_) => "conflict",
            FhirError::PayloadTooLarge(_) => "too-costly",
            FhirError::Unprocessable(_) => "processing",
            FhirError::Simulated(FhirFailure::TooManyRequests) => "throttled",
            FhirError::Simulated(FhirFailure::ServiceUnavailable) | FhirError::Unavailable(_) => "transient",
            FhirError::Simulated(_) | FhirError::Internal(_) => "exception",
        }
    }

    pub(crate) fn message(&self) -> String {
        match self {
            FhirError::Unauthorized(e) => e.to_string(),
            FhirError::Simulated(f) => format!(
                "This failure ({}) was simulated because the launch asked for it; launch again without it to get data.",
                f.status()
            ),
            FhirError::Internal(_) => {
                "The sandbox failed to answer this request; the server log has the details. Try again."
                    .to_owned()
            }
            FhirError::Unavailable(_) => crate::error::DATABASE_GONE_ADVICE.to_owned(),
            FhirError::BadRequest(m)
            | FhirError::Forbidden(m)
            | FhirError::InsufficientScope { message: m, .. }
            | FhirError::NotFound(m)
            | FhirError::MethodNotAllowed(m)
            | FhirError::NotAcceptable(m)
            | FhirError::Gone(m)
            | FhirError::PreconditionFailed(m)
            | FhirError::PayloadTooLarge(m)
            | FhirError::UnsupportedMediaType(m)
            | FhirError::Unprocessable(m) => m.clone(),
        }
    }

    /// The OperationOutcome resource describing this error.
    pub(crate) fn outcome(&self) -> Value {
        operation_outcome(
            if self.status().is_server_error() {
                "fatal"
            } else {
                "error"
            },
            self.code(),
            &self.message(),
        )
    }
}

/// An OperationOutcome with one issue.
pub(crate) fn operation_outcome(severity: &str, code: &str, text: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": severity, "code": code, "diagnostics": text, "details": { "text": text } }]
    })
}

impl From<SandboxError> for FhirError {
    fn from(e: SandboxError) -> Self {
        match e {
            SandboxError::InvalidSearch { .. }
            | SandboxError::InvalidResource { .. }
            | SandboxError::Json { .. } => FhirError::BadRequest(e.to_string()),
            SandboxError::VersionConflict { .. } => FhirError::PreconditionFailed(e.to_string()),
            SandboxError::DatabaseGone { .. } => FhirError::Unavailable(e.to_string()),
            other => FhirError::Internal(other.to_string()),
        }
    }
}

impl From<rusqlite::Error> for FhirError {
    fn from(e: rusqlite::Error) -> Self {
        FhirError::from(SandboxError::from(e))
    }
}

impl From<BearerError> for FhirError {
    fn from(e: BearerError) -> Self {
        match e {
            // The check itself failed (a 500, or a 503 when the database file is gone), not the token.
            BearerError::Internal(inner) => FhirError::from(inner),
            other => FhirError::Unauthorized(other),
        }
    }
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        if let FhirError::Internal(detail) | FhirError::Unavailable(detail) = &self {
            tracing::error!(%detail, "FHIR request failed");
        }
        let status = self.status();
        let body = self.outcome().to_string();
        let mut response = (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON))],
            body,
        )
            .into_response();
        match &self {
            FhirError::Unauthorized(e) => {
                if let Ok(v) = HeaderValue::from_str(&e.www_authenticate()) {
                    response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
            }
            FhirError::InsufficientScope { scope, .. } => {
                let challenge = bearer_challenge(&[
                    ("error", "insufficient_scope"),
                    (
                        "error_description",
                        "The access token does not have the scope this request needs",
                    ),
                    ("scope", scope),
                ]);
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
            }
            FhirError::Simulated(FhirFailure::TooManyRequests | FhirFailure::ServiceUnavailable)
            | FhirError::Unavailable(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}
