//! A small authorization server started inside a test on 127.0.0.1:0, for what the real sandbox cannot do:
//! answer with broken or unusual token responses (500, malformed JSON, a non-bearer token, numbers and booleans
//! sent as strings, vendor keys), redirect from the token endpoint, sign id_tokens wrongly (bad signature, wrong
//! `aud`, expired, wrong `nonce`) or with another algorithm or a rotated key, refresh without returning a refresh
//! token, and answer refreshes slowly enough that concurrent callers overlap (for single-flight counting).
//!
//! Everything the sandbox can play (launches, client authentication, rotation, revocation, discovery, backend
//! services, simulated failures) is tested against the sandbox instead; see `common.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use smart_launch::{AuthorizeRequest, ScopeSet, SmartClientConfig, Url};

use crate::common::key;

/// How the id_token is spoiled.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub enum IdTokenFault {
    #[default]
    None,
    BadSignature,
    WrongAudience,
    Expired,
    WrongNonce,
    /// `aud` has our client and another; no `azp`.
    SeveralAudiences,
    /// `aud` has our client and another; `azp` is ours.
    SeveralAudiencesWithOurAzp,
}

/// Switches the tests flip.
pub struct Behaviour {
    /// Answer every token request with this status, content type and body.
    pub token_failure: Option<(u16, &'static str, &'static str)>,
    /// Answer every token request with a 307 elsewhere.
    pub token_redirect: bool,
    pub id_token_fault: IdTokenFault,
    pub expires_in: Value,
    /// The key (see `common::key`) that signs id_tokens and is published at the JWKS URL.
    pub id_key: &'static str,
    /// Publish this key at `/oauth/jwks` instead of `id_key`.
    pub published_key: Option<&'static str>,
    /// The SMART configuration's `issuer` (`None`: the key is left out, as Cerner does).
    pub smart_issuer: Option<String>,
    /// Whether the SMART configuration names `jwks_uri` (`/oauth/jwks`).
    pub smart_jwks: bool,
    /// The token endpoint the SMART configuration names (default `/oauth/token`).
    pub token_endpoint: String,
    /// The `iss` of id_tokens (`None`: the SMART issuer, else the FHIR base).
    pub id_iss: Option<String>,
    /// Leave the id_token out of the token response even when `openid` was granted.
    pub omit_id_token: bool,
    /// The `scope` of code-exchange answers (`None`: the requested scope).
    pub token_scope: Option<&'static str>,
    /// The `scope` of refresh answers (`None`: none sent).
    pub refresh_scope: Option<&'static str>,
    /// The `error_uri` of token errors sent with `token_failure`-free OAuth errors (invalid_grant).
    pub error_uri: Option<&'static str>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            token_failure: None,
            token_redirect: false,
            id_token_fault: IdTokenFault::None,
            expires_in: json!("3600"),
            id_key: "id-1",
            published_key: None,
            smart_issuer: None,
            smart_jwks: true,
            token_endpoint: "/oauth/token".to_owned(),
            id_iss: None,
            omit_id_token: false,
            token_scope: None,
            refresh_scope: None,
            error_uri: None,
        }
    }
}

struct Grant {
    scope: String,
    nonce: Option<String>,
}

pub struct ServerState {
    fhir_base: Url,
    behaviour: Mutex<Behaviour>,
    codes: Mutex<HashMap<String, Grant>>,
    refresh_tokens: Mutex<HashMap<String, String>>,
    hits: Mutex<HashMap<String, usize>>,
    counter: AtomicUsize,
    /// Further JSON documents by path (OpenID configurations, other key sets).
    documents: Mutex<HashMap<String, Value>>,
    /// Every authorize and token request: its kind (`authorize`, `token:<grant_type>`), its parameters in
    /// order, and whether it carried HTTP Basic authentication.
    requests: Mutex<Vec<Recorded>>,
}

/// One request as the server received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub kind: String,
    pub params: Vec<(String, String)>,
    pub basic_auth: bool,
}

impl Recorded {
    /// The parameter names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.params.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        names
    }
}

impl ServerState {
    fn next(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.counter.fetch_add(1, Ordering::SeqCst))
    }
}

pub struct FaultServer {
    pub fhir_base: Url,
    state: Arc<ServerState>,
}

