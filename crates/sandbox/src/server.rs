//! Starting the sandbox: the shared state, the router that mounts both halves, and the background server task.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use axum::{
    Router,
    extract::{Request, State},
    middleware::{self, Next},
    response::Response,
};
use http::{HeaderName, HeaderValue};
use tower_http::{set_header::SetResponseHeaderLayer, trace::TraceLayer};
use url::Url;

use crate::serve::{self, ServerLimits};
use crate::{auth, bulk, config::SandboxConfig, error::SandboxError, fhir, persona, store::Store};

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct SandboxState {
    inner: Arc<StateInner>,
}

/// The authorization server's handlers take only their part of the state (`State<AuthServer>`).
impl axum::extract::FromRef<SandboxState> for auth::AuthServer {
    fn from_ref(state: &SandboxState) -> auth::AuthServer {
        state.auth().clone()
    }
}

struct StateInner {
    base: Url,
    store: Store,
    auth: auth::AuthServer,
    latency: Duration,
    bulk: bulk::BulkServer,
}

impl SandboxState {
    /// Builds the state from its parts.
    pub fn new(base: Url, store: Store, auth: auth::AuthServer) -> Self {
        Self::with_latency(base, store, auth, Duration::ZERO)
    }

    /// Builds the state, delaying every answer by `latency` (`--latency`).
    pub fn with_latency(base: Url, store: Store, auth: auth::AuthServer, latency: Duration) -> Self {
        Self::with_parts(base, store, auth, latency, bulk::BulkConfig::default())
    }

    /// Builds the state with every setting: the latency and the Bulk Data server's limits.
    pub fn with_parts(
        base: Url,
        store: Store,
        auth: auth::AuthServer,
        latency: Duration,
        bulk: bulk::BulkConfig,
    ) -> Self {
        let bulk = bulk::BulkServer::new(store.clone(), bulk);
        Self {
            inner: Arc::new(StateInner {
                base,
                store,
                auth,
                latency,
                bulk,
            }),
        }
    }

    /// The delay added before every answer.
    pub fn latency(&self) -> Duration {
        self.inner.latency
    }

    /// The FHIR base URL, e.g. `http://127.0.0.1:9000/fhir` (no trailing slash). This is also the `aud` clients
    /// must send and the `iss` of EHR launches.
    pub fn fhir_base(&self) -> &Url {
        &self.inner.base
    }

    /// The FHIR resource database.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The authorization server.
    pub fn auth(&self) -> &auth::AuthServer {
        &self.inner.auth
    }

    /// The Bulk Data `$export` server.
    pub fn bulk(&self) -> &bulk::BulkServer {
        &self.inner.bulk
    }
}

/// The whole sandbox as one router: the authorization server, the launch pages and the FHIR server under the
/// persona's base path (`/fhir` for `smart`), with CORS, the persona's reshaping of FHIR answers and the
/// configured latency. A persona with a separate authorization host (Cerner) serves this same router there too;
/// the endpoints each host is announced with keep the two apart.
pub fn router(state: SandboxState) -> Router {
    let persona = state.auth().persona();
    let fhir_path = persona.fhir_path();
    Router::new()
        .merge(auth::router(persona))
        .merge(bulk::router(&fhir_path))
        .nest(&fhir_path, fhir::router())
        // `nest` routes `/fhir` and `/fhir/…`, but not `/fhir/`, where many clients POST their transactions.
        .route(&format!("{fhir_path}/"), fhir::base_routes())
        .layer(middleware::from_fn_with_state(state.clone(), persona::rewrite))
        .layer(auth::cors_layer(state.clone()))
        .layer(middleware::from_fn_with_state(state.clone(), delay))
        // FHIR answers, pages and errors alike: a browser must not sniff JSON into HTML or script.
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ))
        // The span names the method and the path only: query strings carry `txn`, `state`, `code` and `launch`.
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// The span of one request: method and path, never the query string (it carries one-time values).
fn request_span(request: &Request) -> tracing::Span {
    tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
}

/// `--latency`: waits before handing the request on, as a distant EHR's round trip would.
async fn delay(State(state): State<SandboxState>, request: Request, next: Next) -> Response {
    let latency = state.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    next.run(request).await
}

