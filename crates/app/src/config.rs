//! The app's configuration: one typed [`AppConfig`], loaded from `smart-fhir.toml` and then from
//! `SMART_FHIR_*` environment variables, with named EHR profiles.
//!
//! Precedence, lowest first: the built-in profile (`sandbox` or `cerner-sandbox`), the file's
//! `[profiles.<name>]` table, the file's `[app]` table, then the environment. Every key can be set in
//! each place; the environment variable of a key is `SMART_FHIR_` followed by the key in upper case
//! (`fhir_base` → `SMART_FHIR_FHIR_BASE`). Lists (`allowed_issuers`) are comma- or space-separated in
//! the environment.
//!
//! ```toml
//! profile = "cerner-sandbox"          # or SMART_FHIR_PROFILE
//!
//! [app]
//! listen = "127.0.0.1:8000"
//! session_db = "/var/lib/smart-fhir/sessions.db"
//!
//! [profiles.my-ehr]
//! fhir_base = "https://ehr.example.org/fhir"
//! client_id = "my-app"
//! client_secret = "…"                 # better: SMART_FHIR_CLIENT_SECRET
//! scope = "launch/patient openid fhirUser patient/*.rs"
//! authorize_post = true               # POST the authorize request when the EHR offers authorize-post
//! insecure_http = false               # true: allow plain http EHR endpoints off this machine (tests only)
//! ```
//!
//! Tables other than `[app]` and `[profiles.*]` (such as the binary's `[sandbox]`) are ignored here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use smart_launch::{ClientSecret, ScopeSet};
use url::Url;

use crate::session::{RedisUrl, SessionKey};

/// The file read when no other is named (in the working directory; missing is fine).
pub const DEFAULT_CONFIG_FILE: &str = "smart-fhir.toml";

/// The prefix of every environment variable the app reads.
pub const ENV_PREFIX: &str = "SMART_FHIR_";

/// The name of the default profile: the embedded sandbox EHR on `http://localhost:9000/fhir`.
pub const SANDBOX_PROFILE: &str = "sandbox";

/// The name of the profile with the seed's Cerner sandbox values.
pub const CERNER_SANDBOX_PROFILE: &str = "cerner-sandbox";

/// The scopes the patient summary reads, in SMART v1 form (understood by every SMART server).
const SUMMARY_SCOPES_V1: &str = "patient/Patient.read patient/Observation.read patient/Condition.read \
     patient/MedicationRequest.read patient/AllergyIntolerance.read patient/Immunization.read \
     patient/Encounter.read patient/MedicationStatement.read patient/Procedure.read \
     patient/DiagnosticReport.read";

/// The scopes the patient summary reads, in SMART v2 form.
const SUMMARY_SCOPES_V2: &str = "patient/Patient.rs patient/Observation.rs patient/Condition.rs \
     patient/MedicationRequest.rs patient/AllergyIntolerance.rs patient/Immunization.rs patient/Encounter.rs \
     patient/MedicationStatement.rs patient/Procedure.rs patient/DiagnosticReport.rs";

