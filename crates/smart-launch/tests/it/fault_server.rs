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
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            token_failure: None,
            token_redirect: false,
            id_token_fault: IdTokenFault::None,
            expires_in: json!("3600"),
            id_key: "id-1",
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
        });
        let app = Router::new()
            .route("/fhir/.well-known/smart-configuration", get(well_known))
            .route("/oauth/authorize", get(authorize))
            .route("/oauth/token", post(token))
            .route("/oauth/jwks", get(jwks))
            .layer(middleware::from_fn_with_state(state.clone(), count))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FaultServer { fhir_base, state }
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
    Json(json!({
        "issuer": s.fhir_base.as_str(),
        "jwks_uri": "/oauth/jwks",
        "authorization_endpoint": "/oauth/authorize",
        "token_endpoint": "/oauth/token",
        "capabilities": ["launch-standalone", "client-public", "sso-openid-connect", "permission-offline"],
        "code_challenge_methods_supported": ["S256"]
    }))
    .into_response()
}

async fn authorize(State(s): State<Arc<ServerState>>, Query(q): Query<HashMap<String, String>>) -> Response {
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

fn invalid_grant(description: &str) -> Response {
    let body = json!({"error": "invalid_grant", "error_description": description});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

async fn token(State(s): State<Arc<ServerState>>, Form(form): Form<HashMap<String, String>>) -> Response {
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    hit(&s, format!("token:{grant_type}"));
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
                return invalid_grant("The code is unknown or was already used.");
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
                return invalid_grant("unknown refresh token");
            };
            // Like many servers: no new refresh token and no scope on refresh.
            let mut response = issue(&s, &get("client_id"), &scope, None, None);
            if let Some(obj) = response.as_object_mut() {
                obj.remove("scope");
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
    let mut body = json!({
        "access_token": s.next("at"),
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
    let id_key = s.behaviour.lock().unwrap().id_key;
    Json(key(id_key).jwks()).into_response()
}
