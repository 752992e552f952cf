//! `{base}/.well-known/smart-configuration` (the SMART 2.2 discovery document) and
//! `{issuer}/.well-known/openid-configuration` (OpenID Connect Discovery 1.0), each as the persona publishes it.

use super::AuthServer;
use axum::{Json, extract::State, response::IntoResponse};
use serde_json::json;
use smart_launch::{SmartConfigurationDocument, well_known::strings};

use crate::persona::Persona;

/// The SMART capabilities this server implements, by the names of SMART App Launch 2.2's normative list
/// (`context-banner` and `context-style`, which some of the IG's own examples spell `context-passthrough-…`).
pub(crate) const CAPABILITIES: &[&str] = &[
    "launch-ehr",
    "launch-standalone",
    "authorize-post",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "context-banner",
    "context-style",
    "context-ehr-patient",
    "context-ehr-encounter",
    "context-standalone-patient",
    "context-standalone-encounter",
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
    "sso-openid-connect",
];

/// The scopes listed in `scopes_supported`.
const SCOPES: &[&str] = &[
    "openid",
    "fhirUser",
    "profile",
    "launch",
    "launch/patient",
    "launch/encounter",
    "offline_access",
    "online_access",
    "patient/*.cruds",
    "patient/*.rs",
    "patient/*.read",
    "patient/*.write",
    "user/*.cruds",
    "user/*.rs",
    "user/*.read",
    "user/*.write",
    "system/*.rs",
    "system/*.read",
];

/// Epic's `scopes_supported` in its published smart-configuration and openid-configuration.
const EPIC_SCOPES: &[&str] = &[
    "epic.scanning.dmsusername",
    "fhirUser",
    "launch",
    "openid",
    "profile",
];

/// Cerner's capabilities, as its `.well-known/smart-configuration` example lists them (`R4_WELL_KNOWN` in
/// cerner/fhir.cerner.com `lib/resources/example_json/r4_examples_capabilitystatement.rb`).
const CERNER_CAPABILITIES: &[&str] = &[
    "authorize-post",
    "launch-ehr",
    "launch-standalone",
    "client-public",
    "client-confidential-symmetric",
    "sso-openid-connect",
    "context-banner",
    "context-style",
    "context-ehr-patient",
    "context-ehr-encounter",
    "permission-patient",
    "permission-user",
    "permission-offline",
    "permission-online",
    "permission-v1",
    "health-cards",
];

/// Epic's capabilities, as its published `.well-known/smart-configuration` lists them, without `authorize-post`:
/// Epic's OAuth 2.0 tutorial has a standalone launch "link (using HTTP GET) to the authorize endpoint", and POST
/// only for EHR launches, so the sandbox refuses a standalone POST and does not advertise it.
const EPIC_CAPABILITIES: &[&str] = &[
    "launch-ehr",
    "launch-standalone",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "context-banner",
    "context-style",
    "context-ehr-patient",
    "context-ehr-encounter",
    "context-standalone-patient",
    "permission-offline",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
    "sso-openid-connect",
];

