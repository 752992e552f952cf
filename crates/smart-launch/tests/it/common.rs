//! A small SMART authorization server started inside each test on 127.0.0.1:0.
//!
//! Tests only touch it through `fhir_base`, `follow_authorize` (what a browser and a consenting user
//! would do) and the request counters, so they can later be pointed at the real sandbox by
//! replacing `TestAuthServer::start`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{Form, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{Value, json};
use smart_launch::{
    AuthorizeRequest, ClientAuth, ClientSecret, JwkSet, ScopeSet, SigningAlgorithm, SigningKey,
    SmartClientConfig, Url,
};

/// Keys are slow to generate in debug builds: make each once per test binary.
pub fn key(name: &'static str) -> Arc<SigningKey> {
    static KEYS: OnceLock<Mutex<HashMap<&'static str, Arc<SigningKey>>>> = OnceLock::new();
    let keys = KEYS.get_or_init(Default::default);
    if let Some(k) = keys.lock().unwrap().get(name) {
        return k.clone();
    }
    let alg = match name {
        "client-es384" => SigningAlgorithm::ES384,
        "client-rs384" => SigningAlgorithm::RS384,
        _ => SigningAlgorithm::RS256,
    };
    let k = Arc::new(SigningKey::generate(alg, name).unwrap());
    keys.lock().unwrap().entry(name).or_insert(k).clone()
}

/// How a registered test client authenticates.
#[derive(Clone)]
pub enum Registered {
    Public,
    Secret(String),
    Jwks(JwkSet),
}

/// How the id_token is spoiled, for negative tests.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub enum IdTokenFault {
    #[default]
    None,
    BadSignature,
    WrongAudience,
    Expired,
    WrongNonce,
}

/// Switches the tests flip.
pub struct Behaviour {
    pub well_known: bool,
    pub token_failure: Option<(u16, &'static str, &'static str)>,
    pub token_redirect: bool,
    pub id_token_fault: IdTokenFault,
    pub expires_in: Value,
    pub rotate_refresh_token: bool,
    pub deny: bool,
    pub grant_scope: Option<String>,
    pub id_key: &'static str,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            well_known: true,
            token_failure: None,
            token_redirect: false,
            id_token_fault: IdTokenFault::None,
            expires_in: json!("3600"),
            rotate_refresh_token: false,
            deny: false,
            grant_scope: None,
            id_key: "id-1",
        }
    }
}

struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    scope: String,
    nonce: Option<String>,
    launch: Option<String>,
}

pub struct ServerState {
    pub fhir_base: Url,
    pub token_url: Url,
    pub behaviour: Mutex<Behaviour>,
    clients: Mutex<HashMap<String, Registered>>,
    codes: Mutex<HashMap<String, Grant>>,
    refresh_tokens: Mutex<HashMap<String, (String, String)>>,
    access_tokens: Mutex<HashMap<String, String>>,
    revoked: Mutex<HashSet<String>>,
    seen_jti: Mutex<HashSet<String>>,
    hits: Mutex<HashMap<String, usize>>,
    total: AtomicUsize,
    counter: AtomicUsize,
}

impl ServerState {
    fn next(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.counter.fetch_add(1, Ordering::SeqCst))
    }
}

pub struct TestAuthServer {
    pub addr: SocketAddr,
    pub fhir_base: Url,
    pub state: Arc<ServerState>,
}

