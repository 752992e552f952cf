#![doc = include_str!("../README.md")]

// The map, by layer from the bottom up: a module uses only modules of the groups above it (checked by reading
// the `use crate::` lines; no cycles).

// Plain data: the one error type, secrets as newtypes, the wire documents as the EHR writes them
// (.well-known/smart-configuration, the OAuth error body, the launch context) and a launch trace's records.
pub mod context;
pub mod error;
pub mod oauth_error;
pub mod secret;
pub mod trace;
pub mod well_known;

// Building blocks: scopes, PKCE, client authentication, HTTP for OAuth calls, where a bearer token comes from.
pub mod client_auth;
mod http;
pub mod pkce;
pub mod scope;
pub mod token_source;

// Finding the server's endpoints and talking to its token endpoint.
pub mod discovery;
pub mod token;

// The requests built on them: authorize, OpenID issuer and keys, introspection, revocation, Backend Services,
// and one refresh at a time across processes.
pub mod authorize;
pub mod backend;
pub mod introspection;
pub mod openid;
pub mod refresh_coordinator;
pub mod revocation;

// id_token verification; a launch's tokens as a source that refreshes ahead of expiry.
pub mod id_token;
pub mod refreshing;

// The redirect back (the callback checks) and the trace steps recorded from each step.
pub mod callback;
mod recording;

// The facade tying the steps together.
pub mod client;

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
