//! Shared setup: the real sandbox EHR (crate `sandbox`) on 127.0.0.1:0 over a temp-dir SQLite file,
//! a backend-services token for the client (client_credentials with an ES384 assertion, the way a
//! server-side app gets one without a browser), a log of the FHIR requests the sandbox received,
//! and the fixtures both servers use.
//!
//! The sandbox is the one test sandbox ([`test_support::sandbox::TestSandbox`]) reached through its
//! observing listener, which records each request (method, path, headers, body) so tests can say what
//! the client sent.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::http::header;
use fhir_client::{FhirClient, RetryPolicy};
use sandbox::{ClientKeys, ClientSpec, SandboxConfig, SimulatedFailure};
use serde_json::{Value, json};
use smart_launch::{BackendToken, ClientId, ScopeSet, SigningAlgorithm, SigningKey, TokenSource, Url};
pub use test_support::sandbox::Seen;
use test_support::sandbox::UNOBSERVED;

/// Every scope a backend service can hold: read, write and search everything.
pub const ALL: &str = "system/*.cruds";

/// The backend client every test sandbox registers.
const BACKEND: &str = "fhir-client-it";

/// The backend client's key, made once per test binary.
pub fn key() -> Arc<SigningKey> {
    static KEY: OnceLock<Arc<SigningKey>> = OnceLock::new();
    KEY.get_or_init(|| Arc::new(SigningKey::generate(SigningAlgorithm::ES384, "fhir-client-it").unwrap()))
        .clone()
}

/// The shared test sandbox ([`test_support::sandbox::TestSandbox`], reached through its recording listener)
/// with the backend client registered, and the token our setup requests use.
pub struct TestSandbox {
    sandbox: test_support::sandbox::TestSandbox,
    /// The token our setup requests use.
    setup: tokio::sync::OnceCell<Arc<BackendToken>>,
}

impl std::ops::Deref for TestSandbox {
    type Target = test_support::sandbox::TestSandbox;

    fn deref(&self) -> &Self::Target {
        &self.sandbox
    }
}

impl TestSandbox {
    /// A sandbox with no synthetic patients: each test writes the data it reads.
    pub async fn start() -> TestSandbox {
        Self::start_with(|_| {}).await
    }

    /// As [`TestSandbox::start`], with the configuration changed by `adjust` first (e.g. its Bulk Data limits).
    pub async fn start_with(adjust: impl FnOnce(&mut SandboxConfig)) -> TestSandbox {
        let sandbox = test_support::sandbox::TestSandbox::start_observed(|config| {
            config.patients = 0;
            adjust(config);
        })
        .await;
        let sandbox = TestSandbox {
            sandbox,
            setup: tokio::sync::OnceCell::new(),
        };
        sandbox.register(BACKEND, None);
        sandbox
    }

    /// Registers a backend client (keys only), optionally one whose launches simulate a failure.
    pub fn register(&self, id: &str, fail: Option<SimulatedFailure>) {
        let redirect = Url::parse("http://127.0.0.1:9/unused").unwrap();
        let mut spec = ClientSpec::public(id, redirect).with_keys(ClientKeys::Set(key().jwks()));
        if let Some(fail) = fail {
            spec = spec.with_failure(fail);
        }
        self.sandbox.register(spec);
    }

    /// A backend-services token source of `client_id` with `scope`.
    pub async fn tokens_of(&self, client_id: &str, scope: &str) -> Arc<BackendToken> {
        let source = BackendToken::discover(
            &self.fhir_base,
            ClientId::new(client_id),
            key(),
            ScopeSet::parse(scope).unwrap(),
        )
        .await
        .unwrap();
        Arc::new(source)
    }

    /// A backend-services token source with `scope`.
    pub async fn tokens(&self, scope: &str) -> Arc<BackendToken> {
        self.tokens_of(BACKEND, scope).await
    }

    /// A client with a token for everything and fast, test-sized retry delays.
    pub async fn client(&self) -> FhirClient {
        self.client_with(self.tokens(ALL).await)
    }

    /// A client with these tokens and fast, test-sized retry delays.
    pub fn client_with(&self, tokens: Arc<dyn TokenSource>) -> FhirClient {
        FhirClient::builder(self.fhir_base.as_str())
            .token_source(tokens)
            .retry_policy(fast_retries())
            .build()
            .unwrap()
    }

    /// Stores `resource` (a `Value`, or JSON text when a decimal must keep its digits) under its own id (a PUT,
    /// left out of the log).
    pub async fn put(&self, resource: impl ToString) {
        let text = resource.to_string();
        let resource: Value = serde_json::from_str(&text).unwrap();
        let tokens = self.setup.get_or_init(|| self.tokens(ALL)).await;
        let token = tokens.access_token().await.unwrap();
        let url = format!(
            "{}/{}/{}",
            self.fhir_base,
            resource["resourceType"].as_str().unwrap(),
            resource["id"].as_str().unwrap()
        );
        let response = reqwest::Client::new()
            .put(url)
            .bearer_auth(token.secret())
            .header(UNOBSERVED, "1")
            .header(header::CONTENT_TYPE, "application/fhir+json")
            .body(text)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "setup PUT failed: {}",
            response.status()
        );
    }

    /// The FHIR requests the sandbox received (discovery, tokens and setup left out).
    pub fn seen(&self) -> Vec<Seen> {
        let fhir = |seen: &Seen| seen.path().starts_with("/fhir") && !seen.path().contains("/.well-known/");
        self.sandbox.requests().into_iter().filter(fhir).collect()
    }
}

/// Retry delays short enough for tests.
pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_millis(20),
    }
}

/// An OperationOutcome with one issue.
pub fn outcome(severity: &str, code: &str, diagnostics: &str) -> Value {
    json!({"resourceType": "OperationOutcome", "issue": [
        {"severity": severity, "code": code, "diagnostics": diagnostics, "expression": ["Patient.name"]}
    ]})
}

/// A patient with a primitive extension on `birthDate`.
pub fn patient(id: &str, family: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "name": [{"use": "official", "family": family, "given": ["Ada"]}],
           "birthDate": "1970-01-01", "_birthDate": {"extension": [{"url": "http://example.org/x", "valueString": "approx"}]}})
}

/// A body-weight observation of `patient` in `category`, as JSON text; `value` is JSON text too, so `72.50`
/// keeps its digits (a `Value` holds numbers as `f64`).
pub fn observation(id: &str, patient: &str, category: &str, value: &str) -> String {
    with_raw(
        json!({"resourceType": "Observation", "id": id, "status": "final",
           "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}]}],
           "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}]},
           "subject": {"reference": format!("Patient/{patient}")},
           "valueQuantity": {"value": RAW, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}),
        value,
    )
}

/// The placeholder [`with_raw`] replaces.
pub const RAW: &str = "(raw JSON here)";

/// `value`'s JSON text with the string [`RAW`] replaced by the JSON text `raw` (a number written as it must be
/// sent, `80.50`).
pub fn with_raw(value: Value, raw: &str) -> String {
    serde_json::from_str::<Value>(raw).expect("raw is one JSON value");
    let text = value.to_string();
    let placeholder = Value::from(RAW).to_string();
    assert_eq!(text.matches(&placeholder).count(), 1, "one placeholder in {text}");
    text.replace(&placeholder, raw)
}

/// Reads test JSON strictly into a model (the test's own data must be valid R4).
pub fn typed<T: fhir_client::r4::FromJson>(value: Value) -> T {
    fhir_client::r4::from_str(&value.to_string(), fhir_client::r4::Mode::Strict)
        .expect("valid R4 JSON")
        .0
}
