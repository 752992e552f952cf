//! Token introspection (RFC 7662, with the SMART launch context) and revocation (RFC 7009).

use axum::{
    body::Bytes,
    extract::State,
    response::{IntoResponse, Response},
};
use http::{HeaderMap, StatusCode, header};
use smart_launch::{FhirContextItem, Introspection, ScopeSet};

use super::{
    AuthServer,
    clients::ClientKind,
    oauth_error::{OAuthError, no_store_json},
    params::Params,
    records::{self, TokenKind, TokenState},
    token::authenticated_client,
};

/// `POST /auth/introspect` (`token`): the caller authenticates as a confidential client or with a valid bearer
/// token.
pub(crate) async fn introspect(State(auth): State<AuthServer>, headers: HeaderMap, body: Bytes) -> Response {
    match introspect_inner(&auth, &headers, &body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn introspect_inner(
    auth: &AuthServer,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    let params = Params::parse(body).map_err(OAuthError::invalid_request)?;
    let only_client = authorized_caller(auth, headers, &params).await?;
    let token = params
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is missing."))?;
    let Some(row) = auth
        .db({
            let h = records::hash_secret(token);
            move |st| records::find_token(st, &h)
        })
        .await?
    else {
        return Ok(inactive());
    };
    let expired = row.expires_at <= records::now_ms();
    let foreign = only_client.is_some_and(|c| c != row.grant.client_id);
    if row.state != TokenState::Active || expired || foreign {
        return Ok(inactive());
    }
    let base = auth.fhir_base().as_str().trim_end_matches('/');
    Ok(no_store_json(&active(row, base)))
}

/// Who may see a token's details (RFC 7662 §2.1, §4): an authenticated confidential client — the sandbox's
/// stand-in for a resource server, as the trusted servers (Keycloak, Okta) let their authenticated clients
/// introspect — sees any token (`None`); a caller that shows only a bearer token sees the tokens of its own client
/// (`Some(client_id)`), so one app's token cannot be used to read another app's grants. Any other token answers
/// `active: false` (§2.2).
async fn authorized_caller(
    auth: &AuthServer,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Option<String>, OAuthError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("bearer ")));
    if bearer {
        let (checker, caller) = (auth.clone(), headers.clone());
        let verdict = auth.db(move |_| Ok(checker.check_bearer(&caller))).await?;
        let grant = verdict.map_err(|e| OAuthError {
            status: StatusCode::UNAUTHORIZED,
            ..OAuthError::invalid_client(format!("The caller's bearer token is not accepted: {e}"))
        })?;
        return Ok(Some(grant.client_id));
    }
    let client = authenticated_client(auth, headers, params).await?;
    if client.kind() == ClientKind::Public {
        return Err(OAuthError::invalid_client(
            "Introspection needs a confidential client or a valid bearer token; a public client cannot prove who it is.",
        ));
    }
    Ok(None)
}

/// The answer for an active token: its scope, client, times and launch context (`base` is the FHIR base, which
/// the `fhirUser` is made absolute against).
fn active(row: records::TokenRow, base: &str) -> Introspection {
    let grant = row.grant;
    Introspection {
        active: Some(true),
        scope: Some(ScopeSet::parse_lenient(&grant.scope)),
        client_id: Some(grant.client_id),
        username: None,
        token_type: Some(
            if row.kind == TokenKind::Access {
                "Bearer"
            } else {
                "refresh_token"
            }
            .to_owned(),
        ),
        exp: u64::try_from(row.expires_at / 1000).ok(),
        iat: u64::try_from(row.issued_at / 1000).ok(),
        sub: grant.fhir_user.clone(),
        iss: Some(base.to_owned()),
        patient: grant.patient,
        encounter: grant.encounter,
        fhir_context: grant
            .fhir_context
            .into_iter()
            .map(|reference| FhirContextItem {
                reference: Some(reference),
                ..FhirContextItem::default()
            })
            .collect(),
        fhir_user: grant.fhir_user.map(|user| format!("{base}/{user}")),
        extra: serde_json::Map::new(),
    }
}

fn inactive() -> Response {
    no_store_json(&Introspection::inactive())
}

/// `POST /auth/revoke` (`token`, optional `token_type_hint`): the client authenticates as at the token endpoint.
/// Revoking a refresh token also revokes the access tokens of its grant. Unknown tokens answer 200 too (RFC 7009).
pub(crate) async fn revoke(State(auth): State<AuthServer>, headers: HeaderMap, body: Bytes) -> Response {
    match revoke_inner(&auth, &headers, &body).await {
        Ok(()) => (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn revoke_inner(auth: &AuthServer, headers: &HeaderMap, body: &[u8]) -> Result<(), OAuthError> {
    let params = Params::parse(body).map_err(OAuthError::invalid_request)?;
    let client = authenticated_client(auth, headers, &params).await?;
    let token = params
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is missing."))?;
    let hash = records::hash_secret(token);
    let Some(row) = auth
        .db({
            let h = hash.clone();
            move |st| records::find_token(st, &h)
        })
        .await?
    else {
        return Ok(());
    };
    if row.grant.client_id != client.id {
        // RFC 7009 §2.1: a client may revoke only its own tokens; answer as for an unknown token.
        return Ok(());
    }
    match row.kind {
        TokenKind::Refresh => {
            auth.db(move |st| records::revoke_family(st, &row.family)).await?;
        }
        TokenKind::Access => auth.db(move |st| records::revoke_token(st, &hash)).await?,
    }
    Ok(())
}
