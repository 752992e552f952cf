//! Sending one FHIR request: the bearer token, `Accept: application/fhir+json`, timeouts, retries
//! with backoff, one refresh-and-retry on 401, and error statuses turned into [`FhirError`]s.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use smart_launch::{AccessToken, TokenSource};
use url::Url;

use crate::error::FhirError;
use crate::observe::{RequestObservation, RequestObserver, shown_url};
use crate::r4::{Mode, OperationOutcome};
use crate::retry::{RetryPolicy, parse_retry_after};

/// The FHIR JSON media type.
pub(crate) const FHIR_JSON: &str = "application/fhir+json";

/// What a request does, for 403 messages and retry safety.
#[derive(Debug, Clone)]
pub(crate) struct Interaction {
    /// `read`, `search`, `create`, …
    pub name: &'static str,
    /// The resource type concerned, if one.
    pub resource_type: Option<String>,
    /// The SMART v2 permission letter it needs (`c`, `r`, `u`, `d`, `s`).
    pub permission: &'static str,
    /// Whether repeating the request is harmless (GET, PUT, DELETE, search by POST).
    pub idempotent: bool,
}

/// One request to send.
pub(crate) struct Call {
    pub method: Method,
    pub url: Url,
    pub body: Option<(Vec<u8>, &'static str)>,
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
    pub interaction: Interaction,
}

/// A successful (2xx) answer.
pub(crate) struct Answer {
    pub url: Url,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// The shared machinery of a client.
pub(crate) struct Transport {
    pub http: reqwest::Client,
    pub auth: Option<Arc<dyn TokenSource>>,
    pub retry: RetryPolicy,
    pub timeout: Duration,
    pub observer: Option<Arc<dyn RequestObserver>>,
}

impl Transport {
    /// Send `call`, retrying and refreshing as needed; a non-2xx final status becomes an error.
    pub async fn execute(&self, call: Call) -> Result<Answer, FhirError> {
        let mut token = match &self.auth {
            Some(source) => Some(source.access_token().await?),
            None => None,
        };
        let mut refreshed = false;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let last_attempt = attempt >= self.retry.max_attempts.max(1);
            let started = Instant::now();
            let response = self.send_once(&call, token.as_ref()).await;
            let response = match response {
                Ok(response) => response,
                Err(error) => {
                    self.observe(&call, None, started, 0);
                    let retryable = error.is_connect() || (error.is_timeout() && call.interaction.idempotent);
                    if retryable && !last_attempt {
                        self.pause(attempt, None).await;
                        continue;
                    }
                    return Err(transport_error(&call.url, error, attempt, self.timeout));
                }
            };
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED
                && !refreshed
                && let (Some(source), Some(rejected)) = (&self.auth, &token)
            {
                self.observe(&call, Some(status), started, 0);
                refreshed = true;
                attempt -= 1;
                tracing::debug!(url = %call.url, "401 from the FHIR server; refreshing the access token once");
                token = Some(source.refresh_after_unauthorized(rejected).await?);
                continue;
            }
            let retryable_status = status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE
                || (call.interaction.idempotent
                    && (status == StatusCode::BAD_GATEWAY || status == StatusCode::GATEWAY_TIMEOUT));
            if retryable_status && !last_attempt {
                self.observe(&call, Some(status), started, 0);
                let retry_after = response
                    .headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                tracing::debug!(url = %call.url, %status, attempt, "retrying the FHIR request");
                self.pause(attempt, retry_after).await;
                continue;
            }
            let headers = response.headers().clone();
            let body = response
                .bytes()
                .await
                .map_err(|e| transport_error(&call.url, e, attempt, self.timeout))?
                .to_vec();
            self.observe(&call, Some(status), started, body.len());
            if status.is_success() {
                return Ok(Answer {
                    url: call.url,
                    status,
                    headers,
                    body,
                });
            }
            return Err(status_error(status, &call, &headers, &body));
        }
    }

