//! The token endpoint (authorization_code, refresh_token with rotation, client_credentials), token issuance with
//! the SMART launch context, id_tokens, and the JWKS that verifies them.

use axum::{
    Json,
    body::Bytes,
    extract::State,
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use http::HeaderMap;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use smart_launch::scope::{Scope, ScopeSet};
use smart_launch::{AccessToken, FhirContextItem, IdToken, RefreshToken, TokenResponse};
use subtle::ConstantTimeEq;

use super::{
    AuthServer,
    clients::{self, ClientKind, RegisteredClient},
    oauth_error::{OAuthError, no_store_json},
    params::Params,
    records::{self, CodeLookup, GrantRecord, TokenKind, TokenState},
    scopes,
};
use crate::{config::SimulatedFailure, error::SandboxError, persona::Persona};

/// Lifetime of an `offline_access` refresh token.
const OFFLINE_REFRESH_TTL_MS: i64 = 30 * 24 * 3600 * 1000;
/// Lifetime of an `online_access` refresh token (the sandbox's notion of a user session).
const ONLINE_REFRESH_TTL_MS: i64 = 12 * 3600 * 1000;

/// `POST /auth/token`.
pub(crate) async fn token(State(auth): State<AuthServer>, headers: HeaderMap, body: Bytes) -> Response {
    match exchange(&auth, &headers, &body).await {
        Ok(response) => response,
        Err(err) => {
            tracing::info!(error = err.error, description = %err.description, "token request refused");
            err.into_response()
        }
    }
}

/// `GET /auth/jwks`: the public key that signs id_tokens.
pub(crate) async fn jwks(State(auth): State<AuthServer>) -> Response {
    match auth.signing_key().await {
        Ok(key) => Json(key.jwks()).into_response(),
        Err(err) => OAuthError::server_error(err).into_response(),
    }
}

/// Finds and authenticates the client of a token, introspection or revocation request.
pub(crate) async fn authenticated_client(
    auth: &AuthServer,
    headers: &HeaderMap,
    params: &Params,
) -> Result<std::sync::Arc<RegisteredClient>, OAuthError> {
    let creds = clients::presented_credentials(headers, params)?;
    let client_id = creds
        .client_id
        .clone()
        .or_else(|| params.get("client_assertion").and_then(clients::assertion_issuer))
        .ok_or_else(|| {
            OAuthError::invalid_client("The request does not say which client it is; send client_id.")
        })?;
    let client = auth
        .client(&client_id)
        .ok_or_else(|| OAuthError::invalid_client(format!("No client with id {client_id} is registered.")))?;
    let endpoint = auth.inner.endpoints.token.as_str().to_owned();
    clients::authenticate(&client, &creds, &endpoint, auth.store(), &auth.inner.http).await?;
    Ok(client)
}

async fn exchange(auth: &AuthServer, headers: &HeaderMap, body: &[u8]) -> Result<Response, OAuthError> {
    let params = Params::parse(body).map_err(OAuthError::invalid_request)?;
    let single = [
        "grant_type",
        "code",
        "redirect_uri",
        "code_verifier",
        "refresh_token",
        "scope",
        "client_id",
    ];
    if let Some(name) = params.repeated(&single) {
        return Err(OAuthError::invalid_request(format!(
            "The parameter {name} appears more than once."
        )));
    }
    let grant_type = params
        .get("grant_type")
        .ok_or_else(|| OAuthError::invalid_request("grant_type is missing."))?
        .to_owned();
    let client = authenticated_client(auth, headers, &params).await?;
    match grant_type.as_str() {
        "authorization_code" => authorization_code(auth, &client, &params).await,
        "refresh_token" => refresh(auth, &client, &params).await,
        "client_credentials" => client_credentials(auth, &client, &params).await,
        other => Err(OAuthError::new(
            "unsupported_grant_type",
            format!(
                "grant_type={other} is not supported; use authorization_code, refresh_token or client_credentials."
            ),
        )),
    }
}

async fn authorization_code(
    auth: &AuthServer,
    client: &RegisteredClient,
    params: &Params,
) -> Result<Response, OAuthError> {
    let code = params
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("code is missing."))?;
    let code_hash = records::hash_secret(code);
    let record = match auth
        .db({
            let h = code_hash.clone();
            move |st| records::take_code(st, &h)
        })
        .await?
    {
        CodeLookup::Fresh(record) => record,
        CodeLookup::Replayed => {
            let revoked = auth
                .db({
                    let h = code_hash.clone();
                    move |st| records::revoke_family(st, &h)
                })
                .await?;
            tracing::warn!(client_id = %client.id, revoked, "authorization code replayed; its tokens are revoked");
            return Err(OAuthError::invalid_grant(
                "The code was already used; the tokens issued for it are now revoked. Start the launch again.",
            ));
        }
        CodeLookup::Expired => {
            return Err(OAuthError::invalid_grant(
                "The code has expired (codes live 60 seconds). Start the launch again.",
            ));
        }
        CodeLookup::Unknown => {
            return Err(OAuthError::invalid_grant(
                "The code is not one this server issued.",
            ));
        }
    };
    if record.grant.client_id != client.id {
        return Err(OAuthError::invalid_grant(
            "The code was issued to another client.",
        ));
    }
    if params.get("redirect_uri") != Some(record.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri must be sent and equal the redirect_uri of the authorization request.",
        ));
    }
    if let Some(challenge) = &record.code_challenge {
        let verifier = params
            .get("code_verifier")
            .ok_or_else(|| OAuthError::invalid_grant("code_verifier is missing (the request used PKCE)."))?;
        let well_formed = (43..=128).contains(&verifier.len())
            && verifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        let computed = s256(verifier);
        if !well_formed || !bool::from(computed.as_bytes().ct_eq(challenge.as_bytes())) {
            return Err(OAuthError::invalid_grant(
                "code_verifier does not match the code_challenge.",
            ));
        }
    } else if client.kind() == ClientKind::Public && client.pkce == crate::config::PkcePolicy::Required {
        return Err(OAuthError::invalid_grant("The code was issued without PKCE."));
    }
    if record.grant.fail == Some(SimulatedFailure::TokenError) {
        return Err(OAuthError::invalid_grant(
            "The token request is refused (simulated failure token_error).",
        ));
    }
    respond_with_tokens(auth, &code_hash, &record.grant, Refresh::FirstGrant).await
}

