//! Newtypes for secrets and for identifiers that must not be mixed up.
//!
//! A secret's `Debug` and `Display` print `[redacted]`, so a secret cannot reach a log line by
//! accident; reading it takes an explicit call to `.secret()`. Secrets compare in constant time.
//! They serialize as plain strings, because the caller stores token sets and pending launches
//! server-side (never in cookies or URLs).

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// Define a secret string newtype.
macro_rules! secret_string {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wrap a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret value. Call this only where the value must leave the process
            /// (an HTTP header or form body), never for logging.
            pub fn secret(&self) -> &str {
                &self.0
            }

            /// Compare with another value in constant time.
            pub fn ct_eq_str(&self, other: &str) -> bool {
                constant_time_eq(&self.0, other)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "([redacted])"))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("[redacted]")
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                constant_time_eq(&self.0, &other.0)
            }
        }

        impl Eq for $name {}
    };
}

/// Define a public identifier newtype (printed normally).
macro_rules! identifier {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wrap a value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }
    };
}

secret_string!(
    /// An OAuth 2.0 access token (bearer token for FHIR requests).
    AccessToken
);
secret_string!(
    /// An OAuth 2.0 refresh token.
    RefreshToken
);
secret_string!(
    /// A confidential client's secret (`client_secret_basic` / `client_secret_post`).
    ClientSecret
);
secret_string!(
    /// The PKCE `code_verifier` (RFC 7636), kept server-side until the code exchange.
    PkceVerifier
);
secret_string!(
    /// An OpenID Connect id_token (a signed JWT) as received, before or after verification.
    IdToken
);
secret_string!(
    /// The OAuth `state` parameter: an unguessable value that binds a redirect to the launch that
    /// started it (CSRF protection).
    CsrfState
);
secret_string!(
    /// The OpenID Connect `nonce` sent in the authorize request and expected back in the id_token.
    Nonce
);
secret_string!(
    /// An authorization code received on the redirect.
    AuthorizationCode
);

impl CsrfState {
    /// A fresh state: 256 bits from a CSPRNG.
    pub fn generate() -> Self {
        CsrfState(random_urlsafe(32))
    }
}

impl Nonce {
    /// A fresh nonce: 256 bits from a CSPRNG.
    pub fn generate() -> Self {
        Nonce(random_urlsafe(32))
    }
}

identifier!(
    /// An OAuth 2.0 client identifier, as registered with the authorization server.
    ClientId
);

/// Compare two strings in constant time (with respect to their contents; lengths may leak).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// A new unguessable value: 32 bytes (256 bits) from the CSPRNG of [`random_urlsafe`], base64url
/// without padding (43 characters). For session ids, tokens and codes a server hands out.
pub fn random_token() -> String {
    random_urlsafe(32)
}

/// `n` bytes from the operating system's CSPRNG, base64url-encoded without padding.
pub fn random_urlsafe(n: usize) -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = vec![0u8; n];
    // ThreadRng is a CSPRNG (ChaCha12) seeded and periodically reseeded from the OS.
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let token = AccessToken::new("eyJhbGciOi.secret.value");
        assert_eq!(format!("{token}"), "[redacted]");
        assert_eq!(format!("{token:?}"), "AccessToken([redacted])");
        assert!(!format!("{:?}", Some(&token)).contains("secret"));
        assert_eq!(token.secret(), "eyJhbGciOi.secret.value");
    }

    #[test]
    fn secrets_serialize_as_plain_strings() {
        let token = RefreshToken::new("r1");
        let json = serde_json::to_string(&token).unwrap();
        assert_eq!(json, "\"r1\"");
        let back: RefreshToken = serde_json::from_str(&json).unwrap();
        assert_eq!(back, token);
    }

    #[test]
    fn comparisons_are_exact() {
        assert!(CsrfState::new("abc").ct_eq_str("abc"));
        assert!(!CsrfState::new("abc").ct_eq_str("abd"));
        assert!(!CsrfState::new("abc").ct_eq_str("ab"));
        assert_ne!(CsrfState::new("abc"), CsrfState::new("abcd"));
    }

    #[test]
    fn random_values_are_long_and_distinct() {
        let a = random_urlsafe(32);
        let b = random_urlsafe(32);
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }
}
