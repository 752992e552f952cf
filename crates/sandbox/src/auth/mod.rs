//! The SMART App Launch 2.2 authorization server: discovery, `/authorize` with its login, patient, encounter and
//! consent pages, the token endpoint (authorization_code, refresh_token, client_credentials), JWKS,
//! introspection, revocation and the EHR launcher.
//!
//! Its routes live under `/auth/…` (plus `/`, `/launcher` and `{base}/.well-known/smart-configuration`); its
//! state lives in `auth_*` tables of the sandbox database. Access tokens are opaque random strings stored as
//! SHA-256 hashes and checked on every FHIR request by [`AuthServer::check_bearer`].

mod authorize;
mod clients;
mod discovery;
mod introspect;
mod keys;
mod launcher;
mod oauth_error;
mod params;
mod records;
mod scopes;
mod token;

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use axum::{
    Router,
    routing::{get, post},
};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use smart_launch::scope::ScopeSet;
use tower_http::set_header::SetResponseHeaderLayer;
use url::Url;

pub use crate::error::BearerError;
use crate::{
    SandboxState,
    config::{ClientSpec, DEMO_CLIENT_ID, SandboxConfig, SimulatedFailure},
    error::SandboxError,
    store::Store,
};
use clients::RegisteredClient;

/// What a validated bearer token allows.
#[derive(Debug, Clone)]
pub struct AccessGrant {
    /// The client the token was issued to.
    pub client_id: String,
    /// The granted scopes.
    pub scopes: ScopeSet,
    /// The patient in context (a `Patient` id), which `patient/` scopes confine access to.
    pub patient: Option<String>,
    /// The encounter in context (an `Encounter` id).
    pub encounter: Option<String>,
    /// The signed-in user as a relative reference (`Practitioner/…` or `Patient/…`); `None` for backend services.
    pub fhir_user: Option<String>,
    /// A FHIR failure the launch asked the sandbox to simulate on every request.
    pub simulated_failure: Option<FhirFailure>,
}

/// A FHIR-server failure simulated on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FhirFailure {
    /// 500 Internal Server Error.
    InternalServerError,
    /// 503 Service Unavailable.
    ServiceUnavailable,
    /// 429 Too Many Requests (send `Retry-After`).
    TooManyRequests,
}

impl FhirFailure {
    /// The status code to answer with.
    pub fn status(self) -> StatusCode {
        match self {
            FhirFailure::InternalServerError => StatusCode::INTERNAL_SERVER_ERROR,
            FhirFailure::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            FhirFailure::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn from_simulated(fail: SimulatedFailure) -> Option<Self> {
        match fail {
            SimulatedFailure::Fhir500 => Some(FhirFailure::InternalServerError),
            SimulatedFailure::Fhir503 => Some(FhirFailure::ServiceUnavailable),
            SimulatedFailure::Fhir429 => Some(FhirFailure::TooManyRequests),
            _ => None,
        }
    }
}

/// The authorization server's endpoint URLs (for discovery and the CapabilityStatement's `oauth-uris`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthEndpoints {
    /// The authorization endpoint (`…/auth/authorize`).
    pub authorize: Url,
    /// The token endpoint (`…/auth/token`).
    pub token: Url,
    /// The JWK Set of the id_token signing key (`…/auth/jwks`).
    pub jwks: Url,
    /// The introspection endpoint, RFC 7662 (`…/auth/introspect`).
    pub introspect: Url,
    /// The revocation endpoint, RFC 7009 (`…/auth/revoke`).
    pub revoke: Url,
    /// The EHR launch page (`…/`).
    pub launch_page: Url,
    /// The launcher that starts an EHR launch (`…/launcher`).
    pub launcher: Url,
}

/// A summary of a registered client, for start-up banners and the launch page.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientSummary {
    /// The client id.
    pub id: String,
    /// `public`, `confidential-symmetric` or `confidential-asymmetric`.
    pub kind: &'static str,
    /// The registered redirect URIs.
    pub redirect_uris: Vec<Url>,
    /// The EHR-launch URL, if registered.
    pub launch_uri: Option<Url>,
}

