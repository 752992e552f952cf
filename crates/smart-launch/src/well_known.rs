//! The `.well-known/smart-configuration` document as it is on the wire (SMART App Launch 2.2,
//! "Conformance": <https://hl7.org/fhir/smart-app-launch/conformance.html>), which an authorization
//! server writes and a client reads; [`crate::SmartConfiguration`] is its resolved form (absolute
//! URLs, where it came from).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// The members of a SMART configuration document. Endpoints are kept as sent (they may be relative
/// to the FHIR base); every list reads a JSON array of strings, a space-separated string (as some
/// servers send `scopes_supported`), or anything else as empty; members this type does not name are
/// kept in `extra`. Empty and absent members are left out when writing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SmartConfigurationDocument {
    /// The OpenID Connect issuer of the server's id_tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The JWKS URL of the keys that sign the server's id_tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// The authorization endpoint (required by SMART).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// The token endpoint (required by SMART).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// Dynamic client registration (RFC 7591).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// Where a user manages the authorizations they gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_endpoint: Option<String>,
    /// Token introspection (RFC 7662).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    /// Token revocation (RFC 7009).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// Grant types the token endpoint accepts.
    #[serde(
        default,
        deserialize_with = "lenient_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub grant_types_supported: Vec<String>,
    /// OAuth response types (`code`).
    #[serde(
        default,
        deserialize_with = "lenient_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub response_types_supported: Vec<String>,
    /// PKCE methods (`S256`).
    #[serde(
        default,
        deserialize_with = "lenient_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub code_challenge_methods_supported: Vec<String>,
    /// Client authentication methods of the token endpoint.
    #[serde(
        default,
        deserialize_with = "lenient_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Algorithms the token endpoint accepts for `private_key_jwt`.
    #[serde(
        default,
        deserialize_with = "lenient_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// Algorithms of the id_token signatures.
    #[serde(
        default,
        deserialize_with = "lenient_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// Scopes the server supports.
    #[serde(
        default,
        deserialize_with = "lenient_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub scopes_supported: Vec<String>,
    /// SMART capabilities (`launch-ehr`, `authorize-post`, `context-standalone-patient`, …).
    #[serde(
        default,
        deserialize_with = "lenient_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub capabilities: Vec<String>,
    /// Every other member, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A list member read leniently: an array's string items, a space-separated string's words, or
/// nothing for any other value.
fn lenient_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s),
                _ => None,
            })
            .collect(),
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    })
}

/// A list of `&str` constants as the owned strings of a document.
pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_lenient_lists_keeps_vendor_members_and_writes_only_what_is_set() {
        let doc: SmartConfigurationDocument = serde_json::from_value(json!({
            "authorization_endpoint": "auth", "token_endpoint": "https://ehr/token",
            "scopes_supported": "openid launch", "capabilities": ["launch-ehr", 7, "client-public"],
            "grant_types_supported": 3, "epic_extra": {"x": 1}
        }))
        .unwrap();
        assert_eq!(doc.scopes_supported, ["openid", "launch"]);
        assert_eq!(doc.capabilities, ["launch-ehr", "client-public"]);
        assert!(doc.grant_types_supported.is_empty());
        assert_eq!(doc.extra["epic_extra"], json!({"x": 1}));
        let written = serde_json::to_value(&doc).unwrap();
        assert_eq!(
            written,
            json!({
                "authorization_endpoint": "auth", "token_endpoint": "https://ehr/token",
                "scopes_supported": ["openid", "launch"], "capabilities": ["launch-ehr", "client-public"],
                "epic_extra": {"x": 1}
            })
        );
        let back: SmartConfigurationDocument = serde_json::from_value(written).unwrap();
        assert_eq!(back, doc);
    }
}
