//! # smart-launch
//!
//! A client for [SMART App Launch 2.2](https://hl7.org/fhir/smart-app-launch/): discovery,
//! the authorize request (standalone and EHR launch, PKCE S256, state, nonce), the callback and
//! code exchange, refresh, client authentication (public, client secret, `private_key_jwt`),
//! id_token verification, SMART v1/v2 scopes, the launch context, and backend services. It knows
//! nothing about web frameworks: the caller stores the [`PendingLaunch`] server-side and hands
//! back the redirect URL.
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

pub mod error;
pub mod scope;
pub mod secret;
pub mod token_source;

pub use error::{Error, IdTokenError, Result};
pub use scope::{Permissions, ResourceScope, Scope, ScopeContext, ScopeSet};
pub use secret::{
    AccessToken, AuthorizationCode, ClientId, ClientSecret, CsrfState, IdToken, Nonce, PkceVerifier,
    RefreshToken,
};
pub use token_source::{BoxFuture, StaticToken, TokenSource};
