//! Errors of the FHIR server, each answered with an OperationOutcome and the status that fits.

use crate::auth::FhirFailure;
use crate::error::{BearerError, SandboxError, bearer_challenge};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

/// The media type of every FHIR response.
pub(crate) const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// Why a FHIR request failed, answered as an OperationOutcome (the name says which of the workspace's FHIR errors
/// it is: the client's is `fhir_client::FhirError`).
#[derive(Debug)]
pub(crate) enum OutcomeError {
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

impl OutcomeError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            OutcomeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            OutcomeError::Unauthorized(e) => e.status(),
            OutcomeError::Forbidden(_) | OutcomeError::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            OutcomeError::NotFound(_) => StatusCode::NOT_FOUND,
            OutcomeError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            OutcomeError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            OutcomeError::Gone(_) => StatusCode::GONE,
            OutcomeError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            OutcomeError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            OutcomeError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            OutcomeError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            OutcomeError::Simulated(f) => f.status(),
            OutcomeError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            OutcomeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            OutcomeError::BadRequest(_) => "invalid",
            OutcomeError::Unauthorized(_) => "login",
            OutcomeError::Forbidden(_) | OutcomeError::InsufficientScope { .. } => "forbidden",
            OutcomeError::NotFound(_) => "not-found",
            OutcomeError::Gone(_) => "deleted",
            OutcomeError::MethodNotAllowed(_)
            | OutcomeError::NotAcceptable(_)
            | OutcomeError::UnsupportedMediaType(_) => "not-supported",
            OutcomeError::PreconditionFailed(_) => "conflict",
            OutcomeError::PayloadTooLarge(_) => "too-costly",
            OutcomeError::Unprocessable(_) => "processing",
            OutcomeError::Simulated(FhirFailure::TooManyRequests) => "throttled",
            OutcomeError::Simulated(FhirFailure::ServiceUnavailable) | OutcomeError::Unavailable(_) => {
                "transient"
            }
            OutcomeError::Simulated(_) | OutcomeError::Internal(_) => "exception",
        }
    }

    pub(crate) fn message(&self) -> String {
        match self {
            OutcomeError::Unauthorized(e) => e.to_string(),
            OutcomeError::Simulated(f) => format!(
                "This failure ({}) was simulated because the launch asked for it; launch again without it to get data.",
                f.status()
            ),
            OutcomeError::Internal(_) => {
                "The sandbox failed to answer this request; the server log has the details. Try again."
                    .to_owned()
            }
            OutcomeError::Unavailable(_) => crate::error::DATABASE_GONE_ADVICE.to_owned(),
            OutcomeError::BadRequest(m)
            | OutcomeError::Forbidden(m)
            | OutcomeError::InsufficientScope { message: m, .. }
            | OutcomeError::NotFound(m)
            | OutcomeError::MethodNotAllowed(m)
            | OutcomeError::NotAcceptable(m)
            | OutcomeError::Gone(m)
            | OutcomeError::PreconditionFailed(m)
            | OutcomeError::PayloadTooLarge(m)
            | OutcomeError::UnsupportedMediaType(m)
            | OutcomeError::Unprocessable(m) => m.clone(),
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

impl From<SandboxError> for OutcomeError {
    fn from(e: SandboxError) -> Self {
        match e {
            SandboxError::InvalidSearch { .. }
            | SandboxError::InvalidResource { .. }
            | SandboxError::Json { .. } => OutcomeError::BadRequest(e.to_string()),
            SandboxError::VersionConflict { .. } => OutcomeError::PreconditionFailed(e.to_string()),
            SandboxError::DatabaseGone { .. } => OutcomeError::Unavailable(e.to_string()),
            other => OutcomeError::Internal(other.to_string()),
        }
    }
}

impl From<rusqlite::Error> for OutcomeError {
    fn from(e: rusqlite::Error) -> Self {
        OutcomeError::from(SandboxError::from(e))
    }
}

impl From<BearerError> for OutcomeError {
    fn from(e: BearerError) -> Self {
        match e {
            // The check itself failed (a 500, or a 503 when the database file is gone), not the token.
            BearerError::Internal(inner) => OutcomeError::from(inner),
            other => OutcomeError::Unauthorized(other),
        }
    }
}

impl IntoResponse for OutcomeError {
    fn into_response(self) -> Response {
        if let OutcomeError::Internal(detail) | OutcomeError::Unavailable(detail) = &self {
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
            OutcomeError::Unauthorized(e) => {
                if let Ok(v) = HeaderValue::from_str(&e.www_authenticate()) {
                    response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
            }
            OutcomeError::InsufficientScope { scope, .. } => {
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
            OutcomeError::Simulated(FhirFailure::TooManyRequests | FhirFailure::ServiceUnavailable)
            | OutcomeError::Unavailable(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}
