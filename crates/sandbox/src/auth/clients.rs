//! Registered clients and client authentication at the token, introspection and revocation endpoints:
//! none (public), client_secret_basic, client_secret_post and private_key_jwt (RS384 / ES384, `jti` replay cache).

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use http::{HeaderMap, header};
use jsonwebtoken::{
    Algorithm, DecodingKey, Validation,
    jwk::{AlgorithmParameters, JwkSet},
};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use url::Url;

use super::{oauth_error::OAuthError, params::Params, records};
use crate::{
    config::{ClientKeys, ClientSecret, ClientSpec, PkcePolicy, SimulatedFailure},
    error::SandboxError,
    store::Store,
};

/// The assertion type of private_key_jwt (RFC 7523).
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long a fetched `jwks_url` is trusted before it is fetched again.
const JWKS_CACHE: Duration = Duration::from_secs(300);

/// How a client proves who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientKind {
    /// No credentials (PKCE protects the code).
    Public,
    /// A shared secret.
    Symmetric,
    /// A signed JWT assertion.
    Asymmetric,
}

/// Where an asymmetric client's keys are.
enum KeySource {
    Set(JwkSet),
    Url {
        url: Url,
        cache: Mutex<Option<(Instant, JwkSet)>>,
    },
}

/// A client the authorization server knows.
pub(crate) struct RegisteredClient {
    pub id: String,
    pub redirect_uris: Vec<Url>,
    secret: Option<ClientSecret>,
    keys: Option<KeySource>,
    pub launch_uri: Option<Url>,
    pub pkce: PkcePolicy,
    pub fail: Option<SimulatedFailure>,
    /// Registered by `--open-registration`: any loopback redirect URI is accepted.
    pub open_loopback: bool,
}

impl RegisteredClient {
    /// Builds the client from its spec, reading a `jwks=FILE`.
    pub(crate) fn from_spec(spec: ClientSpec) -> Result<Self, SandboxError> {
        let keys = match spec.keys {
            None => None,
            Some(ClientKeys::Set(set)) => Some(KeySource::Set(set)),
            Some(ClientKeys::Url(url)) => Some(KeySource::Url {
                url,
                cache: Mutex::new(None),
            }),
            Some(ClientKeys::File(path)) => {
                let text = std::fs::read_to_string(&path).map_err(|source| SandboxError::Io {
                    path: path.clone(),
                    source,
                })?;
                let set: JwkSet =
                    serde_json::from_str(&text).map_err(|e| SandboxError::InvalidClientSpec {
                        spec: format!("id={},jwks={}", spec.id, path.display()),
                        reason: format!("the file is not a JWK Set ({e})"),
                    })?;
                Some(KeySource::Set(set))
            }
        };
        Ok(Self {
            id: spec.id,
            redirect_uris: spec.redirect_uris,
            secret: spec.secret,
            keys,
            launch_uri: spec.launch_uri,
            pkce: spec.pkce,
            fail: spec.fail,
            open_loopback: false,
        })
    }

    /// How this client authenticates.
    pub(crate) fn kind(&self) -> ClientKind {
        match (&self.secret, &self.keys) {
            (Some(_), _) => ClientKind::Symmetric,
            (None, Some(_)) => ClientKind::Asymmetric,
            (None, None) => ClientKind::Public,
        }
    }

    /// Whether `redirect_uri` is one of the registered redirect URIs (exact match of the parsed URL: no prefix
    /// matching, no ignored query), with one exception: for a public (native) client, a registered
    /// `http://127.0.0.1/…` or `http://[::1]/…` redirect matches that URI on any port.
    ///
    /// RFC 8252 §7.3 (<https://www.rfc-editor.org/rfc/rfc8252#section-7.3>): "The authorization server MUST allow
    /// any port to be specified at the time of the request for loopback IP redirect URIs", because a native app
    /// listens on whatever free port the OS gives it; RFC 9700 §2.1
    /// (<https://www.rfc-editor.org/rfc/rfc9700#section-2.1>) keeps exact string matching as the rule, except for
    /// the port numbers of native apps' localhost redirect URIs. Only IP literals qualify (RFC 8252 §8.3 advises
    /// against the name `localhost`), and only for clients without credentials, which are the native apps.
    pub(crate) fn redirect_matches(&self, redirect_uri: &str) -> bool {
        Url::parse(redirect_uri).is_ok_and(|sent| {
            self.redirect_uris.iter().any(|r| {
                r.as_str() == sent.as_str()
                    || (self.kind() == ClientKind::Public && same_loopback_ip_uri_but_port(r, &sent))
            }) || (self.open_loopback && super::authorize::is_loopback(&sent))
        })
    }