/// The app's configuration, validated. Build it with [`AppConfig::load`] (file + environment),
/// [`AppConfig::from_sources`] (explicit text + variables) or [`AppConfig::for_issuer`] (tests, demo).
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The profile these values came from (`sandbox`, `cerner-sandbox`, or one from the file).
    pub profile: String,
    /// The FHIR base URL (the `iss`/`aud`) of the EHR used for standalone launches.
    pub fhir_base: Url,
    /// The OAuth client id registered with the EHR.
    pub client_id: String,
    /// The client secret of a confidential-symmetric client (`client_secret_basic`).
    pub client_secret: Option<ClientSecret>,
    /// A PEM private key (RSA or P-384) of a confidential-asymmetric client (`private_key_jwt`).
    pub private_key: Option<PathBuf>,
    /// The redirect URI registered with the EHR. `None`: `{public_url}/fhir-app/`.
    pub redirect_uri: Option<Url>,
    /// The scopes requested at launch (`launch` is added for EHR launches).
    pub scope: ScopeSet,
    /// The issuers an EHR launch (`/launch?iss=…`) may name. Always contains `fhir_base`.
    pub allowed_issuers: Vec<Url>,
    /// The SQLite file holding server-side sessions and tokens.
    pub session_db: PathBuf,
    /// Where sessions are kept when not in `session_db`: a Redis URL (`redis://HOST:PORT/DB`), shared by
    /// several instances of the app (its password, if any, never prints). `None`: the SQLite file `session_db`.
    pub session_store: Option<RedisUrl>,
    /// The key stored sessions are encrypted with (`session_key`, 64 hex characters). `None`: a key generated
    /// once into `session.key` beside `session_db` (mode 0600). Instances sharing a Redis store must share it.
    pub session_key: Option<SessionKey>,
    /// How long a session lives after login.
    pub session_ttl: Duration,
    /// How long a fetched patient summary is reused for the same session (0 disables the cache).
    pub summary_cache: Duration,
    /// The address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The URL users reach the app at. `None`: `http://{bound address}`. Cookies are `Secure` when
    /// it is `https`.
    pub public_url: Option<Url>,
    /// Send the authorize request as an auto-submitted POST form when the EHR advertises
    /// `authorize-post` (default on: the launch parameters then stay out of URLs and logs).
    pub authorize_post: bool,
    /// Allow plain `http` for EHR endpoints (discovery, authorize, token, keys, FHIR) on hosts other
    /// than this machine. Off by default; loopback addresses are always allowed. Security opt-out:
    /// only for test servers on a trusted network.
    pub insecure_http: bool,
    /// The units labs whose analyte converts (glucose, cholesterol, triglycerides, creatinine) are
    /// shown in: `conventional` (mg/dL, the default, as US EHRs send them) or `si` (mmol/L, µmol/L
    /// for creatinine); the value as sent stays beside a converted one.
    pub lab_units: crate::units::LabUnits,
}

/// A configuration value is missing or invalid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("The configuration file {path} could not be read: {source}.")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML or has an unknown key.
    #[error("The configuration file {path} is not valid: {message}")]
    Parse {
        /// The file (or `<text>` when given as a string).
        path: PathBuf,
        /// The parser's message, naming the line and key.
        message: String,
    },
    /// A key has a value that cannot be used.
    #[error("The configuration key `{key}` (environment variable {env}) is invalid: {reason}.")]
    Invalid {
        /// The key, as written in `smart-fhir.toml`.
        key: &'static str,
        /// The environment variable that sets it.
        env: String,
        /// Why the value was refused.
        reason: String,
    },
    /// The selected profile is neither built in nor defined in the file.
    #[error(
        "The profile `{profile}` is not defined. Use `sandbox`, `cerner-sandbox`, or add a \
         [profiles.{profile}] table to smart-fhir.toml."
    )]
    UnknownProfile {
        /// The profile asked for.
        profile: String,
    },
}

/// One layer of settings: every field optional, so layers can be merged.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Layer {
    fhir_base: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    private_key: Option<PathBuf>,
    redirect_uri: Option<String>,
    /// A built-in profile's redirect URI: used unless one is named or `public_url` is set (then the redirect is
    /// `{public_url}/fhir-app/`, where the session cookie is; the profile's `localhost:8000` would not be).
    #[serde(skip)]
    profile_redirect_uri: Option<String>,
    scope: Option<String>,
    allowed_issuers: Option<Vec<String>>,
    session_db: Option<PathBuf>,
    session_store: Option<String>,
    session_key: Option<String>,
    session_ttl_secs: Option<u64>,
    summary_cache_secs: Option<u64>,
    listen: Option<String>,
    public_url: Option<String>,
    authorize_post: Option<bool>,
    insecure_http: Option<bool>,
    lab_units: Option<String>,
}

