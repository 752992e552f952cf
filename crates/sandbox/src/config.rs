//! The sandbox's configuration: [`SandboxConfig`] and the registered clients ([`ClientSpec`]).

use std::{fmt, path::PathBuf, str::FromStr, time::Duration};

use jsonwebtoken::jwk::JwkSet;
use url::Url;

use crate::{error::SandboxError, persona::Persona};

/// How the sandbox is started. `SandboxConfig::default()` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The interface to listen on (default `127.0.0.1`).
    pub host: String,
    /// The port to listen on (default 9000; 0 picks a free port).
    pub port: u16,
    /// The SQLite file. `None` uses [`SandboxConfig::default_db_path`].
    pub db: Option<PathBuf>,
    /// How many synthetic patients to generate when the database is new (default 50).
    pub patients: usize,
    /// The seed of the synthetic-patient generator (default 42).
    pub seed: u64,
    /// Directories of FHIR Bundles to import at start.
    pub imports: Vec<PathBuf>,
    /// Clients registered besides the always-registered `smart-fhir-demo`.
    pub clients: Vec<ClientSpec>,
    /// Accept any client id whose redirect URI is a loopback URL (`--open-registration`); off by default.
    pub open_registration: bool,
    /// Lifetime of access tokens (default 5 minutes).
    pub token_ttl: Duration,
    /// Lifetime of authorization codes (default 60 seconds).
    pub code_ttl: Duration,
    /// The public FHIR base URL when the sandbox sits behind a proxy (default `http://{host}:{port}{path}`, where
    /// the path is the persona's: `/fhir` for `smart`).
    pub public_base_url: Option<Url>,
    /// Which EHR the sandbox looks like on the wire (`--persona`, default [`Persona::Smart`]).
    pub persona: Persona,
    /// A delay added before every answer (`--latency MS`), to feel a real EHR's round trip; zero by default.
    pub latency: Duration,
    /// The port of the separate authorization host of personas that have one (Cerner). `None`: the port after
    /// `port` (or a free port when `port` is 0).
    pub auth_port: Option<u16>,
    /// The Bulk Data `$export` limits (see [`crate::limits::BulkConfig`] for the defaults).
    pub bulk: crate::limits::BulkConfig,
    /// What the authorization server keeps of strangers' requests and how often it purges what expired (see
    /// [`crate::limits::AuthLimits`] for the defaults).
    pub auth_limits: crate::limits::AuthLimits,
    /// The RSA private key (PKCS#1 PEM, `BEGIN RSA PRIVATE KEY`) that signs id_tokens when the database holds
    /// none yet; it is stored there like a generated one. `None`: a 2048-bit key is generated. Tests pass one
    /// fixed key so that no test pays for RSA key generation.
    pub issuer_key_pem: Option<String>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 9000,
            db: None,
            patients: 50,
            seed: 42,
            imports: Vec::new(),
            clients: Vec::new(),
            open_registration: false,
            token_ttl: Duration::from_secs(5 * 60),
            code_ttl: Duration::from_secs(60),
            public_base_url: None,
            persona: Persona::Smart,
            latency: Duration::ZERO,
            auth_port: None,
            bulk: crate::limits::BulkConfig::default(),
            auth_limits: crate::limits::AuthLimits::default(),
            issuer_key_pem: None,
        }
    }
}

impl SandboxConfig {
    /// This configuration as `persona`, with the access-token lifetime that vendor documents
    /// ([`Persona::token_ttl`]: Cerner 570 s, Epic 3600 s, smart 5 min).
    pub fn with_persona(mut self, persona: Persona) -> Self {
        self.persona = persona;
        self.token_ttl = persona.token_ttl();
        self
    }

    /// The database file used when none is given: `sandbox.db` in the user's data directory
    /// (e.g. `~/.local/share/smart-fhir/sandbox.db` on Linux).
    pub fn default_db_path() -> Result<PathBuf, SandboxError> {
        dirs::data_dir()
            .map(|dir| dir.join("smart-fhir").join("sandbox.db"))
            .ok_or_else(|| SandboxError::InvalidConfig {
                key: "db".to_owned(),
                reason: "this system has no user data directory; give a database file with `--db FILE`"
                    .to_owned(),
            })
    }
}

/// A confidential client's secret (the same newtype the app and the client library use); `Debug` and `Display`
/// print `[redacted]`.
pub use smart_launch::ClientSecret;

/// Where an asymmetric client's public keys come from.
#[derive(Debug, Clone)]
pub enum ClientKeys {
    /// A JWK Set file, read when the client is registered.
    File(PathBuf),
    /// A JWK Set URL, fetched when needed (cached for five minutes).
    Url(Url),
    /// A JWK Set given directly.
    Set(JwkSet),
}