    /// Reports one attempt to the observer, if there is one.
    fn observe(&self, call: &Call, status: Option<StatusCode>, started: Instant, bytes: usize) {
        if let Some(observer) = &self.observer {
            observer.observe(RequestObservation {
                method: call.method.to_string(),
                url: shown_url(&call.url),
                status: status.map(|s| s.as_u16()),
                latency: started.elapsed(),
                bytes: bytes as u64,
            });
        }
    }

    async fn send_once(
        &self,
        call: &Call,
        token: Option<&AccessToken>,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut request = self
            .http
            .request(call.method.clone(), call.url.clone())
            .header(header::ACCEPT, FHIR_JSON)
            .timeout(self.timeout);
        if let Some(token) = token {
            request = request.bearer_auth(token.secret());
        }
        for (name, value) in &call.headers {
            request = request.header(name, value);
        }
        if let Some((body, content_type)) = &call.body {
            request = request
                .header(header::CONTENT_TYPE, *content_type)
                .body(body.clone());
        }
        request.send().await
    }

    async fn pause(&self, attempt: u32, retry_after: Option<Duration>) {
        let delay = self
            .retry
            .delay(attempt.saturating_sub(1), retry_after, &mut rand::rng());
        tokio::time::sleep(delay).await;
    }
}

fn transport_error(url: &Url, error: reqwest::Error, attempts: u32, timeout: Duration) -> FhirError {
    let url = url.to_string();
    if error.is_timeout() {
        FhirError::Timeout {
            url,
            timeout,
            attempts,
        }
    } else if error.is_connect() {
        FhirError::Connect {
            url,
            attempts,
            source: error,
        }
    } else {
        FhirError::Transport { url, source: error }
    }
}

/// The OperationOutcome in an error body, if the body is one (read tolerantly: an odd element in
/// an error's outcome must not hide the error).
fn outcome_in(body: &[u8]) -> Option<Box<OperationOutcome>> {
    crate::r4::from_slice::<OperationOutcome>(body, Mode::Tolerant)
        .ok()
        .map(|(outcome, _)| Box::new(outcome))
}

pub(crate) fn status_error(status: StatusCode, call: &Call, headers: &HeaderMap, body: &[u8]) -> FhirError {
    let url = call.url.to_string();
    let outcome = outcome_in(body);
    match status.as_u16() {
        401 => FhirError::Unauthorized { url, outcome },
        403 => {
            let interaction = &call.interaction;
            let ty = interaction.resource_type.as_deref().unwrap_or("*");
            let from_server = headers
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(insufficient_scope);
            let likely_missing_scope = from_server.unwrap_or_else(|| {
                format!("patient/{ty}.{p} (or user/{ty}.{p})", p = interaction.permission)
            });
            FhirError::Forbidden {
                url,
                interaction: format!("{} {ty}", interaction.name),
                likely_missing_scope,
                outcome,
            }
        }
        404 => FhirError::NotFound { url, outcome },
        410 => FhirError::Gone { url, outcome },
        409 | 412 => FhirError::VersionConflict {
            url,
            status: status.as_u16(),
            outcome,
        },
        429 => FhirError::RateLimited {
            url,
            retry_after: headers
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now())),
            outcome,
        },
        code => FhirError::Status {
            status: code,
            url,
            body: if outcome.is_some() {
                String::new()
            } else {
                body_excerpt(body)
            },
            outcome,
        },
    }
}

/// The `scope` of a `Bearer error="insufficient_scope", scope="…"` challenge (RFC 6750 §3).
fn insufficient_scope(challenge: &str) -> Option<String> {
    if !challenge.contains("insufficient_scope") {
        return None;
    }
    let start = challenge.find("scope=\"")? + "scope=\"".len();
    let rest = &challenge[start..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// The first 500 characters of a body, for error messages.
pub(crate) fn body_excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insufficient_scope_challenge_names_the_scope() {
        assert_eq!(
            insufficient_scope(
                r#"Bearer realm="x", error="insufficient_scope", scope="patient/Observation.rs""#
            )
            .as_deref(),
            Some("patient/Observation.rs")
        );
        assert_eq!(insufficient_scope(r#"Bearer error="invalid_token""#), None);
    }
}