/// A sandbox that is serving; dropping it does not stop it, call [`RunningSandbox::shutdown`].
pub struct RunningSandbox {
    /// The address the listener is bound to.
    pub addr: SocketAddr,
    /// The FHIR base URL (`http://{host}:{port}/fhir`, or the persona's base path).
    pub fhir_base: Url,
    /// The address of the separate authorization host, for personas that have one (Cerner).
    pub auth_addr: Option<SocketAddr>,
    /// What each `--import` directory gave (loaded, by type, skipped and why), in the order given.
    pub imports: Vec<(std::path::PathBuf, crate::import::ImportReport)>,
    /// The shared state, for tests and for the binary's start-up banner.
    pub state: SandboxState,
    shutdown: Option<tokio::sync::watch::Sender<bool>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningSandbox {
    /// The EHR launch page (`/` of the sandbox).
    pub fn launch_page(&self) -> Url {
        self.state.auth().endpoints().launch_page
    }

    /// Stops serving and waits for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

/// The sandbox server.
pub struct Sandbox;

impl Sandbox {
    /// Binds `config.host:config.port` (0 picks a free port) — and the authorization host's port for a persona
    /// that has one — first, so a taken port is reported before any long work; then opens (creating and filling
    /// on first use) the database, imports `config.imports`, and starts serving in background tasks, within the
    /// default [`ServerLimits`]. Requests that arrive during the import wait in the listener's queue.
    pub async fn start(config: SandboxConfig) -> Result<RunningSandbox, SandboxError> {
        Self::start_with_limits(config, ServerLimits::default()).await
    }

    /// [`Sandbox::start`] with other connection and request limits (tests set small timeouts).
    pub async fn start_with_limits(
        config: SandboxConfig,
        limits: ServerLimits,
    ) -> Result<RunningSandbox, SandboxError> {
        let db = match &config.db {
            Some(path) => path.clone(),
            None => SandboxConfig::default_db_path()?,
        };
        let (listener, addr) = bind(&config.host, config.port).await?;
        let auth_listener = bind_auth_host(&config).await?;
        let fhir_base = match &config.public_base_url {
            Some(url) => url.clone(),
            None => default_base(&config.host, addr.port(), &config.persona.fhir_path())?,
        };
        let auth_origin = match &auth_listener {
            Some((_, auth_addr)) => Some(auth_origin(&fhir_base, auth_addr.port())?),
            None => None,
        };
        if !config.imports.is_empty() {
            tracing::info!(%addr, "sandbox port bound; importing before serving");
        }
        let (store, reports) = open_database(db, &config).await?;

        let auth =
            auth::AuthServer::with_auth_origin(store.clone(), fhir_base.clone(), auth_origin, &config)?;
        let state = SandboxState::with_parts(
            fhir_base.clone(),
            store,
            auth,
            config.latency,
            config.bulk.clone(),
        );
        state.bulk().start_background().await?;
        state.auth().start_purge();
        let app = router(state.clone());
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut tasks = vec![spawn_server(listener, app.clone(), limits, rx.clone())];
        let auth_addr = auth_listener.map(|(listener, auth_addr)| {
            tasks.push(spawn_server(listener, app, limits, rx));
            auth_addr
        });
        tracing::info!(%fhir_base, %addr, persona = %config.persona, "sandbox listening");
        Ok(RunningSandbox {
            addr,
            fhir_base,
            auth_addr,
            imports: reports,
            state,
            shutdown: Some(tx),
            tasks,
        })
    }
}

/// The second listener of a persona whose authorization server has a host of its own (on `auth_port`, or the
/// port after the FHIR server's), or `None`.
async fn bind_auth_host(
    config: &SandboxConfig,
) -> Result<Option<(tokio::net::TcpListener, SocketAddr)>, SandboxError> {
    if !config.persona.splits_authorization_host() {
        return Ok(None);
    }
    let port = config.auth_port.unwrap_or(if config.port == 0 {
        0
    } else {
        config.port.saturating_add(1)
    });
    Ok(Some(bind(&config.host, port).await?))
}

/// The store at `db`, populated by the generator and the configured imports (off the async threads), with the
/// imports' reports.
async fn open_database(
    db: std::path::PathBuf,
    config: &SandboxConfig,
) -> Result<(Store, Vec<(std::path::PathBuf, crate::import::ImportReport)>), SandboxError> {
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| SandboxError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let (patients, seed, imports) = (config.patients, config.seed, config.imports.clone());
    tokio::task::spawn_blocking(move || -> Result<_, SandboxError> {
        let store = Store::open(&db)?;
        store.ensure_populated(patients, seed)?;
        let mut reports = Vec::new();
        for dir in imports {
            let report = store.import_dir(&dir)?;
            reports.push((dir, report));
        }
        Ok((store, reports))
    })
    .await
    .map_err(|e| SandboxError::Internal {
        reason: format!("the database task failed: {e}"),
    })?
}

async fn bind(host: &str, port: u16) -> Result<(tokio::net::TcpListener, SocketAddr), SandboxError> {
    let bind_addr = format!("{}:{}", bracket_ipv6(host), port);
    let listener = tokio::net::TcpListener::bind(&bind_addr)
        .await
        .map_err(|source| SandboxError::Bind {
            addr: bind_addr.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SandboxError::Bind {
        addr: bind_addr,
        source,
    })?;
    Ok((listener, addr))
}

fn spawn_server(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ServerLimits,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(serve::serve(listener, app, limits, async move {
        let _ = stop.wait_for(|stop| *stop).await;
    }))
}

/// The origin of the separate authorization host: the FHIR base's scheme and host, on `port`.
fn auth_origin(fhir_base: &Url, port: u16) -> Result<Url, SandboxError> {
    let mut origin = fhir_base.clone();
    origin.set_path("/");
    origin.set_query(None);
    origin
        .set_port(Some(port))
        .map_err(|()| SandboxError::InvalidConfig {
            key: "public_base_url".to_owned(),
            reason: format!("`{fhir_base}` cannot take a port for the authorization host"),
        })?;
    Ok(origin)
}

fn bracket_ipv6(host: &str) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
        _ => host.to_owned(),
    }
}

/// `http://{host}:{port}{path}`; a wildcard listen address (`0.0.0.0`, `::`) is shown as `localhost`.
fn default_base(host: &str, port: u16, path: &str) -> Result<Url, SandboxError> {
    let shown = match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => "localhost".to_owned(),
        _ => bracket_ipv6(host),
    };
    Url::parse(&format!("http://{shown}:{port}{path}")).map_err(|e| SandboxError::InvalidConfig {
        key: "host".to_owned(),
        reason: format!("`{host}` does not make a valid URL ({e})"),
    })
}