impl TestAuthServer {
    pub async fn start() -> TestAuthServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fhir_base = Url::parse(&format!("http://{addr}/fhir")).unwrap();
        let state = Arc::new(ServerState {
            token_url: Url::parse(&format!("http://{addr}/oauth/token")).unwrap(),
            fhir_base: fhir_base.clone(),
            behaviour: Mutex::new(Behaviour::default()),
            clients: Mutex::new(HashMap::from([("public-app".to_owned(), Registered::Public)])),
            codes: Mutex::default(),
            refresh_tokens: Mutex::default(),
            access_tokens: Mutex::default(),
            revoked: Mutex::default(),
            seen_jti: Mutex::default(),
            hits: Mutex::default(),
            total: AtomicUsize::new(0),
            counter: AtomicUsize::new(1),
        });
        let app = Router::new()
            .route("/fhir/.well-known/smart-configuration", get(well_known))
            .route("/fhir/metadata", get(metadata))
            .route("/oauth/authorize", get(authorize_get).post(authorize_post))
            .route("/oauth/token", axum::routing::post(token))
            .route("/oauth/jwks", get(jwks))
            .route("/oauth/revoke", axum::routing::post(revoke))
            .route("/oauth/introspect", axum::routing::post(introspect))
            .layer(middleware::from_fn_with_state(state.clone(), count))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        TestAuthServer {
            addr,
            fhir_base,
            state,
        }
    }

    pub fn register(&self, client_id: &str, how: Registered) {
        self.state
            .clients
            .lock()
            .unwrap()
            .insert(client_id.to_owned(), how);
    }

    pub fn behave(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.state.behaviour.lock().unwrap());
    }

    /// Requests seen on a path (e.g. `/oauth/token`), and per grant type (`token:refresh_token`).
    pub fn hits(&self, key: &str) -> usize {
        self.state.hits.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    /// Every request the server has seen.
    pub fn total_requests(&self) -> usize {
        self.state.total.load(Ordering::SeqCst)
    }

    /// A client configuration for this server (public client `public-app`).
    pub fn config(&self, scope: &str) -> SmartClientConfig {
        SmartClientConfig::new(
            "public-app",
            Url::parse("http://127.0.0.1:9/fhir-app/").unwrap(),
            ScopeSet::parse(scope).unwrap(),
        )
        .allow_issuer(self.fhir_base.clone())
    }

    /// What a browser does with the authorize request when the user consents: returns the
    /// redirect URL back to the app.
    pub async fn follow_authorize(&self, request: &AuthorizeRequest) -> Url {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let response = match &request.post {
            Some(post) => http
                .post(post.action.clone())
                .form(&post.fields)
                .send()
                .await
                .unwrap(),
            None => http.get(request.url.clone()).send().await.unwrap(),
        };
        assert!(
            response.status().is_redirection(),
            "authorize answered {}",
            response.status()
        );
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        Url::parse(location).unwrap()
    }
}

/// Convenience for client-secret registrations.
pub fn secret_auth(basic: bool, secret: &str) -> ClientAuth {
    if basic {
        ClientAuth::ClientSecretBasic(ClientSecret::new(secret))
    } else {
        ClientAuth::ClientSecretPost(ClientSecret::new(secret))
    }
}

async fn count(State(s): State<Arc<ServerState>>, request: Request, next: Next) -> Response {
    s.total.fetch_add(1, Ordering::SeqCst);
    *s.hits
        .lock()
        .unwrap()
        .entry(request.uri().path().to_owned())
        .or_default() += 1;
    next.run(request).await
}

fn hit(s: &ServerState, key: String) {
    *s.hits.lock().unwrap().entry(key).or_default() += 1;
}

async fn well_known(State(s): State<Arc<ServerState>>) -> Response {
    if !s.behaviour.lock().unwrap().well_known {
        return StatusCode::NOT_FOUND.into_response();
    }
    Json(json!({
        "issuer": s.fhir_base.as_str(),
        "jwks_uri": "/oauth/jwks",
        "authorization_endpoint": "/oauth/authorize",
        "token_endpoint": "/oauth/token",
        "revocation_endpoint": "/oauth/revoke",
        "introspection_endpoint": "/oauth/introspect",
        "capabilities": ["launch-ehr", "launch-standalone", "authorize-post", "client-public",
                         "client-confidential-symmetric", "client-confidential-asymmetric", "sso-openid-connect",
                         "context-standalone-patient", "permission-offline", "permission-v1", "permission-v2"],
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"]
    }))
    .into_response()
}