pub(crate) async fn smart_configuration(State(auth): State<AuthServer>) -> impl IntoResponse {
    let e = auth.endpoints();
    let url = |u: &url::Url| Some(u.as_str().to_owned());
    let common = SmartConfigurationDocument {
        authorization_endpoint: url(&e.authorize),
        token_endpoint: url(&e.token),
        jwks_uri: url(&e.jwks),
        response_types_supported: strings(&["code"]),
        code_challenge_methods_supported: strings(&["S256"]),
        ..SmartConfigurationDocument::default()
    };
    let document = match auth.persona() {
        Persona::Smart => SmartConfigurationDocument {
            issuer: url(&e.issuer),
            introspection_endpoint: url(&e.introspect),
            revocation_endpoint: url(&e.revoke),
            grant_types_supported: strings(&["authorization_code", "refresh_token", "client_credentials"]),
            token_endpoint_auth_methods_supported: strings(&[
                "none",
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ]),
            token_endpoint_auth_signing_alg_values_supported: strings(&["RS384", "ES384"]),
            id_token_signing_alg_values_supported: strings(&["RS256"]),
            scopes_supported: strings(SCOPES),
            capabilities: strings(CAPABILITIES),
            ..common
        },
        // Cerner's document names `jwks_uri` but no `issuer`: the id_token's issuer is found through its own
        // openid-configuration (`R4_WELL_KNOWN`, cerner/fhir.cerner.com
        // `lib/resources/example_json/r4_examples_capabilitystatement.rb`). The example lists neither
        // `refresh_token` among its grant types nor `code_challenge_methods_supported`; both are kept here
        // because Cerner does refresh and does take PKCE S256, and SMART 2.2 requires the latter.
        Persona::Cerner => SmartConfigurationDocument {
            revocation_endpoint: url(&e.revoke),
            introspection_endpoint: url(&e.introspect),
            token_endpoint_auth_methods_supported: strings(&["client_secret_basic", "private_key_jwt"]),
            token_endpoint_auth_signing_alg_values_supported: strings(&["RS384", "ES384"]),
            grant_types_supported: strings(&["authorization_code", "client_credentials", "refresh_token"]),
            scopes_supported: strings(SCOPES),
            capabilities: strings(CERNER_CAPABILITIES),
            ..common
        },
        // Epic's published `https://fhir.epic.com/interconnect-fhir-oauth/api/FHIR/R4/.well-known/smart-configuration`:
        // issuer and jwks_uri present, Epic's short `scopes_supported`.
        Persona::Epic => SmartConfigurationDocument {
            issuer: url(&e.issuer),
            token_endpoint_auth_methods_supported: strings(&[
                "client_secret_post",
                "client_secret_basic",
                "private_key_jwt",
            ]),
            scopes_supported: strings(EPIC_SCOPES),
            capabilities: strings(EPIC_CAPABILITIES),
            grant_types_supported: strings(&["authorization_code", "refresh_token", "client_credentials"]),
            ..common
        },
    };
    Json(document)
}

/// `{issuer}/.well-known/openid-configuration`: the OpenID Provider metadata of the id_token issuer.
pub(crate) async fn openid_configuration(State(auth): State<AuthServer>) -> impl IntoResponse {
    let e = auth.endpoints();
    let document = match auth.persona() {
        Persona::Smart => json!({
            "issuer": e.issuer.as_str(),
            "jwks_uri": e.jwks.as_str(),
            "authorization_endpoint": e.authorize.as_str(),
            "token_endpoint": e.token.as_str(),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "fhirUser", "profile"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "fhirUser", "profile"],
        }),
        // Exactly the shape of Cerner's documented example, where `authorization_endpoint` and `token_endpoint`
        // are the issuer URL itself (cerner/fhir.cerner.com `content/authorization/openid-connect.md`); clients
        // take those endpoints from the SMART configuration, and only the issuer and `jwks_uri` from here.
        Persona::Cerner => json!({
            "response_types_supported": ["code"],
            "request_parameter_supported": false,
            "require_request_uri_registration": false,
            "request_uri_parameter_supported": true,
            "claims_parameter_supported": false,
            "jwks_uri": e.jwks.as_str(),
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "issuer": e.issuer.as_str(),
            "authorization_endpoint": e.issuer.as_str(),
            "token_endpoint": e.issuer.as_str(),
        }),
        // Epic's published `https://fhir.epic.com/interconnect-fhir-oauth/oauth2/.well-known/openid-configuration`.
        Persona::Epic => json!({
            "issuer": e.issuer.as_str(),
            "jwks_uri": e.jwks.as_str(),
            "authorization_endpoint": e.authorize.as_str(),
            "token_endpoint": e.token.as_str(),
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "scopes_supported": EPIC_SCOPES,
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic", "private_key_jwt"],
            "response_modes_supported": ["query"],
        }),
    };
    Json(document)
}

/// `{base}/.well-known/smart-style.json`: the style the `smart_style_url` of token responses points at.
pub(crate) async fn smart_style() -> impl IntoResponse {
    Json(json!({
        "color_background": "#edeae3",
        "color_error": "#9e2d2d",
        "color_highlight": "#69b5ce",
        "color_modal_backdrop": "",
        "color_success": "#498e49",
        "color_text": "#303030",
        "dim_border_radius": "6px",
        "dim_font_size": "13px",
        "dim_spacing_size": "20px",
        "font_family_body": "system-ui, sans-serif",
        "font_family_heading": "system-ui, sans-serif"
    }))
}
