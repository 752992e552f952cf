//! Shared steps of the persona tests: start the sandbox as a persona, read its discovery, run a standalone launch
//! against the endpoints discovery names (which, for Cerner, are on a second host), call its FHIR API.

use reqwest::StatusCode;
use sandbox::Persona;
use serde_json::Value;
use url::Url;

use crate::common::{self, APP, AuthRequest, Browser, Decision, REDIRECT, TestSandbox, drive, query};

/// A sandbox started as `persona` (its documented token lifetime included).
pub async fn start(persona: Persona) -> TestSandbox {
    common::start_with(|config| *config = config.clone().with_persona(persona)).await
}

/// GETs a URL and reads its JSON.
pub async fn get_json(ts: &TestSandbox, url: &str) -> (StatusCode, Value) {
    let response = ts.http.get(url).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The SMART configuration at `{base}/.well-known/smart-configuration`.
pub async fn smart_configuration(ts: &TestSandbox) -> Value {
    let (status, body) = get_json(ts, &format!("{}/.well-known/smart-configuration", ts.aud())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// A standalone launch through the discovered authorization endpoint, and the code exchange at the discovered
/// token endpoint: the token response.
pub async fn standalone(ts: &TestSandbox, scope: &str) -> Value {
    let config = smart_configuration(ts).await;
    let request = AuthRequest::new(ts, scope);
    let mut authorize = Url::parse(config["authorization_endpoint"].as_str().unwrap()).unwrap();
    authorize
        .query_pairs_mut()
        .extend_pairs(request.params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let browser = Browser::new(ts);
    let first = browser.get(authorize.as_str()).await;
    let back = drive(&browser, first, REDIRECT, Decision::Approve).await;
    let code = query(&back, "code").expect("a code");
    let (status, body) = token(
        ts,
        &config,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &request.verifier),
            ("client_id", APP),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// POSTs a form to the discovered token endpoint.
pub async fn token(ts: &TestSandbox, config: &Value, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let response = ts
        .http
        .post(config["token_endpoint"].as_str().unwrap())
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A FHIR GET (`path` relative to the base, or an absolute URL) with a bearer token.
pub async fn fhir(ts: &TestSandbox, access_token: &str, path: &str) -> (StatusCode, Value) {
    let url = if path.starts_with("http") {
        path.to_owned()
    } else {
        format!("{}/{path}", ts.aud())
    };
    let response = ts.http.get(url).bearer_auth(access_token).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The claims of a JWT, unverified (the tests that verify signatures use smart-launch).
pub fn claims(jwt: &str) -> Value {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The header of a JWT.
pub fn header(jwt: &str) -> Value {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let head = jwt.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).unwrap()).unwrap()
}

/// The resources of a searchset with the given `search.mode`.
pub fn entries<'a>(bundle: &'a Value, mode: &str) -> Vec<&'a Value> {
    bundle["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["search"]["mode"] == mode)
                .map(|e| &e["resource"])
                .collect()
        })
        .unwrap_or_default()
}
