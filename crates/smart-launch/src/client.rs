//! [`SmartClient`]: discovery, authorize, callback, refresh, revocation and introspection tied
//! together for one registered app.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::jwk::JwkSet;
use url::Url;

use crate::authorize::{AuthorizeParams, AuthorizeRequest, PendingLaunch, build_authorize_request};
use crate::callback::{CallbackParams, CompletedLaunch};
use crate::client_auth::ClientAuth;
use crate::context::LaunchContext;
use crate::discovery::{Discovery, SmartConfiguration, normalize_base};
use crate::error::Error;
use crate::http;
use crate::id_token::{IdTokenClaims, IdTokenExpectations, IdTokenVerifier, unverified_issuer};
use crate::introspection::Introspection;
use crate::openid::OpenIdDiscovery;
use crate::recording::{self, failed, record};
use crate::refreshing::{Clock, RefreshingToken};
use crate::revocation::RevocableToken;
use crate::scope::ScopeSet;
use crate::secret::AuthorizationCode;
use crate::secret::{AccessToken, ClientId, IdToken};
use crate::token::{TokenClient, TokenResponse, TokenSet};
use crate::trace::{LaunchTrace, Step, TraceField, TraceValue};

/// The app's registration and the client's policies.
#[derive(Clone, Debug)]
pub struct SmartClientConfig {
    /// The client id registered with the EHR.
    pub client_id: ClientId,
    /// The registered redirect URI (matched exactly by the server).
    pub redirect_uri: Url,
    /// The scopes to request.
    pub scope: ScopeSet,
    /// How the client authenticates at the token endpoint.
    pub client_auth: ClientAuth,
    /// The FHIR bases an EHR launch may come from. An EHR launch naming any other `iss` is refused
    /// before any request is made. (Standalone launches use the base the app was configured with.)
    pub allowed_issuers: Vec<Url>,
    /// How long a pending launch stays valid (default 10 minutes).
    pub pending_launch_ttl: Duration,
    /// How long discovery results are cached (default 1 hour).
    pub discovery_ttl: Duration,
    /// How long before expiry tokens are refreshed (default 60 seconds).
    pub refresh_ahead: Duration,
    /// Timeout of each HTTP request (default 30 seconds).
    pub http_timeout: Duration,
    /// Send the authorize request as a POST form when the server supports `authorize-post`.
    pub prefer_authorize_post: bool,
    /// Allow plain `http` for EHR endpoints on other hosts than this machine (discovery,
    /// authorize, token, keys, FHIR). Off by default: SMART requires TLS. Loopback is always allowed.
    pub allow_insecure_http: bool,
    /// Shares each refresh with the other processes holding the same tokens (app instances behind a load
    /// balancer), so a rotated refresh token is never sent twice. `None`: refreshes are single-flight within
    /// one [`RefreshingToken`] only.
    pub refresh_coordinator: Option<Arc<dyn crate::RefreshCoordinator>>,
}

impl SmartClientConfig {
    /// A public client (no secret) with the default policies and an empty issuer allow-list.
    pub fn new(client_id: impl Into<ClientId>, redirect_uri: Url, scope: ScopeSet) -> Self {
        SmartClientConfig {
            client_id: client_id.into(),
            redirect_uri,
            scope,
            client_auth: ClientAuth::None,
            allowed_issuers: Vec::new(),
            pending_launch_ttl: Duration::from_secs(600),
            discovery_ttl: Duration::from_secs(3600),
            refresh_ahead: Duration::from_secs(60),
            http_timeout: Duration::from_secs(30),
            prefer_authorize_post: false,
            allow_insecure_http: false,
            refresh_coordinator: None,
        }
    }

    /// Set the client authentication.
    pub fn with_client_auth(mut self, auth: ClientAuth) -> Self {
        self.client_auth = auth;
        self
    }

    /// Allow EHR launches from `issuer`.
    pub fn allow_issuer(mut self, issuer: Url) -> Self {
        self.allowed_issuers.push(issuer);
        self
    }
}

/// A SMART App Launch client for one registered app. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SmartClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: SmartClientConfig,
    discovery: Discovery,
    openid: OpenIdDiscovery,
    tokens: TokenClient,
    id_tokens: IdTokenVerifier,
}

