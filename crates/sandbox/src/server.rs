//! Starting the sandbox: the shared state, the router that mounts both halves, and the background server task.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::Router;
use tower_http::trace::TraceLayer;
use url::Url;

use crate::serve::{self, ServerLimits};
use crate::{auth, config::SandboxConfig, error::SandboxError, fhir, store::Store};

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct SandboxState {
    inner: Arc<StateInner>,
}

struct StateInner {
    base: Url,
    store: Store,
    auth: auth::AuthServer,
}

impl SandboxState {
    /// Builds the state from its parts.
    pub fn new(base: Url, store: Store, auth: auth::AuthServer) -> Self {
        Self {
            inner: Arc::new(StateInner { base, store, auth }),
        }
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
}

/// The whole sandbox as one router: the authorization server, the launch pages and the FHIR server under `/fhir`.
pub fn router(state: SandboxState) -> Router {
    Router::new()
        .merge(auth::router())
        .nest("/fhir", fhir::router())
        // `nest` routes `/fhir` and `/fhir/…`, but not `/fhir/`, where many clients POST their transactions.
        .route("/fhir/", fhir::base_routes())
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// A sandbox that is serving; dropping it does not stop it, call [`RunningSandbox::shutdown`].
pub struct RunningSandbox {
    /// The address the listener is bound to.
    pub addr: SocketAddr,
    /// The FHIR base URL (`http://{host}:{port}/fhir`).
    pub fhir_base: Url,
    /// The shared state, for tests and for the binary's start-up banner.
    pub state: SandboxState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningSandbox {
    /// The EHR launch page (`/` of the sandbox).
    pub fn launch_page(&self) -> Url {
        self.state.auth().endpoints().launch_page
    }

    /// Stops serving and waits for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// The sandbox server.
pub struct Sandbox;

impl Sandbox {
    /// Opens (creating and filling on first use) the database, imports `config.imports`, binds
    /// `config.host:config.port` (0 picks a free port) and starts serving in a background task, within the
    /// default [`ServerLimits`].
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
        if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| SandboxError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let (patients, seed, imports) = (config.patients, config.seed, config.imports.clone());
        let store = tokio::task::spawn_blocking(move || -> Result<Store, SandboxError> {
            let store = Store::open(&db)?;
            store.ensure_populated(patients, seed)?;
            for dir in &imports {
                let report = store.import_dir(dir)?;
                tracing::info!(dir = %dir.display(), ?report, "imported FHIR data");
            }
            Ok(store)
        })
        .await
        .map_err(|e| SandboxError::Internal {
            reason: format!("the database task failed: {e}"),
        })??;

        let bind_addr = format!("{}:{}", bracket_ipv6(&config.host), config.port);
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
        let fhir_base = match &config.public_base_url {
            Some(url) => url.clone(),
            None => default_base(&config.host, addr.port())?,
        };
        let auth = auth::AuthServer::new(store.clone(), fhir_base.clone(), &config)?;
        let state = SandboxState::new(fhir_base.clone(), store, auth);
        let app = router(state.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve::serve(listener, app, limits, async {
            let _ = rx.await;
        }));
        tracing::info!(%fhir_base, %addr, "sandbox listening");
        Ok(RunningSandbox {
            addr,
            fhir_base,
            state,
            shutdown: Some(tx),
            task,
        })
    }
}

fn bracket_ipv6(host: &str) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
        _ => host.to_owned(),
    }
}

/// `http://{host}:{port}/fhir`; a wildcard listen address (`0.0.0.0`, `::`) is shown as `localhost`.
fn default_base(host: &str, port: u16) -> Result<Url, SandboxError> {
    let shown = match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => "localhost".to_owned(),
        _ => bracket_ipv6(host),
    };
    Url::parse(&format!("http://{shown}:{port}/fhir")).map_err(|e| SandboxError::InvalidConfig {
        key: "host".to_owned(),
        reason: format!("`{host}` does not make a valid URL ({e})"),
    })
}
