//! [`AppState`]: what every handler shares (configuration, URLs, session store, HTTP client).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use url::Url;

use smart_launch::{ClientAuth, ClientId, SigningKey, SmartClient, SmartClientConfig};

use crate::config::AppConfig;
use crate::error::StartError;
use crate::session::{
    PENDING_LAUNCH_TTL, Session, SessionKey, SessionStore, StoreRefreshCoordinator, key_file_beside,
};
use crate::style::ThemeCache;
use crate::views::home::SummaryView;

/// Where the app publishes its public keys (`private_key_jwt`); register `{public_url}` + this.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// At most this many sessions' summaries are kept in memory.
const SUMMARY_CACHE_MAX: usize = 1024;

/// The app's shared state. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: AppConfig,
    public_url: Url,
    redirect_uri: Url,
    launch_uri: Url,
    sessions: SessionStore,
    http: reqwest::Client,
    fhir_pool: fhir_client::HttpPool,
    smart: smart_launch::SmartClient,
    summaries: Mutex<HashMap<String, (Instant, Arc<SummaryView>)>>,
    themes: ThemeCache,
    /// One async lock per session whose summary is being fetched (see [`AppState::summary_turn`]).
    summary_turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// What time it is: the system's, or a test's (token expiry on demand, without sleeping).
    clock: smart_launch::Clock,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("public_url", &self.inner.public_url.as_str())
            .field("profile", &self.inner.config.profile)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the state for an app bound to `bound` (used for the public URL when none is configured):
    /// opens the session database and the HTTP client.
    pub fn new(config: AppConfig, bound: SocketAddr) -> Result<AppState, StartError> {
        Self::with_clock(config, bound, Arc::new(chrono::Utc::now))
    }

    /// [`AppState::new`] with the time read from `clock`: token expiry, the summary's window and dates, the launch
    /// record's time. Session lifetimes are the store's (its own clock).
    pub fn with_clock(
        config: AppConfig,
        bound: SocketAddr,
        clock: smart_launch::Clock,
    ) -> Result<AppState, StartError> {
        let public_url = match &config.public_url {
            Some(url) => url.clone(),
            None => {
                Url::parse(&format!("http://{bound}/")).map_err(|e| StartError::HttpClient(e.to_string()))?
            }
        };
        let join = |path: &str| {
            public_url
                .join(path)
                .map_err(|e| StartError::HttpClient(e.to_string()))
        };
        let redirect_uri = match &config.redirect_uri {
            Some(url) => url.clone(),
            None => join("fhir-app/")?,
        };
        let launch_uri = join("launch")?;
        let sessions_error = |source| StartError::Sessions {
            path: config.session_db.clone(),
            source,
        };
        let key = match &config.session_key {
            Some(key) => key.clone(),
            None => SessionKey::load_or_create(&key_file_beside(&config.session_db))
                .map_err(|e| sessions_error(e.into()))?,
        };
        let sessions = match &config.session_store {
            Some(url) => {
                tracing::info!(store = %url, "sessions are kept in Redis, shared with the app's other instances");
                SessionStore::redis(url, config.session_ttl, key)
            }
            None => SessionStore::open(&config.session_db, config.session_ttl, key),
        }
        .map_err(sessions_error)?;
        let http = reqwest::Client::builder()
            // The style document and other side fetches: never follow redirects, never wait long.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| StartError::HttpClient(e.to_string()))?;
        // One connection pool for every session's FHIR reads: a page view reuses open connections to the EHR.
        let fhir_pool = fhir_client::HttpPool::new(Duration::from_secs(10))
            .map_err(|e| StartError::HttpClient(e.to_string()))?;
        let coordinator = Arc::new(StoreRefreshCoordinator::new(sessions.clone()));
        let smart = smart_client(&config, redirect_uri.clone(), coordinator).map_err(StartError::Launch)?;
        Ok(AppState {
            inner: Arc::new(Inner {
                config,
                public_url,
                redirect_uri,
                launch_uri,
                sessions,
                http,
                fhir_pool,
                smart,
                summaries: Mutex::new(HashMap::new()),
                themes: ThemeCache::default(),
                summary_turns: Mutex::new(HashMap::new()),
                clock,
            }),
        })
    }

    /// What time it is, by the app's clock (see [`AppState::with_clock`]).
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        (self.inner.clock)()
    }

    /// The app's clock, for token sources that refresh by it.
    pub fn clock(&self) -> &smart_launch::Clock {
        &self.inner.clock
    }

    /// The configuration.
    pub fn config(&self) -> &AppConfig {
        &self.inner.config
    }

    /// The URL users reach the app at.
    pub fn public_url(&self) -> &Url {
        &self.inner.public_url
    }

    /// The redirect URI sent in authorize requests.
    pub fn redirect_uri(&self) -> &Url {
        &self.inner.redirect_uri
    }

    /// The EHR-launch URL.
    pub fn launch_uri(&self) -> &Url {
        &self.inner.launch_uri
    }

    /// Where the app publishes its public keys (`{public_url}/.well-known/jwks.json`), when it is
    /// configured with a private key (`private_key_jwt`); register it with the EHR.
    pub fn jwks_url(&self) -> Option<Url> {
        self.inner.smart.public_jwks()?;
        self.inner.public_url.join(JWKS_PATH.trim_start_matches('/')).ok()
    }

    /// The session store.
    pub fn sessions(&self) -> &SessionStore {
        &self.inner.sessions
    }

    /// Whether cookies carry `Secure`.
    pub fn secure_cookies(&self) -> bool {
        self.inner.public_url.scheme() == "https"
    }

    /// The HTTP client for side fetches (no redirects, short timeout).
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The connection pool shared by the FHIR clients of all sessions.
    pub fn fhir_pool(&self) -> &fhir_client::HttpPool {
        &self.inner.fhir_pool
    }

    /// Style documents fetched recently (`smart_style_url`).
    pub fn themes(&self) -> &ThemeCache {
        &self.inner.themes
    }

    /// The SMART client (discovery, launches, code exchange, refresh).
    pub fn smart(&self) -> &smart_launch::SmartClient {
        &self.inner.smart
    }

    /// The cached summary of this session, rendered, if fresh (younger than the configured
    /// `summary_cache` and the access token it was fetched with has not expired).
    pub fn cached_summary(
        &self,
        session: &Session,
        token_expiry: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Option<Arc<SummaryView>> {
        if token_expiry.is_some_and(|at| at <= self.now()) {
            return None;
        }
        let key = session.cache_key()?;
        let cache = self.inner.summaries.lock().ok()?;
        let (at, summary) = cache.get(&key)?;
        (at.elapsed() < self.inner.config.summary_cache).then(|| summary.clone())
    }

    /// Keeps a freshly fetched and rendered summary for this session.
    pub fn cache_summary(&self, session: &Session, summary: Arc<SummaryView>) {
        let ttl = self.inner.config.summary_cache;
        let Some(key) = session.cache_key().filter(|_| !ttl.is_zero()) else {
            return;
        };
        if let Ok(mut cache) = self.inner.summaries.lock() {
            if cache.len() >= SUMMARY_CACHE_MAX {
                cache.retain(|_, (at, _)| at.elapsed() < ttl);
                if cache.len() >= SUMMARY_CACHE_MAX {
                    cache.clear();
                }
            }
            cache.insert(key, (Instant::now(), summary));
        }
    }

    /// Waits until no other request of this session is fetching its summary, then holds that turn
    /// until the guard is dropped. When the cached summary expires while a session's pages are being
    /// asked for, the first request fetches it and the others wait and then find it cached, instead of
    /// all reading the EHR at once. `None` (no waiting) when summaries are not cached, or the session
    /// has no id yet.
    pub async fn summary_turn(&self, session: &Session) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        if self.inner.config.summary_cache.is_zero() {
            return None;
        }
        let key = session.cache_key()?;
        let lock = {
            let mut turns = self.inner.summary_turns.lock().ok()?;
            if turns.len() >= SUMMARY_CACHE_MAX {
                // Forget the locks nobody holds or waits for.
                turns.retain(|_, lock| Arc::strong_count(lock) > 1);
            }
            turns.entry(key).or_default().clone()
        };
        Some(lock.lock_owned().await)
    }

    /// Drops this session's cached summary (log out, new launch).
    pub fn forget_summary(&self, session: &Session) {
        if let (Some(key), Ok(mut cache)) = (session.cache_key(), self.inner.summaries.lock()) {
            cache.remove(&key);
        }
    }
}