    /// The client's public keys, fetching `jwks_url` when the cache is empty, stale or lacks `kid`.
    async fn key_set(&self, http: &reqwest::Client, kid: Option<&str>) -> Result<JwkSet, OAuthError> {
        match &self.keys {
            None => Err(OAuthError::invalid_client(format!(
                "Client {} has no registered public keys.",
                self.id
            ))),
            Some(KeySource::Set(set)) => Ok(set.clone()),
            Some(KeySource::Url { url, cache }) => {
                let cached = cache.lock().ok().and_then(|c| c.clone());
                if let Some((at, set)) = cached {
                    let has_kid = kid.is_none_or(|k| set.find(k).is_some());
                    if at.elapsed() < JWKS_CACHE && has_kid {
                        return Ok(set);
                    }
                }
                let fetch_failed = |e: String| {
                    OAuthError::invalid_client(format!("The client's jwks_url {url} could not be read: {e}."))
                };
                let response = http
                    .get(url.clone())
                    .send()
                    .await
                    .map_err(|e| fetch_failed(e.to_string()))?;
                if !response.status().is_success() {
                    return Err(fetch_failed(format!("it answered {}", response.status())));
                }
                let set: JwkSet = response.json().await.map_err(|e| fetch_failed(e.to_string()))?;
                if let Ok(mut c) = cache.lock() {
                    *c = Some((Instant::now(), set.clone()));
                }
                Ok(set)
            }
        }
    }
}

/// Whether `registered` is an `http` loopback IP redirect URI (`127.0.0.1` or `[::1]`) and `sent` is the same URI
/// on some port: scheme, host, path, query and everything else equal, only the port free (RFC 8252 §7.3).
fn same_loopback_ip_uri_but_port(registered: &Url, sent: &Url) -> bool {
    let loopback_ip = |u: &Url| {
        u.scheme() == "http"
            && match u.host() {
                Some(url::Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
                Some(url::Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
                _ => false,
            }
    };
    if !loopback_ip(registered) || !loopback_ip(sent) {
        return false;
    }
    let mut portless = sent.clone();
    let mut expected = registered.clone();
    portless.set_port(None).is_ok()
        && expected.set_port(None).is_ok()
        && portless.as_str() == expected.as_str()
}

/// The credentials a request presents.
#[derive(Default)]
pub(crate) struct PresentedCredentials {
    pub client_id: Option<String>,
    secret: Option<String>,
    assertion: Option<String>,
    used_basic: bool,
}

/// Reads the client credentials of a request: HTTP Basic, or the form's `client_id` / `client_secret` /
/// `client_assertion`. More than one method at once is an error (RFC 6749 §2.3).
pub(crate) fn presented_credentials(
    headers: &HeaderMap,
    params: &Params,
) -> Result<PresentedCredentials, OAuthError> {
    let mut creds = PresentedCredentials {
        client_id: params.get("client_id").map(str::to_owned),
        ..Default::default()
    };
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    OAuthError::invalid_client("The HTTP Basic credentials are not valid base64.")
                })?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| OAuthError::invalid_client("The HTTP Basic credentials lack a ':'."))?;
            // RFC 6749 §2.3.1: both parts are form-urlencoded.
            let id = form_decode(id);
            if creds.client_id.as_deref().is_some_and(|form_id| form_id != id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the form differs from the HTTP Basic user.",
                ));
            }
            if params.get("client_secret").is_some() {
                return Err(OAuthError::invalid_request(
                    "The client sent its secret both in HTTP Basic and in the form; use one method.",
                ));
            }
            creds.client_id = Some(id);
            creds.secret = Some(form_decode(secret));
            creds.used_basic = true;
        }
    }
    if !creds.used_basic {
        creds.secret = params.get("client_secret").map(str::to_owned);
    }
    if let Some(assertion) = params.get("client_assertion") {
        if params.get("client_assertion_type") != Some(JWT_BEARER) {
            return Err(OAuthError::invalid_client(format!(
                "client_assertion_type must be {JWT_BEARER}."
            )));
        }
        if creds.secret.is_some() {
            return Err(OAuthError::invalid_request(
                "The client sent both a secret and an assertion; use one method.",
            ));
        }
        creds.assertion = Some(assertion.to_owned());
    }
    Ok(creds)
}

fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The claims of a client assertion we check besides what `jsonwebtoken` validates.
#[derive(Deserialize)]
struct AssertionClaims {
    jti: Option<String>,
    exp: i64,
}