async fn metadata(State(s): State<Arc<ServerState>>) -> Response {
    let origin = format!("http://{}", s.token_url.host_str().unwrap_or_default());
    let port = s.token_url.port().unwrap_or(80);
    Json(json!({
        "resourceType": "CapabilityStatement",
        "rest": [{"mode": "server", "security": {"extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [
                {"url": "authorize", "valueUri": format!("{origin}:{port}/oauth/authorize")},
                {"url": "token", "valueUri": "/oauth/token"},
                {"url": "revoke", "valueUri": "/oauth/revoke"}
            ]
        }]}}]
    }))
    .into_response()
}

async fn authorize_get(
    State(s): State<Arc<ServerState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    authorize(&s, q)
}

async fn authorize_post(
    State(s): State<Arc<ServerState>>,
    Form(q): Form<HashMap<String, String>>,
) -> Response {
    hit(&s, "authorize:post".into());
    authorize(&s, q)
}

fn authorize(s: &ServerState, q: HashMap<String, String>) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let bad = |why: &str| (StatusCode::BAD_REQUEST, why.to_owned()).into_response();
    if !s.clients.lock().unwrap().contains_key(&get("client_id")) {
        return bad("unknown client");
    }
    if get("response_type") != "code"
        || get("code_challenge_method") != "S256"
        || get("code_challenge").is_empty()
    {
        return bad("bad request");
    }
    if get("aud").trim_end_matches('/') != s.fhir_base.as_str().trim_end_matches('/') {
        return bad("wrong aud");
    }
    let mut redirect = match Url::parse(&get("redirect_uri")) {
        Ok(u) => u,
        Err(_) => return bad("bad redirect"),
    };
    let behaviour = s.behaviour.lock().unwrap();
    if behaviour.deny {
        redirect
            .query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("error_description", "The user denied access")
            .append_pair("state", &get("state"));
        return Redirect::to(redirect.as_str()).into_response();
    }
    let scope = behaviour.grant_scope.clone().unwrap_or_else(|| get("scope"));
    drop(behaviour);
    let code = s.next("code");
    s.codes.lock().unwrap().insert(
        code.clone(),
        Grant {
            client_id: get("client_id"),
            redirect_uri: get("redirect_uri"),
            challenge: get("code_challenge"),
            scope,
            nonce: q.get("nonce").cloned(),
            launch: q.get("launch").cloned(),
        },
    );
    redirect
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &get("state"));
    Redirect::to(redirect.as_str()).into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// Authenticate the client of a token/revoke/introspect request; returns its id.
