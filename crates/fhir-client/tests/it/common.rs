//! A small in-memory FHIR R4 server on 127.0.0.1:0 for the client tests, with scripted faults
//! and a log of what it received.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use fhir_client::{FhirClient, RetryPolicy};
use serde_json::{Value, json};

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

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub authorization: Option<String>,
    pub accept: Option<String>,
    pub if_match: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
}

#[derive(Default)]
pub struct ServerState {
    /// type -> id -> versions (oldest first).
    pub resources: BTreeMap<String, BTreeMap<String, Vec<Value>>>,
    pub faults: VecDeque<Fault>,
    pub seen: Vec<Seen>,
    /// When set, only this bearer token is accepted.
    pub required_token: Option<String>,
    pub next_id: u32,
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
            .with_state((state.clone(), base.clone()));
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

    pub fn require_token(&self, token: &str) {
        self.state.lock().unwrap().required_token = Some(token.to_owned());
    }
}

pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_millis(20),
    }
}

pub fn outcome(severity: &str, code: &str, diagnostics: &str) -> Value {
    json!({"resourceType": "OperationOutcome", "issue": [
        {"severity": severity, "code": code, "diagnostics": diagnostics, "expression": ["Patient.name"]}
    ]})
}

fn fhir(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/fhir+json")],
        body.to_string(),
    )
        .into_response()
}

type Shared = (Arc<Mutex<ServerState>>, String);

async fn handle(
    State((state, base)): State<Shared>,
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
    if let Some(required) = &st.required_token
        && text(header::AUTHORIZATION).as_deref() != Some(&format!("Bearer {required}"))
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
        )
            .into_response();
    }
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
    let query: Vec<(String, String)> = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let body_json: Option<Value> = serde_json::from_slice(&body).ok();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["metadata"]) => fhir(
            StatusCode::OK,
            &json!({"resourceType": "CapabilityStatement", "status": "active", "date": "2024-01-01",
                    "kind": "instance", "fhirVersion": "4.0.1", "format": ["json"]}),
        ),
        ("GET", [ty, id]) => match st.resources.get(*ty).and_then(|m| m.get(*id)) {
            Some(versions) if versions.last().is_some_and(|v| v.get("deleted").is_some()) => {
                fhir(StatusCode::GONE, &outcome("error", "deleted", "deleted"))
            }
            Some(versions) => fhir(StatusCode::OK, versions.last().unwrap()),
            None => fhir(
                StatusCode::NOT_FOUND,
                &outcome("error", "not-found", &format!("{ty}/{id} is not known")),
            ),
        },
        ("GET", [ty, id, "_history", vid]) => {
            let found = st
                .resources
                .get(*ty)
                .and_then(|m| m.get(*id))
                .and_then(|versions| {
                    versions
                        .iter()
                        .find(|v| v.pointer("/meta/versionId").and_then(Value::as_str) == Some(*vid))
                });
            match found {
                Some(v) => fhir(StatusCode::OK, v),
                None => fhir(
                    StatusCode::NOT_FOUND,
                    &outcome("error", "not-found", "no such version"),
                ),
            }
        }
        ("GET", [ty]) => search(&st, &base, ty, &query),
        ("POST", [ty, "_search"]) => {
            let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
            search(&st, &base, ty, &form)
        }
        ("GET", ["Patient", id, "$everything"]) => {
            let mut all: Vec<Value> = Vec::new();
            if let Some(p) = st.resources.get("Patient").and_then(|m| m.get(*id)) {
                all.push(p.last().unwrap().clone());
            }
            let reference = format!("Patient/{id}");
            for (ty, items) in &st.resources {
                if ty == "Patient" {
                    continue;
                }
                all.extend(
                    items
                        .values()
                        .filter_map(|v| v.last())
                        .filter(|v| v["subject"]["reference"] == reference.as_str())
                        .cloned(),
                );
            }
            let q = vec![("_count".to_owned(), "2".to_owned())];
            page(&base, &format!("Patient/{id}/$everything"), all, &q, &query)
        }
        ("POST", [ty]) => {
            let Some(mut resource) = body_json else {
                return fhir(
                    StatusCode::BAD_REQUEST,
                    &outcome("error", "structure", "not JSON"),
                );
            };
            if resource["resourceType"] != *ty {
                return fhir(
                    StatusCode::BAD_REQUEST,
                    &outcome("error", "invalid", "wrong resourceType"),
                );
            }
            st.next_id += 1;
            let id = format!("new-{}", st.next_id);
            resource["id"] = json!(id);
            resource["meta"] = json!({"versionId": "1"});
            st.resources
                .entry((*ty).to_owned())
                .or_default()
                .insert(id.clone(), vec![resource.clone()]);
            let mut response = fhir(StatusCode::CREATED, &resource);
            response.headers_mut().insert(
                header::LOCATION,
                format!("{base}/{ty}/{id}/_history/1").parse().unwrap(),
            );
            response
                .headers_mut()
                .insert(header::ETAG, "W/\"1\"".parse().unwrap());
            response
        }
        ("PUT", [ty, id]) => {
            let Some(mut resource) = body_json else {
                return fhir(
                    StatusCode::BAD_REQUEST,
                    &outcome("error", "structure", "not JSON"),
                );
            };
            let if_match = text(header::IF_MATCH);
            let versions = st
                .resources
                .entry((*ty).to_owned())
                .or_default()
                .entry((*id).to_owned())
                .or_default();
            let current = versions.len();
            if let Some(etag) = if_match
                && etag != format!("W/\"{current}\"")
            {
                return fhir(
                    StatusCode::PRECONDITION_FAILED,
                    &outcome("error", "conflict", "version mismatch"),
                );
            }
            resource["meta"] = json!({"versionId": (current + 1).to_string()});
            versions.push(resource.clone());
            fhir(
                if current == 0 {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                &resource,
            )
        }
        ("PATCH", [ty, id]) => {
            let Some(versions) = st.resources.get_mut(*ty).and_then(|m| m.get_mut(*id)) else {
                return fhir(StatusCode::NOT_FOUND, &outcome("error", "not-found", "unknown"));
            };
            let mut resource = versions.last().unwrap().clone();
            for op in body_json.as_ref().and_then(Value::as_array).into_iter().flatten() {
                if op["op"] == "replace" || op["op"] == "add" {
                    let key = op["path"].as_str().unwrap().trim_start_matches('/');
                    resource[key] = op["value"].clone();
                }
            }
            resource["meta"] = json!({"versionId": (versions.len() + 1).to_string()});
            versions.push(resource.clone());
            fhir(StatusCode::OK, &resource)
        }
        ("DELETE", [ty, id]) => {
            match st.resources.get_mut(*ty).and_then(|m| m.get_mut(*id)) {
                Some(versions) => versions.push(json!({"deleted": true})),
                None => return fhir(StatusCode::NOT_FOUND, &outcome("error", "not-found", "unknown")),
            }
            StatusCode::NO_CONTENT.into_response()
        }
        ("POST", []) => {
            let Some(bundle) = body_json else {
                return fhir(
                    StatusCode::BAD_REQUEST,
                    &outcome("error", "structure", "not JSON"),
                );
            };
            let kind = bundle["type"].as_str().unwrap_or_default().to_owned();
            let mut responses = Vec::new();
            for entry in bundle["entry"].as_array().into_iter().flatten() {
                let mut resource = entry["resource"].clone();
                let ty = resource["resourceType"].as_str().unwrap_or_default().to_owned();
                st.next_id += 1;
                let id = format!("tx-{}", st.next_id);
                resource["id"] = json!(id);
                resource["meta"] = json!({"versionId": "1"});
                st.resources
                    .entry(ty.clone())
                    .or_default()
                    .insert(id.clone(), vec![resource]);
                responses.push(json!({"response": {"status": "201 Created", "location": format!("{ty}/{id}/_history/1")}}));
            }
            fhir(
                StatusCode::OK,
                &json!({"resourceType": "Bundle", "type": format!("{kind}-response"), "entry": responses}),
            )
        }
        _ => fhir(
            StatusCode::BAD_REQUEST,
            &outcome("error", "not-supported", "unsupported interaction"),
        ),
    }
}

