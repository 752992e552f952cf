//! Discovery: where a FHIR server's authorization endpoints are.
//!
//! First `GET {base}/.well-known/smart-configuration`; when that fails, the CapabilityStatement at
//! `{base}/metadata` and its `oauth-uris` extension. Relative endpoint URLs are resolved against the
//! FHIR base. Results are cached per FHIR base for a configurable time. Plain `http` is refused for the
//! FHIR base and every endpoint unless the host is this machine or `allow_insecure_http` is set.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use crate::error::Error;
use crate::http;
use crate::well_known::SmartConfigurationDocument;

/// The extension URL of the SMART `oauth-uris` extension in a CapabilityStatement.
pub const OAUTH_URIS_EXTENSION: &str =
    "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris";

/// Where a [`SmartConfiguration`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DiscoverySource {
    /// `{base}/.well-known/smart-configuration`.
    WellKnown,
    /// The CapabilityStatement at `{base}/metadata` (endpoints only, no capabilities).
    CapabilityStatement,
}

/// A FHIR server's SMART configuration, with endpoint URLs resolved to absolute URLs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SmartConfiguration {
    /// The FHIR base URL this configuration belongs to.
    pub fhir_base: Url,
    /// Where it came from.
    pub source: DiscoverySource,
    /// The OpenID Connect issuer (`iss` of id_tokens), when given.
    pub issuer: Option<String>,
    /// The JWKS URL for id_token signatures, when given.
    pub jwks_uri: Option<Url>,
    /// The authorization endpoint.
    pub authorization_endpoint: Url,
    /// The token endpoint.
    pub token_endpoint: Url,
    /// Dynamic client registration, when offered.
    pub registration_endpoint: Option<Url>,
    /// Where a user manages authorizations, when offered.
    pub management_endpoint: Option<Url>,
    /// Token introspection (RFC 7662), when offered.
    pub introspection_endpoint: Option<Url>,
    /// Token revocation (RFC 7009), when offered.
    pub revocation_endpoint: Option<Url>,
    /// SMART capabilities such as `launch-ehr`, `authorize-post`, `context-standalone-patient`.
    pub capabilities: Vec<String>,
    /// Grant types the server accepts.
    pub grant_types_supported: Vec<String>,
    /// OAuth response types the server supports (`code`).
    #[serde(default)]
    pub response_types_supported: Vec<String>,
    /// Client authentication methods the token endpoint accepts.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Algorithms the token endpoint accepts for `private_key_jwt`.
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// Algorithms of the server's id_token signatures.
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// Scopes the server supports.
    pub scopes_supported: Vec<String>,
    /// PKCE methods the server supports.
    pub code_challenge_methods_supported: Vec<String>,
    /// Every other key of the document, kept.
    pub extra: Map<String, Value>,
}

