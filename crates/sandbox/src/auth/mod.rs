//! The SMART App Launch 2.2 authorization server: discovery, `/authorize` with its login, patient, encounter and
//! consent pages, the token endpoint (authorization_code, refresh_token, client_credentials), JWKS,
//! introspection, revocation and the EHR launcher.
//!
//! Its routes live under `/auth/…` (plus `/`, `/launcher` and `{base}/.well-known/smart-configuration`); its
//! state lives in `auth_*` tables of the sandbox database. Access tokens are opaque random strings stored as
//! SHA-256 hashes and checked on every FHIR request by [`AuthServer::check_bearer`].

mod authorize;
mod clients;
mod cors;
mod discovery;
mod introspect;
mod keys;
mod launcher;
mod oauth_error;
pub(crate) mod pages;
mod params;
mod records;
mod retention;
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
    persona::{CERNER_TENANT, Persona},
    store::Store,
};
use clients::RegisteredClient;
pub(crate) use cors::cors_layer;
pub use retention::{
    AuthLimits, MAX_LAUNCHES, MAX_LAUNCHES_PER_CLIENT, MAX_PENDING, MAX_PENDING_PER_CLIENT, PURGE_INTERVAL,
};

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
    /// The OpenID Connect issuer: the `iss` of id_tokens, whose `.well-known/openid-configuration` the server
    /// publishes (the FHIR base for the `smart` persona; Cerner's `…/tenants/{t}/oidc/idsps/{t}/`; Epic's
    /// `…/oauth2`).
    pub issuer: Url,
    /// `{issuer}/.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §4).
    pub openid_configuration: Url,
}

/// Where a persona's authorization endpoints live, as paths on their host (the routes the router mounts).
struct Layout {
    authorize: String,
    token: String,
    jwks: String,
    introspect: String,
    revoke: String,
    issuer: String,
}

impl Layout {
    fn of(persona: Persona) -> Self {
        match persona {
            Persona::Smart => Layout {
                authorize: "/auth/authorize".into(),
                token: "/auth/token".into(),
                jwks: "/auth/jwks".into(),
                introspect: "/auth/introspect".into(),
                revoke: "/auth/revoke".into(),
                issuer: persona.fhir_path(),
            },
            // Cerner's authorization server, `https://authorization.cerner.com`, a host of its own, with tenant
            // paths: `R4_WELL_KNOWN` in cerner/fhir.cerner.com
            // `lib/resources/example_json/r4_examples_capabilitystatement.rb` (authorize, token, revoke,
            // `/tokeninfo`, `/jwk`) and `content/authorization/openid-connect.md` (the issuer
            // `…/tenants/{t}/oidc/idsps/{t}/`, trailing slash included).
            Persona::Cerner => {
                let tenant = format!("/tenants/{CERNER_TENANT}");
                let smart = format!("{tenant}/protocols/oauth2/profiles/smart-v1");
                Layout {
                    authorize: format!("{smart}/personas/provider/authorize"),
                    token: format!("{smart}/token"),
                    jwks: "/jwk".into(),
                    introspect: "/tokeninfo".into(),
                    revoke: format!("{smart}/token/revoke"),
                    issuer: format!("{tenant}/oidc/idsps/{CERNER_TENANT}/"),
                }
            }
            // Epic's `https://fhir.epic.com/interconnect-fhir-oauth/oauth2/…` endpoints and key set, from its
            // published `.well-known/smart-configuration` and `openid-configuration` (linked from fhir.epic.com's
            // OAuth 2.0 specification).
            Persona::Epic => Layout {
                authorize: "/interconnect-fhir-oauth/oauth2/authorize".into(),
                token: "/interconnect-fhir-oauth/oauth2/token".into(),
                jwks: "/interconnect-fhir-oauth/api/epic/2019/Security/Open/PublicKeys/530027/OIDC".into(),
                introspect: "/interconnect-fhir-oauth/oauth2/introspect".into(),
                revoke: "/interconnect-fhir-oauth/oauth2/revoke".into(),
                issuer: "/interconnect-fhir-oauth/oauth2".into(),
            },
        }
    }
}

