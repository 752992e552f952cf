//! The sandbox's RS256 signing key: generated on first use, kept in the database so id_tokens stay verifiable
//! across restarts, published as a JWK Set the way the persona publishes its keys.

use base64::{Engine, engine::general_purpose::STANDARD};
use jsonwebtoken::{
    Algorithm, EncodingKey, Header,
    jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash},
};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey, LineEnding};
use rsa::pkcs8::EncodePublicKey;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::records;
use crate::{error::SandboxError, persona::Persona, store::Store};

/// The key that signs id_tokens.
pub(crate) struct IssuerKey {
    encoding: EncodingKey,
    public: Jwk,
    kid: String,
    /// Keys published beside the signing key (Cerner's ES256 key).
    others: Vec<Jwk>,
}

impl IssuerKey {
    /// Loads the key from the database; when there is none, stores `given` (checked first) or a newly generated
    /// one. Blocking (RSA key generation takes a moment): call it through `Store::blocking`.
    pub(crate) fn load_or_generate(
        store: &Store,
        persona: Persona,
        given: Option<&str>,
    ) -> Result<Self, SandboxError> {
        if let Some(pem) = records::load_signing_key(store)? {
            return Self::from_pem(&pem, persona);
        }
        let mut checked = None;
        let pem = match given {
            Some(pem) => {
                // A key that cannot sign is refused here, not at the first id_token.
                checked = Some(Self::from_pem(pem, persona)?);
                pem.to_owned()
            }
            None => {
                let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).map_err(|e| {
                    SandboxError::SigningKey {
                        reason: format!("RSA key generation failed: {e}"),
                    }
                })?;
                key.to_pkcs1_pem(LineEnding::LF)
                    .map_err(|e| SandboxError::SigningKey {
                        reason: format!("the key could not be encoded: {e}"),
                    })?
                    .to_string()
            }
        };
        records::store_signing_key(store, &pem)?;
        // Read back: if another process stored a key first, everyone uses that one.
        let stored = records::load_signing_key(store)?.ok_or_else(|| SandboxError::SigningKey {
            reason: "the key was not stored".to_owned(),
        })?;
        match checked {
            Some(key) if stored == pem => Ok(key),
            _ => Self::from_pem(&stored, persona),
        }
    }

    fn from_pem(pem: &str, persona: Persona) -> Result<Self, SandboxError> {
        let bad = |e: jsonwebtoken::errors::Error| SandboxError::SigningKey {
            reason: e.to_string(),
        };
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(bad)?;
        let mut public = Jwk::from_encoding_key(&encoding, Algorithm::RS256).map_err(bad)?;
        let thumbprint = public.thumbprint(ThumbprintHash::SHA256);
        let mut others = Vec::new();
        let kid = match persona {
            Persona::Smart => thumbprint,
            Persona::Epic => epic_kid(pem)?,
            Persona::Cerner => {
                let (rsa_kid, ec_kid) = cerner_kids(&thumbprint);
                others.push(es256_public_key(ec_kid)?);
                rsa_kid
            }
        };
        public.common.key_id = Some(kid.clone());
        public.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(Self {
            encoding,
            public,
            kid,
            others,
        })
    }

    /// Signs claims as an RS256 JWT carrying this key's `kid`.
    pub(crate) fn sign<T: Serialize>(&self, claims: &T) -> Result<String, SandboxError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| SandboxError::SigningKey {
            reason: format!("signing failed: {e}"),
        })
    }

    /// The public key as a JWK Set.
    pub(crate) fn jwks(&self) -> JwkSet {
        let mut keys = vec![self.public.clone()];
        keys.extend(self.others.iter().cloned());
        JwkSet { keys }
    }
}

/// Epic's key ids are the base64 SHA-256 hash of the public key (fhir.epic.com OAuth 2.0 specification, "JSON Web
/// Key Sets": the `kid` of Epic's published keys is a base64-encoded SHA-256 hash, padded, of the key), here of
/// its DER SubjectPublicKeyInfo.
fn epic_kid(pem: &str) -> Result<String, SandboxError> {
    let key = rsa::RsaPrivateKey::from_pkcs1_pem(pem).map_err(|e| SandboxError::SigningKey {
        reason: format!("the key could not be read: {e}"),
    })?;
    let der = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| SandboxError::SigningKey {
            reason: format!("the public key could not be encoded: {e}"),
        })?;
    Ok(STANDARD.encode(Sha256::digest(der.as_bytes())))
}

/// Cerner's key ids are the instant a key was made with the algorithm family after it:
/// `2016-12-14T16:49:21.511.rsa` signs id_tokens, `…499.ec` access tokens (the JWT headers of the examples in
/// cerner/fhir.cerner.com `content/authorization/openid-connect.md`). The instant here is derived from the key's
/// thumbprint, so it stays the same for the same key.
fn cerner_kids(thumbprint: &str) -> (String, String) {
    let digest = Sha256::digest(thumbprint.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let offset_ms = i64::try_from(u64::from_be_bytes(first) % 300_000_000_000).unwrap_or(0);
    let ms = 1_450_000_000_000_i64 + offset_ms;
    let instant = chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| "2016-12-14T16:49:21.511".to_owned());
    (format!("{instant}.rsa"), format!("{instant}.ec"))
}

/// A fresh P-256 public key as an ES256 JWK, published beside the RSA key as Cerner's `/jwk` publishes both.
fn es256_public_key(kid: String) -> Result<Jwk, SandboxError> {
    let secret = p256::SecretKey::random(&mut rsa::rand_core::OsRng);
    let bad = |e: serde_json::Error| SandboxError::SigningKey {
        reason: format!("the ES256 key could not be described: {e}"),
    };
    let mut value = serde_json::to_value(secret.public_key().to_jwk()).map_err(bad)?;
    if let Some(map) = value.as_object_mut() {
        map.insert("kid".into(), kid.into());
        map.insert("use".into(), "sig".into());
        map.insert("alg".into(), "ES256".into());
    }
    serde_json::from_value(value).map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_key_is_stored_and_used_and_a_broken_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        records::create_tables(&store).unwrap();
        let broken = IssuerKey::load_or_generate(&store, Persona::Smart, Some("not a key"));
        assert!(matches!(broken, Err(SandboxError::SigningKey { .. })));
        assert_eq!(records::load_signing_key(&store).unwrap(), None, "nothing stored");
        let given = test_support::ISSUER_KEY_PEM;
        let key = IssuerKey::load_or_generate(&store, Persona::Epic, Some(given)).unwrap();
        assert_eq!(records::load_signing_key(&store).unwrap().as_deref(), Some(given));
        assert_eq!(key.kid, epic_kid(given).unwrap());
        // Once stored, the database's key wins over another given one (id_tokens stay verifiable).
        let again = IssuerKey::load_or_generate(&store, Persona::Epic, None).unwrap();
        assert_eq!(again.kid, key.kid);
    }
}
