//! The one error type of this crate, [`FhirError`], and the typed OperationOutcome it carries.

use std::time::Duration;

use crate::r4::OperationOutcome;

/// Everything that can go wrong talking to a FHIR server.
///
/// Server answers that carry an `OperationOutcome` keep it (typed) in `outcome`, so callers can
/// show the server's own diagnostics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FhirError {
    /// The configured FHIR base URL cannot be used.
    #[error(
        "The FHIR base URL {url:?} cannot be used: {reason}. Give an absolute http(s) URL such as https://ehr.example/fhir."
    )]
    InvalidBaseUrl {
        /// The URL as given.
        url: String,
        /// Why it was rejected.
        reason: String,
    },

    /// The HTTP client could not be built (TLS backend or settings).
    #[error("The HTTP client could not be set up: {0}.")]
    HttpClient(#[source] reqwest::Error),

    /// The server could not be reached (DNS, refused connection, TLS handshake), even after retries.
    #[error(
        "Could not reach the FHIR server for {url} after {attempts} attempt(s): {source}. Check the address and that the server is running."
    )]
    Connect {
        /// The request URL.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last transport error.
        #[source]
        source: reqwest::Error,
    },

    /// The server did not answer within the request timeout.
    #[error(
        "The FHIR server did not answer {url} within {timeout:?} ({attempts} attempt(s)). Try again later or raise the timeout."
    )]
    Timeout {
        /// The request URL.
        url: String,
        /// The per-request timeout.
        timeout: Duration,
        /// How many attempts were made.
        attempts: u32,
    },

    /// The connection broke while sending the request or reading the answer.
    #[error("The exchange with the FHIR server for {url} failed: {source}.")]
    Transport {
        /// The request URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },

    /// No access token could be obtained from the token source.
    #[error("No access token is available for the FHIR server: {0}")]
    Token(#[from] smart_launch::Error),

    /// 401: the server rejected the access token, also after one refresh.
    #[error(
        "The FHIR server rejected the access token for {url} (401), even after refreshing it. Sign in again."
    )]
    Unauthorized {
        /// The request URL.
        url: String,
        /// The server's OperationOutcome, if it sent one.
        outcome: Option<Box<OperationOutcome>>,
    },

    /// 403: the token is valid but does not allow this interaction.
    #[error(
        "The FHIR server refused {interaction} (403): the access token probably lacks the scope {likely_missing_scope}. Ask for that scope when launching the app."
    )]
    Forbidden {
        /// The request URL.
        url: String,
        /// The interaction refused, e.g. `read Observation`.
        interaction: String,
        /// The scope that was most likely missing: the one the server named in `WWW-Authenticate`
        /// (`insufficient_scope`), or else the SMART v2 scope this interaction needs.
        likely_missing_scope: String,
        /// The server's OperationOutcome, if it sent one.
        outcome: Option<Box<OperationOutcome>>,
    },

    /// 404: the resource (or endpoint) does not exist.
    #[error("{url} was not found on the FHIR server (404).")]
    NotFound {
        /// The request URL.
        url: String,
        /// The server's OperationOutcome, if it sent one.
        outcome: Option<Box<OperationOutcome>>,
    },

    /// 410: the resource was deleted.
    #[error("{url} has been deleted from the FHIR server (410).")]
    Gone {
        /// The request URL.
        url: String,
        /// The server's OperationOutcome, if it sent one.
        outcome: Option<Box<OperationOutcome>>,
    },

    /// 409 / 412: the resource changed since it was read (the `If-Match` version is stale).
    #[error(
        "The resource at {url} was changed by someone else (HTTP {status}). Read it again and reapply the change."
    )]
    VersionConflict {
        /// The request URL.
        url: String,
        /// 409 or 412.
        status: u16,
        /// The server's OperationOutcome, if it sent one.
        outcome: Option<Box<OperationOutcome>>,
    },

    /// 429 after every retry (or with a `Retry-After` beyond the configured cap).
    #[error("The FHIR server is rate limiting requests to {url} (429){}. Wait and try again.{}", retry_after.map(|d| format!(" and asks to wait {} s", d.as_secs())).unwrap_or_default(), server_says(outcome.as_deref()))]
    RateLimited {
        /// The request URL.
        url: String,
        /// The server's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
        /// The server's OperationOutcome, if the 429 body was one.
        outcome: Option<Box<OperationOutcome>>,
    },

    /// Any other error status; `outcome` holds the OperationOutcome when the body was one.
    #[error("The FHIR server answered {status} for {url}{}", outcome_summary(outcome.as_deref()))]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The request URL.
        url: String,
        /// The server's OperationOutcome, if the body was one.
        outcome: Option<Box<OperationOutcome>>,
        /// The start of the body when it was not an OperationOutcome.
        body: String,
    },

    /// The body is not the FHIR JSON expected (truncated, wrong type, invalid element).
    #[error("The FHIR server's answer from {url} is not a valid {expected}: {message} (at {path}).")]
    InvalidBody {
        /// The request URL (or where the JSON came from).
        url: String,
        /// What was expected, e.g. `Patient`.
        expected: String,
        /// The JSON path of the problem (`.` for the top).
        path: String,
        /// The parser's message.
        message: String,
        /// The start of the raw body, for diagnosis.
        body: String,
    },

    /// The server sent a different resource type than asked for.
    #[error("Expected a {expected} from {url} but the FHIR server sent a {found}.")]
    UnexpectedResourceType {
        /// The request URL.
        url: String,
        /// The type asked for.
        expected: String,
        /// The `resourceType` received.
        found: String,
    },

    /// A link or absolute reference points outside this client's FHIR base; it is not followed,
    /// so the access token is never sent to another server.
    #[error(
        "Refused to follow {url}: it is not under this client's FHIR base {base}, and the access token must not be sent elsewhere."
    )]
    ForeignUrl {
        /// The URL that was refused.
        url: String,
        /// This client's FHIR base.
        base: String,
    },

    /// A reference string cannot be parsed or resolved.
    #[error("The reference {reference:?} cannot be resolved: {reason}.")]
    Reference {
        /// The reference as written.
        reference: String,
        /// Why it cannot be resolved.
        reason: String,
    },

    /// A Bulk Data export went wrong other than by an error status (e.g. no status URL, an oversized line).
    #[error("The bulk export's {what} failed: {reason}.")]
    Bulk {
        /// The step: `kick-off`, `download`, …
        what: String,
        /// What went wrong.
        reason: String,
    },

    /// A downloaded file could not be written or read back.
    #[error("Could not write or read {path}: {source}.")]
    Io {
        /// The file or directory.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The caller passed something unusable (e.g. a resource without an id to update).
    #[error("{0}")]
    InvalidInput(String),
}