impl FaultServer {
    pub async fn start() -> FaultServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fhir_base = Url::parse(&format!("http://{addr}/fhir")).unwrap();
        let state = Arc::new(ServerState {
            fhir_base: fhir_base.clone(),
            behaviour: Mutex::new(Behaviour::default()),
            codes: Mutex::default(),
            refresh_tokens: Mutex::default(),
            hits: Mutex::default(),
            counter: AtomicUsize::new(1),
            documents: Mutex::default(),
            requests: Mutex::default(),
        });
        state.behaviour.lock().unwrap().smart_issuer = Some(fhir_base.to_string());
        let app = Router::new()
            .route("/fhir/.well-known/smart-configuration", get(well_known))
            .route("/oauth/authorize", get(authorize))
            .route("/oauth/token", post(token))
            .route("/oauth/jwks", get(jwks))
            .fallback(document)
            .layer(middleware::from_fn_with_state(state.clone(), count))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FaultServer { fhir_base, state }
    }

    /// `http://127.0.0.1:PORT`, to build URLs of this server with.
    pub fn origin(&self) -> String {
        self.fhir_base.origin().ascii_serialization()
    }

    /// Serve `document` as JSON at `path`.
    pub fn serve(&self, path: &str, document: Value) {
        self.state
            .documents
            .lock()
            .unwrap()
            .insert(path.to_owned(), document);
    }

    /// The authorize and token requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn behave(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.state.behaviour.lock().unwrap());
    }

    /// Requests seen on a path (`/oauth/jwks`), and per grant type (`token:refresh_token`).
    pub fn hits(&self, key: &str) -> usize {
        self.state.hits.lock().unwrap().get(key).copied().unwrap_or(0)
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

    /// What a browser does with the authorize request when the user consents: returns the redirect URL back
    /// to the app.
    pub async fn follow_authorize(&self, request: &AuthorizeRequest) -> Url {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let response = http.get(request.url.clone()).send().await.unwrap();
        assert!(
            response.status().is_redirection(),
            "authorize answered {}",
            response.status()
        );
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        Url::parse(location).unwrap()
    }
}

async fn count(State(s): State<Arc<ServerState>>, request: Request, next: Next) -> Response {
    hit(&s, request.uri().path().to_owned());
    next.run(request).await
}

fn hit(s: &ServerState, key: String) {
    *s.hits.lock().unwrap().entry(key).or_default() += 1;
}

async fn well_known(State(s): State<Arc<ServerState>>) -> Response {
    let behaviour = s.behaviour.lock().unwrap();
    let mut doc = json!({
        "authorization_endpoint": "/oauth/authorize",
        "token_endpoint": behaviour.token_endpoint,
        "capabilities": ["launch-standalone", "client-public", "sso-openid-connect", "permission-offline"],
        "code_challenge_methods_supported": ["S256"]
    });
    if let Some(issuer) = &behaviour.smart_issuer {
        doc["issuer"] = json!(issuer);
    }
    if behaviour.smart_jwks {
        doc["jwks_uri"] = json!("/oauth/jwks");
    }
    Json(doc).into_response()
}