/// Builds the SMART client for `config`: client id, redirect URI, scopes, credentials, allow-list, and the
/// coordinator that makes every refresh happen once among the instances sharing the session store.
pub fn smart_client(
    config: &AppConfig,
    redirect_uri: Url,
    refresh_coordinator: Arc<dyn smart_launch::RefreshCoordinator>,
) -> Result<SmartClient, smart_launch::Error> {
    let auth = match (&config.client_secret, &config.private_key) {
        (Some(secret), _) => ClientAuth::ClientSecretBasic(secret.clone()),
        (None, Some(path)) => {
            let kid = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "app".into());
            ClientAuth::PrivateKeyJwt(Arc::new(SigningKey::read_pem_file(path, kid)?))
        }
        (None, None) => ClientAuth::None,
    };
    let mut smart = SmartClientConfig::new(
        ClientId::new(config.client_id.clone()),
        redirect_uri,
        config.scope.clone(),
    )
    .with_client_auth(auth);
    smart.allowed_issuers = config.allowed_issuers.clone();
    smart.pending_launch_ttl = PENDING_LAUNCH_TTL;
    smart.discovery_ttl = DISCOVERY_TTL;
    smart.refresh_ahead = REFRESH_AHEAD;
    smart.http_timeout = Duration::from_secs(15);
    smart.prefer_authorize_post = config.authorize_post;
    smart.allow_insecure_http = config.insecure_http;
    smart.refresh_coordinator = Some(refresh_coordinator);
    SmartClient::new(smart)
}