/// The authorization server; cheap to clone.
#[derive(Clone)]
pub struct AuthServer {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    base: Url,
    endpoints: AuthEndpoints,
    token_ttl: Duration,
    code_ttl: Duration,
    open_registration: bool,
    secure_cookies: bool,
    clients: RwLock<HashMap<String, Arc<RegisteredClient>>>,
    signing_key: tokio::sync::OnceCell<Arc<keys::SigningKey>>,
    http: reqwest::Client,
}

impl AuthServer {
    /// Creates the authorization server over `store` for the FHIR base `fhir_base`: creates its tables and
    /// registers `smart-fhir-demo` and `config.clients`.
    pub fn new(store: Store, fhir_base: Url, config: &SandboxConfig) -> Result<Self, SandboxError> {
        records::create_tables(&store)?;
        records::delete_expired(&store)?;
        let endpoints = endpoints_for(&fhir_base)?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| SandboxError::Internal {
                reason: format!("the HTTP client could not be built: {e}"),
            })?;
        let server = Self {
            inner: Arc::new(Inner {
                store,
                secure_cookies: fhir_base.scheme() == "https",
                base: fhir_base,
                endpoints,
                token_ttl: config.token_ttl,
                code_ttl: config.code_ttl,
                open_registration: config.open_registration,
                clients: RwLock::new(HashMap::new()),
                signing_key: tokio::sync::OnceCell::new(),
                http,
            }),
        };
        server.register_client(ClientSpec::demo())?;
        for spec in &config.clients {
            server.register_client(spec.clone())?;
        }
        Ok(server)
    }

    /// Registers (or replaces) a client at run time, e.g. an app test's port-0 redirect URI.
    /// Fails when its `jwks=FILE` cannot be read.
    pub fn register_client(&self, spec: ClientSpec) -> Result<(), SandboxError> {
        self.insert_client(RegisteredClient::from_spec(spec)?)
    }

    fn insert_client(&self, client: RegisteredClient) -> Result<(), SandboxError> {
        let mut clients = self.inner.clients.write().map_err(|_| SandboxError::Internal {
            reason: "the client registry lock is poisoned".to_owned(),
        })?;
        clients.insert(client.id.clone(), Arc::new(client));
        Ok(())
    }

    /// The registered clients, sorted by id.
    pub fn clients(&self) -> Vec<ClientSummary> {
        let Ok(clients) = self.inner.clients.read() else {
            return Vec::new();
        };
        let mut list: Vec<ClientSummary> = clients
            .values()
            .map(|c| ClientSummary {
                id: c.id.clone(),
                kind: match c.kind() {
                    clients::ClientKind::Public => "public",
                    clients::ClientKind::Symmetric => "confidential-symmetric",
                    clients::ClientKind::Asymmetric => "confidential-asymmetric",
                },
                redirect_uris: c.redirect_uris.clone(),
                launch_uri: c.launch_uri.clone(),
            })
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    /// The endpoint URLs.
    pub fn endpoints(&self) -> AuthEndpoints {
        self.inner.endpoints.clone()
    }

    /// The FHIR base URL (the `aud` clients must send, the `iss` of id_tokens and EHR launches).
    pub fn fhir_base(&self) -> &Url {
        &self.inner.base
    }

    /// Validates the request's bearer token (`Bearer` in any case) and returns what it allows.
    pub fn check_bearer(&self, headers: &HeaderMap) -> Result<AccessGrant, BearerError> {
        let value = headers.get(header::AUTHORIZATION).ok_or(BearerError::Missing)?;
        let value = value.to_str().map_err(|_| BearerError::Malformed)?;
        let (scheme, token) = value.trim().split_once(' ').ok_or(BearerError::Malformed)?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(BearerError::Malformed);
        }
        let row = records::find_token(&self.inner.store, &records::hash_secret(token))?
            .ok_or(BearerError::Unknown)?;
        if row.kind != records::TokenKind::Access {
            return Err(BearerError::Unknown);
        }
        if row.state != records::TokenState::Active {
            return Err(BearerError::Revoked);
        }
        if row.expires_at <= records::now_ms() || row.grant.fail == Some(SimulatedFailure::ExpiredToken) {
            return Err(BearerError::Expired);
        }
        let grant = row.grant;
        Ok(AccessGrant {
            scopes: ScopeSet::parse_lenient(&grant.scope),
            client_id: grant.client_id,
            patient: grant.patient,
            encounter: grant.encounter,
            fhir_user: grant.fhir_user,
            simulated_failure: grant.fail.and_then(FhirFailure::from_simulated),
        })
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Runs database work on the blocking pool, so SQLite never stalls the async threads.
    async fn db<T, F>(&self, work: F) -> Result<T, SandboxError>
    where
        F: FnOnce(&Store) -> Result<T, SandboxError> + Send + 'static,
        T: Send + 'static,
    {
        self.inner.store.blocking(work).await
    }

    fn client(&self, id: &str) -> Option<Arc<RegisteredClient>> {
        self.inner.clients.read().ok()?.get(id).cloned()
    }

    /// Loads (or, on a new database, generates) the token signing key in the background now, so that the first
    /// token does not wait for it: RSA key generation takes a few hundred milliseconds in a release build. The
    /// `smart-fhir` binary calls it at start; tests that never ask for a token need not pay for it. A failure is
    /// logged here and reported again to the first token request.
    pub fn warm_up(&self) {
        let auth = self.clone();
        tokio::spawn(async move {
            if let Err(e) = auth.signing_key().await {
                tracing::warn!(error = %e, "the signing key could not be prepared");
            }
        });
    }

    /// The signing key, loaded or generated on first use (off the async threads: RSA generation is slow).
    async fn signing_key(&self) -> Result<Arc<keys::SigningKey>, SandboxError> {
        self.inner
            .signing_key
            .get_or_try_init(|| async {
                let store = self.inner.store.clone();
                tokio::task::spawn_blocking(move || keys::SigningKey::load_or_generate(&store).map(Arc::new))
                    .await
                    .map_err(|e| SandboxError::Internal {
                        reason: format!("the key task failed: {e}"),
                    })?
            })
            .await
            .cloned()
    }
}

