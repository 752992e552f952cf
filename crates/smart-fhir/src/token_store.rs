//! The terminal's stored login: the token set of `smart-fhir login` in the user's data directory
//! (`$XDG_DATA_HOME/smart-fhir/login.json`, else `~/.local/share/…` on Linux, the platform's equivalent
//! elsewhere, from the `dirs` crate), in a directory of mode 0700 and a file of mode 0600, replaced
//! atomically so a crash never leaves half a token set.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use fhir_client::FhirClient;
use serde::{Deserialize, Serialize};
use smart_launch::{RefreshingToken, ScopeSet, SmartClient, SmartClientConfig, TokenSet};
use url::Url;

/// What `login` keeps: enough to refresh and revoke without asking again.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredLogin {
    /// The client id the tokens were issued to.
    pub client_id: String,
    /// The loopback redirect URI of the login (the client is configured with it again to refresh).
    pub redirect_uri: Url,
    /// The tokens, with the FHIR base and token endpoint they belong to.
    pub tokens: TokenSet,
    /// The patient in context, if the launch chose one.
    #[serde(default)]
    pub patient: Option<String>,
}

/// Where the login is kept.
pub fn path() -> anyhow::Result<PathBuf> {
    let dir = dirs::data_dir().context(
        "No data directory is known for this user (set HOME or XDG_DATA_HOME) to keep the login in",
    )?;
    Ok(dir.join("smart-fhir").join("login.json"))
}

/// The stored login, or `None` when there is none.
pub fn load() -> anyhow::Result<Option<(StoredLogin, PathBuf)>> {
    let path = path()?;
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| format!("The login in {} could not be read", path.display()));
        }
    };
    let login = serde_json::from_str(&text).with_context(|| {
        format!(
            "The login in {} is not one smart-fhir wrote; run `smart-fhir logout` and log in again",
            path.display()
        )
    })?;
    Ok(Some((login, path)))
}

/// The stored login, or a message saying how to make one.
pub fn require() -> anyhow::Result<(StoredLogin, PathBuf)> {
    match load()? {
        Some(found) => Ok(found),
        None => bail!("Not logged in: run `smart-fhir login --fhir-base URL --client-id ID` first"),
    }
}

/// Write `login` to `path` (mode 0600, its directory 0700), replacing any older login atomically.
pub fn save(path: &Path, login: &StoredLogin) -> anyhow::Result<()> {
    let dir = path.parent().context("The login file has no directory")?;
    create_private_dir(dir)?;
    let text = serde_json::to_vec_pretty(login).context("The login could not be serialised")?;
    let temporary = dir.join(format!(".login.json.{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let written = options
        .open(&temporary)
        .and_then(|mut file| file.write_all(&text).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(e).with_context(|| format!("The login could not be written to {}", path.display()));
    }
    Ok(())
}

/// Delete the stored login at `path` (absent is fine).
pub fn delete(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("The login {} could not be deleted", path.display())),
    }
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("The directory {} could not be created", dir.display()))
}

/// The SMART client of a stored login (public client, its loopback redirect URI and granted scopes).
pub fn smart_client(login: &StoredLogin) -> anyhow::Result<SmartClient> {
    let config = SmartClientConfig::new(
        login.client_id.clone(),
        login.redirect_uri.clone(),
        login.tokens.scope.clone(),
    );
    SmartClient::new(config).context("The SMART client could not be set up")
}

/// A FHIR client over the stored login whose token refreshes ahead of expiry; call
/// [`LoggedIn::save_if_refreshed`] when done so a refreshed token set is kept.
pub struct LoggedIn {
    /// The FHIR client at the login's base.
    pub client: FhirClient,
    source: Arc<RefreshingToken>,
    login: StoredLogin,
    path: PathBuf,
}

impl LoggedIn {
    /// Open the stored login.
    pub fn open() -> anyhow::Result<LoggedIn> {
        let (login, path) = require()?;
        let source = smart_client(&login)?.token_source(login.tokens.clone());
        let client = FhirClient::with_token_source(login.tokens.fhir_base.as_str(), source.clone())
            .context("The FHIR client could not be set up")?;
        Ok(LoggedIn {
            client,
            source,
            login,
            path,
        })
    }

    /// Store the token set again when a request refreshed it.
    pub async fn save_if_refreshed(mut self) -> anyhow::Result<()> {
        let now = self.source.tokens().await;
        if now != self.login.tokens {
            self.login.tokens = now;
            save(&self.path, &self.login)?;
        }
        Ok(())
    }
}

/// A scope string parsed for the login (SMART v1 or v2 grammar).
pub fn parse_scope(text: &str) -> anyhow::Result<ScopeSet> {
    ScopeSet::parse(text).with_context(|| format!("{text:?} is not a list of SMART scopes"))
}