impl SmartClient {
    /// A client for `config`. Its HTTP client never follows redirects.
    pub fn new(config: SmartClientConfig) -> Result<Self, Error> {
        let http = http::oauth_client(config.http_timeout)?;
        let inner = Inner {
            discovery: Discovery::with_http(http.clone(), config.discovery_ttl, config.allow_insecure_http),
            openid: OpenIdDiscovery::with_http(
                http.clone(),
                config.discovery_ttl,
                config.allow_insecure_http,
            ),
            tokens: TokenClient {
                http: http.clone(),
                client_id: config.client_id.clone(),
                auth: config.client_auth.clone(),
            },
            id_tokens: IdTokenVerifier::with_http(http),
            config,
        };
        Ok(SmartClient {
            inner: Arc::new(inner),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SmartClientConfig {
        &self.inner.config
    }

    /// The token-endpoint client (for direct refresh, revocation and introspection calls).
    pub fn token_client(&self) -> &TokenClient {
        &self.inner.tokens
    }

    /// True when `issuer` is in the allow-list (compared without query, fragment or trailing slash).
    pub fn is_issuer_allowed(&self, issuer: &str) -> bool {
        let Ok(url) = Url::parse(issuer) else {
            return false;
        };
        let wanted = normalize_base(&url);
        self.inner
            .config
            .allowed_issuers
            .iter()
            .any(|allowed| normalize_base(allowed) == wanted)
    }

    /// The SMART configuration of `fhir_base` (cached).
    pub async fn discover(&self, fhir_base: &Url) -> Result<Arc<SmartConfiguration>, Error> {
        self.inner.discovery.discover(fhir_base).await
    }

    /// Start a standalone launch against `fhir_base`: the URL to send the browser to, and the
    /// pending launch to store server-side under its state.
    pub async fn standalone_launch(
        &self,
        fhir_base: &Url,
    ) -> Result<(AuthorizeRequest, PendingLaunch), Error> {
        self.standalone_launch_recorded(fhir_base, None).await
    }

    /// [`SmartClient::standalone_launch`], adding discovery and step A to `trace` (or the failed
    /// step, with its reason).
    pub async fn standalone_launch_traced(
        &self,
        fhir_base: &Url,
        trace: &mut LaunchTrace,
    ) -> Result<(AuthorizeRequest, PendingLaunch), Error> {
        self.standalone_launch_recorded(fhir_base, Some(trace)).await
    }

    async fn standalone_launch_recorded(
        &self,
        fhir_base: &Url,
        mut trace: Option<&mut LaunchTrace>,
    ) -> Result<(AuthorizeRequest, PendingLaunch), Error> {
        let config = self.discover_recorded(fhir_base, &mut trace).await?;
        Ok(self.authorize(&config, None, fhir_base.as_str(), &mut trace))
    }

    /// Start an EHR launch from the `iss` and `launch` the EHR passed. `iss` is checked against the
    /// allow-list before anything is fetched from it.
    pub async fn ehr_launch(
        &self,
        iss: &str,
        launch: &str,
    ) -> Result<(AuthorizeRequest, PendingLaunch), Error> {
        self.ehr_launch_recorded(iss, launch, None).await
    }

    /// [`SmartClient::ehr_launch`], adding discovery and step A to `trace` (or the failed step,
    /// with its reason; a refused `iss` fails discovery).
    pub async fn ehr_launch_traced(
        &self,
        iss: &str,
        launch: &str,
        trace: &mut LaunchTrace,
    ) -> Result<(AuthorizeRequest, PendingLaunch), Error> {
        self.ehr_launch_recorded(iss, launch, Some(trace)).await
    }

    async fn ehr_launch_recorded(
        &self,
        iss: &str,
        launch: &str,
        mut trace: Option<&mut LaunchTrace>,
    ) -> Result<(AuthorizeRequest, PendingLaunch), Error> {
        let fhir_base = self
            .check_ehr_launch(iss, launch)
            .map_err(|e| failed(&mut trace, Step::Discovery, e))?;
        let config = self.discover_recorded(&fhir_base, &mut trace).await?;
        Ok(self.authorize(&config, Some(launch), iss, &mut trace))
    }

    /// The FHIR base of an EHR launch, when `iss` is allowed and `launch` is not empty.
    fn check_ehr_launch(&self, iss: &str, launch: &str) -> Result<Url, Error> {
        if !self.is_issuer_allowed(iss) {
            return Err(Error::IssuerNotAllowed {
                issuer: iss.to_owned(),
            });
        }
        let fhir_base = Url::parse(iss).map_err(|e| Error::InvalidUrl {
            url: iss.to_owned(),
            reason: e.to_string(),
        })?;
        if launch.is_empty() {
            return Err(Error::MissingParameter { parameter: "launch" });
        }
        Ok(fhir_base)
    }

    async fn discover_recorded(
        &self,
        fhir_base: &Url,
        trace: &mut Option<&mut LaunchTrace>,
    ) -> Result<Arc<SmartConfiguration>, Error> {
        match self.discover(fhir_base).await {
            Ok(config) => {
                record(trace, || recording::discovery(&config));
                Ok(config)
            }
            Err(e) => Err(failed(trace, Step::Discovery, e)),
        }
    }

    fn authorize(
        &self,
        config: &SmartConfiguration,
        launch: Option<&str>,
        aud: &str,
        trace: &mut Option<&mut LaunchTrace>,
    ) -> (AuthorizeRequest, PendingLaunch) {
        let c = &self.inner.config;
        let params = AuthorizeParams {
            client_id: &c.client_id,
            redirect_uri: &c.redirect_uri,
            scope: &c.scope,
            launch,
            aud: Some(aud),
            ttl: c.pending_launch_ttl,
            prefer_post: c.prefer_authorize_post,
        };
        let (request, pending) = build_authorize_request(config, &params, Utc::now());
        record(trace, || recording::authorize(&request));
        (request, pending)
    }

    /// Finish a launch from the full redirect URL. See [`SmartClient::complete`].
    pub async fn complete_from_url(
        &self,
        pending: PendingLaunch,
        redirect: &Url,
    ) -> Result<CompletedLaunch, Error> {
        self.complete(pending, CallbackParams::from_url(redirect)).await
    }

    /// Finish a launch: check the redirect against the pending launch (taken by value, so it is
    /// used once), exchange the code, verify the id_token, and type the context.
    ///
    /// In order: the redirect ([`CallbackParams::verify`]); the code exchange; when `openid` was
    /// requested and granted, an id_token must have come ([`Error::MissingIdToken`]); its issuer and
    /// keys are resolved ([`OpenIdDiscovery::trusted_issuer`]) and it is verified (signature, exact
    /// `iss`, `aud`, `azp`, `exp`, `nonce`).
    pub async fn complete(
        &self,
        pending: PendingLaunch,
        params: CallbackParams,
    ) -> Result<CompletedLaunch, Error> {
        self.complete_recorded(pending, params, None).await
    }

    /// [`SmartClient::complete`], adding steps B, C and D to `trace`: the redirect's parameters
    /// and checks, the token request as sent, the token response and the id_token's checks — or
    /// the steps up to the one that failed, with its reason.
    pub async fn complete_traced(
        &self,
        pending: PendingLaunch,
        params: CallbackParams,
        trace: &mut LaunchTrace,
    ) -> Result<CompletedLaunch, Error> {
        self.complete_recorded(pending, params, Some(trace)).await
    }

    /// Steps B to D in order: the redirect checked against the pending launch, the code exchanged, the
    /// id_token verified; each step is recorded when `trace` is given, and the first failure ends the launch.
    async fn complete_recorded(
        &self,
        pending: PendingLaunch,
        params: CallbackParams,
        mut trace: Option<&mut LaunchTrace>,
    ) -> Result<CompletedLaunch, Error> {
        let code = checked_callback(&pending, params, &mut trace)?;
        let response = self.exchange_recorded(&pending, &code, &mut trace).await?;
        let tokens = TokenSet::from_response(
            &response,
            pending.requested_scope(),
            pending.fhir_base(),
            pending.token_endpoint(),
            Utc::now(),
        );
        let id_token_claims = self
            .checked_id_token(&pending, &response, &tokens, &mut trace)
            .await?;
        let fhir_user = id_token_claims
            .as_ref()
            .and_then(|c| c.fhir_user(pending.fhir_base()));
        let scope_comparison = pending.requested_scope().compare_granted(&tokens.scope);
        Ok(CompletedLaunch {
            context: LaunchContext::from_response(&response),
            tokens,
            id_token_claims,
            fhir_user,
            scope_comparison,
        })
    }

    /// Step C: the code exchanged at the token endpoint, the request as sent recorded (with its failure, if any).
    async fn exchange_recorded(
        &self,
        pending: &PendingLaunch,
        code: &AuthorizationCode,
        trace: &mut Option<&mut LaunchTrace>,
    ) -> Result<TokenResponse, Error> {
        let mut sent = None;
        let exchanged = self
            .inner
            .tokens
            .exchange_code_recorded(
                pending.token_endpoint(),
                code,
                pending.redirect_uri(),
                pending.pkce_verifier(),
                trace.is_some().then_some(&mut sent),
            )
            .await;
        let request_recorded = sent.is_some();
        if let Some(mut step) = sent {
            if let Err(e) = &exchanged {
                step.failure = Some(e.reason());
            }
            record(trace, || step);
        }
        match exchanged {
            Ok(response) => Ok(response),
            Err(e) if request_recorded => Err(e),
            Err(e) => Err(failed(trace, Step::TokenRequest, e)),
        }
    }

    /// Step D: the token response recorded and its id_token verified: required when `openid` was both asked
    /// for and granted, checked whenever one was sent.
    async fn checked_id_token(
        &self,
        pending: &PendingLaunch,
        response: &TokenResponse,
        tokens: &TokenSet,
        trace: &mut Option<&mut LaunchTrace>,
    ) -> Result<Option<IdTokenClaims>, Error> {
        let mut answer = trace
            .is_some()
            .then(|| recording::token_response(response, tokens, pending.requested_scope()));
        let openid_granted = pending.requested_scope().has_openid() && tokens.scope.has_openid();
        let id_token_claims = match &tokens.id_token {
            None if openid_granted => Err(Error::MissingIdToken),
            None => Ok(None),
            Some(id_token) => {
                let verified = self.verify_id_token(id_token, pending).await;
                if let Some(step) = answer.as_mut() {
                    let claims = match TraceField::jwt("id_token", id_token.secret()).value {
                        TraceValue::Jwt { claims, .. } => Some(claims),
                        _ => None,
                    };
                    recording::id_token_checks(
                        step,
                        claims.as_ref(),
                        pending.nonce().is_some(),
                        verified.as_ref(),
                    );
                }
                verified.map(Some)
            }
        };
        if let Some(mut step) = answer {
            if let Err(e) = &id_token_claims {
                step.failure.get_or_insert_with(|| e.reason());
            }
            record(trace, || step);
        }
        id_token_claims
    }

    /// Verify a launch's id_token against the issuer and keys its EHR vouches for.
    async fn verify_id_token(
        &self,
        id_token: &IdToken,
        pending: &PendingLaunch,
    ) -> Result<IdTokenClaims, Error> {
        let config = self.discover(pending.fhir_base()).await?;
        let token_iss = unverified_issuer(id_token)?;
        let trusted = self.inner.openid.trusted_issuer(&config, &token_iss).await?;
        let expect = IdTokenExpectations {
            issuer: &trusted.issuer,
            client_id: pending.client_id(),
            nonce: pending.nonce(),
        };
        self.inner
            .id_tokens
            .verify(id_token, &trusted.jwks_uri, &expect)
            .await
    }

    /// Refresh a token set now (the old refresh token is kept when the server sends none).
    pub async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet, Error> {
        self.inner.tokens.refresh(tokens).await
    }

    /// A [`crate::TokenSource`] over a launch's tokens: refreshes ahead of expiry, single-flight.
    pub fn token_source(&self, tokens: TokenSet) -> Arc<RefreshingToken> {
        self.token_source_with_clock(tokens, Arc::new(Utc::now))
    }

    /// [`SmartClient::token_source`] reading the time from `clock` (tests move time on without
    /// sleeping).
    pub fn token_source_with_clock(&self, tokens: TokenSet, clock: Clock) -> Arc<RefreshingToken> {
        let source = RefreshingToken::with_clock(
            self.inner.tokens.clone(),
            tokens,
            self.inner.config.refresh_ahead,
            clock,
        );
        Arc::new(match &self.inner.config.refresh_coordinator {
            Some(coordinator) => source.with_coordinator(coordinator.clone()),
            None => source,
        })
    }

    /// Revoke a launch's grant at logout: the refresh token when there is one, else the access
    /// token. Fails with [`Error::EndpointMissing`] when the server offers no revocation endpoint.
    pub async fn revoke(&self, tokens: &TokenSet) -> Result<(), Error> {
        let config = self.discover(&tokens.fhir_base).await?;
        let endpoint = config
            .revocation_endpoint
            .as_ref()
            .ok_or_else(|| Error::EndpointMissing {
                issuer: tokens.fhir_base.to_string(),
                endpoint: "revocation",
            })?;
        let token = match &tokens.refresh_token {
            Some(refresh) => RevocableToken::Refresh(refresh),
            None => RevocableToken::Access(&tokens.access_token),
        };
        self.inner.tokens.revoke(endpoint, token).await
    }

    /// Introspect an access token at the server of `fhir_base`.
    pub async fn introspect(&self, fhir_base: &Url, token: &AccessToken) -> Result<Introspection, Error> {
        let config = self.discover(fhir_base).await?;
        let endpoint = config
            .introspection_endpoint
            .as_ref()
            .ok_or_else(|| Error::EndpointMissing {
                issuer: fhir_base.to_string(),
                endpoint: "introspection",
            })?;
        self.inner.tokens.introspect(endpoint, token).await
    }

    /// The public JWKS to publish when the client uses `private_key_jwt`.
    pub fn public_jwks(&self) -> Option<JwkSet> {
        self.inner.config.client_auth.public_jwks()
    }
}

/// Step B: the redirect's parameters checked against the pending launch, recorded with what was received when
/// tracing; the authorization code when they hold.
fn checked_callback(
    pending: &PendingLaunch,
    params: CallbackParams,
    trace: &mut Option<&mut LaunchTrace>,
) -> Result<AuthorizationCode, Error> {
    let now = Utc::now();
    let fields = trace.is_some().then(|| params.trace_fields());
    let verified = params.verify(pending, now);
    if let Some(received) = fields {
        record(trace, || {
            let mut step = recording::callback(pending, now, &verified.as_ref().map(|_| ()));
            step.received = received;
            step
        });
    }
    verified
}