impl SmartConfiguration {
    /// True when the server lists this SMART capability.
    pub fn supports(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// True when the authorize endpoint accepts POST (`authorize-post`).
    pub fn supports_authorize_post(&self) -> bool {
        self.supports("authorize-post")
    }

    /// The issuer that id_tokens must carry: `issuer` when given, else the FHIR base.
    pub fn expected_id_token_issuer(&self) -> &str {
        self.issuer.as_deref().unwrap_or(self.fhir_base.as_str())
    }

    /// Parse a `.well-known/smart-configuration` document, resolving relative URLs against `fhir_base`.
    pub fn from_well_known(fhir_base: &Url, document: Value) -> Result<SmartConfiguration, String> {
        if !document.is_object() {
            return Err("the document is not a JSON object".into());
        }
        let doc: SmartConfigurationDocument = serde_path_to_error::deserialize(document)
            .map_err(|e| format!("`{}` is not as SMART describes it: {}", e.path(), e.inner()))?;
        Self::from_document(fhir_base, doc)
    }

    /// Resolve a SMART configuration document's endpoints against `fhir_base`.
    pub fn from_document(
        fhir_base: &Url,
        doc: SmartConfigurationDocument,
    ) -> Result<SmartConfiguration, String> {
        let url = |value: Option<String>| value.map(|s| resolve(fhir_base, &s)).transpose();
        let (Some(authorization_endpoint), Some(token_endpoint)) =
            (url(doc.authorization_endpoint)?, url(doc.token_endpoint)?)
        else {
            return Err("it lacks `authorization_endpoint` or `token_endpoint`".into());
        };
        Ok(SmartConfiguration {
            fhir_base: fhir_base.clone(),
            source: DiscoverySource::WellKnown,
            issuer: doc.issuer,
            jwks_uri: url(doc.jwks_uri)?,
            authorization_endpoint,
            token_endpoint,
            registration_endpoint: url(doc.registration_endpoint)?,
            management_endpoint: url(doc.management_endpoint)?,
            introspection_endpoint: url(doc.introspection_endpoint)?,
            revocation_endpoint: url(doc.revocation_endpoint)?,
            capabilities: doc.capabilities,
            grant_types_supported: doc.grant_types_supported,
            response_types_supported: doc.response_types_supported,
            token_endpoint_auth_methods_supported: doc.token_endpoint_auth_methods_supported,
            token_endpoint_auth_signing_alg_values_supported: doc
                .token_endpoint_auth_signing_alg_values_supported,
            id_token_signing_alg_values_supported: doc.id_token_signing_alg_values_supported,
            scopes_supported: doc.scopes_supported,
            code_challenge_methods_supported: doc.code_challenge_methods_supported,
            extra: doc.extra,
        })
    }

    /// Read the endpoints from a CapabilityStatement's `oauth-uris` extension.
    pub fn from_capability_statement(
        fhir_base: &Url,
        document: &Value,
    ) -> Result<SmartConfiguration, String> {
        let extensions = document
            .pointer("/rest/0/security/extension")
            .and_then(Value::as_array)
            .ok_or("the CapabilityStatement has no rest[0].security.extension")?;
        let oauth = extensions
            .iter()
            .find(|e| e.get("url").and_then(Value::as_str) == Some(OAUTH_URIS_EXTENSION))
            .and_then(|e| e.get("extension"))
            .and_then(Value::as_array)
            .ok_or("the CapabilityStatement has no oauth-uris extension")?;
        let find = |name: &str| -> Result<Option<Url>, String> {
            let value = oauth
                .iter()
                .find(|e| e.get("url").and_then(Value::as_str) == Some(name))
                .and_then(|e| e.get("valueUri").or_else(|| e.get("valueUrl")))
                .and_then(Value::as_str);
            value.map(|v| resolve(fhir_base, v)).transpose()
        };
        let (Some(authorization_endpoint), Some(token_endpoint)) = (find("authorize")?, find("token")?)
        else {
            return Err("the oauth-uris extension lacks `authorize` or `token`".into());
        };
        Ok(SmartConfiguration {
            fhir_base: fhir_base.clone(),
            source: DiscoverySource::CapabilityStatement,
            issuer: None,
            jwks_uri: None,
            authorization_endpoint,
            token_endpoint,
            registration_endpoint: find("register")?,
            management_endpoint: find("manage")?,
            introspection_endpoint: find("introspect")?,
            revocation_endpoint: find("revoke")?,
            capabilities: Vec::new(),
            grant_types_supported: Vec::new(),
            response_types_supported: Vec::new(),
            token_endpoint_auth_methods_supported: Vec::new(),
            token_endpoint_auth_signing_alg_values_supported: Vec::new(),
            id_token_signing_alg_values_supported: Vec::new(),
            scopes_supported: Vec::new(),
            code_challenge_methods_supported: Vec::new(),
            extra: Map::new(),
        })
    }
}

/// Resolve an endpoint URL: absolute URLs as given, relative ones against the FHIR base (as a directory).
pub fn resolve(fhir_base: &Url, endpoint: &str) -> Result<Url, String> {
    let mut base = fhir_base.clone();
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    base.join(endpoint)
        .map_err(|e| format!("the endpoint URL {endpoint:?} is not valid: {e}"))
}

/// The FHIR base in a canonical form: no query, no fragment, no trailing slash.
pub fn normalize_base(base: &Url) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    let trimmed = url.path().trim_end_matches('/').to_owned();
    url.set_path(&trimmed);
    url
}

/// Discovers and caches SMART configurations.
#[derive(Debug)]
pub struct Discovery {
    http: reqwest::Client,
    ttl: Duration,
    allow_insecure_http: bool,
    cache: Mutex<HashMap<String, (Instant, Arc<SmartConfiguration>)>>,
}

impl Discovery {
    /// A discoverer with its own no-redirect HTTP client; results are kept for `ttl`.
    pub fn new(ttl: Duration) -> Result<Self, Error> {
        Ok(Self::with_http(
            http::oauth_client(Duration::from_secs(30))?,
            ttl,
            false,
        ))
    }

    pub(crate) fn with_http(http: reqwest::Client, ttl: Duration, allow_insecure_http: bool) -> Self {
        Discovery {
            http,
            ttl,
            allow_insecure_http,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The SMART configuration of `fhir_base`, from the cache when fresh.
    pub async fn discover(&self, fhir_base: &Url) -> Result<Arc<SmartConfiguration>, Error> {
        let base = normalize_base(fhir_base);
        let key = base.to_string();
        if let Some(hit) = self.cached(&key) {
            return Ok(hit);
        }
        http::require_secure(&base, "FHIR base", self.allow_insecure_http)?;
        let config = self.fetch(&base).await?;
        self.require_secure_endpoints(&config)?;
        let config = Arc::new(config);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, (Instant::now(), config.clone()));
        }
        Ok(config)
    }