/// Search: `_id`, `patient` (matches `subject`), `category` (code part), `_count` and `_page`.
fn search(st: &ServerState, base: &str, ty: &str, params: &[(String, String)]) -> Response {
    let mut matches: Vec<Value> = st
        .resources
        .get(ty)
        .map(|m| {
            m.values()
                .filter_map(|v| v.last())
                .filter(|v| v.get("deleted").is_none())
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    for (name, value) in params {
        match name.as_str() {
            "_id" => matches.retain(|r| r["id"] == value.as_str()),
            "patient" => {
                let wanted = if value.contains('/') {
                    value.clone()
                } else {
                    format!("Patient/{value}")
                };
                matches.retain(|r| r["subject"]["reference"] == wanted.as_str());
            }
            "category" => {
                let code = value.rsplit('|').next().unwrap_or_default().to_owned();
                matches.retain(|r| {
                    r["category"].as_array().into_iter().flatten().any(|c| {
                        c["coding"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|coding| coding["code"] == code.as_str())
                    })
                });
            }
            _ => {}
        }
    }
    page(base, ty, matches, params, params)
}

fn page(
    base: &str,
    path: &str,
    all: Vec<Value>,
    defaults: &[(String, String)],
    query: &[(String, String)],
) -> Response {
    let get = |name: &str| {
        query
            .iter()
            .chain(defaults)
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    let count = get("_count").unwrap_or(100).max(1);
    let page_no = get("_page").unwrap_or(0);
    let total = all.len();
    let entries: Vec<Value> = all
        .into_iter()
        .skip(page_no * count)
        .take(count)
        .map(|r| {
            let url = format!(
                "{base}/{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            json!({"fullUrl": url, "resource": r, "search": {"mode": "match"}})
        })
        .collect();
    let mut links = vec![json!({"relation": "self", "url": format!("{base}/{path}")})];
    if (page_no + 1) * count < total {
        let mut next: Vec<(String, String)> = query
            .iter()
            .filter(|(n, _)| n != "_page" && n != "_count")
            .cloned()
            .collect();
        next.push(("_count".into(), count.to_string()));
        next.push(("_page".into(), (page_no + 1).to_string()));
        let qs = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&next)
            .finish();
        links.push(json!({"relation": "next", "url": format!("{base}/{path}?{qs}")}));
    }
    fhir(
        StatusCode::OK,
        &json!({"resourceType": "Bundle", "type": "searchset", "total": total, "link": links, "entry": entries}),
    )
}

pub fn patient(id: &str, family: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "name": [{"use": "official", "family": family, "given": ["Ada"]}],
           "birthDate": "1970-01-01", "_birthDate": {"extension": [{"url": "http://example.org/x", "valueString": "approx"}]}})
}

pub fn observation(id: &str, patient: &str, category: &str, value: &str) -> Value {
    let value: Value = serde_json::from_str(value).unwrap();
    json!({"resourceType": "Observation", "id": id, "status": "final",
           "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}]}],
           "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}]},
           "subject": {"reference": format!("Patient/{patient}")},
           "valueQuantity": {"value": value, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}})
}