async fn refresh(
    auth: &AuthServer,
    client: &RegisteredClient,
    params: &Params,
) -> Result<Response, OAuthError> {
    let token = params
        .get("refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is missing."))?;
    let token_hash = records::hash_secret(token);
    let row = auth
        .db({
            let h = token_hash.clone();
            move |st| records::find_token(st, &h)
        })
        .await?
        .filter(|r| r.kind == TokenKind::Refresh)
        .ok_or_else(|| OAuthError::invalid_grant("The refresh token is not one this server issued."))?;
    if row.grant.client_id != client.id {
        return Err(OAuthError::invalid_grant(
            "The refresh token was issued to another client.",
        ));
    }
    match row.state {
        TokenState::Active => {}
        TokenState::Rotated => {
            auth.db({
                let family = row.family.clone();
                move |st| records::revoke_family(st, &family)
            })
            .await?;
            tracing::warn!(client_id = %client.id, "rotated refresh token reused; the grant is revoked");
            return Err(OAuthError::invalid_grant(
                "The refresh token was already used (tokens rotate); every token of this grant is now revoked. Launch again.",
            ));
        }
        TokenState::Revoked => {
            return Err(OAuthError::invalid_grant(
                "The refresh token was revoked. Launch again.",
            ));
        }
    }
    if row.expires_at <= records::now_ms() {
        return Err(OAuthError::invalid_grant(
            "The refresh token has expired. Launch again.",
        ));
    }
    if row.grant.fail == Some(SimulatedFailure::TokenError) {
        return Err(OAuthError::invalid_grant(
            "The token request is refused (simulated failure token_error).",
        ));
    }
    let mut grant = row.grant.clone();
    if let Some(text) = params.get("scope") {
        let asked = ScopeSet::parse(text).map_err(|e| OAuthError::new("invalid_scope", e.to_string()))?;
        if !scopes::is_subset(&asked, &ScopeSet::parse_lenient(&grant.scope)) {
            return Err(OAuthError::new(
                "invalid_scope",
                "A refresh may narrow the granted scopes, never add to them.",
            ));
        }
        grant.scope = asked.to_string();
    }
    if !auth.persona().rotates_refresh_tokens() {
        return respond_with_tokens(auth, &row.family, &grant, Refresh::Kept).await;
    }
    if !auth
        .db({
            let h = token_hash.clone();
            move |st| records::rotate_refresh_token(st, &h)
        })
        .await?
    {
        return Err(OAuthError::invalid_grant(
            "The refresh token was used concurrently; launch again.",
        ));
    }
    respond_with_tokens(auth, &row.family, &grant, Refresh::Rotated(row.expires_at)).await
}

