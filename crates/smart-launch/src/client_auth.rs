//! How the app proves who it is to the token endpoint: public (`none`), `client_secret_basic`,
//! `client_secret_post`, or `private_key_jwt` (RS384 / ES384, SMART's asymmetric client auth).
//!
//! The same [`ClientAuth`] is used for the code exchange, refresh, revocation, introspection and
//! backend-services (`client_credentials`) requests.

use std::fmt;
use std::sync::Arc;

use chrono::Utc;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use url::Url;

use crate::error::Error;
use crate::secret::{ClientId, ClientSecret};

/// The `client_assertion_type` for JWT client authentication (RFC 7523).
pub const JWT_BEARER_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The longest lifetime SMART allows for a client assertion.
const ASSERTION_LIFETIME_SECS: i64 = 300;

/// How the client authenticates at the token endpoint.
#[derive(Clone, Debug, Default)]
pub enum ClientAuth {
    /// A public client: `client_id` in the form body, no secret.
    #[default]
    None,
    /// HTTP Basic with the client id and secret (each form-urlencoded first, RFC 6749 §2.3.1).
    ClientSecretBasic(ClientSecret),
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost(ClientSecret),
    /// A signed JWT assertion (`private_key_jwt`).
    PrivateKeyJwt(Arc<SigningKey>),
}

impl ClientAuth {
    /// The `token_endpoint_auth_method` name.
    pub fn method_name(&self) -> &'static str {
        match self {
            ClientAuth::None => "none",
            ClientAuth::ClientSecretBasic(_) => "client_secret_basic",
            ClientAuth::ClientSecretPost(_) => "client_secret_post",
            ClientAuth::PrivateKeyJwt(_) => "private_key_jwt",
        }
    }

    /// Add the authentication to a token-endpoint request whose form body is `form`.
    pub(crate) fn apply(
        &self,
        request: reqwest::RequestBuilder,
        form: &mut Vec<(&'static str, String)>,
        client_id: &ClientId,
        endpoint: &Url,
    ) -> Result<reqwest::RequestBuilder, Error> {
        Ok(match self {
            ClientAuth::None => {
                form.push(("client_id", client_id.to_string()));
                request
            }
            ClientAuth::ClientSecretBasic(secret) => {
                let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                request.basic_auth(encode(client_id.as_str()), Some(encode(secret.secret())))
            }
            ClientAuth::ClientSecretPost(secret) => {
                form.push(("client_id", client_id.to_string()));
                form.push(("client_secret", secret.secret().to_owned()));
                request
            }
            ClientAuth::PrivateKeyJwt(key) => {
                form.push(("client_assertion_type", JWT_BEARER_ASSERTION_TYPE.to_owned()));
                form.push(("client_assertion", key.client_assertion(client_id, endpoint)?));
                request
            }
        })
    }

    /// The public keys to publish (a JWKS document) when this is `private_key_jwt`.
    pub fn public_jwks(&self) -> Option<JwkSet> {
        match self {
            ClientAuth::PrivateKeyJwt(key) => Some(key.jwks()),
            _ => None,
        }
    }
}

/// The algorithms a [`SigningKey`] can sign with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (common for id_tokens).
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384 (SMART asymmetric client auth).
    RS384,
    /// ECDSA P-384 with SHA-384 (SMART asymmetric client auth).
    ES384,
}

impl SigningAlgorithm {
    fn jwt(self) -> Algorithm {
        match self {
            SigningAlgorithm::RS256 => Algorithm::RS256,
            SigningAlgorithm::RS384 => Algorithm::RS384,
            SigningAlgorithm::ES384 => Algorithm::ES384,
        }
    }

    fn key_algorithm(self) -> KeyAlgorithm {
        match self {
            SigningAlgorithm::RS256 => KeyAlgorithm::RS256,
            SigningAlgorithm::RS384 => KeyAlgorithm::RS384,
            SigningAlgorithm::ES384 => KeyAlgorithm::ES384,
        }
    }

    fn is_rsa(self) -> bool {
        !matches!(self, SigningAlgorithm::ES384)
    }
}

/// A private key that signs JWTs, with its public JWK. `Debug` shows the algorithm and key id only.
pub struct SigningKey {
    algorithm: SigningAlgorithm,
    kid: String,
    jku: Option<Url>,
    encoding: EncodingKey,
    public_jwk: Jwk,
    pem: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .field("jku", &self.jku.as_ref().map(Url::as_str))
            .field("private_key", &"[redacted]")
            .finish()
    }
}

fn key_error(reason: impl fmt::Display) -> Error {
    Error::Key {
        reason: reason.to_string(),
    }
}

impl SigningKey {
    /// Generate a fresh key: RSA 2048-bit for `RS256`/`RS384`, P-384 for `ES384`.
    pub fn generate(algorithm: SigningAlgorithm, kid: impl Into<String>) -> Result<Self, Error> {
        use rsa::pkcs8::EncodePrivateKey as _;
        let pem = if algorithm.is_rsa() {
            let key = rsa::RsaPrivateKey::new(&mut rand_core_06::OsRng, 2048).map_err(key_error)?;
            key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
                .map_err(key_error)?
                .to_string()
        } else {
            let key = p384::SecretKey::random(&mut rand_core_06::OsRng);
            key.to_pkcs8_pem(p384::pkcs8::LineEnding::LF)
                .map_err(key_error)?
                .to_string()
        };
        Self::from_pem(&pem, algorithm, kid)
    }