/// How long discovered SMART configurations are reused.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(300);

/// Access tokens are refreshed this long before they expire (at most half their lifetime before:
/// [`smart_launch::TokenSet::refresh_due`]).
pub const REFRESH_AHEAD: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use futures::FutureExt as _;

    use super::*;

    fn state(dir: &tempfile::TempDir, summary_cache: Duration) -> AppState {
        let mut config = AppConfig::for_issuer(
            Url::parse("http://127.0.0.1:9/fhir").unwrap(),
            "app",
            dir.path().join("sessions.db"),
        );
        config.summary_cache = summary_cache;
        AppState::new(config, "127.0.0.1:0".parse().unwrap()).unwrap()
    }

    fn session_with_id() -> Session {
        let session = Session::default();
        session.ensure_id();
        session
    }

    #[tokio::test]
    async fn one_request_of_a_session_fetches_its_summary_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(&dir, Duration::from_secs(30));
        let (session, other) = (session_with_id(), session_with_id());
        let first = state.summary_turn(&session).await;
        assert!(first.is_some());
        assert!(
            state.summary_turn(&session).now_or_never().is_none(),
            "a second request of the session waits"
        );
        assert!(
            state.summary_turn(&other).now_or_never().flatten().is_some(),
            "another session does not wait"
        );
        drop(first);
        assert!(state.summary_turn(&session).now_or_never().flatten().is_some());
    }

    #[tokio::test]
    async fn without_a_summary_cache_nobody_waits() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(&dir, Duration::ZERO);
        let session = session_with_id();
        assert!(state.summary_turn(&session).await.is_none());
        assert!(state.summary_turn(&session).now_or_never().is_some());
    }
}