async fn client_credentials(
    auth: &AuthServer,
    client: &RegisteredClient,
    params: &Params,
) -> Result<Response, OAuthError> {
    if client.kind() != ClientKind::Asymmetric {
        return Err(OAuthError::new(
            "unauthorized_client",
            format!(
                "client_credentials is for backend services registered with public keys (jwks); {} is not.",
                client.id
            ),
        ));
    }
    let text = params
        .get("scope")
        .ok_or_else(|| OAuthError::new("invalid_scope", "scope is missing; ask for system/ scopes."))?;
    let requested = ScopeSet::parse(text).map_err(|e| OAuthError::new("invalid_scope", e.to_string()))?;
    let granted = scopes::grant_backend(&requested);
    if granted.is_empty() {
        return Err(OAuthError::new(
            "invalid_scope",
            "A backend service must ask for system/ scopes.",
        ));
    }
    let grant = GrantRecord {
        client_id: client.id.clone(),
        scope: granted.to_string(),
        patient: None,
        encounter: None,
        fhir_user: None,
        need_patient_banner: false,
        intent: None,
        nonce: None,
        fail: client.fail,
        fhir_context: Vec::new(),
        auth_time: records::now_ms() / 1000,
    };
    let family = records::random_token();
    let access = issue_access_token(auth, &family, &grant).await?;
    let response = token_response(auth, access, scope_text(auth.persona(), &grant.scope));
    Ok(no_store_json(&response))
}

async fn issue_access_token(
    auth: &AuthServer,
    family: &str,
    grant: &GrantRecord,
) -> Result<String, SandboxError> {
    let token = records::random_token();
    let ttl = i64::try_from(auth.inner.token_ttl.as_millis()).unwrap_or(i64::MAX);
    let expires_at = records::now_ms().saturating_add(ttl);
    store_token(auth, &token, TokenKind::Access, family, grant, expires_at).await?;
    Ok(token)
}

/// Stores a token's hash with its grant (on the blocking pool).
async fn store_token(
    auth: &AuthServer,
    token: &str,
    kind: TokenKind,
    family: &str,
    grant: &GrantRecord,
    expires_at: i64,
) -> Result<(), SandboxError> {
    let (hash, family, grant) = (records::hash_secret(token), family.to_owned(), grant.clone());
    auth.db(move |st| records::insert_token(st, &hash, kind, &family, &grant, expires_at))
        .await
}

/// Which token request a response answers, for the refresh token it carries.
enum Refresh {
    /// The code exchange: a new refresh token when `offline_access` / `online_access` was granted.
    FirstGrant,
    /// A refresh that rotated the old token: a new one, ending when an `online_access` session ends (this
    /// instant, epoch ms).
    Rotated(i64),
    /// A refresh under a persona that keeps the old refresh token (Cerner): no refresh token in the answer.
    Kept,
}