    /// Load a private key from PEM (`PRIVATE KEY` PKCS#8, `RSA PRIVATE KEY` PKCS#1 or
    /// `EC PRIVATE KEY` SEC1), to sign with `algorithm`.
    pub fn from_pem(pem: &str, algorithm: SigningAlgorithm, kid: impl Into<String>) -> Result<Self, Error> {
        let kid = kid.into();
        let (encoding, public_params) = if algorithm.is_rsa() {
            rsa_from_pem(pem)?
        } else {
            p384_from_pem(pem)?
        };
        let mut public_jwk = Jwk {
            common: jsonwebtoken::jwk::CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(algorithm.key_algorithm()),
                key_id: Some(kid.clone()),
                ..Default::default()
            },
            algorithm: public_params,
        };
        public_jwk.common.key_operations = None;
        Ok(SigningKey {
            algorithm,
            kid,
            jku: None,
            encoding,
            public_jwk,
            pem: pem.to_owned(),
        })
    }

    /// Load a private key for the algorithm its type calls for: ES384 for a P-384 key, RS384 for an
    /// RSA key (the two SMART asks servers to accept for `private_key_jwt`), told apart by trying both.
    pub fn from_pem_any(pem: &str, kid: impl Into<String>) -> Result<Self, Error> {
        let kid = kid.into();
        Self::from_pem(pem, SigningAlgorithm::ES384, kid.clone())
            .or_else(|_| Self::from_pem(pem, SigningAlgorithm::RS384, kid))
            .map_err(|_| key_error("it is not an RSA or P-384 private key in PEM form"))
    }

    /// Read a PEM private key file with [`SigningKey::from_pem_any`]; errors name the file.
    pub fn read_pem_file(path: &std::path::Path, kid: impl Into<String>) -> Result<Self, Error> {
        let pem = std::fs::read_to_string(path)
            .map_err(|e| key_error(format!("{} cannot be read ({e})", path.display())))?;
        Self::from_pem_any(&pem, kid).map_err(|e| match e {
            Error::Key { reason } => key_error(format!("{}: {reason}", path.display())),
            other => other,
        })
    }

    /// The same key under another key id (`kid` of signed JWTs and of the public JWK).
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = kid.into();
        self.public_jwk.common.key_id = Some(self.kid.clone());
        self
    }

    /// Announce where the public JWKS is published (`jku` header of client assertions).
    pub fn with_jku(mut self, jku: Url) -> Self {
        self.jku = Some(jku);
        self
    }

    /// The algorithm.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// The key id (`kid`).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key as PKCS#8 (or as loaded) PEM, to store it. Handle it like any secret.
    pub fn private_key_pem(&self) -> &str {
        &self.pem
    }

    /// The public key as a JWK (with `kid`, `alg` and `use=sig`).
    pub fn public_jwk(&self) -> Jwk {
        self.public_jwk.clone()
    }

    /// A JWKS document holding the public key, for the app to publish.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.public_jwk()],
        }
    }

    /// Sign any claims as a JWT with this key (header: `alg`, `typ=JWT`, `kid`, and `jku` when set).
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, Error> {
        let mut header = Header::new(self.algorithm.jwt());
        header.kid = Some(self.kid.clone());
        header.jku = self.jku.as_ref().map(|u| u.to_string());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(key_error)
    }

    /// A client assertion for `private_key_jwt`: `iss` = `sub` = client id, `aud` = the token URL,
    /// `exp` five minutes ahead, a unique `jti`.
    pub fn client_assertion(&self, client_id: &ClientId, token_endpoint: &Url) -> Result<String, Error> {
        let now = Utc::now().timestamp();
        let claims = ClientAssertionClaims {
            iss: client_id.as_str(),
            sub: client_id.as_str(),
            aud: token_endpoint.as_str(),
            exp: now + ASSERTION_LIFETIME_SECS,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        self.sign(&claims)
    }
}

/// The claims of a `private_key_jwt` client assertion.
#[derive(Serialize)]
struct ClientAssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    jti: String,
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_from_pem(pem: &str) -> Result<(EncodingKey, jsonwebtoken::jwk::AlgorithmParameters), Error> {
    use rsa::pkcs1::{DecodeRsaPrivateKey as _, EncodeRsaPrivateKey as _};
    use rsa::pkcs8::DecodePrivateKey as _;
    use rsa::traits::PublicKeyParts as _;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|e| key_error(format!("it is not an RSA private key in PEM form ({e})")))?;
    let der = key.to_pkcs1_der().map_err(key_error)?;
    let params = jsonwebtoken::jwk::AlgorithmParameters::RSA(jsonwebtoken::jwk::RSAKeyParameters {
        key_type: jsonwebtoken::jwk::RSAKeyType::RSA,
        n: b64(&key.n().to_bytes_be()),
        e: b64(&key.e().to_bytes_be()),
    });
    Ok((EncodingKey::from_rsa_der(der.as_bytes()), params))
}

