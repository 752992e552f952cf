//! The OAuth 2.0 error body (RFC 6749 §5.2), as an authorization server writes it and a client reads it.

use serde::{Deserialize, Serialize};

/// The fields of an OAuth error response: `error` (a code such as `invalid_grant`), and an optional
/// human-readable `error_description` and `error_uri`.
///
/// Every field is optional when reading, since servers send bodies that are not OAuth errors at all
/// (an HTML page from a proxy, an empty body); absent fields are left out when writing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthErrorBody {
    /// The error code (RFC 6749 §5.2: `invalid_request`, `invalid_client`, `invalid_grant`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A human-readable explanation for the developer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    /// A page about the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_uri: Option<String>,
}

impl OAuthErrorBody {
    /// An error body with a code and a description.
    pub fn new(error: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            error: Some(error.into()),
            error_description: Some(description.into()),
            error_uri: None,
        }
    }

    /// Read an error body from a response's text: the fields it has, or none when it is not a JSON
    /// object (the caller then reports the status and the body as they are).
    pub fn parse(text: &str) -> Self {
        serde_json::from_str(text).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_and_read_back_and_lenient_on_junk() {
        let body = OAuthErrorBody::new("invalid_grant", "The code was already used.");
        let text = serde_json::to_string(&body).unwrap();
        assert_eq!(
            text,
            r#"{"error":"invalid_grant","error_description":"The code was already used."}"#
        );
        assert_eq!(OAuthErrorBody::parse(&text), body);
        assert_eq!(
            OAuthErrorBody::parse("<html>Bad gateway</html>"),
            OAuthErrorBody::default()
        );
        let vendor = OAuthErrorBody::parse(r#"{"error":"invalid_client","vendor":1}"#);
        assert_eq!(vendor.error.as_deref(), Some("invalid_client"));
        assert_eq!(vendor.error_description, None);
    }
}
