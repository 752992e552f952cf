//! Shared setup: the one test sandbox ([`test_support::sandbox::TestSandbox`], through its observing listener:
//! requests counted per path, the well-known document hidden on demand) with this crate's public app registered,
//! its sign-in pages walked by [`test_support::consent`], and the signing keys the tests use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::http::StatusCode;
use sandbox::{ClientSpec, SandboxConfig};
pub use test_support::browser::param;
pub use test_support::consent::Decision;
use test_support::consent::{self, Browser, location};

use smart_launch::{
    AuthorizeRequest, ClientAuth, ClientSecret, ScopeSet, SigningAlgorithm, SigningKey, SmartClientConfig,
    Url,
};

/// Keys are slow to generate in debug builds: make each once per test binary.
pub fn key(name: &'static str) -> Arc<SigningKey> {
    static KEYS: OnceLock<Mutex<HashMap<&'static str, Arc<SigningKey>>>> = OnceLock::new();
    let keys = KEYS.get_or_init(Default::default);
    if let Some(k) = keys.lock().unwrap().get(name) {
        return k.clone();
    }
    let alg = match name {
        "client-es384" | "other-es384" => SigningAlgorithm::ES384,
        "client-rs384" => SigningAlgorithm::RS384,
        _ => SigningAlgorithm::RS256,
    };
    let k = Arc::new(SigningKey::generate(alg, name).unwrap());
    keys.lock().unwrap().entry(name).or_insert(k).clone()
}

/// Client-secret authentication, basic or post.
pub fn secret_auth(basic: bool, secret: &str) -> ClientAuth {
    if basic {
        ClientAuth::ClientSecretBasic(ClientSecret::new(secret))
    } else {
        ClientAuth::ClientSecretPost(ClientSecret::new(secret))
    }
}

/// The public app every sandbox knows, its redirect URI and its EHR-launch URL (nothing listens there: the
/// browser stops at the redirect and hands its URL to the client).
pub const APP: &str = "smart-launch-it";
pub const REDIRECT: &str = "http://127.0.0.1:9/fhir-app/";
pub const LAUNCH_URI: &str = "http://127.0.0.1:9/launch";

/// The shared test sandbox ([`test_support::sandbox::TestSandbox`], reached through its observing listener)
/// with the public app registered, and what this crate's tests do with it.
pub struct TestSandbox(test_support::sandbox::TestSandbox);

impl std::ops::Deref for TestSandbox {
    type Target = test_support::sandbox::TestSandbox;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl TestSandbox {
    /// A sandbox with five patients and the public app registered.
    pub async fn start() -> TestSandbox {
        TestSandbox::start_with(|_| {}).await
    }

    /// Starts a sandbox (5 patients, the public app registered) after `configure` adjusts its configuration.
    pub async fn start_with(configure: impl FnOnce(&mut SandboxConfig)) -> TestSandbox {
        let app = ClientSpec::public(APP, Url::parse(REDIRECT).unwrap())
            .with_launch_uri(Url::parse(LAUNCH_URI).unwrap());
        TestSandbox(
            test_support::sandbox::TestSandbox::start_observed(|config| {
                config.clients.push(app);
                configure(config);
            })
            .await,
        )
    }

    /// The app's redirect URI.
    pub fn redirect() -> Url {
        Url::parse(REDIRECT).unwrap()
    }

    /// A client configuration for the public app, trusting this sandbox as an issuer.
    pub fn config(&self, scope: &str) -> SmartClientConfig {
        SmartClientConfig::new(APP, Self::redirect(), ScopeSet::parse(scope).unwrap())
            .allow_issuer(self.fhir_base.clone())
    }

    /// The id of a synthetic patient.
    pub fn a_patient(&self) -> String {
        let patients = self.running.state.store().find_patients("", 5).unwrap();
        patients[0]["id"].as_str().unwrap().to_owned()
    }

    /// A patient of the sandbox that has an encounter, and that encounter's id.
    pub fn a_patient_with_an_encounter(&self) -> (String, String) {
        let store = self.running.state.store();
        for patient in store.find_patients("", 5).unwrap() {
            let id = patient["id"].as_str().unwrap().to_owned();
            if let Some(encounter) = store.encounters_for_patient(&id, 1).unwrap().first() {
                return (id, encounter["id"].as_str().unwrap().to_owned());
            }
        }
        panic!("no synthetic patient has an encounter");
    }

    /// What the EHR does on an EHR launch: `/launcher` stores the context and sends the browser to the app's
    /// launch URL; returns that URL's `iss` and `launch`.
    pub async fn ehr_launch(&self, query: &[(&str, &str)]) -> (String, String) {
        let mut params = vec![("client_id", APP)];
        params.extend_from_slice(query);
        let query = serde_urlencoded::to_string(&params).unwrap();
        let response = self
            .http
            .get(self.url(&format!("/launcher?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "the launcher refused");
        let to = Url::parse(&location(&response)).unwrap();
        assert!(to.as_str().starts_with(LAUNCH_URI), "{to}");
        (param(&to, "iss").unwrap(), param(&to, "launch").unwrap())
    }

    /// What a browser and a consenting user do with an authorize request: returns the redirect back to the app.
    pub async fn approve(&self, request: &AuthorizeRequest) -> Url {
        self.authorize(request, Decision::Approve).await
    }

    /// Follows the authorize request through the sandbox's pages (sign in as the first user offered, pick the
    /// first patient and encounter, then `decision` on the consent page) until it redirects to the app.
    pub async fn authorize(&self, request: &AuthorizeRequest, decision: Decision) -> Url {
        let browser = Browser::new(&self.0);
        let first = match &request.post {
            Some(post) => browser.post(post.action.as_str(), &post.fields).await,
            None => browser.get(request.url.as_str()).await,
        };
        consent::drive(&browser, first, REDIRECT, decision).await
    }
}
