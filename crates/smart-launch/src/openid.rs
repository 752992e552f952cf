//! Which issuer an id_token must name, and where its signing keys are: the SMART configuration
//! first, then OpenID Connect Discovery 1.0 (`{issuer}/.well-known/openid-configuration`) where the
//! SMART document lacks `issuer` or `jwks_uri`.
//!
//! Real EHRs split these documents differently:
//! - Oracle Health (Cerner) publishes `jwks_uri` but no `issuer` in `.well-known/smart-configuration`;
//!   its id_tokens carry `iss = https://authorization.cerner.com/tenants/<tenant>/oidc/idsps/<tenant>/`,
//!   whose own `openid-configuration` names that issuer and the same `jwks_uri`
//!   (cerner/fhir.cerner.com, `content/authorization/openid-connect.md`).
//! - A generic OpenID provider (panva `oidc-provider`) names its `issuer` in the SMART document but
//!   publishes `jwks_uri` only in its `openid-configuration`.
//!
//! An `iss` other than the one the EHR names is accepted only when something the EHR publishes
//! vouches for it; see [`OpenIdDiscovery::trusted_issuer`] for the order of the checks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use crate::discovery::SmartConfiguration;
use crate::error::{Error, IdTokenError};
use crate::http;

/// The parts of an OpenID Provider configuration (OIDC Discovery 1.0 §3) this crate reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenIdConfiguration {
    /// The issuer; must be identical to the URL the document was found under (§4.3).
    pub issuer: String,
    /// The provider's signing keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<Url>,
    /// Every other key, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The issuer an id_token must carry and the key set that signs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedIssuer {
    /// The exact `iss`.
    pub issuer: String,
    /// The JWKS URL.
    pub jwks_uri: Url,
}

/// The discovery URL of `issuer`: a trailing `/` removed, then `/.well-known/openid-configuration`
/// appended (OIDC Discovery 1.0 §4.1).
pub fn configuration_url(issuer: &str) -> Result<Url, String> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    Url::parse(&url).map_err(|e| format!("{issuer:?} is not a URL ({e})"))
}

/// Fetches and caches OpenID Provider configurations, and decides which issuer to trust.
#[derive(Debug)]
pub struct OpenIdDiscovery {
    http: reqwest::Client,
    ttl: Duration,
    allow_insecure_http: bool,
    cache: Mutex<HashMap<String, (Instant, Arc<OpenIdConfiguration>)>>,
}