async fn document(State(s): State<Arc<ServerState>>, uri: axum::http::Uri) -> Response {
    match s.documents.lock().unwrap().get(uri.path()) {
        Some(doc) => Json(doc.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn record(s: &ServerState, kind: String, params: &[(String, String)], headers: &axum::http::HeaderMap) {
    let basic_auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Basic "));
    s.requests.lock().unwrap().push(Recorded {
        kind,
        params: params.to_vec(),
        basic_auth,
    });
}

async fn authorize(
    State(s): State<Arc<ServerState>>,
    headers: axum::http::HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    record(&s, "authorize".to_owned(), &pairs, &headers);
    let q: HashMap<String, String> = pairs.into_iter().collect();
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let Ok(mut redirect) = Url::parse(&get("redirect_uri")) else {
        return (StatusCode::BAD_REQUEST, "bad redirect").into_response();
    };
    let code = s.next("code");
    let grant = Grant {
        scope: get("scope"),
        nonce: q.get("nonce").cloned(),
    };
    s.codes.lock().unwrap().insert(code.clone(), grant);
    redirect
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &get("state"));
    Redirect::to(redirect.as_str()).into_response()
}

fn invalid_grant(s: &ServerState, description: &str) -> Response {
    let mut body = json!({"error": "invalid_grant", "error_description": description});
    if let Some(uri) = s.behaviour.lock().unwrap().error_uri {
        body["error_uri"] = json!(uri);
    }
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

async fn token(
    State(s): State<Arc<ServerState>>,
    headers: axum::http::HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let form: HashMap<String, String> = pairs.iter().cloned().collect();
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    hit(&s, format!("token:{grant_type}"));
    record(&s, format!("token:{grant_type}"), &pairs, &headers);
    {
        let behaviour = s.behaviour.lock().unwrap();
        if behaviour.token_redirect {
            return Redirect::temporary("http://127.0.0.1:9/elsewhere").into_response();
        }
        if let Some((status, content_type, body)) = behaviour.token_failure {
            let status = StatusCode::from_u16(status).unwrap();
            return (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
        }
    }
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    match grant_type.as_str() {
        "authorization_code" => {
            let Some(grant) = s.codes.lock().unwrap().remove(&get("code")) else {
                return invalid_grant(&s, "The code is unknown or was already used.");
            };
            let refresh = s.next("rt");
            s.refresh_tokens
                .lock()
                .unwrap()
                .insert(refresh.clone(), grant.scope.clone());
            let body = issue(
                &s,
                &get("client_id"),
                &grant.scope,
                Some(refresh),
                grant.nonce.as_deref(),
            );
            Json(body).into_response()
        }
        "refresh_token" => {
            // Slow enough that concurrent callers overlap with it.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let Some(scope) = s
                .refresh_tokens
                .lock()
                .unwrap()
                .get(&get("refresh_token"))
                .cloned()
            else {
                return invalid_grant(&s, "unknown refresh token");
            };
            // Like many servers: no new refresh token and no scope on refresh.
            let mut response = issue(&s, &get("client_id"), &scope, None, None);
            let refresh_scope = s.behaviour.lock().unwrap().refresh_scope;
            if let Some(obj) = response.as_object_mut() {
                match refresh_scope {
                    Some(scope) => obj.insert("scope".into(), json!(scope)),
                    None => obj.remove("scope"),
                };
            }
            Json(response).into_response()
        }
        _ => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response(),
    }
}

/// A token response in the style of a real EHR: lowercase `bearer`, `expires_in` and a boolean as strings,
/// a tenant and an Epic vendor key.
fn issue(
    s: &ServerState,
    client_id: &str,
    scope: &str,
    refresh: Option<String>,
    nonce: Option<&str>,
) -> Value {
    let behaviour = s.behaviour.lock().unwrap();
    // Basic and JWT clients send no client_id in the form; the server knows them as the public app's id.
    let client_id = if client_id.is_empty() {
        "public-app"
    } else {
        client_id
    };
    let mut body = json!({
        "access_token": s.next("at"),
        "token_type": "bearer",
        "expires_in": behaviour.expires_in.clone(),
        "scope": behaviour.token_scope.unwrap_or(scope),
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
    if scope.split_whitespace().any(|t| t == "openid") && !behaviour.omit_id_token {
        let now = chrono::Utc::now().timestamp();
        let fault = behaviour.id_token_fault;
        let iss = behaviour
            .id_iss
            .clone()
            .or_else(|| behaviour.smart_issuer.clone())
            .unwrap_or_else(|| s.fhir_base.to_string());
        let aud = match fault {
            IdTokenFault::WrongAudience => json!("someone-else"),
            IdTokenFault::SeveralAudiences | IdTokenFault::SeveralAudiencesWithOurAzp => {
                json!([client_id, "another-app"])
            }
            _ => json!(client_id),
        };
        let mut claims = json!({
            "iss": iss,
            "sub": "user-1",
            "aud": aud,
            "exp": if fault == IdTokenFault::Expired { now - 3600 } else { now + 300 },
            "iat": now,
            "nonce": if fault == IdTokenFault::WrongNonce { Some("not-the-nonce") } else { nonce },
            "fhirUser": "Practitioner/prac-7",
        });
        if fault == IdTokenFault::SeveralAudiencesWithOurAzp {
            claims["azp"] = json!(client_id);
        }
        let mut jwt = key(behaviour.id_key).sign(&claims).unwrap();
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
    let behaviour = s.behaviour.lock().unwrap();
    let published = behaviour.published_key.unwrap_or(behaviour.id_key);
    Json(key(published).jwks()).into_response()
}
