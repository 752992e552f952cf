//! One test sandbox for every crate's integration tests: the real sandbox EHR (crate `sandbox`) on 127.0.0.1,
//! port 0, over a SQLite file in a temp dir, signing id_tokens with the fixed [`ISSUER_KEY_PEM`](crate::ISSUER_KEY_PEM)
//! (no RSA key generated per test). A `configure` closure adjusts its [`SandboxConfig`] (its patients, clients,
//! persona, token lifetime) before it starts; each crate's `tests/it/common.rs` adds only its own client and
//! conveniences.
//!
//! It is reached one of two ways:
//! - [`TestSandbox::start`], [`TestSandbox::start_in`], [`TestSandbox::start_with_limits`]: the sandbox's own
//!   server, nothing between (its connection limits and timeouts are what the tests meet).
//! - [`TestSandbox::start_observed`]: the sandbox's own router ([`sandbox::router`]) served on a listener of ours
//!   whose address is the sandbox's public base URL. One small layer there records every request (method, path,
//!   a few headers, the body) so tests can say "no token request was made", "the discovery document was fetched
//!   once" or what a client sent, and, when a test asks, answers 404 for the well-known document (so the client
//!   has to fall back to the CapabilityStatement). Everything else is the sandbox's own code.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use sandbox::{ClientSpec, RunningSandbox, Sandbox, SandboxConfig, ServerLimits};
use url::Url;

use crate::consent::{Origin, no_redirects};

/// A header a test's own setup requests carry so that the observing layer leaves them out of its log.
pub const UNOBSERVED: &str = "x-test-setup";

/// A running sandbox and what tests need to talk to it.
pub struct TestSandbox {
    /// The sandbox itself (its state, its own address, its shutdown).
    pub running: RunningSandbox,
    /// The FHIR base (`http://127.0.0.1:PORT/fhir`): the `aud`, the `iss` of launches and id_tokens.
    pub fhir_base: Url,
    /// The address tests talk to: the sandbox's own, or the observing listener's.
    pub addr: SocketAddr,
    /// A client that never follows redirects.
    pub http: reqwest::Client,
    /// The temp dir holding the database (`sandbox.db`); a restart test hands it to [`TestSandbox::start_in`].
    pub dir: tempfile::TempDir,
    observed: Option<Arc<Observed>>,
}

/// The defaults every test sandbox starts from, before `configure`: port 0, five synthetic patients, the
/// database in `dir`, the fixed issuer key.
fn test_config(dir: &tempfile::TempDir) -> SandboxConfig {
    SandboxConfig {
        port: 0,
        patients: 5,
        db: Some(dir.path().join("sandbox.db")),
        issuer_key_pem: Some(crate::ISSUER_KEY_PEM.to_owned()),
        ..SandboxConfig::default()
    }
}

impl TestSandbox {
    /// Starts a sandbox on its own server after `configure` adjusts its configuration.
    pub async fn start(configure: impl FnOnce(&mut SandboxConfig)) -> TestSandbox {
        TestSandbox::start_in(tempfile::tempdir().unwrap(), configure).await
    }

    /// As [`TestSandbox::start`], over the database in `dir` (a restart reuses it).
    pub async fn start_in(dir: tempfile::TempDir, configure: impl FnOnce(&mut SandboxConfig)) -> TestSandbox {
        TestSandbox::start_limited_in(dir, configure, ServerLimits::default()).await
    }

    /// As [`TestSandbox::start`], with other connection and request limits.
    pub async fn start_with_limits(
        configure: impl FnOnce(&mut SandboxConfig),
        limits: ServerLimits,
    ) -> TestSandbox {
        TestSandbox::start_limited_in(tempfile::tempdir().unwrap(), configure, limits).await
    }

    async fn start_limited_in(
        dir: tempfile::TempDir,
        configure: impl FnOnce(&mut SandboxConfig),
        limits: ServerLimits,
    ) -> TestSandbox {
        let mut config = test_config(&dir);
        configure(&mut config);
        let running = Sandbox::start_with_limits(config, limits).await.unwrap();
        TestSandbox {
            fhir_base: running.fhir_base.clone(),
            addr: running.addr,
            running,
            http: no_redirects(),
            dir,
            observed: None,
        }
    }

