//! `{base}/.well-known/smart-configuration`: the SMART 2.2 discovery document.

use axum::{Json, extract::State, response::IntoResponse};
use serde_json::json;

use crate::SandboxState;

/// The SMART capabilities this server implements (SMART App Launch 2.2 names).
pub(crate) const CAPABILITIES: &[&str] = &[
    "launch-ehr",
    "launch-standalone",
    "authorize-post",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "context-passthrough-banner",
    "context-passthrough-style",
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

pub(crate) async fn smart_configuration(State(state): State<SandboxState>) -> impl IntoResponse {
    let auth = state.auth();
    let e = auth.endpoints();
    Json(json!({
        "issuer": auth.fhir_base().as_str(),
        "jwks_uri": e.jwks.as_str(),
        "authorization_endpoint": e.authorize.as_str(),
        "token_endpoint": e.token.as_str(),
        "introspection_endpoint": e.introspect.as_str(),
        "revocation_endpoint": e.revoke.as_str(),
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": SCOPES,
        "capabilities": CAPABILITIES,
    }))
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