    /// Forget the cached configuration of `fhir_base` (for example after its endpoints failed).
    pub fn invalidate(&self, fhir_base: &Url) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(normalize_base(fhir_base).as_str());
        }
    }

    /// Every endpoint the configuration names must pass [`http::require_secure`].
    fn require_secure_endpoints(&self, config: &SmartConfiguration) -> Result<(), Error> {
        let endpoints = [
            ("authorization endpoint", Some(&config.authorization_endpoint)),
            ("token endpoint", Some(&config.token_endpoint)),
            ("jwks_uri", config.jwks_uri.as_ref()),
            ("registration endpoint", config.registration_endpoint.as_ref()),
            ("introspection endpoint", config.introspection_endpoint.as_ref()),
            ("revocation endpoint", config.revocation_endpoint.as_ref()),
        ];
        for (what, url) in endpoints {
            if let Some(url) = url {
                http::require_secure(url, what, self.allow_insecure_http)?;
            }
        }
        Ok(())
    }

    fn cached(&self, key: &str) -> Option<Arc<SmartConfiguration>> {
        let cache = self.cache.lock().ok()?;
        let (at, config) = cache.get(key)?;
        (at.elapsed() < self.ttl).then(|| config.clone())
    }

    async fn fetch(&self, base: &Url) -> Result<SmartConfiguration, Error> {
        let well_known = match self.get_json(base, ".well-known/smart-configuration").await {
            Ok(doc) => match SmartConfiguration::from_well_known(base, doc) {
                Ok(config) => return Ok(config),
                Err(reason) => reason,
            },
            Err(reason) => reason,
        };
        let metadata = match self.get_json(base, "metadata").await {
            Ok(doc) => match SmartConfiguration::from_capability_statement(base, &doc) {
                Ok(config) => return Ok(config),
                Err(reason) => reason,
            },
            Err(reason) => reason,
        };
        Err(Error::Discovery {
            issuer: base.to_string(),
            reason: format!("`.well-known/smart-configuration`: {well_known}; `metadata`: {metadata}"),
        })
    }

    async fn get_json(&self, base: &Url, path: &str) -> Result<Value, String> {
        let url = resolve(base, path)?;
        let accept = if path == "metadata" {
            "application/fhir+json, application/json"
        } else {
            "application/json"
        };
        let request = self.http.get(url.clone()).header(reqwest::header::ACCEPT, accept);
        let body = http::send(request, url.as_str())
            .await
            .map_err(|e| e.to_string())?;
        if !body.is_success() {
            return Err(format!("HTTP {}", body.status));
        }
        serde_json::from_str(&body.text).map_err(|e| format!("the response is not JSON ({e})"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn base() -> Url {
        Url::parse("https://ehr.example/r4/tenant1").unwrap()
    }

    #[test]
    fn relative_endpoints_resolve_against_the_fhir_base() {
        let config = SmartConfiguration::from_well_known(
            &base(),
            json!({
                "authorization_endpoint": "auth/authorize",
                "token_endpoint": "/oauth/token",
                "revocation_endpoint": "https://other.example/revoke",
                "capabilities": ["launch-ehr", "authorize-post"],
                "__vendor": {"x": 1}
            }),
        )
        .unwrap();
        assert_eq!(
            config.authorization_endpoint.as_str(),
            "https://ehr.example/r4/tenant1/auth/authorize"
        );
        assert_eq!(config.token_endpoint.as_str(), "https://ehr.example/oauth/token");
        assert_eq!(
            config.revocation_endpoint.as_ref().unwrap().as_str(),
            "https://other.example/revoke"
        );
        assert!(config.supports_authorize_post());
        assert!(config.extra.contains_key("__vendor"));
    }

    #[test]
    fn well_known_without_token_endpoint_is_refused() {
        let err =
            SmartConfiguration::from_well_known(&base(), json!({"authorization_endpoint": "a"})).unwrap_err();
        assert!(err.contains("token_endpoint"));
        assert!(SmartConfiguration::from_well_known(&base(), json!([1])).is_err());
    }

    #[test]
    fn capability_statement_oauth_uris_are_read() {
        let cs = json!({
            "resourceType": "CapabilityStatement",
            "rest": [{"security": {"extension": [{
                "url": OAUTH_URIS_EXTENSION,
                "extension": [
                    {"url": "authorize", "valueUri": "https://auth.example/authorize"},
                    {"url": "token", "valueUri": "token"},
                    {"url": "revoke", "valueUri": "https://auth.example/revoke"},
                    {"url": "introspect", "valueUri": "https://auth.example/introspect"}
                ]
            }]}}]
        });
        let config = SmartConfiguration::from_capability_statement(&base(), &cs).unwrap();
        assert_eq!(config.source, DiscoverySource::CapabilityStatement);
        assert_eq!(
            config.token_endpoint.as_str(),
            "https://ehr.example/r4/tenant1/token"
        );
        assert!(config.introspection_endpoint.is_some());
        assert!(config.registration_endpoint.is_none());
        assert!(SmartConfiguration::from_capability_statement(&base(), &json!({"rest": []})).is_err());
    }

    #[test]
    fn bases_are_normalized() {
        let url = Url::parse("https://ehr.example/r4/?x=1#f").unwrap();
        assert_eq!(normalize_base(&url).as_str(), "https://ehr.example/r4");
    }
}