fn endpoints_for(base: &Url) -> Result<AuthEndpoints, SandboxError> {
    let trimmed = base.as_str().trim_end_matches('/');
    let root = trimmed
        .strip_suffix("/fhir")
        .map(str::to_owned)
        .unwrap_or_else(|| base.origin().ascii_serialization());
    let url = |path: &str| {
        Url::parse(&format!("{root}{path}")).map_err(|e| SandboxError::InvalidConfig {
            key: "public_base_url".to_owned(),
            reason: format!("`{base}` does not make endpoint URLs ({e})"),
        })
    };
    Ok(AuthEndpoints {
        authorize: url("/auth/authorize")?,
        token: url("/auth/token")?,
        jwks: url("/auth/jwks")?,
        introspect: url("/auth/introspect")?,
        revoke: url("/auth/revoke")?,
        launch_page: url("/")?,
        launcher: url("/launcher")?,
    })
}

/// The authorization server's routes.
pub(crate) fn router() -> Router<SandboxState> {
    Router::new()
        .route("/", get(launcher::home))
        .route("/launcher", get(launcher::launch))
        .route(
            "/fhir/.well-known/smart-configuration",
            get(discovery::smart_configuration),
        )
        .route("/fhir/.well-known/smart-style.json", get(discovery::smart_style))
        .route(
            "/auth/authorize",
            get(authorize::authorize).post(authorize::authorize),
        )
        .route("/auth/authorize/step", get(authorize::step))
        .route("/auth/authorize/login", post(authorize::login))
        .route("/auth/authorize/patient", post(authorize::choose_patient))
        .route("/auth/authorize/encounter", post(authorize::choose_encounter))
        .route("/auth/authorize/consent", post(authorize::consent))
        .route("/auth/token", post(token::token))
        .route("/auth/jwks", get(token::jwks))
        .route("/auth/introspect", post(introspect::introspect))
        .route("/auth/revoke", post(introspect::revoke))
        // The pages carry CSRF tokens and the consent decision: never cached, never framed (clickjacking).
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http: https:; frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
}

/// The id of the demo client, re-exported for banners.
pub const DEMO_CLIENT: &str = DEMO_CLIENT_ID;
