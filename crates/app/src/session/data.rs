//! What a session is: its [`SessionId`] (the cookie's value, and the hash the store keys it by) and its
//! [`SessionData`].

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::random_token;
use crate::launch_record::LaunchRecord;

/// A session id: 32 bytes from the OS CSPRNG, base64url. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId {
    pub(super) value: String,
    /// SHA-256 of the value, hex: the database and cache key (computed once).
    key: String,
}

impl SessionId {
    pub(super) fn new(value: String) -> SessionId {
        let key = hash_hex(&value);
        SessionId { value, key }
    }

    pub(super) fn generate() -> SessionId {
        SessionId::new(random_token())
    }

    /// The database key: SHA-256 of the id, hex.
    pub(super) fn key(&self) -> &str {
        &self.key
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId([redacted])")
    }
}

/// The SHA-256 of `value`, hex: how the store keys sessions and pending launches.
pub(super) fn hash_hex(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(value.as_bytes());
    let mut out = String::with_capacity(digest.len() * 2);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// What a session holds.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct SessionData {
    /// A CSRF token stored by an earlier version of the app. Tokens are now derived from the session id (see
    /// [`Session::csrf_token`](super::Session::csrf_token)) and never stored, so showing a form does not create a row; a stored one is still
    /// honoured until the session's next login.
    pub csrf: Option<String>,
    /// The completed launch: tokens, context, claims. `None` before login and after logout.
    pub launch: Option<LaunchRecord>,
    /// The last launch step by step (the `/inspect/timeline` page), bounded by the app
    /// ([`crate::launch_record::timeline::bound`]); kept for failed launches too, replaced by the next launch.
    #[serde(default)]
    pub timeline: Option<smart_launch::LaunchTrace>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_the_hex_sha256_of_the_id() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            hash_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn session_ids_are_256_bit_and_distinct() {
        let a = SessionId::generate();
        assert_eq!(a.value.len(), 43);
        assert_ne!(a, SessionId::generate());
        assert_eq!(format!("{a:?}"), "SessionId([redacted])");
    }
}
