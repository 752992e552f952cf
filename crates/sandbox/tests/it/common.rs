//! Shared setup: start a sandbox on 127.0.0.1:0 over a temp-dir database, act as a browser (one cookie jar),
//! drive the authorization pages, call the token endpoint.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use sandbox::{ClientSpec, RunningSandbox, Sandbox, SandboxConfig};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

/// A running sandbox and what tests need to talk to it.
pub struct TestSandbox {
    pub running: RunningSandbox,
    /// The FHIR base, e.g. `http://127.0.0.1:PORT/fhir`.
    pub base: Url,
    /// A client that never follows redirects.
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

/// A public test client and its redirect URI (nothing listens there: tests read the redirect's Location).
pub const APP: &str = "test-app";
pub const REDIRECT: &str = "http://127.0.0.1:9/callback";

pub fn http_client() -> reqwest::Client {
    test_support::consent::no_redirects()
}

pub async fn start() -> TestSandbox {
    start_with(|_| {}).await
}

pub async fn start_with(configure: impl FnOnce(&mut SandboxConfig)) -> TestSandbox {
    let dir = tempfile::tempdir().unwrap();
    start_in(dir, configure).await
}

/// Starts a sandbox over the database in `dir` (reused by restart tests).
pub async fn start_in(dir: tempfile::TempDir, configure: impl FnOnce(&mut SandboxConfig)) -> TestSandbox {
    let mut config = SandboxConfig {
        port: 0,
        patients: 5,
        db: Some(dir.path().join("sandbox.db")),
        clients: vec![ClientSpec::public(APP, Url::parse(REDIRECT).unwrap())],
        issuer_key_pem: Some(test_support::ISSUER_KEY_PEM.to_owned()),
        ..SandboxConfig::default()
    };
    configure(&mut config);
    let running = Sandbox::start(config).await.unwrap();
    let base = running.fhir_base.clone();
    TestSandbox {
        running,
        base,
        http: http_client(),
        dir,
    }
}

impl TestSandbox {
    /// A URL on the sandbox's server (`/auth/token`, `/launcher?…`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.running.addr, path)
    }

    pub fn register(&self, spec: ClientSpec) {
        self.running.state.auth().register_client(spec).unwrap();
    }

    pub fn aud(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_owned()
    }

    /// POSTs a form to the token endpoint.
    pub async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        self.post_form("/auth/token", form, None).await
    }

    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.post(self.url(path)).form(form);
        if let Some((user, password)) = basic {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        if path == "/auth/token" {
            assert_eq!(response.headers().get("cache-control").unwrap(), "no-store");
        }
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }

    /// Exchanges a code for tokens as the public test app.
    pub async fn exchange(&self, code: &str, verifier: &str) -> (StatusCode, Value) {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
            ("client_id", APP),
        ])
        .await
    }

    /// What `check_bearer` says about an access token.
    pub fn check(&self, token: &str) -> Result<sandbox::auth::AccessGrant, sandbox::BearerError> {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        self.running.state.auth().check_bearer(&headers)
    }
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let verifier = format!("verifier-{}", uuid::Uuid::new_v4().simple()) + "-0123456789";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// An authorization request, editable before it is sent.
pub struct AuthRequest {
    pub params: Vec<(String, String)>,
    pub verifier: String,
}

impl AuthRequest {
    /// A standalone request of the test app with PKCE, state and aud.
    pub fn new(ts: &TestSandbox, scope: &str) -> Self {
        let (verifier, challenge) = pkce();
        let params = [
            ("response_type", "code"),
            ("client_id", APP),
            ("redirect_uri", REDIRECT),
            ("scope", scope),
            ("state", "state-123"),
            ("aud", &ts.aud()),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("nonce", "nonce-456"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Self { params, verifier }
    }

    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.remove(key);
        self.params.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn without(mut self, key: &str) -> Self {
        self.remove(key);
        self
    }

    fn remove(&mut self, key: &str) {
        self.params.retain(|(k, _)| k != key);
    }

    pub fn url(&self, ts: &TestSandbox) -> String {
        let query = serde_urlencoded::to_string(&self.params).unwrap();
        ts.url(&format!("/auth/authorize?{query}"))
    }
}

pub use test_support::consent::{Browser, Decision, drive, field, location, post_action};

impl test_support::consent::Origin for TestSandbox {
    fn origin(&self) -> String {
        format!("http://{}", self.running.addr)
    }
}

/// Runs a whole standalone authorization and returns the redirect back to the app.
pub async fn authorize(ts: &TestSandbox, request: &AuthRequest, decision: Decision) -> Url {
    let mut browser = Browser::new(ts);
    let first = browser.get(&request.url(ts)).await;
    drive(&mut browser, first, REDIRECT, decision).await
}

/// A query parameter of a URL.
pub fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Runs a standalone launch and exchanges the code: the token response.
pub async fn launch_and_exchange(ts: &TestSandbox, scope: &str) -> Value {
    let request = AuthRequest::new(ts, scope);
    let back = authorize(ts, &request, Decision::Approve).await;
    let code = query(&back, "code").expect("a code");
    let (status, body) = ts.exchange(&code, &request.verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}
