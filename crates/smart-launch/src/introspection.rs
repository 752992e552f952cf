//! Token introspection (RFC 7662), with the SMART additions (`patient`, `fhirUser`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use crate::context::FhirContextItem;
use crate::error::{Error, truncate_body};
use crate::scope::ScopeSet;
use crate::secret::AccessToken;
use crate::token::{TokenClient, lenient_bool, lenient_fhir_context, lenient_string, lenient_u64};

/// What the authorization server says about a token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Introspection {
    /// Whether the token is currently active (`"true"` strings accepted). Nothing else is
    /// meaningful when false.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub active: Option<bool>,
    /// The token's scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ScopeSet>,
    /// The client the token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// A human-readable user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The token type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Expiry (seconds since the epoch).
    #[serde(
        default,
        deserialize_with = "lenient_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub exp: Option<u64>,
    /// Issued at (seconds since the epoch).
    #[serde(
        default,
        deserialize_with = "lenient_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub iat: Option<u64>,
    /// The subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// SMART: the patient in context.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub patient: Option<String>,
    /// SMART: the encounter in context.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub encounter: Option<String>,
    /// SMART: further resources in context (SMART 2.1 objects, or 2.0 reference strings).
    #[serde(
        rename = "fhirContext",
        default,
        deserialize_with = "lenient_fhir_context",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub fhir_context: Vec<FhirContextItem>,
    /// SMART: the user's FHIR resource.
    #[serde(rename = "fhirUser", default, skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
    /// Every other member, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Introspection {
    /// The answer for a token that is unknown, expired, revoked or not the caller's to see: only
    /// `active: false` (RFC 7662 §2.2).
    pub fn inactive() -> Self {
        Self {
            active: Some(false),
            scope: None,
            client_id: None,
            username: None,
            token_type: None,
            exp: None,
            iat: None,
            sub: None,
            iss: None,
            patient: None,
            encounter: None,
            fhir_context: Vec::new(),
            fhir_user: None,
            extra: Map::new(),
        }
    }

    /// True only when the server said `active: true`.
    pub fn is_active(&self) -> bool {
        self.active == Some(true)
    }
}

impl TokenClient {
    /// Ask `endpoint` about an access token.
    pub async fn introspect(&self, endpoint: &Url, token: &AccessToken) -> Result<Introspection, Error> {
        let form = vec![
            ("token", token.secret().to_owned()),
            ("token_type_hint", "access_token".to_owned()),
        ];
        let body = self.post_form(endpoint, form).await?;
        if !body.is_success() {
            let error = body.oauth_error().error;
            return Err(Error::EndpointRejected {
                endpoint: "introspection",
                status: body.status,
                error,
                body: truncate_body(&body.text),
            });
        }
        body.json("introspection response")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_introspection_response() {
        let i: Introspection = serde_json::from_value(serde_json::json!({
            "active": "true", "scope": "patient/Patient.read launch/patient", "exp": "1700000000",
            "patient": "p1", "fhirUser": "Practitioner/1", "vendor_key": 1
        }))
        .unwrap();
        assert!(i.is_active());
        assert_eq!(i.exp, Some(1_700_000_000));
        assert_eq!(i.scope.unwrap().len(), 2);
        assert!(i.extra.contains_key("vendor_key"));
        let inactive: Introspection = serde_json::from_value(serde_json::json!({"active": false})).unwrap();
        assert!(!inactive.is_active());
        assert_eq!(
            serde_json::to_value(Introspection::inactive()).unwrap(),
            serde_json::json!({"active": false})
        );
        let with_context: Introspection = serde_json::from_value(serde_json::json!({
            "active": true, "encounter": "e1", "fhirContext": ["Encounter/e1", {"reference": "Location/l1"}]
        }))
        .unwrap();
        assert_eq!(with_context.encounter.as_deref(), Some("e1"));
        assert_eq!(with_context.fhir_context.len(), 2);
    }
}