/// Whether a public client must use PKCE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PkcePolicy {
    /// PKCE S256 is required (the default).
    #[default]
    Required,
    /// PKCE may be omitted (legacy clients such as the Python `fhirclient` 4.1); when sent it is still checked.
    Optional,
}

/// A failure the sandbox simulates on demand so apps can test their error handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SimulatedFailure {
    /// `/authorize` treats the client as unknown (error page).
    InvalidClient,
    /// `/authorize` treats the redirect URI as unregistered (error page).
    InvalidRedirect,
    /// `/authorize` redirects back with `error=invalid_scope`.
    InvalidScope,
    /// The token endpoint answers `invalid_grant` to the code exchange and refreshes.
    TokenError,
    /// Access tokens are reported expired by the FHIR server.
    ExpiredToken,
    /// The FHIR server answers 500.
    Fhir500,
    /// The FHIR server answers 503.
    Fhir503,
    /// The FHIR server answers 429 with `Retry-After`.
    Fhir429,
}

impl SimulatedFailure {
    /// Every failure, in the order the launcher page lists them.
    pub const ALL: [SimulatedFailure; 8] = [
        SimulatedFailure::InvalidClient,
        SimulatedFailure::InvalidRedirect,
        SimulatedFailure::InvalidScope,
        SimulatedFailure::TokenError,
        SimulatedFailure::ExpiredToken,
        SimulatedFailure::Fhir500,
        SimulatedFailure::Fhir503,
        SimulatedFailure::Fhir429,
    ];

    /// The name used in `fail=…` (e.g. `fhir_503`).
    pub fn name(self) -> &'static str {
        match self {
            SimulatedFailure::InvalidClient => "invalid_client",
            SimulatedFailure::InvalidRedirect => "invalid_redirect",
            SimulatedFailure::InvalidScope => "invalid_scope",
            SimulatedFailure::TokenError => "token_error",
            SimulatedFailure::ExpiredToken => "expired_token",
            SimulatedFailure::Fhir500 => "fhir_500",
            SimulatedFailure::Fhir503 => "fhir_503",
            SimulatedFailure::Fhir429 => "fhir_429",
        }
    }

    /// A sentence describing the failure, for the launcher page.
    pub fn description(self) -> &'static str {
        match self {
            SimulatedFailure::InvalidClient => "The authorization server does not know the client",
            SimulatedFailure::InvalidRedirect => "The redirect URI does not match the registration",
            SimulatedFailure::InvalidScope => "The requested scope is refused (error=invalid_scope)",
            SimulatedFailure::TokenError => "The token endpoint refuses the code (invalid_grant)",
            SimulatedFailure::ExpiredToken => "The FHIR server reports the access token as expired",
            SimulatedFailure::Fhir500 => "The FHIR server answers 500 Internal Server Error",
            SimulatedFailure::Fhir503 => "The FHIR server answers 503 Service Unavailable",
            SimulatedFailure::Fhir429 => "The FHIR server answers 429 Too Many Requests",
        }
    }
}

impl FromStr for SimulatedFailure {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SimulatedFailure::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = SimulatedFailure::ALL.iter().map(|f| f.name()).collect();
                format!("unknown failure `{s}`; use one of {}", names.join(", "))
            })
    }
}

impl fmt::Display for SimulatedFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A client the authorization server knows, as given by `--client 'id=…,redirect=…'` or
/// [`crate::auth::AuthServer::register_client`].
///
/// ```
/// use sandbox::ClientSpec;
/// let spec: ClientSpec = "id=my_app,redirect=http://localhost:8000/cb,secret=s3cret".parse().unwrap();
/// assert_eq!(spec.id, "my_app");
/// assert!(spec.secret.is_some());
/// ```
#[derive(Debug, Clone)]
pub struct ClientSpec {
    /// The client id.
    pub id: String,
    /// The registered redirect URIs (matched exactly). `redirect=` may be repeated.
    pub redirect_uris: Vec<Url>,
    /// A secret makes the client confidential-symmetric (client_secret_basic or client_secret_post).
    pub secret: Option<ClientSecret>,
    /// Public keys make the client confidential-asymmetric (private_key_jwt, and client_credentials).
    pub keys: Option<ClientKeys>,
    /// The app's EHR-launch URL, used by the launcher.
    pub launch_uri: Option<Url>,
    /// Whether PKCE is required.
    pub pkce: PkcePolicy,
    /// A failure to simulate for every launch of this client.
    pub fail: Option<SimulatedFailure>,
}

impl ClientSpec {
    /// A public client with one redirect URI.
    pub fn public(id: impl Into<String>, redirect_uri: Url) -> Self {
        Self {
            id: id.into(),
            redirect_uris: vec![redirect_uri],
            secret: None,
            keys: None,
            launch_uri: None,
            pkce: PkcePolicy::Required,
            fail: None,
        }
    }

