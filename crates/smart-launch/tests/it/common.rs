//! Shared setup: the real sandbox EHR (crate `sandbox`) on 127.0.0.1:0 over a temp-dir SQLite file, a browser
//! that drives its sign-in pages, and the signing keys the tests use.
//!
//! The sandbox is started with [`sandbox::Sandbox::start`], and its own router ([`sandbox::router`]) is served on
//! a second listener of ours whose address is the sandbox's public base URL. Every request then goes through one
//! small layer that only counts requests per path (so tests can say "no token request was made" or "the
//! discovery document was fetched once") and, when a test asks, answers 404 for the well-known document (so the
//! client has to fall back to the sandbox's CapabilityStatement). Everything else is the sandbox's own code.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use sandbox::{ClientSpec, RunningSandbox, Sandbox, SandboxConfig};
pub use test_support::consent::Decision;
use test_support::consent::{self, Browser, location, no_redirects};

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

/// What the observing layer has seen.
#[derive(Default)]
struct Observed {
    hits: Mutex<HashMap<String, usize>>,
    total: AtomicUsize,
    hide_well_known: AtomicBool,
}

async fn observe(State(seen): State<Arc<Observed>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    seen.total.fetch_add(1, Ordering::SeqCst);
    {
        let mut hits = seen.hits.lock().unwrap();
        *hits.entry(path.clone()).or_default() += 1;
        *hits.entry(format!("{} {path}", request.method())).or_default() += 1;
    }
    if path.ends_with("/.well-known/smart-configuration") && seen.hide_well_known.load(Ordering::SeqCst) {
        return StatusCode::NOT_FOUND.into_response();
    }
    next.run(request).await
}

/// A running sandbox, reached through the observing listener.
pub struct TestSandbox {
    pub running: RunningSandbox,
    /// The FHIR base (`http://127.0.0.1:PORT/fhir`): the `aud`, the `iss` of launches and id_tokens.
    pub fhir_base: Url,
    /// The address serving the sandbox's router.
    pub addr: SocketAddr,
    seen: Arc<Observed>,
    _dir: tempfile::TempDir,
}

impl TestSandbox {
    pub async fn start() -> TestSandbox {
        TestSandbox::start_with(|_| {}).await
    }

    /// Starts a sandbox (5 patients, the public app registered) after `configure` adjusts its configuration.
    pub async fn start_with(configure: impl FnOnce(&mut SandboxConfig)) -> TestSandbox {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fhir_base = Url::parse(&format!("http://{addr}/fhir")).unwrap();
        let app = ClientSpec::public(APP, Url::parse(REDIRECT).unwrap())
            .with_launch_uri(Url::parse(LAUNCH_URI).unwrap());
        let mut config = SandboxConfig {
            port: 0,
            patients: 5,
            db: Some(dir.path().join("sandbox.db")),
            clients: vec![app],
            public_base_url: Some(fhir_base.clone()),
            issuer_key_pem: Some(test_support::ISSUER_KEY_PEM.to_owned()),
            ..SandboxConfig::default()
        };
        configure(&mut config);
        let running = Sandbox::start(config).await.unwrap();
        let seen = Arc::new(Observed::default());
        let router = sandbox::router(running.state.clone())
            .layer(middleware::from_fn_with_state(seen.clone(), observe));
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        TestSandbox {
            running,
            fhir_base,
            addr,
            seen,
            _dir: dir,
        }
    }

    /// Registers (or replaces) a client at run time.
    pub fn register(&self, spec: ClientSpec) {
        self.running.state.auth().register_client(spec).unwrap();
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

    /// Requests seen on a path (`/auth/token`), or on a method and path (`POST /auth/authorize`).
    pub fn hits(&self, key: &str) -> usize {
        self.seen.hits.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    /// Every request the sandbox has seen.
    pub fn total_requests(&self) -> usize {
        self.seen.total.load(Ordering::SeqCst)
    }

    /// Makes the sandbox look like a FHIR server that publishes only its CapabilityStatement.
    pub fn hide_well_known(&self) {
        self.seen.hide_well_known.store(true, Ordering::SeqCst);
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
        let response = no_redirects()
            .get(format!("http://{}/launcher?{query}", self.addr))
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
        let mut browser = Browser::new(&format!("http://{}", self.addr));
        let first = match &request.post {
            Some(post) => browser.post(post.action.as_str(), &post.fields).await,
            None => browser.get(request.url.as_str()).await,
        };
        consent::drive(&mut browser, first, REDIRECT, decision).await
    }
}

/// A query parameter of a URL.
pub fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