impl FhirError {
    /// The OperationOutcome the server sent with this error, if any.
    pub fn outcome(&self) -> Option<&OperationOutcome> {
        match self {
            FhirError::Unauthorized { outcome, .. }
            | FhirError::Forbidden { outcome, .. }
            | FhirError::NotFound { outcome, .. }
            | FhirError::Gone { outcome, .. }
            | FhirError::VersionConflict { outcome, .. }
            | FhirError::RateLimited { outcome, .. }
            | FhirError::Status { outcome, .. } => outcome.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status code, for errors that come from a server answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            FhirError::Unauthorized { .. } => Some(401),
            FhirError::Forbidden { .. } => Some(403),
            FhirError::NotFound { .. } => Some(404),
            FhirError::Gone { .. } => Some(410),
            FhirError::RateLimited { .. } => Some(429),
            FhirError::VersionConflict { status, .. } | FhirError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The OperationOutcome's issues in a simple form (empty when there is no outcome).
    pub fn issues(&self) -> Vec<Issue> {
        self.outcome().map(Issue::from_outcome).unwrap_or_default()
    }
}

/// One OperationOutcome issue, flattened for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// `fatal`, `error`, `warning` or `information`.
    pub severity: String,
    /// The issue type code, e.g. `invalid`, `required`, `not-found`.
    pub code: String,
    /// `details.text` or the first coding's display, if any.
    pub details: Option<String>,
    /// The server's diagnostics text, if any.
    pub diagnostics: Option<String>,
    /// FHIRPath expressions (or legacy locations) of the elements concerned.
    pub expression: Vec<String>,
}

impl Issue {
    /// Flatten every issue of an OperationOutcome.
    pub fn from_outcome(outcome: &OperationOutcome) -> Vec<Issue> {
        let text = |p: &crate::r4::FhirString| p.as_str().map(str::to_owned);
        outcome
            .issue
            .iter()
            .map(|issue| Issue {
                severity: coded_text(issue.severity.as_ref()),
                code: coded_text(issue.code.as_ref()),
                details: issue.details.as_ref().and_then(|d| {
                    d.text
                        .as_ref()
                        .and_then(text)
                        .or_else(|| d.coding.iter().find_map(|c| c.display.as_ref().and_then(text)))
                }),
                diagnostics: issue.diagnostics.as_ref().and_then(text),
                expression: issue
                    .expression
                    .iter()
                    .chain(issue.location.iter())
                    .filter_map(text)
                    .collect(),
            })
            .collect()
    }
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.severity, self.code)?;
        if let Some(text) = self.diagnostics.as_ref().or(self.details.as_ref()) {
            write!(f, ": {text}")?;
        }
        if !self.expression.is_empty() {
            write!(f, " at {}", self.expression.join(", "))?;
        }
        Ok(())
    }
}

/// The text of a coded value (`"?"` when it is absent or carries only extensions).
pub(crate) fn coded_text(value: Option<&crate::r4::Code>) -> String {
    value.and_then(|c| c.as_str()).unwrap_or("?").to_owned()
}

/// ": issue; issue." for an error message, or "." without an outcome.
fn outcome_summary(outcome: Option<&OperationOutcome>) -> String {
    match issues_text(outcome) {
        Some(text) => format!(": {text}."),
        None => String::from("."),
    }
}

/// " The server says: issue; issue." for an error message, or nothing without an outcome.
fn server_says(outcome: Option<&OperationOutcome>) -> String {
    issues_text(outcome)
        .map(|text| format!(" The server says: {text}."))
        .unwrap_or_default()
}

/// The outcome's issues, "; "-separated, without a final period; `None` without an outcome or issues.
fn issues_text(outcome: Option<&OperationOutcome>) -> Option<String> {
    let issues: Vec<String> = Issue::from_outcome(outcome?)
        .iter()
        .map(|issue| issue.to_string().trim_end_matches('.').to_owned())
        .collect();
    (!issues.is_empty()).then(|| issues.join("; "))
}