    /// Makes the client confidential with a secret.
    pub fn with_secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(ClientSecret::new(secret));
        self
    }

    /// Makes the client asymmetric with these public keys.
    pub fn with_keys(mut self, keys: ClientKeys) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Sets the app's EHR-launch URL.
    pub fn with_launch_uri(mut self, launch_uri: Url) -> Self {
        self.launch_uri = Some(launch_uri);
        self
    }

    /// Lets the client omit PKCE (legacy clients).
    pub fn with_pkce_optional(mut self) -> Self {
        self.pkce = PkcePolicy::Optional;
        self
    }

    /// Simulates a failure on every launch of this client.
    pub fn with_failure(mut self, fail: SimulatedFailure) -> Self {
        self.fail = Some(fail);
        self
    }

    /// The always-registered demo client: public, redirect `http://localhost:8000/fhir-app/`, launch URL
    /// `http://localhost:8000/launch`.
    pub fn demo() -> Self {
        let redirect = Url::parse("http://localhost:8000/fhir-app/");
        let launch = Url::parse("http://localhost:8000/launch");
        match (redirect, launch) {
            (Ok(redirect), Ok(launch)) => Self::public(DEMO_CLIENT_ID, redirect).with_launch_uri(launch),
            // Both URLs are constants that parse; this arm only keeps the code free of `expect`.
            _ => Self {
                id: DEMO_CLIENT_ID.to_owned(),
                redirect_uris: Vec::new(),
                secret: None,
                keys: None,
                launch_uri: None,
                pkce: PkcePolicy::Required,
                fail: None,
            },
        }
    }
}

/// The id of the always-registered demo client.
pub const DEMO_CLIENT_ID: &str = "smart-fhir-demo";

impl FromStr for ClientSpec {
    type Err = SandboxError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| SandboxError::InvalidClientSpec {
            spec: spec.to_owned(),
            reason,
        };
        let parse_url = |key: &str, value: &str| {
            Url::parse(value).map_err(|e| invalid(format!("`{key}` is not an absolute URL ({e})")))
        };
        let mut id = None;
        let mut out = ClientSpec::public(String::new(), parse_url("redirect", "http://localhost/")?);
        out.redirect_uris.clear();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| invalid(format!("`{part}` is not a key=value pair")))?;
            let value = value.trim();
            match key.trim() {
                "id" => id = Some(value.to_owned()),
                "redirect" | "redirect_uri" => out.redirect_uris.push(parse_url(key, value)?),
                "secret" => out.secret = Some(ClientSecret::new(value)),
                "jwks" => out.keys = Some(ClientKeys::File(PathBuf::from(value))),
                "jwks_url" => out.keys = Some(ClientKeys::Url(parse_url(key, value)?)),
                "launch" | "launch_uri" => out.launch_uri = Some(parse_url(key, value)?),
                "pkce" => {
                    out.pkce = match value {
                        "optional" => PkcePolicy::Optional,
                        "required" => PkcePolicy::Required,
                        other => {
                            return Err(invalid(format!(
                                "`pkce={other}` must be `optional` or `required`"
                            )));
                        }
                    }
                }
                "fail" => out.fail = Some(value.parse().map_err(invalid)?),
                other => return Err(invalid(format!("unknown key `{other}`"))),
            }
        }
        out.id = id
            .filter(|i| !i.is_empty())
            .ok_or_else(|| invalid("`id=` is missing".to_owned()))?;
        if out.redirect_uris.is_empty() {
            return Err(invalid("`redirect=` is missing".to_owned()));
        }
        if out.secret.is_some() && out.keys.is_some() {
            return Err(invalid(
                "give either `secret=` or `jwks=`/`jwks_url=`, not both".to_owned(),
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_client_spec_parses() {
        let spec: ClientSpec =
            "id=a,redirect=http://localhost:1/cb,redirect=http://localhost:2/cb,launch=http://localhost:1/launch,pkce=optional,fail=fhir_503"
                .parse()
                .unwrap();
        assert_eq!(spec.id, "a");
        assert_eq!(spec.redirect_uris.len(), 2);
        assert_eq!(spec.pkce, PkcePolicy::Optional);
        assert_eq!(spec.fail, Some(SimulatedFailure::Fhir503));
        assert!(spec.launch_uri.is_some());
    }

    #[test]
    fn client_spec_without_redirect_is_rejected() {
        let err = "id=a".parse::<ClientSpec>().unwrap_err();
        assert!(err.to_string().contains("redirect"), "{err}");
    }

    #[test]
    fn client_spec_with_unknown_key_is_rejected() {
        let err = "id=a,redirect=http://x/,colour=blue"
            .parse::<ClientSpec>()
            .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn secret_is_redacted_in_debug() {
        let spec: ClientSpec = "id=a,redirect=http://x/,secret=hunter2".parse().unwrap();
        assert!(!format!("{spec:?}").contains("hunter2"));
    }
}