/// `token_type`: Epic writes it in lower case (`"token_type": "bearer"`, fhir.epic.com OAuth 2.0 tutorial, the
/// access token response of step 5); RFC 6750 and SMART say `Bearer`, case-insensitively.
fn token_type(persona: Persona) -> &'static str {
    match persona {
        Persona::Epic => "bearer",
        Persona::Smart | Persona::Cerner => "Bearer",
    }
}

/// A token response with the access token, its type and lifetime as the persona writes them, and the granted
/// scopes; the caller adds the refresh token and the launch context.
fn token_response(auth: &AuthServer, access: String, scope: String) -> TokenResponse {
    TokenResponse {
        access_token: AccessToken::new(access),
        token_type: token_type(auth.persona()).to_owned(),
        expires_in: Some(auth.inner.token_ttl.as_secs()),
        refresh_token: None,
        scope: Some(scope),
        id_token: None,
        patient: None,
        encounter: None,
        fhir_context: Vec::new(),
        need_patient_banner: None,
        smart_style_url: None,
        intent: None,
        tenant: None,
        extra: Map::new(),
    }
}

/// The granted scopes as the persona writes them. Epic answers with the names of the APIs the app may use, not
/// SMART scopes, and ends the list with a space (`"scope": "openid Patient.read Patient.search "`, fhir.epic.com
/// OAuth 2.0 specification); the grant itself stays the SMART scopes, which decide access.
fn scope_text(persona: Persona, scope: &str) -> String {
    if persona != Persona::Epic {
        return scope.to_owned();
    }
    let mut names: Vec<String> = Vec::new();
    for s in &ScopeSet::parse_lenient(scope) {
        match s {
            Scope::OpenId => names.push("openid".into()),
            Scope::FhirUser => names.push("fhirUser".into()),
            Scope::Resource(r) => {
                let p = &r.permissions;
                for (allowed, verb) in [
                    (p.read, "read"),
                    (p.search, "search"),
                    (p.create, "create"),
                    (p.update, "update"),
                    (p.delete, "delete"),
                ] {
                    let name = format!("{}.{verb}", r.resource_type);
                    if allowed && !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
            _ => {}
        }
    }
    let mut text = names.join(" ");
    text.push(' ');
    text
}

/// Epic's own context beside SMART's in the token response (fhir.epic.com OAuth 2.0 tutorial, step 5):
/// `__epic.dstu2.patient` (the patient's DSTU2 id, which differs from its R4 id), and, with a patient in context,
/// `location` and `loginDepartment` (FHIR ids of the user's login department, a Location) and `appointment` when
/// the patient has one.
async fn epic_context(
    auth: &AuthServer,
    grant: &GrantRecord,
    body: &mut Map<String, Value>,
) -> Result<(), SandboxError> {
    let Some(patient) = grant.patient.clone() else {
        return Ok(());
    };
    let dstu2 = format!("T{}", URL_SAFE_NO_PAD.encode(Sha256::digest(patient.as_bytes())));
    body.insert("__epic.dstu2.patient".into(), json!(dstu2));
    let (location, appointment) = auth
        .db(move |st| {
            st.with_conn(|conn| {
                use rusqlite::OptionalExtension;
                let location: Option<String> = conn
                    .query_row(
                        "SELECT id FROM fhir_resources WHERE type = 'Location' AND deleted = 0 ORDER BY rid LIMIT 1",
                        [],
                        |r| r.get(0),
                    )
                    .optional()?;
                let appointment: Option<String> = conn
                    .query_row(
                        "SELECT id FROM fhir_resources WHERE type = 'Appointment' AND deleted = 0 AND patient = ?1 \
                         ORDER BY rid LIMIT 1",
                        [&patient],
                        |r| r.get(0),
                    )
                    .optional()?;
                Ok((location, appointment))
            })
        })
        .await?;
    if let Some(appointment) = appointment {
        body.insert("appointment".into(), json!(appointment));
    }
    if let Some(location) = location {
        body.insert("location".into(), json!(location));
        body.insert("loginDepartment".into(), json!(location));
    }
    Ok(())
}

/// Issues an access token (and a refresh token when `offline_access` / `online_access` was granted, unless the
/// persona keeps the old one on refresh) and builds the token response with the launch context, as the persona
/// writes it.
async fn respond_with_tokens(
    auth: &AuthServer,
    family: &str,
    grant: &GrantRecord,
    refresh: Refresh,
) -> Result<Response, OAuthError> {
    let persona = auth.persona();
    let granted = ScopeSet::parse_lenient(&grant.scope);
    let access = issue_access_token(auth, family, grant).await?;
    let mut body = token_response(auth, access, scope_text(persona, &grant.scope));
    let refresh_ttl = match refresh {
        Refresh::Kept => None,
        _ if granted.contains(&Scope::OfflineAccess) => Some(records::now_ms() + OFFLINE_REFRESH_TTL_MS),
        Refresh::Rotated(ends) if granted.contains(&Scope::OnlineAccess) => Some(ends),
        _ if granted.contains(&Scope::OnlineAccess) => Some(records::now_ms() + ONLINE_REFRESH_TTL_MS),
        _ => None,
    };
    if let Some(expires_at) = refresh_ttl {
        let refresh = records::random_token();
        store_token(auth, &refresh, TokenKind::Refresh, family, grant, expires_at).await?;
        body.refresh_token = Some(RefreshToken::new(refresh));
    }
    body.patient.clone_from(&grant.patient);
    body.encounter.clone_from(&grant.encounter);
    if persona == Persona::Epic {
        epic_context(auth, grant, &mut body.extra).await?;
        // Epic writes the flag as a string (`"need_patient_banner": "true"`, fhir.epic.com OAuth 2.0 tutorial,
        // step 5); kept beside the typed members, where a client reads it back as the boolean.
        body.extra.insert(
            "need_patient_banner".into(),
            json!(grant.need_patient_banner.to_string()),
        );
    } else {
        body.need_patient_banner = Some(grant.need_patient_banner);
    }
    body.smart_style_url = Some(style_url(auth));
    body.intent.clone_from(&grant.intent);
    body.fhir_context = grant
        .fhir_context
        .iter()
        .map(|reference| FhirContextItem {
            reference: Some(reference.clone()),
            ..FhirContextItem::default()
        })
        .collect();
    if granted.has_openid()
        && let Some(user) = &grant.fhir_user
    {
        body.id_token = Some(IdToken::new(id_token(auth, grant, user, &granted).await?));
    }
    Ok(no_store_json(&body))
}

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2).
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn style_url(auth: &AuthServer) -> String {
    format!(
        "{}/.well-known/smart-style.json",
        auth.fhir_base().as_str().trim_end_matches('/')
    )
}

async fn id_token(
    auth: &AuthServer,
    grant: &GrantRecord,
    user: &str,
    granted: &ScopeSet,
) -> Result<String, SandboxError> {
    let key = auth.signing_key().await?;
    let now = records::now_ms() / 1000;
    let base = auth.fhir_base().as_str().trim_end_matches('/');
    let user_url = format!("{base}/{user}");
    // The issuer of the persona: the FHIR base (smart), Cerner's `…/oidc/idsps/{tenant}/` with its trailing slash
    // (cerner/fhir.cerner.com `content/authorization/openid-connect.md`), Epic's `…/oauth2`.
    let issuer = auth.inner.endpoints.issuer.as_str().to_owned();
    let issuer = if auth.persona() == Persona::Smart {
        base.to_owned()
    } else {
        issuer
    };
    let mut claims = json!({
        "iss": issuer,
        "sub": user,
        "aud": grant.client_id,
        "iat": now,
        "exp": now + 3600,
        "auth_time": grant.auth_time,
    });
    if granted.contains(&Scope::FhirUser) {
        claims["fhirUser"] = json!(user_url);
    }
    if granted.contains(&Scope::Profile) {
        claims["profile"] = json!(user_url);
    }
    if let Some(nonce) = &grant.nonce {
        claims["nonce"] = json!(nonce);
    }
    key.sign(&claims)
}

#[cfg(test)]
mod tests {
    use super::s256;

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
