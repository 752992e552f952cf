//! OpenID Connect id_token verification against the issuer's JWKS, and the `fhirUser` claim.
//!
//! The signature is checked with the issuer's published key (RS256, RS384, RS512, PS*, ES256,
//! ES384; never HMAC or `none`). Keys are cached per `jwks_uri` and fetched again once when a token
//! names an unknown `kid` (key rotation). Then `iss` (exactly), `aud`, `azp`, `exp` and `nonce` are
//! checked. Which issuer and key set apply is [`crate::openid`]'s decision.

use std::collections::HashMap;
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use tokio::sync::Mutex;
use url::Url;

use crate::error::{Error, IdTokenError};
use crate::http;
use crate::secret::{ClientId, IdToken, Nonce};

/// Clock skew tolerated on `exp`.
const LEEWAY_SECS: u64 = 60;

/// The algorithms an id_token may be signed with.
const ACCEPTED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// The claims of a verified id_token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    /// The issuer.
    pub iss: String,
    /// The subject (the user's id at the issuer).
    pub sub: String,
    /// The audiences (client ids); a single string is read as one.
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issued at (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// The nonce echoed from the authorize request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The authorized party: the client the token was issued to (OIDC Core §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    /// SMART `fhirUser`: a reference to the user's FHIR resource (relative or absolute).
    #[serde(rename = "fhirUser", default, skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
    /// SMART v1 `profile` claim (the older name for `fhirUser`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Every other claim, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl IdTokenClaims {
    /// The user's FHIR resource, typed, from `fhirUser` (or v1 `profile`), resolved against `fhir_base`.
    pub fn fhir_user(&self, fhir_base: &Url) -> Option<FhirUser> {
        let reference = self.fhir_user.as_deref().or(self.profile.as_deref())?;
        FhirUser::parse(reference, fhir_base)
    }
}

/// The user's FHIR resource named by the `fhirUser` claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FhirUser {
    /// `Practitioner`, `Patient`, `RelatedPerson` or `Person`.
    pub resource_type: String,
    /// The resource id.
    pub id: String,
    /// The absolute URL of the resource.
    pub url: Url,
    /// True when the claim was relative (`Practitioner/123`).
    pub was_relative: bool,
}

impl FhirUser {
    /// Read `Type/id` or an absolute URL ending in `Type/id` (a `_history` suffix is dropped).
    pub fn parse(reference: &str, fhir_base: &Url) -> Option<FhirUser> {
        let absolute = Url::parse(reference).ok();
        let was_relative = absolute.is_none();
        let url = match absolute {
            Some(url) => url,
            None => crate::discovery::resolve(fhir_base, reference).ok()?,
        };
        let mut segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
        if segments.len() >= 4 && segments[segments.len() - 2] == "_history" {
            segments.truncate(segments.len() - 2);
        }
        let [.., resource_type, id] = segments.as_slice() else {
            return None;
        };
        let type_ok = resource_type.starts_with(|c: char| c.is_ascii_uppercase())
            && resource_type.chars().all(|c| c.is_ascii_alphanumeric());
        if !type_ok || id.is_empty() {
            return None;
        }
        Some(FhirUser {
            resource_type: (*resource_type).to_owned(),
            id: (*id).to_owned(),
            url,
            was_relative,
        })
    }

    /// `Type/id`.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.resource_type, self.id)
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// What the id_token must match.
#[derive(Clone, Debug)]
pub struct IdTokenExpectations<'a> {
    /// The issuer (`iss`); compared exactly (OIDC Core §3.1.3.7: "MUST exactly match").
    pub issuer: &'a str,
    /// Our client id, which `aud` must contain.
    pub client_id: &'a ClientId,
    /// The nonce sent in the authorize request, if one was.
    pub nonce: Option<&'a Nonce>,
}

/// Verifies id_tokens, caching each issuer's keys.
#[derive(Debug)]
pub struct IdTokenVerifier {
    http: reqwest::Client,
    keys: Mutex<HashMap<String, JwkSet>>,
}