impl OpenIdDiscovery {
    pub(crate) fn with_http(http: reqwest::Client, ttl: Duration, allow_insecure_http: bool) -> Self {
        OpenIdDiscovery {
            http,
            ttl,
            allow_insecure_http,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The issuer and keys an id_token from the EHR of `smart` that names `token_iss` is checked
    /// against. In order:
    ///
    /// 1. The SMART configuration names an `issuer`: `token_iss` must be exactly it
    ///    ([`IdTokenError::WrongIssuer`]); the keys are the SMART `jwks_uri`, else the one of the
    ///    issuer's `openid-configuration`.
    /// 2. It names none, and `token_iss` is exactly the FHIR base: the keys are the SMART
    ///    `jwks_uri`, else the one of the FHIR base's `openid-configuration`.
    /// 3. `token_iss` is another URL (a foreign issuer, as Cerner's `/oidc/idsps/`): when the SMART
    ///    configuration names keys, the `openid-configuration` at `token_iss` must name the same
    ///    `jwks_uri`; when it names none, the `openid-configuration` at the FHIR base must name
    ///    `token_iss` as its issuer. Anything else is [`IdTokenError::IssuerNotTrusted`]: a spoofed
    ///    `iss` that publishes its own keys is refused.
    ///
    /// Every `openid-configuration` consulted for an issuer must name as `issuer` exactly the URL it
    /// was found under (the one under the FHIR base in step 3 is the pointer). No key set at all is [`IdTokenError::NoJwksUri`].
    pub async fn trusted_issuer(
        &self,
        smart: &SmartConfiguration,
        token_iss: &str,
    ) -> Result<TrustedIssuer, Error> {
        let trusted = |issuer: &str, jwks_uri: Option<Url>| match jwks_uri {
            Some(jwks_uri) => Ok(TrustedIssuer {
                issuer: issuer.to_owned(),
                jwks_uri,
            }),
            None => Err(Error::from(IdTokenError::NoJwksUri)),
        };
        if let Some(issuer) = smart.issuer.as_deref() {
            if token_iss != issuer {
                return Err(IdTokenError::WrongIssuer {
                    found: token_iss.to_owned(),
                    expected: issuer.to_owned(),
                }
                .into());
            }
            let keys = match &smart.jwks_uri {
                Some(keys) => Some(keys.clone()),
                None => self.configuration(issuer).await?.jwks_uri.clone(),
            };
            return trusted(issuer, keys);
        }
        let fhir_base = smart.fhir_base.as_str();
        if token_iss == fhir_base {
            let keys = match &smart.jwks_uri {
                Some(keys) => Some(keys.clone()),
                None => self.configuration(fhir_base).await?.jwks_uri.clone(),
            };
            return trusted(fhir_base, keys);
        }
        let not_trusted = |reason: String| {
            Error::from(IdTokenError::IssuerNotTrusted {
                found: token_iss.to_owned(),
                reason,
            })
        };
        match &smart.jwks_uri {
            Some(ehr_keys) => {
                let theirs = self.configuration(token_iss).await?;
                if theirs.jwks_uri.as_ref() != Some(ehr_keys) {
                    return Err(not_trusted(format!(
                        "its OpenID configuration names the keys {}, not the EHR's {ehr_keys}",
                        theirs.jwks_uri.as_ref().map_or("(none)", Url::as_str)
                    )));
                }
                trusted(token_iss, Some(ehr_keys.clone()))
            }
            None => {
                // The document under the FHIR base may name another issuer: that is the pointer.
                let ehrs = self.document(fhir_base).await.map_err(|e| {
                    not_trusted(format!(
                        "the EHR names no keys and its own OpenID configuration could not be read: {}",
                        e.reason()
                    ))
                })?;
                if ehrs.issuer != token_iss {
                    return Err(not_trusted(format!(
                        "the EHR's OpenID configuration names the issuer {:?}",
                        ehrs.issuer
                    )));
                }
                trusted(token_iss, ehrs.jwks_uri.clone())
            }
        }
    }

    /// The `openid-configuration` of `issuer` (cached), whose `issuer` must be exactly `issuer`
    /// (OIDC Discovery 1.0 §4.3).
    pub async fn configuration(&self, issuer: &str) -> Result<Arc<OpenIdConfiguration>, Error> {
        let config = self.document(issuer).await?;
        if config.issuer != issuer {
            return Err(IdTokenError::OpenIdConfiguration {
                url: configuration_url(issuer).map_or_else(|_| issuer.to_owned(), |u| u.to_string()),
                reason: format!(
                    "it names the issuer {:?}, not the one it was found under",
                    config.issuer
                ),
            }
            .into());
        }
        Ok(config)
    }

    /// The `openid-configuration` found under `at` (cached), whatever issuer it names.
    async fn document(&self, at: &str) -> Result<Arc<OpenIdConfiguration>, Error> {
        if let Some(hit) = self.cached(at) {
            return Ok(hit);
        }
        let url = configuration_url(at).map_err(|reason| IdTokenError::OpenIdConfiguration {
            url: at.to_owned(),
            reason,
        })?;
        http::require_secure(&url, "OpenID configuration", self.allow_insecure_http)?;
        let fail = |reason: String| {
            Error::from(IdTokenError::OpenIdConfiguration {
                url: url.to_string(),
                reason,
            })
        };
        let request = self
            .http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        let body = http::send(request, url.as_str())
            .await
            .map_err(|e| fail(e.reason()))?;
        if !body.is_success() {
            return Err(fail(format!("HTTP {}", body.status)));
        }
        let config: OpenIdConfiguration = serde_json::from_str(&body.text)
            .map_err(|e| fail(format!("not an OpenID configuration: {e}")))?;
        if let Some(keys) = &config.jwks_uri {
            http::require_secure(keys, "jwks_uri", self.allow_insecure_http)?;
        }
        let config = Arc::new(config);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(at.to_owned(), (Instant::now(), config.clone()));
        }
        Ok(config)
    }

    fn cached(&self, issuer: &str) -> Option<Arc<OpenIdConfiguration>> {
        let cache = self.cache.lock().ok()?;
        let (at, config) = cache.get(issuer)?;
        (at.elapsed() < self.ttl).then(|| config.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_url_drops_the_issuers_trailing_slash() {
        let cerner = "https://authorization.cerner.com/tenants/t1/oidc/idsps/t1/";
        assert_eq!(
            configuration_url(cerner).unwrap().as_str(),
            "https://authorization.cerner.com/tenants/t1/oidc/idsps/t1/.well-known/openid-configuration"
        );
        assert_eq!(
            configuration_url("https://op.example").unwrap().as_str(),
            "https://op.example/.well-known/openid-configuration"
        );
        assert!(configuration_url("not a url").is_err());
    }
}