impl Layer {
    /// Values of `over` win.
    fn merge(self, over: Layer) -> Layer {
        Layer {
            fhir_base: over.fhir_base.or(self.fhir_base),
            client_id: over.client_id.or(self.client_id),
            client_secret: over.client_secret.or(self.client_secret),
            private_key: over.private_key.or(self.private_key),
            redirect_uri: over.redirect_uri.or(self.redirect_uri),
            profile_redirect_uri: over.profile_redirect_uri.or(self.profile_redirect_uri),
            scope: over.scope.or(self.scope),
            allowed_issuers: over.allowed_issuers.or(self.allowed_issuers),
            session_db: over.session_db.or(self.session_db),
            session_store: over.session_store.or(self.session_store),
            session_key: over.session_key.or(self.session_key),
            session_ttl_secs: over.session_ttl_secs.or(self.session_ttl_secs),
            summary_cache_secs: over.summary_cache_secs.or(self.summary_cache_secs),
            listen: over.listen.or(self.listen),
            public_url: over.public_url.or(self.public_url),
            authorize_post: over.authorize_post.or(self.authorize_post),
            insecure_http: over.insecure_http.or(self.insecure_http),
            lab_units: over.lab_units.or(self.lab_units),
        }
    }

    fn builtin(profile: &str) -> Option<Layer> {
        match profile {
            SANDBOX_PROFILE => Some(Layer {
                fhir_base: Some("http://localhost:9000/fhir".into()),
                client_id: Some("smart-fhir-demo".into()),
                profile_redirect_uri: Some("http://localhost:8000/fhir-app/".into()),
                scope: Some(format!(
                    "launch/patient openid fhirUser offline_access {SUMMARY_SCOPES_V2}"
                )),
                ..Layer::default()
            }),
            CERNER_SANDBOX_PROFILE => Some(Layer {
                fhir_base: Some(
                    "https://fhir-myrecord.cerner.com/r4/ec2458f2-1e24-41c8-b71b-0e701af7583d".into(),
                ),
                client_id: Some("d8ec5b28-c1fd-4a97-9210-bb3576f737e8".into()),
                profile_redirect_uri: Some("http://localhost:8000/fhir-app/".into()),
                scope: Some(format!(
                    "launch/patient openid fhirUser offline_access {SUMMARY_SCOPES_V1}"
                )),
                ..Layer::default()
            }),
            _ => None,
        }
    }

    fn from_env(vars: &BTreeMap<String, String>) -> Result<Layer, ConfigError> {
        let get = |key: &str| {
            vars.get(&env_name(key))
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let seconds = |key: &'static str| match get(key) {
            Some(v) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|e| invalid(key, format!("{v:?} is not a number of seconds ({e})"))),
            None => Ok(None),
        };
        let session_ttl_secs = seconds("session_ttl_secs")?;
        let summary_cache_secs = seconds("summary_cache_secs")?;
        let flag = |key: &'static str| match get(key).map(|v| v.to_ascii_lowercase()) {
            Some(v) if matches!(v.as_str(), "true" | "1" | "yes" | "on") => Ok(Some(true)),
            Some(v) if matches!(v.as_str(), "false" | "0" | "no" | "off") => Ok(Some(false)),
            Some(v) => Err(invalid(key, format!("{v:?} is not true or false"))),
            None => Ok(None),
        };
        let authorize_post = flag("authorize_post")?;
        let insecure_http = flag("insecure_http")?;
        Ok(Layer {
            fhir_base: get("fhir_base"),
            client_id: get("client_id"),
            client_secret: get("client_secret"),
            private_key: get("private_key").map(PathBuf::from),
            redirect_uri: get("redirect_uri"),
            scope: get("scope"),
            allowed_issuers: get("allowed_issuers").map(|v| {
                v.split([',', ' '])
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            }),
            session_db: get("session_db").map(PathBuf::from),
            session_store: get("session_store"),
            session_key: get("session_key"),
            session_ttl_secs,
            summary_cache_secs,
            listen: get("listen"),
            public_url: get("public_url"),
            authorize_post,
            insecure_http,
            lab_units: get("lab_units"),
            profile_redirect_uri: None,
        })
    }
}