/// The path of `{issuer}/.well-known/openid-configuration` (the issuer's trailing slash removed first, as OpenID
/// Connect Discovery 1.0 §4 says).
fn openid_configuration_path(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
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
    persona: Persona,
    endpoints: AuthEndpoints,
    token_ttl: Duration,
    code_ttl: Duration,
    open_registration: bool,
    secure_cookies: bool,
    limits: AuthLimits,
    clients: RwLock<HashMap<String, Arc<RegisteredClient>>>,
    signing_key: tokio::sync::OnceCell<Arc<keys::IssuerKey>>,
    /// The key to store when the database has none (`SandboxConfig::issuer_key_pem`); `None`: generate one.
    given_key: Option<String>,
    http: reqwest::Client,
}

impl AuthServer {
    /// Creates the authorization server over `store` for the FHIR base `fhir_base`: creates its tables and
    /// registers `smart-fhir-demo` and `config.clients`. Its endpoints are on the FHIR base's host, except for a
    /// persona with an authorization host of its own (Cerner): see [`AuthServer::with_auth_origin`].
    pub fn new(store: Store, fhir_base: Url, config: &SandboxConfig) -> Result<Self, SandboxError> {
        Self::with_auth_origin(store, fhir_base, None, config)
    }

    /// As [`AuthServer::new`], with the authorization endpoints on `auth_origin` (`http://host:port`) when the
    /// persona splits the authorization host from the FHIR host.
    pub fn with_auth_origin(
        store: Store,
        fhir_base: Url,
        auth_origin: Option<Url>,
        config: &SandboxConfig,
    ) -> Result<Self, SandboxError> {
        records::create_tables(&store)?;
        retention::purge_expired(&store)?;
        let endpoints = endpoints_for(&fhir_base, config.persona, auth_origin.as_ref())?;
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
                persona: config.persona,
                endpoints,
                token_ttl: config.token_ttl,
                code_ttl: config.code_ttl,
                open_registration: config.open_registration,
                limits: config.auth_limits,
                clients: RwLock::new(HashMap::new()),
                signing_key: tokio::sync::OnceCell::new(),
                given_key: config.issuer_key_pem.clone(),
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

    /// The FHIR base URL (the `aud` clients must send, the `iss` of EHR launches).
    pub fn fhir_base(&self) -> &Url {
        &self.inner.base
    }

    /// The EHR this authorization server looks like.
    pub fn persona(&self) -> Persona {
        self.inner.persona
    }

    /// The origins (`scheme://host:port`) of every registered client's redirect URIs: the browser origins its
    /// token endpoint and FHIR API answer cross-origin requests from.
    pub fn registered_origins(&self) -> Vec<String> {
        let Ok(clients) = self.inner.clients.read() else {
            return Vec::new();
        };
        let mut origins: Vec<String> = clients
            .values()
            .flat_map(|c| c.redirect_uris.iter().chain(c.launch_uri.iter()))
            .map(|u| u.origin().ascii_serialization())
            .filter(|o| o != "null")
            .collect();
        origins.sort();
        origins.dedup();
        origins
    }

    /// True when a browser page at `origin` may call the token endpoint and the FHIR API: the origin of a
    /// registered redirect or launch URI, or, under open registration, any loopback origin.
    pub fn is_registered_origin(&self, origin: &str) -> bool {
        if self.inner.open_registration
            && let Ok(url) = Url::parse(origin)
            && authorize::is_loopback(&url)
        {
            return true;
        }
        self.registered_origins().iter().any(|o| o == origin)
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

    fn limits(&self) -> &AuthLimits {
        &self.inner.limits
    }

    /// Purges expired authorization rows every [`AuthLimits::purge_interval`] from now on, in a task that ends
    /// when the server is dropped. Call once, from within the runtime, when the sandbox starts.
    pub(crate) fn start_purge(&self) {
        retention::spawn_purge(Arc::downgrade(&self.inner), self.inner.limits.purge_interval);
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
    async fn signing_key(&self) -> Result<Arc<keys::IssuerKey>, SandboxError> {
        self.inner
            .signing_key
            .get_or_try_init(|| async {
                let (store, persona) = (self.inner.store.clone(), self.inner.persona);
                let given = self.inner.given_key.clone();
                store
                    .clone()
                    .blocking(move |_| {
                        keys::IssuerKey::load_or_generate(&store, persona, given.as_deref()).map(Arc::new)
                    })
                    .await
            })
            .await
            .cloned()
    }
}

fn endpoints_for(
    base: &Url,
    persona: Persona,
    auth_origin: Option<&Url>,
) -> Result<AuthEndpoints, SandboxError> {
    let trimmed = base.as_str().trim_end_matches('/');
    let root = trimmed
        .strip_suffix(&persona.fhir_path())
        .map(str::to_owned)
        .unwrap_or_else(|| base.origin().ascii_serialization());
    let auth_root = match auth_origin {
        Some(origin) if persona.splits_authorization_host() => {
            origin.as_str().trim_end_matches('/').to_owned()
        }
        _ => root.clone(),
    };
    let url = |root: &str, path: &str| {
        Url::parse(&format!("{root}{path}")).map_err(|e| SandboxError::InvalidConfig {
            key: "public_base_url".to_owned(),
            reason: format!("`{base}` does not make endpoint URLs ({e})"),
        })
    };
    let layout = Layout::of(persona);
    let issuer = if persona == Persona::Smart {
        Url::parse(trimmed).map_err(|e| SandboxError::InvalidConfig {
            key: "public_base_url".to_owned(),
            reason: format!("`{base}` is not a URL ({e})"),
        })?
    } else {
        url(&auth_root, &layout.issuer)?
    };
    let openid_configuration = url(
        issuer.as_str().trim_end_matches('/'),
        "/.well-known/openid-configuration",
    )?;
    Ok(AuthEndpoints {
        authorize: url(&auth_root, &layout.authorize)?,
        token: url(&auth_root, &layout.token)?,
        jwks: url(&auth_root, &layout.jwks)?,
        introspect: url(&auth_root, &layout.introspect)?,
        revoke: url(&auth_root, &layout.revoke)?,
        launch_page: url(&root, "/")?,
        launcher: url(&root, "/launcher")?,
        issuer,
        openid_configuration,
    })
}

/// The authorization server's routes for `persona` (its endpoints at that persona's paths; the sign-in pages
/// behind `/authorize` at `/auth/authorize/…` for every persona).
pub(crate) fn router(persona: Persona) -> Router<SandboxState> {
    let layout = Layout::of(persona);
    let fhir = persona.fhir_path();
    Router::new()
        .route("/", get(launcher::home))
        .route("/launcher", get(launcher::launch))
        .route(
            &format!("{fhir}/.well-known/smart-configuration"),
            get(discovery::smart_configuration),
        )
        .route(&format!("{fhir}/.well-known/smart-style.json"), get(discovery::smart_style))
        .route(
            &openid_configuration_path(&layout.issuer),
            get(discovery::openid_configuration),
        )
        .route(&layout.authorize, get(authorize::authorize).post(authorize::authorize))
        .route("/auth/authorize/step", get(authorize::step))
        .route("/auth/authorize/login", post(authorize::login))
        .route("/auth/authorize/patient", post(authorize::choose_patient))
        .route("/auth/authorize/encounter", post(authorize::choose_encounter))
        .route("/auth/authorize/consent", post(authorize::consent))
        .route(&layout.token, post(token::token))
        .route(&layout.jwks, get(token::jwks))
        .route(&layout.introspect, post(introspect::introspect))
        .route(&layout.revoke, post(introspect::revoke))
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