impl IdTokenVerifier {
    /// A verifier with its own no-redirect HTTP client.
    pub fn new() -> Result<Self, Error> {
        Ok(Self::with_http(http::oauth_client(Duration::from_secs(30))?))
    }

    pub(crate) fn with_http(http: reqwest::Client) -> Self {
        IdTokenVerifier {
            http,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Verify `token` (signature with the key from `jwks_uri`, then `iss`, `aud`, `exp`, `nonce`).
    pub async fn verify(
        &self,
        token: &IdToken,
        jwks_uri: &Url,
        expect: &IdTokenExpectations<'_>,
    ) -> Result<IdTokenClaims, Error> {
        let header = jsonwebtoken::decode_header(token.secret())
            .map_err(|e| IdTokenError::Malformed(e.to_string()))?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(IdTokenError::UnsupportedAlgorithm {
                alg: format!("{:?}", header.alg),
            }
            .into());
        }
        let jwk = self.find_key(jwks_uri, header.kid.as_deref(), header.alg).await?;
        let claims = verify_with_jwk(token, &jwk, header.alg)?;
        check_claims(&claims, expect)?;
        Ok(claims)
    }

    /// The key for `kid`: from the cache, else fetched (once more when the cached set lacks it).
    async fn find_key(&self, jwks_uri: &Url, kid: Option<&str>, alg: Algorithm) -> Result<Jwk, Error> {
        let mut keys = self.keys.lock().await;
        let cached = keys
            .get(jwks_uri.as_str())
            .and_then(|set| select_key(set, kid, alg));
        if let Some(jwk) = cached {
            return Ok(jwk);
        }
        let fresh = self.fetch(jwks_uri).await?;
        let found = select_key(&fresh, kid, alg);
        keys.insert(jwks_uri.to_string(), fresh);
        found.ok_or_else(|| {
            IdTokenError::UnknownKey {
                kid: kid.unwrap_or_default().to_owned(),
            }
            .into()
        })
    }

    async fn fetch(&self, jwks_uri: &Url) -> Result<JwkSet, Error> {
        let request = self
            .http
            .get(jwks_uri.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        let body = http::send(request, jwks_uri.as_str())
            .await
            .map_err(|e| IdTokenError::Jwks(e.to_string()))?;
        if !body.is_success() {
            return Err(IdTokenError::Jwks(format!("HTTP {} from {}", body.status, jwks_uri)).into());
        }
        // Read leniently: keys this library cannot use (e.g. unknown kty) are skipped, not fatal.
        let doc: Value =
            serde_json::from_str(&body.text).map_err(|e| IdTokenError::Jwks(format!("not JSON: {e}")))?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| IdTokenError::Jwks("the document has no `keys` array".into()))?
            .iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
            .collect();
        Ok(JwkSet { keys })
    }
}

/// The `iss` of an id_token, read before its signature is checked: it only chooses which issuer's
/// configuration to consult ([`crate::openid`]); the signature and the exact `iss` are verified after.
pub fn unverified_issuer(token: &IdToken) -> Result<String, IdTokenError> {
    use base64::Engine as _;
    let malformed = |what: &str| IdTokenError::Malformed(what.to_owned());
    let payload = token
        .secret()
        .split('.')
        .nth(1)
        .ok_or_else(|| malformed("it has no payload"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| malformed("its payload is not base64url"))?;
    let claims: Value = serde_json::from_slice(&bytes).map_err(|_| malformed("its payload is not JSON"))?;
    claims
        .get("iss")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| malformed("it has no `iss`"))
}

/// The key matching `kid` (or, without a kid, the only signing key of the algorithm's family).
fn select_key(set: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<Jwk> {
    let usable = |k: &&Jwk| {
        k.common
            .public_key_use
            .as_ref()
            .is_none_or(|u| *u == jsonwebtoken::jwk::PublicKeyUse::Signature)
            && DecodingKey::from_jwk(k).is_ok_and(|d| d.family() == alg.family())
    };
    match kid {
        Some(kid) => set
            .keys
            .iter()
            .filter(usable)
            .find(|k| k.common.key_id.as_deref() == Some(kid))
            .cloned(),
        None => {
            let mut candidates = set.keys.iter().filter(usable);
            let first = candidates.next()?;
            candidates.next().is_none().then(|| first.clone())
        }
    }
}

fn verify_with_jwk(token: &IdToken, jwk: &Jwk, alg: Algorithm) -> Result<IdTokenClaims, Error> {
    use jsonwebtoken::errors::ErrorKind;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| IdTokenError::Jwks(format!("unusable key: {e}")))?;
    // The crypto backend panics when a key of one family meets an algorithm of another: check first.
    if key.family() != alg.family() {
        return Err(IdTokenError::UnsupportedAlgorithm {
            alg: format!("{alg:?} with this key"),
        }
        .into());
    }
    let mut validation = Validation::new(alg);
    validation.leeway = LEEWAY_SECS;
    validation.validate_aud = false; // checked below, with a typed error
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data =
        jsonwebtoken::decode::<IdTokenClaims>(token.secret(), &key, &validation).map_err(|e| {
            match e.kind() {
                ErrorKind::InvalidSignature => IdTokenError::BadSignature,
                ErrorKind::ExpiredSignature => IdTokenError::Expired,
                ErrorKind::InvalidAlgorithm => IdTokenError::UnsupportedAlgorithm {
                    alg: format!("{alg:?}"),
                },
                _ => IdTokenError::Malformed(e.to_string()),
            }
        })?;
    Ok(data.claims)
}

fn check_claims(claims: &IdTokenClaims, expect: &IdTokenExpectations<'_>) -> Result<(), IdTokenError> {
    if claims.iss != expect.issuer {
        return Err(IdTokenError::WrongIssuer {
            found: claims.iss.clone(),
            expected: expect.issuer.to_owned(),
        });
    }
    if !claims.aud.iter().any(|a| a == expect.client_id.as_str()) {
        return Err(IdTokenError::WrongAudience);
    }
    // OIDC Core §3.1.3.7, items 4 and 5: several audiences need an `azp`, and an `azp` must be us.
    match &claims.azp {
        Some(azp) if azp != expect.client_id.as_str() => {
            return Err(IdTokenError::WrongAuthorizedParty { found: azp.clone() });
        }
        None if claims.aud.len() > 1 => return Err(IdTokenError::MissingAuthorizedParty),
        _ => {}
    }
    if let Some(expected) = expect.nonce {
        match &claims.nonce {
            Some(found) if expected.ct_eq_str(found) => {}
            _ => return Err(IdTokenError::WrongNonce),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://ehr.example/fhir").unwrap()
    }

    #[test]
    fn fhir_user_relative_and_absolute() {
        let rel = FhirUser::parse("Practitioner/123", &base()).unwrap();
        assert_eq!(rel.resource_type, "Practitioner");
        assert_eq!(rel.id, "123");
        assert!(rel.was_relative);
        assert_eq!(rel.url.as_str(), "https://ehr.example/fhir/Practitioner/123");
        let abs = FhirUser::parse("https://other.example/r4/Patient/p-9/_history/2", &base()).unwrap();
        assert_eq!(abs.reference(), "Patient/p-9");
        assert!(!abs.was_relative);
        assert!(FhirUser::parse("not a reference", &base()).is_none());
        assert!(FhirUser::parse("https://x.example/", &base()).is_none());
    }

    #[test]
    fn audience_may_be_a_string_or_a_list() {
        let one: IdTokenClaims =
            serde_json::from_value(serde_json::json!({"iss": "i", "sub": "s", "aud": "c", "exp": 1}))
                .unwrap();
        assert_eq!(one.aud, vec!["c"]);
        let many: IdTokenClaims =
            serde_json::from_value(serde_json::json!({"iss": "i", "sub": "s", "aud": ["a", "c"], "exp": 1}))
                .unwrap();
        assert_eq!(many.aud.len(), 2);
    }

    #[test]
    fn claims_are_checked() {
        let client = ClientId::new("c");
        let nonce = Nonce::new("n1");
        let claims: IdTokenClaims = serde_json::from_value(
            serde_json::json!({"iss": "https://ehr.example/fhir", "sub": "s", "aud": "c", "exp": 1, "nonce": "n1"}),
        )
        .unwrap();
        let ok = IdTokenExpectations {
            issuer: "https://ehr.example/fhir",
            client_id: &client,
            nonce: Some(&nonce),
        };
        assert_eq!(check_claims(&claims, &ok), Ok(()));
        let other = ClientId::new("d");
        assert_eq!(
            check_claims(
                &claims,
                &IdTokenExpectations {
                    client_id: &other,
                    ..ok.clone()
                }
            ),
            Err(IdTokenError::WrongAudience)
        );
        let wrong = Nonce::new("n2");
        assert_eq!(
            check_claims(
                &claims,
                &IdTokenExpectations {
                    nonce: Some(&wrong),
                    ..ok.clone()
                }
            ),
            Err(IdTokenError::WrongNonce)
        );
        assert!(matches!(
            check_claims(
                &claims,
                &IdTokenExpectations {
                    issuer: "https://evil.example",
                    ..ok.clone()
                }
            ),
            Err(IdTokenError::WrongIssuer { .. })
        ));
    }

    #[test]
    fn a_trailing_slash_makes_another_issuer() {
        let client = ClientId::new("c");
        let claims: IdTokenClaims = serde_json::from_value(
            serde_json::json!({"iss": "https://ehr.example/fhir/", "sub": "s", "aud": "c", "exp": 1}),
        )
        .unwrap();
        let expect = IdTokenExpectations {
            issuer: "https://ehr.example/fhir",
            client_id: &client,
            nonce: None,
        };
        assert!(matches!(
            check_claims(&claims, &expect),
            Err(IdTokenError::WrongIssuer { .. })
        ));
    }

    #[test]
    fn several_audiences_need_our_client_as_azp() {
        let client = ClientId::new("c");
        let expect = IdTokenExpectations {
            issuer: "i",
            client_id: &client,
            nonce: None,
        };
        let claims = |extra: serde_json::Value| -> IdTokenClaims {
            let mut v = serde_json::json!({"iss": "i", "sub": "s", "exp": 1});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            serde_json::from_value(v).unwrap()
        };
        let many = serde_json::json!({"aud": ["c", "other"]});
        assert_eq!(
            check_claims(&claims(many), &expect),
            Err(IdTokenError::MissingAuthorizedParty)
        );
        let theirs = serde_json::json!({"aud": ["c", "other"], "azp": "other"});
        assert_eq!(
            check_claims(&claims(theirs), &expect),
            Err(IdTokenError::WrongAuthorizedParty {
                found: "other".into()
            })
        );
        let ours = serde_json::json!({"aud": ["c", "other"], "azp": "c"});
        assert_eq!(check_claims(&claims(ours), &expect), Ok(()));
        let single_with_other_azp = serde_json::json!({"aud": "c", "azp": "other"});
        assert!(check_claims(&claims(single_with_other_azp), &expect).is_err());
        assert_eq!(
            check_claims(&claims(serde_json::json!({"aud": "c"})), &expect),
            Ok(())
        );
    }

    #[test]
    fn the_issuer_is_read_before_verification() {
        use base64::Engine as _;
        let enc = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let token = IdToken::new(format!(
            "{}.{}.sig",
            enc(r#"{"alg":"RS256"}"#),
            enc(r#"{"iss":"https://op.example/t/"}"#)
        ));
        assert_eq!(unverified_issuer(&token).unwrap(), "https://op.example/t/");
        assert!(unverified_issuer(&IdToken::new("nodots")).is_err());
        assert!(unverified_issuer(&IdToken::new(format!("a.{}.c", enc("{}")))).is_err());
    }
}