#[allow(clippy::result_large_err)]
fn authenticate(
    s: &ServerState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<String, Response> {
    let invalid = |why: &str| oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", why);
    let clients = s.clients.lock().unwrap();
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic)
            .map_err(|_| invalid("bad basic"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| invalid("bad basic"))?;
        let (id, secret) = decoded.split_once(':').ok_or_else(|| invalid("bad basic"))?;
        let id: String = url::form_urlencoded::parse(format!("a={id}").as_bytes())
            .next()
            .unwrap()
            .1
            .into_owned();
        let secret: String = url::form_urlencoded::parse(format!("a={secret}").as_bytes())
            .next()
            .unwrap()
            .1
            .into_owned();
        return match clients.get(&id) {
            Some(Registered::Secret(expected)) if *expected == secret => Ok(id),
            _ => Err(invalid("wrong client secret (basic)")),
        };
    }
    if let Some(assertion) = form.get("client_assertion") {
        if form.get("client_assertion_type").map(String::as_str)
            != Some(smart_launch::client_auth::JWT_BEARER_ASSERTION_TYPE)
        {
            return Err(invalid("wrong assertion type"));
        }
        let header = jsonwebtoken::decode_header(assertion).map_err(|_| invalid("bad assertion"))?;
        let unverified = jsonwebtoken::dangerous::insecure_decode::<Value>(assertion)
            .map_err(|_| invalid("bad assertion"))?;
        let iss = unverified.claims["iss"].as_str().unwrap_or_default().to_owned();
        let Some(Registered::Jwks(jwks)) = clients.get(&iss) else {
            return Err(invalid("client has no JWKS"));
        };
        let jwk = jwks
            .find(header.kid.as_deref().unwrap_or_default())
            .ok_or_else(|| invalid("unknown kid"))?;
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|_| invalid("bad key"))?;
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.set_audience(&[s.token_url.as_str()]);
        validation.set_issuer(&[iss.as_str()]);
        validation.sub = Some(iss.clone());
        let claims = jsonwebtoken::decode::<Value>(assertion, &key, &validation)
            .map_err(|e| invalid(&format!("assertion: {e}")))?
            .claims;
        let exp = claims["exp"].as_i64().unwrap_or_default();
        if exp - chrono::Utc::now().timestamp() > 300 {
            return Err(invalid("assertion lives too long"));
        }
        let jti = claims["jti"].as_str().unwrap_or_default().to_owned();
        if jti.is_empty() || !s.seen_jti.lock().unwrap().insert(jti) {
            return Err(invalid("jti replayed"));
        }
        hit(s, format!("auth:{:?}", header.alg));
        return Ok(iss);
    }
    let id = form.get("client_id").cloned().unwrap_or_default();
    match (clients.get(&id), form.get("client_secret")) {
        (Some(Registered::Secret(expected)), Some(secret)) if expected == secret => Ok(id),
        (Some(Registered::Public), None) => Ok(id),
        _ => Err(invalid("client authentication failed")),
    }
}

async fn token(
    State(s): State<Arc<ServerState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    hit(&s, format!("token:{grant_type}"));
    {
        let behaviour = s.behaviour.lock().unwrap();
        if behaviour.token_redirect {
            return Redirect::temporary("http://127.0.0.1:9/elsewhere").into_response();
        }
        if let Some((status, content_type, body)) = behaviour.token_failure {
            return (
                StatusCode::from_u16(status).unwrap(),
                [(header::CONTENT_TYPE, content_type)],
                body,
            )
                .into_response();
        }
    }
    let client_id = match authenticate(&s, &headers, &form) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    match grant_type.as_str() {
        "authorization_code" => {
            let Some(grant) = s.codes.lock().unwrap().remove(&get("code")) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "The code is unknown or was already used.",
                );
            };
            let challenge = smart_launch::pkce::challenge_s256(&get("code_verifier"));
            if grant.client_id != client_id
                || grant.redirect_uri != get("redirect_uri")
                || grant.challenge != challenge
            {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "client, redirect_uri or PKCE mismatch",
                );
            }
            let refresh = s.next("rt");
            s.refresh_tokens
                .lock()
                .unwrap()
                .insert(refresh.clone(), (client_id.clone(), grant.scope.clone()));
            Json(issue(
                &s,
                &client_id,
                &grant.scope,
                Some(refresh),
                grant.nonce.as_deref(),
                grant.launch.is_some(),
            ))
            .into_response()
        }
        "refresh_token" => {
            // Slow enough that concurrent callers overlap with it.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let old = get("refresh_token");
            let Some((owner, scope)) = s.refresh_tokens.lock().unwrap().get(&old).cloned() else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown refresh token");
            };
            if owner != client_id {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "not your refresh token");
            }
            let rotated = s.behaviour.lock().unwrap().rotate_refresh_token.then(|| {
                let new = s.next("rt");
                let mut map = s.refresh_tokens.lock().unwrap();
                map.remove(&old);
                map.insert(new.clone(), (owner, scope.clone()));
                new
            });
            let mut response = issue(&s, &client_id, &scope, rotated, None, false);
            if let Some(obj) = response.as_object_mut() {
                obj.remove("scope"); // servers often leave it out on refresh
            }
            Json(response).into_response()
        }
        "client_credentials" => {
            if !form.contains_key("client_assertion") {
                return oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "backend services need a JWT",
                );
            }
            let scope = get("scope");
            let mut response = issue(&s, &client_id, &scope, None, None, false);
            if let Some(obj) = response.as_object_mut() {
                obj.retain(|k, _| {
                    ["access_token", "token_type", "expires_in", "scope"].contains(&k.as_str())
                });
            }
            Json(response).into_response()
        }
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "no"),
    }
}

