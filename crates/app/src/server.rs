//! Starting the app: bind, build the state, serve in a background task.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use url::Url;

use crate::config::AppConfig;
use crate::error::StartError;
use crate::routes::router;
use crate::serve::{self, ServerLimits};
use crate::session::{PURGE_INTERVAL, SessionStore};
use crate::state::AppState;

/// A running app. Dropping it does not stop the server; call [`RunningApp::shutdown`].
pub struct RunningApp {
    /// The address the listener is bound to.
    pub addr: SocketAddr,
    /// The URL users reach the app at (the configured `public_url`, else `http://{addr}`).
    pub url: Url,
    /// The redirect URI the app sends (register it with the EHR).
    pub redirect_uri: Url,
    /// The EHR-launch URL (`{url}/launch`; register it with the EHR).
    pub launch_uri: Url,
    /// The shared state (configuration, session store).
    pub state: AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl std::fmt::Debug for RunningApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningApp")
            .field("addr", &self.addr)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RunningApp {
    /// Stops accepting connections, lets in-flight requests finish, and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Serves until the server fails (it does not stop on its own otherwise).
    pub async fn wait(mut self) -> std::io::Result<()> {
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

/// Deletes expired sessions and pending launches every [`PURGE_INTERVAL`], for as long as the app serves.
async fn purge_sessions(sessions: SessionStore) {
    let mut every = tokio::time::interval(PURGE_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = sessions.purge().await {
            tracing::warn!(error = %e, "purging expired sessions failed");
        }
    }
}

/// Binds `config.listen` (port 0 picks a free port), opens the session database and serves the app
/// in a background task, within the default [`ServerLimits`]. Returns once the socket is bound, so the app is
/// ready for requests.
pub async fn start(config: AppConfig) -> Result<RunningApp, StartError> {
    start_with_limits(config, ServerLimits::default()).await
}

/// [`start`] with other connection and request limits (tests set small timeouts).
pub async fn start_with_limits(config: AppConfig, limits: ServerLimits) -> Result<RunningApp, StartError> {
    start_with(config, limits, Arc::new(chrono::Utc::now)).await
}

/// [`start_with_limits`] with the time read from `clock` (see [`AppState::with_clock`]): tests move it forward to
/// expire a token instead of sleeping.
pub async fn start_with(
    config: AppConfig,
    limits: ServerLimits,
    clock: smart_launch::Clock,
) -> Result<RunningApp, StartError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let state = AppState::with_clock(config, addr, clock)?;
    let app = router(state.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let purging = tokio::spawn(purge_sessions(state.sessions().clone()));
    let task = tokio::spawn(async move {
        serve::serve(listener, app, limits, async {
            let _ = rx.await;
        })
        .await;
        purging.abort();
        Ok(())
    });
    tracing::info!(url = %state.public_url(), "the app is listening");
    Ok(RunningApp {
        addr,
        url: state.public_url().clone(),
        redirect_uri: state.redirect_uri().clone(),
        launch_uri: state.launch_uri().clone(),
        state,
        shutdown: Some(tx),
        task,
    })
}
