#![doc = include_str!("../README.md")]

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
pub mod oauth_error;
pub mod openid;
pub mod pkce;
mod recording;
pub mod refresh_coordinator;
pub mod refreshing;
pub mod revocation;
pub mod scope;
pub mod secret;
pub mod token;
pub mod token_source;
pub mod trace;
pub mod well_known;

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
pub use oauth_error::OAuthErrorBody;
pub use openid::{OpenIdConfiguration, TrustedIssuer};
pub use refresh_coordinator::RefreshCoordinator;
pub use refreshing::{Clock, RefreshingToken};
pub use revocation::{RevocableToken, Revocation};
pub use scope::{Permissions, ResourceScope, Scope, ScopeComparison, ScopeContext, ScopeSet};
pub use secret::{
    AccessToken, AuthorizationCode, ClientId, ClientSecret, CsrfState, IdToken, Nonce, PkceVerifier,
    RefreshToken,
};
pub use token::{TokenClient, TokenResponse, TokenSet};
pub use token_source::{BoxFuture, StaticToken, TokenSource};
pub use trace::{LaunchTrace, Step, TraceStep};
pub use url::Url;
pub use well_known::SmartConfigurationDocument;