    /// Starts a sandbox reached through the observing listener (its public base URL, set before `configure`
    /// runs), after `configure` adjusts its configuration.
    pub async fn start_observed(configure: impl FnOnce(&mut SandboxConfig)) -> TestSandbox {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fhir_base = Url::parse(&format!("http://{addr}/fhir")).unwrap();
        let mut config = SandboxConfig {
            public_base_url: Some(fhir_base.clone()),
            ..test_config(&dir)
        };
        configure(&mut config);
        let running = Sandbox::start(config).await.unwrap();
        let observed = Arc::new(Observed::default());
        let router = sandbox::router(running.state.clone())
            .layer(middleware::from_fn_with_state(observed.clone(), observe));
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        TestSandbox {
            running,
            fhir_base,
            addr,
            http: no_redirects(),
            dir,
            observed: Some(observed),
        }
    }

    /// A URL on the server tests talk to (`/auth/token`, `/launcher?…`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The `aud` of this sandbox: its FHIR base without a trailing slash.
    pub fn aud(&self) -> String {
        self.fhir_base.as_str().trim_end_matches('/').to_owned()
    }

    /// Registers (or replaces) a client at run time.
    pub fn register(&self, spec: ClientSpec) {
        self.running.state.auth().register_client(spec).unwrap();
    }

    /// Stops the sandbox, then removes its temp dir.
    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }

    fn observed(&self) -> &Observed {
        self.observed
            .as_deref()
            .expect("only a sandbox started with TestSandbox::start_observed records its requests")
    }

    /// Every request the observing layer has seen, in order (those marked [`UNOBSERVED`] left out).
    pub fn requests(&self) -> Vec<Seen> {
        self.observed().requests.lock().unwrap().clone()
    }

    /// Requests seen on a path (`/auth/token`), or on a method and path (`POST /auth/authorize`).
    pub fn hits(&self, key: &str) -> usize {
        let requests = self.observed().requests.lock().unwrap();
        requests
            .iter()
            .filter(|seen| seen.path() == key || format!("{} {}", seen.method, seen.path()) == key)
            .count()
    }

    /// How many requests the observing layer has seen.
    pub fn total_requests(&self) -> usize {
        self.observed().requests.lock().unwrap().len()
    }

    /// Makes the sandbox look like a FHIR server that publishes only its CapabilityStatement.
    pub fn hide_well_known(&self) {
        self.observed().hide_well_known.store(true, Ordering::SeqCst);
    }
}

impl Origin for TestSandbox {
    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// `GET`, `POST`…
    pub method: String,
    /// `/fhir/Patient?name=x`.
    pub path_and_query: String,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `Accept` header.
    pub accept: Option<String>,
    /// The `If-Match` header.
    pub if_match: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The body, as text.
    pub body: String,
}

impl Seen {
    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.path_and_query.split('?').next().unwrap_or_default()
    }
}

/// What the observing layer has seen, and whether it hides the well-known document.
#[derive(Default)]
struct Observed {
    requests: Mutex<Vec<Seen>>,
    hide_well_known: AtomicBool,
}

/// Records each request (unless marked [`UNOBSERVED`]), then hands it on unchanged, or answers 404 for the
/// well-known document when it is hidden.
async fn observe(State(observed): State<Arc<Observed>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    if !parts.headers.contains_key(UNOBSERVED) {
        let text = |name: header::HeaderName| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        observed.requests.lock().unwrap().push(Seen {
            method: parts.method.to_string(),
            path_and_query: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            authorization: text(header::AUTHORIZATION),
            accept: text(header::ACCEPT),
            if_match: text(header::IF_MATCH),
            content_type: text(header::CONTENT_TYPE),
            body: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    if parts.uri.path().ends_with("/.well-known/smart-configuration")
        && observed.hide_well_known.load(Ordering::SeqCst)
    {
        return StatusCode::NOT_FOUND.into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}
