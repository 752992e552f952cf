//! Watching the requests a client sends: method, URL (token-like query parameters removed),
//! status, latency and size of each attempt, for a caller that shows them (the app's launch
//! timeline). Set with [`crate::FhirClientBuilder::observer`]; without one nothing is recorded.

use std::time::Duration;

use url::Url;

/// One request as it was sent and answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestObservation {
    /// `GET`, `POST`, …
    pub method: String,
    /// The URL, with token-like query parameters ([`is_token_like`]) replaced by `[redacted]`.
    pub url: String,
    /// The HTTP status; `None` when no answer came (connection refused, timeout).
    pub status: Option<u16>,
    /// From sending to the end of the body (or the failure).
    pub latency: Duration,
    /// The size of the body read (0 for answers retried without reading them).
    pub bytes: u64,
}

/// Receives every request of a client (every attempt, retries included).
pub trait RequestObserver: Send + Sync {
    /// Called once per attempt, after its answer (or its failure).
    fn observe(&self, observation: RequestObservation);
}

/// A query parameter whose value could be a credential (`access_token`, `code`, `*token*`,
/// `*secret*`, `password`…).
pub fn is_token_like(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["token", "secret", "password", "code_verifier", "assertion"]
        .iter()
        .any(|word| name.contains(word))
        || name == "code"
}

/// `url` as it may be shown: token-like query parameter values replaced by `[redacted]`, no user
/// name or password.
pub fn shown_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_token_like(&k) {
                    "[redacted]".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        shown.query_pairs_mut().clear().extend_pairs(pairs);
    }
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_like_parameters_are_redacted() {
        let url = Url::parse("https://u:p@ehr.example/fhir/Patient?_id=1&access_token=abc&code=xyz&name=Ann")
            .unwrap();
        let shown = shown_url(&url);
        assert!(
            !shown.contains("abc") && !shown.contains("xyz") && !shown.contains("u:p"),
            "{shown}"
        );
        assert!(shown.contains("_id=1") && shown.contains("name=Ann"));
        assert_eq!(
            shown_url(&Url::parse("https://ehr.example/fhir/Patient/1").unwrap()),
            "https://ehr.example/fhir/Patient/1"
        );
    }
}
