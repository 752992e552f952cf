//! A deliberately broken EHR on port 0, for failures the sandbox does not simulate: an id_token that
//! is malformed or signed with a key the issuer does not publish, and a FHIR server without OAuth.
//! Its authorize endpoint approves at once (no pages), redirecting back with a code.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::StatusCode;
use serde_json::json;
use smart_launch::{SigningAlgorithm, SigningKey};
use url::Url;

/// What the fake does wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdTokenKind {
    /// The id_token is not a JWT at all.
    Malformed,
    /// The id_token is a well-formed JWT signed with a key other than the published one.
    WrongKey,
    /// No SMART configuration and no oauth-uris: an open FHIR server.
    NoOAuth,
    /// The token endpoint refuses the code with `invalid_grant` and an `error_uri`.
    TokenError,
}

/// The `error_uri` of [`IdTokenKind::TokenError`].
pub const TOKEN_ERROR_URI: &str = "https://ehr.example/help/errors/invalid_grant";

#[derive(Clone)]
struct Fake {
    kind: IdTokenKind,
    base: Url,
    signing: std::sync::Arc<SigningKey>,
    published: std::sync::Arc<SigningKey>,
}

pub struct FakeEhr {
    addr: SocketAddr,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeEhr {
    pub async fn start(kind: IdTokenKind) -> FakeEhr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = Url::parse(&format!("http://{addr}/fhir")).unwrap();
        let signing = SigningKey::generate(SigningAlgorithm::ES384, "k1").unwrap();
        let published = SigningKey::generate(SigningAlgorithm::ES384, "k1").unwrap();
        let fake = Fake {
            kind,
            base,
            signing: signing.into(),
            published: published.into(),
        };
        let router = axum::Router::new()
            .route("/fhir/.well-known/smart-configuration", get(well_known))
            .route("/fhir/metadata", get(metadata))
            .route("/auth", get(authorize))
            .route("/token", post(token))
            .route("/jwks", get(jwks))
            .with_state(fake);
        let (shutdown, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        FakeEhr { addr, shutdown, task }
    }

    pub fn fhir_base(&self) -> Url {
        Url::parse(&format!("http://{}/fhir", self.addr)).unwrap()
    }

    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
    }
}

async fn well_known(State(f): State<Fake>) -> Response {
    if f.kind == IdTokenKind::NoOAuth {
        return StatusCode::NOT_FOUND.into_response();
    }
    let origin = f.base.origin().ascii_serialization();
    Json(json!({
        "issuer": f.base.as_str(),
        "authorization_endpoint": format!("{origin}/auth"),
        "token_endpoint": format!("{origin}/token"),
        "jwks_uri": format!("{origin}/jwks"),
        "capabilities": ["launch-standalone", "client-public"],
        "code_challenge_methods_supported": ["S256"]
    }))
    .into_response()
}

async fn metadata() -> Response {
    Json(json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2024-01-01",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{"mode": "server"}]
    }))
    .into_response()
}

async fn authorize(Query(q): Query<HashMap<String, String>>) -> Response {
    let mut back = Url::parse(
        q.get("redirect_uri")
            .map(String::as_str)
            .unwrap_or("http://127.0.0.1/"),
    )
    .unwrap();
    back.query_pairs_mut()
        .append_pair("code", "fake-code")
        .append_pair("state", q.get("state").map(String::as_str).unwrap_or_default());
    Redirect::to(back.as_str()).into_response()
}

async fn token(State(f): State<Fake>) -> Response {
    if f.kind == IdTokenKind::TokenError {
        let body = json!({"error": "invalid_grant", "error_description": "The code has expired.",
                          "error_uri": TOKEN_ERROR_URI});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    let now = chrono::Utc::now().timestamp();
    let id_token = match f.kind {
        IdTokenKind::Malformed => "this-is-not-a-jwt".to_owned(),
        _ => f
            .signing
            .sign(&json!({"iss": f.base.as_str(), "sub": "u1", "aud": "fake-client", "exp": now + 300, "iat": now}))
            .unwrap(),
    };
    Json(json!({
        "access_token": "fake-access-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "launch/patient openid fhirUser patient/*.rs",
        "patient": "p1",
        "id_token": id_token
    }))
    .into_response()
}

async fn jwks(State(f): State<Fake>) -> Response {
    Json(serde_json::to_value(f.published.jwks()).unwrap()).into_response()
}