fn issue(
    s: &ServerState,
    client_id: &str,
    scope: &str,
    refresh: Option<String>,
    nonce: Option<&str>,
    ehr: bool,
) -> Value {
    let behaviour = s.behaviour.lock().unwrap();
    let access = s.next("at");
    s.access_tokens
        .lock()
        .unwrap()
        .insert(access.clone(), scope.to_owned());
    let mut body = json!({
        "access_token": access,
        "token_type": "bearer",
        "expires_in": behaviour.expires_in.clone(),
        "scope": scope,
        "patient": "p-123",
        "need_patient_banner": "true",
        "smart_style_url": format!("{}/style.json", s.fhir_base),
        "tenant": "t1",
        "__epic.dstu2.patient": "T1wI5bk8n1YVgvWk9D05BmRV0Pi3ECImNSK8DKyKltsMB",
    });
    let obj = body.as_object_mut().unwrap();
    if let Some(refresh) = refresh {
        obj.insert("refresh_token".into(), json!(refresh));
    }
    if ehr {
        obj.insert("encounter".into(), json!("e-9"));
        obj.insert("fhirContext".into(), json!([{"reference": "Encounter/e-9"}]));
    }
    if scope.split_whitespace().any(|t| t == "openid") {
        let now = chrono::Utc::now().timestamp();
        let fault = behaviour.id_token_fault;
        let claims = json!({
            "iss": s.fhir_base.as_str(),
            "sub": "user-1",
            "aud": if fault == IdTokenFault::WrongAudience { "someone-else" } else { client_id },
            "exp": if fault == IdTokenFault::Expired { now - 3600 } else { now + 300 },
            "iat": now,
            "nonce": if fault == IdTokenFault::WrongNonce { Some("not-the-nonce") } else { nonce },
            "fhirUser": "Practitioner/prac-7",
        });
        let signer = key(behaviour.id_key);
        let mut jwt = signer.sign(&claims).unwrap();
        if fault == IdTokenFault::BadSignature {
            // Same header (kid), signature from another key.
            let other = key("id-impostor").sign(&claims).unwrap();
            let good_prefix = jwt.rsplit_once('.').unwrap().0.to_owned();
            jwt = format!("{good_prefix}.{}", other.rsplit_once('.').unwrap().1);
        }
        obj.insert("id_token".into(), json!(jwt));
    }
    body
}

async fn jwks(State(s): State<Arc<ServerState>>) -> Response {
    let id_key = s.behaviour.lock().unwrap().id_key;
    Json(key(id_key).jwks()).into_response()
}

async fn revoke(
    State(s): State<Arc<ServerState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(response) = authenticate(&s, &headers, &form) {
        return response;
    }
    let token = form.get("token").cloned().unwrap_or_default();
    if let Some((_, _)) = s.refresh_tokens.lock().unwrap().remove(&token) {
        s.revoked.lock().unwrap().insert(token.clone());
    }
    s.access_tokens.lock().unwrap().remove(&token);
    StatusCode::OK.into_response()
}

async fn introspect(
    State(s): State<Arc<ServerState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(response) = authenticate(&s, &headers, &form) {
        return response;
    }
    let token = form.get("token").cloned().unwrap_or_default();
    match s.access_tokens.lock().unwrap().get(&token) {
        Some(scope) => Json(json!({"active": true, "scope": scope, "patient": "p-123", "exp": "4102444800"}))
            .into_response(),
        None => Json(json!({"active": false})).into_response(),
    }
}

/// Does the refresh token still work at the server?
pub fn refresh_token_is_live(server: &TestAuthServer, token: &str) -> bool {
    server.state.refresh_tokens.lock().unwrap().contains_key(token)
}
