//! Shared setup: the one test sandbox ([`test_support::sandbox::TestSandbox`], on its own server) with the
//! test app registered, authorization requests, the consent walker, calls to the token endpoint.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use sandbox::{ClientSpec, SandboxConfig};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

pub use test_support::sandbox::TestSandbox;

/// A public test client and its redirect URI (nothing listens there: tests read the redirect's Location).
pub const APP: &str = "test-app";
pub const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// A client that never follows redirects.
pub fn http_client() -> reqwest::Client {
    test_support::consent::no_redirects()
}

/// A sandbox (5 patients, the test app registered) on its own server.
pub async fn start() -> TestSandbox {
    start_with(|_| {}).await
}

/// As [`start`], after `configure` adjusts the configuration.
pub async fn start_with(configure: impl FnOnce(&mut SandboxConfig)) -> TestSandbox {
    start_in(tempfile::tempdir().unwrap(), configure).await
}

/// Starts a sandbox over the database in `dir` (reused by restart tests).
pub async fn start_in(dir: tempfile::TempDir, configure: impl FnOnce(&mut SandboxConfig)) -> TestSandbox {
    TestSandbox::start_in(dir, |config| {
        with_test_app(config);
        configure(config);
    })
    .await
}

/// Registers the test app in a sandbox's configuration.
pub fn with_test_app(config: &mut SandboxConfig) {
    config
        .clients
        .push(ClientSpec::public(APP, Url::parse(REDIRECT).unwrap()));
}

/// What this crate's tests ask of a test sandbox beyond the shared helpers: its token endpoint and bearer check.
#[allow(async_fn_in_trait)]
pub trait SandboxCalls {
    /// POSTs a form to the token endpoint.
    async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value);

    /// POSTs a form to `path`, optionally with HTTP basic credentials; the status and the JSON answer.
    async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> (StatusCode, Value);

    /// Exchanges a code for tokens as the public test app.
    async fn exchange(&self, code: &str, verifier: &str) -> (StatusCode, Value);

    /// What `check_bearer` says about an access token.
    fn check(&self, token: &str) -> Result<sandbox::auth::AccessGrant, sandbox::BearerError>;
}

impl SandboxCalls for TestSandbox {
    async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        self.post_form("/auth/token", form, None).await
    }

    async fn post_form(
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

    async fn exchange(&self, code: &str, verifier: &str) -> (StatusCode, Value) {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
            ("client_id", APP),
        ])
        .await
    }

    fn check(&self, token: &str) -> Result<sandbox::auth::AccessGrant, sandbox::BearerError> {
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

/// Runs a whole standalone authorization and returns the redirect back to the app.
pub async fn authorize(ts: &TestSandbox, request: &AuthRequest, decision: Decision) -> Url {
    let browser = Browser::new(ts);
    let first = browser.get(&request.url(ts)).await;
    drive(&browser, first, REDIRECT, decision).await
}

/// A query parameter of a URL.
pub use test_support::browser::param as query;

/// Runs a standalone launch and exchanges the code: the token response.
pub async fn launch_and_exchange(ts: &TestSandbox, scope: &str) -> Value {
    let request = AuthRequest::new(ts, scope);
    let back = authorize(ts, &request, Decision::Approve).await;
    let code = query(&back, "code").expect("a code");
    let (status, body) = ts.exchange(&code, &request.verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}