/// The client id an assertion claims to come from (`iss`), read before its signature is checked so the right keys
/// can be found; the signature check that follows makes it trustworthy.
pub(crate) fn assertion_issuer(assertion: &str) -> Option<String> {
    let payload = assertion.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("iss")?.as_str().map(str::to_owned)
}

/// Authenticates a client as its registration demands.
pub(crate) async fn authenticate(
    client: &RegisteredClient,
    creds: &PresentedCredentials,
    token_endpoint: &str,
    store: &Store,
    http: &reqwest::Client,
) -> Result<(), OAuthError> {
    let fail = |msg: String| OAuthError {
        basic_challenge: creds.used_basic,
        ..OAuthError::invalid_client(msg)
    };
    match client.kind() {
        ClientKind::Public => {
            if creds.secret.is_some() || creds.assertion.is_some() {
                return Err(fail(format!(
                    "Client {} is registered as public and has no credentials; send only client_id.",
                    client.id
                )));
            }
            Ok(())
        }
        ClientKind::Symmetric => {
            let expected = client
                .secret
                .as_ref()
                .map(ClientSecret::secret)
                .unwrap_or_default();
            match &creds.secret {
                Some(sent) if bool::from(sent.as_bytes().ct_eq(expected.as_bytes())) => Ok(()),
                Some(_) => Err(fail(format!("The secret of client {} is wrong.", client.id))),
                None => Err(fail(format!(
                    "Client {} is confidential: authenticate with client_secret_basic or client_secret_post.",
                    client.id
                ))),
            }
        }
        ClientKind::Asymmetric => {
            let Some(assertion) = &creds.assertion else {
                return Err(fail(format!(
                    "Client {} must authenticate with private_key_jwt (client_assertion).",
                    client.id
                )));
            };
            verify_assertion(client, assertion, token_endpoint, store, http).await
        }
    }
}

async fn verify_assertion(
    client: &RegisteredClient,
    assertion: &str,
    token_endpoint: &str,
    store: &Store,
    http: &reqwest::Client,
) -> Result<(), OAuthError> {
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|e| OAuthError::invalid_client(format!("The client assertion is not a JWT ({e}).")))?;
    if !matches!(header.alg, Algorithm::RS384 | Algorithm::ES384) {
        return Err(OAuthError::invalid_client(format!(
            "The client assertion is signed with {:?}; use RS384 or ES384.",
            header.alg
        )));
    }
    let keys = client.key_set(http, header.kid.as_deref()).await?;
    let candidates = keys.keys.iter().filter(|jwk| {
        let kid_ok = header
            .kid
            .as_deref()
            .is_none_or(|kid| jwk.common.key_id.as_deref() == Some(kid));
        let kty_ok = matches!(
            (&jwk.algorithm, header.alg),
            (AlgorithmParameters::RSA(_), Algorithm::RS384)
                | (AlgorithmParameters::EllipticCurve(_), Algorithm::ES384)
        );
        kid_ok && kty_ok
    });
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[token_endpoint]);
    validation.set_issuer(&[&client.id]);
    validation.sub = Some(client.id.clone());
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.leeway = 60;
    let mut last_error = format!(
        "no registered key of client {} matches the assertion's kid and alg",
        client.id
    );
    for jwk in candidates {
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        match jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation) {
            Ok(data) => return accept_claims(client, data.claims, store).await,
            Err(e) => last_error = e.to_string(),
        }
    }
    Err(OAuthError::invalid_client(format!(
        "The client assertion was rejected: {last_error}."
    )))
}

async fn accept_claims(
    client: &RegisteredClient,
    claims: AssertionClaims,
    store: &Store,
) -> Result<(), OAuthError> {
    let now = records::now_ms() / 1000;
    // SMART Backend Services: exp no more than five minutes in the future.
    if claims.exp > now + 300 + 60 {
        return Err(OAuthError::invalid_client(
            "The client assertion's exp is more than five minutes ahead.",
        ));
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty())
        .ok_or_else(|| OAuthError::invalid_client("The client assertion has no jti."))?;
    let (client_id, expires_at) = (client.id.clone(), (claims.exp + 60) * 1000);
    let fresh = store
        .blocking(move |st| records::remember_jti(st, &client_id, &jti, expires_at))
        .await?;
    if !fresh {
        return Err(OAuthError::invalid_client(
            "The client assertion's jti was already used; sign a new assertion.",
        ));
    }
    Ok(())
}
