//! A small in-memory FHIR R4 server on 127.0.0.1:0 that plays what a real server cannot be made
//! to do on cue: a 429 or 503 followed by success, a truncated or ill-typed body, a scripted 422,
//! a 403 without a scope challenge, a next link to another host, a resource of the wrong type.
//! Everything else runs against the real sandbox (`common.rs`).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use fhir_client::FhirClient;
use serde_json::{Value, json};

use crate::common::{Seen, fast_retries, outcome};

/// A canned answer the server gives instead of handling a request.
#[derive(Clone)]
pub struct Fault {
    /// Only requests whose path (and query) contains this.
    pub path_contains: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Fault {
    pub fn new(path_contains: &str, status: u16, body: &str) -> Self {
        Fault {
            path_contains: path_contains.into(),
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

#[derive(Default)]
pub struct ServerState {
    /// type -> id -> versions (oldest first).
    pub resources: BTreeMap<String, BTreeMap<String, Vec<Value>>>,
    pub faults: VecDeque<Fault>,
    pub seen: Vec<Seen>,
}

#[derive(Clone)]
pub struct TestServer {
    pub addr: SocketAddr,
    pub base: String,
    pub state: Arc<Mutex<ServerState>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let state = Arc::new(Mutex::new(ServerState::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}/fhir");
        let app = axum::Router::new()
            .route("/fhir", any(handle))
            .route("/fhir/{*rest}", any(handle))
            .with_state(state.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TestServer { addr, base, state }
    }

    /// A client with fast, test-sized retry delays.
    pub fn client(&self) -> FhirClient {
        FhirClient::builder(&self.base)
            .retry_policy(fast_retries())
            .build()
            .unwrap()
    }

    pub fn put(&self, resource: Value) {
        let ty = resource["resourceType"].as_str().unwrap().to_owned();
        let id = resource["id"].as_str().unwrap().to_owned();
        let mut resource = resource;
        resource["meta"] = json!({"versionId": "1"});
        self.state
            .lock()
            .unwrap()
            .resources
            .entry(ty)
            .or_default()
            .insert(id, vec![resource]);
    }

    pub fn fault(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push_back(fault);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }
}

fn fhir(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/fhir+json")],
        body.to_string(),
    )
        .into_response()
}

type Shared = Arc<Mutex<ServerState>>;

async fn handle(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let mut st = state.lock().unwrap();
    st.seen.push(Seen {
        method: method.to_string(),
        path_and_query: path_and_query.clone(),
        authorization: text(header::AUTHORIZATION),
        accept: text(header::ACCEPT),
        if_match: text(header::IF_MATCH),
        content_type: text(header::CONTENT_TYPE),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    if let Some(i) = st
        .faults
        .iter()
        .position(|f| path_and_query.contains(&f.path_contains))
    {
        let fault = st.faults.remove(i).unwrap();
        let mut response = (StatusCode::from_u16(fault.status).unwrap(), fault.body).into_response();
        for (name, value) in fault.headers {
            response.headers_mut().insert(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        return response;
    }
    let path = uri.path().trim_start_matches("/fhir").trim_start_matches('/');
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", [ty, id]) => match st
            .resources
            .get(*ty)
            .and_then(|m| m.get(*id))
            .and_then(|v| v.last())
        {
            Some(resource) => fhir(StatusCode::OK, resource),
            None => fhir(
                StatusCode::NOT_FOUND,
                &outcome("error", "not-found", &format!("{ty}/{id} is not known")),
            ),
        },
        _ => fhir(
            StatusCode::BAD_REQUEST,
            &outcome("error", "not-supported", "the fault server only reads"),
        ),
    }
}
