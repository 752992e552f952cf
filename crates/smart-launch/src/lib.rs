//! # smart-launch
//!
//! A client for [SMART App Launch 2.2](https://hl7.org/fhir/smart-app-launch/): discovery,
//! the authorize request (standalone and EHR launch, PKCE S256, state, nonce), the callback and
//! code exchange, refresh, client authentication (public, client secret, `private_key_jwt`),
//! id_token verification, SMART v1/v2 scopes, the launch context, and backend services. It knows
//! nothing about web frameworks: the caller stores the [`PendingLaunch`] server-side, sends the
//! browser to [`AuthorizeRequest::url`], and hands back the redirect URL.
//!
//! ```no_run
//! use smart_launch::{ScopeSet, SmartClient, SmartClientConfig};
//! use url::Url;
//!
//! # async fn run() -> Result<(), smart_launch::Error> {
//! let config = SmartClientConfig::new(
//!     "my-app",
//!     Url::parse("http://localhost:8000/fhir-app/").unwrap(),
//!     "launch/patient openid fhirUser patient/Patient.read".parse()?,
//! );
//! let client = SmartClient::new(config)?;
//! let fhir_base = Url::parse("https://ehr.example/fhir").unwrap();
//! let (request, pending) = client.standalone_launch(&fhir_base).await?;
//! println!("Open {}", request.url);
//! // … the browser comes back to the redirect URI …
//! # let redirect = Url::parse("http://localhost:8000/fhir-app/?code=c&state=s").unwrap();
//! let launch = client.complete_from_url(pending, &redirect).await?;
//! println!("patient {:?}, granted {}", launch.context.patient, launch.tokens.scope);
//! # Ok(()) }
//! ```
//!
//! Scopes can be checked without any network:
//!
//! ```
//! use smart_launch::scope::{Permissions, ScopeContext, ScopeSet};
//!
//! let requested: ScopeSet = "launch/patient openid fhirUser patient/Observation.read".parse()?;
//! let granted: ScopeSet = "launch/patient openid fhirUser patient/Observation.rs".parse()?;
//! assert!(requested.compare_granted(&granted).all_granted());
//! assert!(granted.permits(ScopeContext::Patient, "Observation", Permissions::SEARCH));
//! # Ok::<(), smart_launch::Error>(())
//! ```

pub mod authorize;
pub mod backend;
pub mod callback;
pub mod client;
pub mod client_auth;
pub mod context;
pub mod discovery;
pub mod error;
mod http;
pub mod id_token;
pub mod introspection;
pub mod openid;
pub mod pkce;
mod recording;
pub mod refreshing;
pub mod revocation;
pub mod scope;
pub mod secret;
pub mod token;
pub mod token_source;
pub mod trace;

pub use authorize::{AuthorizePost, AuthorizeRequest, PendingLaunch};
pub use backend::BackendToken;
pub use callback::{CallbackParams, CompletedLaunch, PendingLaunches};
pub use client::{SmartClient, SmartClientConfig};
pub use client_auth::{ClientAuth, SigningAlgorithm, SigningKey};
pub use context::{FhirContextItem, LaunchContext};
pub use discovery::{Discovery, SmartConfiguration};
pub use error::{Error, IdTokenError, Result};
pub use http::{is_loopback, require_secure};
pub use id_token::{FhirUser, IdTokenClaims, IdTokenVerifier};
pub use introspection::Introspection;
pub use jsonwebtoken::jwk::{Jwk, JwkSet};
pub use openid::{OpenIdConfiguration, TrustedIssuer};
pub use refreshing::{Clock, RefreshingToken};
pub use revocation::RevocableToken;
pub use scope::{Permissions, ResourceScope, Scope, ScopeComparison, ScopeContext, ScopeSet};
pub use secret::{
    AccessToken, AuthorizationCode, ClientId, ClientSecret, CsrfState, IdToken, Nonce, PkceVerifier,
    RefreshToken,
};
pub use token::{TokenClient, TokenResponse, TokenSet};
pub use token_source::{BoxFuture, StaticToken, TokenSource};
pub use trace::{LaunchTrace, Step, TraceStep};
pub use url::Url;
