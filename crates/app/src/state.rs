//! [`AppState`]: what every handler shares (configuration, URLs, session store, HTTP client).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use url::Url;

use crate::config::AppConfig;
use crate::launch::smart_client;
use crate::pages::home::SummaryView;
use crate::server::StartError;
use crate::session::{Session, SessionStore};
use crate::style::ThemeCache;

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
        let sessions = SessionStore::open(&config.session_db, config.session_ttl).map_err(|source| {
            StartError::Sessions {
                path: config.session_db.clone(),
                source,
            }
        })?;
        let http = reqwest::Client::builder()
            // The style document and other side fetches: never follow redirects, never wait long.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| StartError::HttpClient(e.to_string()))?;
        // One connection pool for every session's FHIR reads: a page view reuses open connections to the EHR.
        let fhir_pool = fhir_client::HttpPool::new(Duration::from_secs(10))
            .map_err(|e| StartError::HttpClient(e.to_string()))?;
        let smart = smart_client(&config, redirect_uri.clone()).map_err(StartError::Launch)?;
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
            }),
        })
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
        if token_expiry.is_some_and(|at| at <= chrono::Utc::now()) {
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

    /// Drops this session's cached summary (log out, new launch).
    pub fn forget_summary(&self, session: &Session) {
        if let (Some(key), Ok(mut cache)) = (session.cache_key(), self.inner.summaries.lock()) {
            cache.remove(&key);
        }
    }
}