fn p384_from_pem(pem: &str) -> Result<(EncodingKey, jsonwebtoken::jwk::AlgorithmParameters), Error> {
    use p384::elliptic_curve::sec1::ToEncodedPoint as _;
    use p384::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
    let key = p384::SecretKey::from_pkcs8_pem(pem)
        .or_else(|_| p384::SecretKey::from_sec1_pem(pem))
        .map_err(|e| key_error(format!("it is not a P-384 private key in PEM form ({e})")))?;
    let der = key.to_pkcs8_der().map_err(key_error)?;
    let point = key.public_key().to_encoded_point(false);
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        return Err(key_error("the P-384 public key has no coordinates"));
    };
    let params = jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(
        jsonwebtoken::jwk::EllipticCurveKeyParameters {
            key_type: jsonwebtoken::jwk::EllipticCurveKeyType::EC,
            curve: jsonwebtoken::jwk::EllipticCurve::P384,
            x: b64(x),
            y: b64(y),
        },
    );
    Ok((EncodingKey::from_ec_der(der.as_bytes()), params))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use jsonwebtoken::{DecodingKey, Validation};

    use super::*;

    #[derive(serde::Deserialize)]
    struct Claims {
        iss: String,
        sub: String,
        aud: String,
        exp: i64,
        iat: i64,
        jti: String,
    }

    fn check_assertion(key: &SigningKey, alg: Algorithm) {
        let token_url = Url::parse("https://ehr.example/token").unwrap();
        let client = ClientId::new("my-app");
        let first = key.client_assertion(&client, &token_url).unwrap();
        let second = key.client_assertion(&client, &token_url).unwrap();

        let header = jsonwebtoken::decode_header(&first).unwrap();
        assert_eq!(header.alg, alg);
        assert_eq!(header.kid.as_deref(), Some("k1"));
        assert_eq!(header.typ.as_deref(), Some("JWT"));

        let decoding = DecodingKey::from_jwk(&key.public_jwk()).unwrap();
        let mut validation = Validation::new(alg);
        validation.set_audience(&["https://ehr.example/token"]);
        let claims = jsonwebtoken::decode::<Claims>(&first, &decoding, &validation)
            .unwrap()
            .claims;
        assert_eq!(claims.iss, "my-app");
        assert_eq!(claims.sub, "my-app");
        assert_eq!(claims.aud, "https://ehr.example/token");
        assert!(claims.exp - claims.iat <= 300);
        let other = jsonwebtoken::decode::<Claims>(&second, &decoding, &validation)
            .unwrap()
            .claims;
        let jtis: HashSet<_> = [claims.jti, other.jti].into_iter().collect();
        assert_eq!(jtis.len(), 2, "every assertion has a unique jti");
    }

    #[test]
    fn rs384_assertions_verify_with_the_published_jwk() {
        let key = SigningKey::generate(SigningAlgorithm::RS384, "k1").unwrap();
        check_assertion(&key, Algorithm::RS384);
        let jwks = serde_json::to_value(key.jwks()).unwrap();
        assert_eq!(jwks["keys"][0]["kty"], "RSA");
        assert_eq!(jwks["keys"][0]["alg"], "RS384");
        assert!(jwks["keys"][0].get("d").is_none(), "no private part is published");
    }

    #[test]
    fn es384_assertions_verify_with_the_published_jwk() {
        let key = SigningKey::generate(SigningAlgorithm::ES384, "k1").unwrap();
        check_assertion(&key, Algorithm::ES384);
        let jwks = serde_json::to_value(key.jwks()).unwrap();
        assert_eq!(jwks["keys"][0]["crv"], "P-384");
        assert!(jwks["keys"][0].get("d").is_none());
    }

    #[test]
    fn keys_round_trip_through_pem_and_hide_in_debug() {
        let key = SigningKey::generate(SigningAlgorithm::ES384, "k1").unwrap();
        let again = SigningKey::from_pem(key.private_key_pem(), SigningAlgorithm::ES384, "k1").unwrap();
        assert_eq!(again.public_jwk(), key.public_jwk());
        assert!(!format!("{key:?}").contains("PRIVATE"));
        let err = SigningKey::from_pem("not a key", SigningAlgorithm::RS384, "k").unwrap_err();
        assert!(matches!(err, Error::Key { .. }));
    }

    #[test]
    fn jku_is_put_in_the_header() {
        let key = SigningKey::generate(SigningAlgorithm::ES384, "k1")
            .unwrap()
            .with_jku(Url::parse("https://app.example/.well-known/jwks.json").unwrap());
        let jwt = key
            .client_assertion(&ClientId::new("c"), &Url::parse("https://a/t").unwrap())
            .unwrap();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(
            header.jku.as_deref(),
            Some("https://app.example/.well-known/jwks.json")
        );
    }
}
