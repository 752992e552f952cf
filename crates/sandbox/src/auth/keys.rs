//! The sandbox's RS256 signing key: generated on first use, kept in the database so id_tokens stay verifiable
//! across restarts, published as a JWK Set.

use jsonwebtoken::{
    Algorithm, EncodingKey, Header,
    jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash},
};
use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
use serde::Serialize;

use super::records;
use crate::{error::SandboxError, store::Store};

/// The key that signs id_tokens.
pub(crate) struct SigningKey {
    encoding: EncodingKey,
    public: Jwk,
    kid: String,
}

impl SigningKey {
    /// Loads the key from the database, generating and storing one when there is none.
    /// Blocking (RSA key generation takes a moment): call it from `spawn_blocking`.
    pub(crate) fn load_or_generate(store: &Store) -> Result<Self, SandboxError> {
        if let Some(pem) = records::load_signing_key(store)? {
            return Self::from_pem(&pem);
        }
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).map_err(|e| {
            SandboxError::SigningKey {
                reason: format!("RSA key generation failed: {e}"),
            }
        })?;
        let pem = key
            .to_pkcs1_pem(LineEnding::LF)
            .map_err(|e| SandboxError::SigningKey {
                reason: format!("the key could not be encoded: {e}"),
            })?;
        records::store_signing_key(store, &pem)?;
        // Read back: if another process stored a key first, everyone uses that one.
        let stored = records::load_signing_key(store)?.ok_or_else(|| SandboxError::SigningKey {
            reason: "the key was not stored".to_owned(),
        })?;
        Self::from_pem(&stored)
    }

    fn from_pem(pem: &str) -> Result<Self, SandboxError> {
        let bad = |e: jsonwebtoken::errors::Error| SandboxError::SigningKey {
            reason: e.to_string(),
        };
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(bad)?;
        let mut public = Jwk::from_encoding_key(&encoding, Algorithm::RS256).map_err(bad)?;
        let kid = public.thumbprint(ThumbprintHash::SHA256);
        public.common.key_id = Some(kid.clone());
        public.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(Self {
            encoding,
            public,
            kid,
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
        JwkSet {
            keys: vec![self.public.clone()],
        }
    }
}
