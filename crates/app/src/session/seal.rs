//! Sessions encrypted at rest: every stored session and pending launch (tokens, PKCE verifier, context) is
//! sealed with XChaCha20-Poly1305 under the app's [`SessionKey`] before it reaches a store, so a copy of the
//! SQLite file or a Redis dump shows no access or refresh token.
//!
//! A sealed value is `v1.` followed by base64url(nonce ‖ ciphertext ‖ tag); the nonce is 24 random bytes
//! (safe to draw at random, so instances sharing a key need no shared counter). The row's key (the hash of
//! the session id or `state`) is the associated data: a sealed value copied onto another row does not open.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// The prefix of a sealed value (the format's version).
const PREFIX: &str = "v1.";

/// Bytes of an XChaCha20 nonce.
const NONCE_LEN: usize = 24;

/// The 32-byte key sessions are sealed with. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey([u8; 32]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey([redacted])")
    }
}

/// A session key that is not 64 hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a session key is 64 hex characters (32 bytes)")]
pub struct BadSessionKey;

impl SessionKey {
    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Result<SessionKey, BadSessionKey> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(BadSessionKey);
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2).ok_or(BadSessionKey)?, 16)
                .map_err(|_| BadSessionKey)?;
        }
        Ok(SessionKey(key))
    }

    /// A new key from the OS-seeded CSPRNG.
    pub fn generate() -> SessionKey {
        use rand::RngCore as _;
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        SessionKey(key)
    }

    fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The key kept in the file at `path`; when there is none, a new one written there (created with mode
    /// 0600, its directory 0700 when created), so the app keeps its sessions readable across restarts.
    pub fn load_or_create(path: &Path) -> std::io::Result<SessionKey> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                return SessionKey::from_hex(&text).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
        }
        let key = SessionKey::generate();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut file) => {
                file.write_all(key.to_hex().as_bytes())?;
                file.sync_all()?;
                tracing::info!(path = %path.display(), "generated a new session key");
                Ok(key)
            }
            // Another process created it first: use that one.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => SessionKey::load_or_create(path),
            Err(e) => Err(e),
        }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }

    /// Seals `plain` for the row keyed `row`.
    pub fn seal(&self, row: &str, plain: &[u8]) -> String {
        use rand::RngCore as _;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: row.as_bytes(),
                },
            )
            // Encryption fails only for inputs beyond 256 GiB.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
        )
    }

    /// Opens a value sealed for the row keyed `row`; `None` when it is not sealed (a row of an older version),
    /// was sealed under another key or for another row, or was altered.
    pub fn open(&self, row: &str, sealed: &str) -> Option<Vec<u8>> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sealed.strip_prefix(PREFIX)?)
            .ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = bytes.split_at(NONCE_LEN);
        let nonce = XNonce::from(<[u8; NONCE_LEN]>::try_from(nonce).ok()?);
        self.cipher()
            .decrypt(
                &nonce,
                Payload {
                    msg: body,
                    aad: row.as_bytes(),
                },
            )
            .ok()
    }
}

/// Creates `dir` (and missing parents) readable by its owner alone (0700) when it does not exist.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_row() {
        let key = SessionKey::generate();
        let sealed = key.seal("row-1", b"access-token-xyz");
        assert!(sealed.starts_with(PREFIX));
        assert!(!sealed.contains("access-token-xyz"));
        assert_eq!(
            key.open("row-1", &sealed).as_deref(),
            Some(&b"access-token-xyz"[..])
        );
        assert_eq!(key.open("row-2", &sealed), None, "moved to another row");
        assert_eq!(SessionKey::generate().open("row-1", &sealed), None, "another key");
        let mut altered = sealed.clone();
        altered.pop();
        altered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(key.open("row-1", &altered), None, "altered");
        assert_eq!(
            key.open("row-1", "{\"csrf\":null}"),
            None,
            "plain JSON of an older version"
        );
        assert_ne!(key.seal("row-1", b"x"), key.seal("row-1", b"x"), "fresh nonces");
    }

    #[test]
    fn keys_parse_from_64_hex_characters_and_do_not_print() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let key = SessionKey::from_hex(hex).unwrap();
        assert_eq!(key.to_hex(), hex.to_ascii_lowercase());
        assert_eq!(SessionKey::from_hex("abc"), Err(BadSessionKey));
        assert_eq!(SessionKey::from_hex(&"zz".repeat(32)), Err(BadSessionKey));
        assert_eq!(format!("{key:?}"), "SessionKey([redacted])");
    }

    #[cfg(unix)]
    #[test]
    fn a_generated_key_file_is_private_and_reused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new").join("session.key");
        let key = SessionKey::load_or_create(&path).unwrap();
        assert_eq!(SessionKey::load_or_create(&path).unwrap(), key);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
    }
}