/// The file's shape: `profile`, `[app]`, `[profiles.*]`; other tables are someone else's.
#[derive(Debug, Default, Deserialize)]
struct FileConfig {
    profile: Option<String>,
    #[serde(default)]
    app: Option<Layer>,
    #[serde(default)]
    profiles: BTreeMap<String, Layer>,
}

fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        env: env_name(key),
        reason: reason.into(),
    }
}

fn parse_url(key: &'static str, value: &str) -> Result<Url, ConfigError> {
    let url =
        Url::parse(value).map_err(|e| invalid(key, format!("{value:?} is not an absolute URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(key, format!("{value:?} must be an http or https URL")));
    }
    Ok(url)
}

/// A `session_store` value: a `redis://` (or `rediss://`) URL. The message does not repeat the value, which may
/// hold a password.
fn parse_session_store(value: &str) -> Result<RedisUrl, ConfigError> {
    RedisUrl::parse(value).map_err(|e| invalid("session_store", e.to_string()))
}

/// The issuers an EHR launch may name: `fhir_base` first, then `listed` (each once).
fn allowed_issuers(fhir_base: &Url, listed: Vec<String>) -> Result<Vec<Url>, ConfigError> {
    let mut allowed_issuers = vec![fhir_base.clone()];
    for issuer in listed {
        let url = parse_url("allowed_issuers", &issuer)?;
        if !allowed_issuers.contains(&url) {
            allowed_issuers.push(url);
        }
    }
    Ok(allowed_issuers)
}

/// The `listen` address (default `127.0.0.1:8000`).
fn parse_listen(listen: Option<String>) -> Result<SocketAddr, ConfigError> {
    let listen_text = listen.unwrap_or_else(|| "127.0.0.1:8000".to_owned());
    listen_text.parse::<SocketAddr>().map_err(|e| {
        invalid(
            "listen",
            format!("{listen_text:?} is not an address like 127.0.0.1:8000 ({e})"),
        )
    })
}

/// At most one client credential, and a private key that is a file.
fn check_client_credentials(has_secret: bool, private_key: Option<&Path>) -> Result<(), ConfigError> {
    if has_secret && private_key.is_some() {
        return Err(invalid(
            "client_secret",
            "give either client_secret or private_key, not both",
        ));
    }
    if let Some(key) = private_key
        && !key.is_file()
    {
        return Err(invalid(
            "private_key",
            format!("{} is not a readable file", key.display()),
        ));
    }
    Ok(())
}

/// The session lifetime (default 12 hours, at least a minute).
fn parse_session_ttl(session_ttl_secs: Option<u64>) -> Result<Duration, ConfigError> {
    let session_ttl_secs = session_ttl_secs.unwrap_or(12 * 3600);
    if session_ttl_secs < 60 {
        return Err(invalid(
            "session_ttl_secs",
            "a session must live at least 60 seconds",
        ));
    }
    Ok(Duration::from_secs(session_ttl_secs))
}

/// The Redis session store and the session key; instances sharing a store must be given the key.
fn parse_shared_store(
    session_store: Option<&str>,
    session_key: Option<&str>,
) -> Result<(Option<RedisUrl>, Option<SessionKey>), ConfigError> {
    let session_store = session_store.map(parse_session_store).transpose()?;
    let session_key = session_key
        .map(|v| SessionKey::from_hex(v).map_err(|e| invalid("session_key", e.to_string())))
        .transpose()?;
    if session_store.is_some() && session_key.is_none() {
        return Err(invalid(
            "session_key",
            "instances sharing a Redis session store must share one session_key (64 hex characters)",
        ));
    }
    Ok((session_store, session_key))
}

/// The units lab results are shown in (default conventional).
fn parse_lab_units(lab_units: Option<&str>) -> Result<crate::units::LabUnits, ConfigError> {
    match lab_units {
        None => Ok(crate::units::LabUnits::default()),
        Some(text) => crate::units::LabUnits::parse(text).ok_or_else(|| {
            invalid(
                "lab_units",
                format!("{text:?} is not conventional (mg/dL) or si (mmol/L)"),
            )
        }),
    }
}

/// Where the session database goes when none is configured.
fn default_session_db() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .map(|dir| dir.join("smart-fhir").join("app-sessions.db"))
        .unwrap_or_else(|| PathBuf::from("smart-fhir-sessions.db"))
}

impl AppConfig {
    /// Loads the configuration: the file at `path` (or `smart-fhir.toml` in the working directory
    /// when it exists), then the process environment. `profile` (from the command line) overrides
    /// `SMART_FHIR_PROFILE` and the file's `profile`.
    pub fn load(path: Option<&Path>, profile: Option<&str>) -> Result<AppConfig, ConfigError> {
        let (text, path) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                (Some(text), path.to_owned())
            }
            None => {
                let path = PathBuf::from(DEFAULT_CONFIG_FILE);
                match std::fs::read_to_string(&path) {
                    Ok(text) => (Some(text), path),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, path),
                    Err(source) => return Err(ConfigError::Read { path, source }),
                }
            }
        };
        let env = std::env::vars().filter(|(k, _)| k.starts_with(ENV_PREFIX));
        Self::from_sources(text.as_deref().map(|t| (t, path.as_path())), env, profile)
    }

    /// Builds the configuration from the file's text (with its path, for messages) and a set of
    /// environment variables (only `SMART_FHIR_*` ones are read).
    pub fn from_sources(
        file: Option<(&str, &Path)>,
        env: impl IntoIterator<Item = (String, String)>,
        profile: Option<&str>,
    ) -> Result<AppConfig, ConfigError> {
        let file: FileConfig = match file {
            Some((text, path)) => toml::from_str(text).map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            })?,
            None => FileConfig::default(),
        };
        let env: BTreeMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        let profile = profile
            .map(str::to_owned)
            .or_else(|| {
                env.get(&env_name("profile"))
                    .cloned()
                    .filter(|p| !p.trim().is_empty())
            })
            .or(file.profile)
            .unwrap_or_else(|| SANDBOX_PROFILE.to_owned());
        let builtin = Layer::builtin(&profile);
        let from_file = file.profiles.get(&profile).cloned();
        if builtin.is_none() && from_file.is_none() {
            return Err(ConfigError::UnknownProfile { profile });
        }
        let layer = builtin
            .unwrap_or_default()
            .merge(from_file.unwrap_or_default())
            .merge(file.app.unwrap_or_default())
            .merge(Layer::from_env(&env)?);
        Self::validate(profile, layer)
    }

    /// Checks every key in turn (the first that fails is the error, naming it) and builds the configuration.
    fn validate(profile: String, layer: Layer) -> Result<AppConfig, ConfigError> {
        let fhir_base = parse_url(
            "fhir_base",
            layer
                .fhir_base
                .as_deref()
                .ok_or_else(|| invalid("fhir_base", "it is not set"))?,
        )?;
        let client_id = layer
            .client_id
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| invalid("client_id", "it is not set"))?;
        let redirect_uri = layer
            .redirect_uri
            .or_else(|| layer.profile_redirect_uri.filter(|_| layer.public_url.is_none()))
            .as_deref()
            .map(|v| parse_url("redirect_uri", v))
            .transpose()?;
        let scope_text = layer.scope.ok_or_else(|| invalid("scope", "it is not set"))?;
        let scope = ScopeSet::parse(&scope_text).map_err(|e| invalid("scope", e.to_string()))?;
        let allowed_issuers = allowed_issuers(&fhir_base, layer.allowed_issuers.unwrap_or_default())?;
        let listen = parse_listen(layer.listen)?;
        let public_url = layer
            .public_url
            .as_deref()
            .map(|v| parse_url("public_url", v))
            .transpose()?;
        check_client_credentials(layer.client_secret.is_some(), layer.private_key.as_deref())?;
        let session_ttl = parse_session_ttl(layer.session_ttl_secs)?;
        let (session_store, session_key) =
            parse_shared_store(layer.session_store.as_deref(), layer.session_key.as_deref())?;
        let lab_units = parse_lab_units(layer.lab_units.as_deref())?;
        Ok(AppConfig {
            profile,
            fhir_base,
            client_id,
            client_secret: layer.client_secret.map(ClientSecret::new),
            private_key: layer.private_key,
            redirect_uri,
            scope,
            allowed_issuers,
            session_db: layer.session_db.unwrap_or_else(default_session_db),
            session_store,
            session_key,
            session_ttl,
            summary_cache: Duration::from_secs(layer.summary_cache_secs.unwrap_or(30)),
            listen,
            public_url,
            authorize_post: layer.authorize_post.unwrap_or(true),
            insecure_http: layer.insecure_http.unwrap_or(false),
            lab_units,
        })
    }

    /// A configuration for a public client of `fhir_base` with the sandbox profile's scopes,
    /// listening on `127.0.0.1:0` with the redirect URI derived from the bound address. Used by the
    /// demo wiring and by tests; adjust the fields as needed.
    pub fn for_issuer(fhir_base: Url, client_id: impl Into<String>, session_db: PathBuf) -> AppConfig {
        let scope_text = format!("launch/patient openid fhirUser offline_access {SUMMARY_SCOPES_V2}");
        AppConfig {
            profile: "custom".to_owned(),
            allowed_issuers: vec![fhir_base.clone()],
            fhir_base,
            client_id: client_id.into(),
            client_secret: None,
            private_key: None,
            redirect_uri: None,
            // The scope text above is a constant that parses; an empty set is the harmless fallback.
            scope: ScopeSet::parse(&scope_text).unwrap_or_default(),
            session_db,
            session_store: None,
            session_key: None,
            session_ttl: Duration::from_secs(12 * 3600),
            summary_cache: Duration::from_secs(30),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: None,
            authorize_post: true,
            insecure_http: false,
            lab_units: crate::units::LabUnits::default(),
        }
    }

    /// Whether cookies must carry `Secure` (the public URL is https).
    pub fn is_https(&self) -> bool {
        self.public_url.as_ref().is_some_and(|u| u.scheme() == "https")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn default_profile_is_the_sandbox() {
        let config = AppConfig::from_sources(None, env(&[]), None).unwrap();
        assert_eq!(config.profile, "sandbox");
        assert_eq!(config.fhir_base.as_str(), "http://localhost:9000/fhir");
        assert_eq!(config.client_id, "smart-fhir-demo");
        assert_eq!(config.listen.port(), 8000);
        assert!(config.scope.to_string().contains("launch/patient"));
    }

    #[test]
    fn lab_units_default_to_conventional_and_a_bad_value_is_named() {
        let config = AppConfig::from_sources(None, env(&[]), None).unwrap();
        assert_eq!(config.lab_units, crate::units::LabUnits::Conventional);
        let si = AppConfig::from_sources(None, env(&[("SMART_FHIR_LAB_UNITS", "si")]), None).unwrap();
        assert_eq!(si.lab_units, crate::units::LabUnits::Si);
        let err =
            AppConfig::from_sources(None, env(&[("SMART_FHIR_LAB_UNITS", "metric")]), None).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("lab_units")
                && message.contains("SMART_FHIR_LAB_UNITS")
                && message.contains("metric"),
            "{message}"
        );
    }

    #[test]
    fn cerner_profile_has_the_seed_values() {
        let config = AppConfig::from_sources(None, env(&[]), Some("cerner-sandbox")).unwrap();
        assert_eq!(config.client_id, "d8ec5b28-c1fd-4a97-9210-bb3576f737e8");
        assert_eq!(
            config.fhir_base.as_str(),
            "https://fhir-myrecord.cerner.com/r4/ec2458f2-1e24-41c8-b71b-0e701af7583d"
        );
        assert_eq!(
            config.redirect_uri.unwrap().as_str(),
            "http://localhost:8000/fhir-app/"
        );
        let scope = config.scope.to_string();
        for s in ["launch/patient", "patient/Patient.read", "openid", "fhirUser"] {
            assert!(scope.split(' ').any(|x| x == s), "{s} missing from {scope}");
        }
    }

    #[test]
    fn a_public_url_set_over_a_profile_moves_the_redirect_uri_unless_one_is_named() {
        let moved = AppConfig::from_sources(
            None,
            env(&[("SMART_FHIR_PUBLIC_URL", "http://127.0.0.1:35719")]),
            Some("sandbox"),
        )
        .unwrap();
        assert_eq!(moved.redirect_uri, None, "derived: {{public_url}}/fhir-app/");
        let named = AppConfig::from_sources(
            None,
            env(&[
                ("SMART_FHIR_PUBLIC_URL", "https://app.example.org"),
                ("SMART_FHIR_REDIRECT_URI", "https://app.example.org/callback"),
            ]),
            Some("sandbox"),
        )
        .unwrap();
        assert_eq!(
            named.redirect_uri.unwrap().as_str(),
            "https://app.example.org/callback"
        );
        let from_file = AppConfig::from_sources(
            Some((
                "[app]\nredirect_uri = \"https://app.example.org/cb\"\n",
                Path::new("smart-fhir.toml"),
            )),
            env(&[("SMART_FHIR_PUBLIC_URL", "https://app.example.org")]),
            Some("sandbox"),
        )
        .unwrap();
        assert_eq!(
            from_file.redirect_uri.unwrap().as_str(),
            "https://app.example.org/cb",
            "one named in the file stays"
        );
        let profile = AppConfig::from_sources(None, env(&[]), Some("sandbox")).unwrap();
        assert_eq!(
            profile.redirect_uri.unwrap().as_str(),
            "http://localhost:8000/fhir-app/"
        );
    }

    #[test]
    fn environment_overrides_file_which_overrides_profile() {
        let text = r#"
            profile = "cerner-sandbox"
            [app]
            client_id = "from-file"
            listen = "0.0.0.0:8080"
            [sandbox]
            port = 9000
        "#;
        let config = AppConfig::from_sources(
            Some((text, Path::new("smart-fhir.toml"))),
            env(&[("SMART_FHIR_CLIENT_ID", "from-env"), ("OTHER", "x")]),
            None,
        )
        .unwrap();
        assert_eq!(config.profile, "cerner-sandbox");
        assert_eq!(config.client_id, "from-env");
        assert_eq!(config.listen.port(), 8080);
    }

    #[test]
    fn file_can_define_a_profile_and_env_can_select_it() {
        let text = r#"
            [profiles.my-ehr]
            fhir_base = "https://ehr.example.org/fhir"
            client_id = "mine"
            scope = "launch/patient patient/*.rs"
            allowed_issuers = ["https://other.example.org/fhir"]
        "#;
        let config = AppConfig::from_sources(
            Some((text, Path::new("f.toml"))),
            env(&[
                ("SMART_FHIR_PROFILE", "my-ehr"),
                ("SMART_FHIR_CLIENT_SECRET", "s3cret"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(config.client_id, "mine");
        assert_eq!(config.allowed_issuers.len(), 2);
        assert_eq!(config.client_secret.as_ref().unwrap().secret(), "s3cret");
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn invalid_values_name_their_key() {
        let err =
            AppConfig::from_sources(None, env(&[("SMART_FHIR_FHIR_BASE", "not a url")]), None).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("`fhir_base`") && msg.contains("SMART_FHIR_FHIR_BASE"),
            "{msg}"
        );

        let err =
            AppConfig::from_sources(None, env(&[("SMART_FHIR_LISTEN", "localhost")]), None).unwrap_err();
        assert!(err.to_string().contains("`listen`"), "{err}");

        let err =
            AppConfig::from_sources(None, env(&[("SMART_FHIR_SESSION_TTL_SECS", "soon")]), None).unwrap_err();
        assert!(err.to_string().contains("`session_ttl_secs`"), "{err}");
    }

    #[test]
    fn unknown_key_in_the_file_is_reported_by_name() {
        let text = "[app]\nclient_idd = \"typo\"\n";
        let err =
            AppConfig::from_sources(Some((text, Path::new("smart-fhir.toml"))), env(&[]), None).unwrap_err();
        assert!(err.to_string().contains("client_idd"), "{err}");
    }

    #[test]
    fn unknown_profile_is_refused() {
        let err = AppConfig::from_sources(None, env(&[]), Some("nope")).unwrap_err();
        assert!(matches!(err, ConfigError::UnknownProfile { .. }));
    }

    #[test]
    fn authorize_post_is_on_and_insecure_http_off_by_default() {
        let config = AppConfig::from_sources(None, env(&[]), None).unwrap();
        assert!(config.authorize_post);
        assert!(!config.insecure_http);
        let config = AppConfig::from_sources(
            None,
            env(&[
                ("SMART_FHIR_AUTHORIZE_POST", "false"),
                ("SMART_FHIR_INSECURE_HTTP", "true"),
            ]),
            None,
        )
        .unwrap();
        assert!(!config.authorize_post);
        assert!(config.insecure_http);
        let text = "[app]\ninsecure_http = true\nauthorize_post = false\n";
        let config = AppConfig::from_sources(Some((text, Path::new("f.toml"))), env(&[]), None).unwrap();
        assert!(config.insecure_http && !config.authorize_post);
        let err =
            AppConfig::from_sources(None, env(&[("SMART_FHIR_INSECURE_HTTP", "maybe")]), None).unwrap_err();
        assert!(err.to_string().contains("`insecure_http`"), "{err}");
    }

    #[test]
    fn a_redis_session_store_needs_a_shared_key_and_prints_without_its_password() {
        let config = AppConfig::from_sources(None, env(&[]), None).unwrap();
        assert!(config.session_store.is_none() && config.session_key.is_none());
        let key = "0f".repeat(32);
        let config = AppConfig::from_sources(
            None,
            env(&[
                (
                    "SMART_FHIR_SESSION_STORE",
                    "redis://app:hunter2-pw@127.0.0.1:6379/2",
                ),
                ("SMART_FHIR_SESSION_KEY", key.as_str()),
            ]),
            None,
        )
        .unwrap();
        let store = config
            .session_store
            .as_ref()
            .expect("the Redis store is selected");
        assert_eq!(store.secret_url().port(), Some(6379));
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2-pw"), "{printed}");
        assert!(!printed.contains(&key), "the key is not printed: {printed}");
        // Without a key the instances could not read each other's sessions.
        let err = AppConfig::from_sources(
            None,
            env(&[("SMART_FHIR_SESSION_STORE", "redis://127.0.0.1:6379/2")]),
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("`session_key`"), "{err}");
        let err = AppConfig::from_sources(
            None,
            env(&[("SMART_FHIR_SESSION_STORE", "http://user:hunter2-pw@x/")]),
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("`session_store`"), "{err}");
        assert!(!err.to_string().contains("hunter2-pw"), "{err}");
        let err = AppConfig::from_sources(None, env(&[("SMART_FHIR_SESSION_KEY", "abc")]), None).unwrap_err();
        assert!(err.to_string().contains("64 hex"), "{err}");
    }

    #[test]
    fn https_public_url_means_secure_cookies() {
        let config = AppConfig::from_sources(
            None,
            env(&[("SMART_FHIR_PUBLIC_URL", "https://app.example.org")]),
            None,
        )
        .unwrap();
        assert!(config.is_https());
    }
}
