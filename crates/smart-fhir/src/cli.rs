//! The command line: `smart-fhir [demo|serve|sandbox|keygen|export|login|logout|get|search]` and their options.

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// The app's port in the demo (the seed's `http://localhost:8000`).
pub const DEFAULT_APP_PORT: u16 = 8000;

/// SMART on FHIR for Rust: a SMART app, and a sandbox EHR to run it against, offline.
///
/// Without a subcommand, runs `demo`: the sandbox EHR on http://localhost:9000 and the app on
/// http://localhost:8000, in one process.
#[derive(Debug, Parser)]
#[command(name = "smart-fhir", version, propagate_version = true)]
pub struct Cli {
    /// What to run (default: demo).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Log format on stderr. The level is set with RUST_LOG (default `info`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "SMART_FHIR_LOG_FORMAT")]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per event.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The sandbox EHR and the app in one process, ready to click through (the default).
    Demo(DemoArgs),
    /// The app alone, against the EHR of a profile (`sandbox`, `cerner-sandbox`, or one in smart-fhir.toml).
    Serve(ServeArgs),
    /// The sandbox EHR alone: a SMART authorization server and a FHIR R4 server with synthetic patients.
    Sandbox(SandboxArgs),
    /// Make a signing key for a SMART backend service and print its public JWKS to register with the EHR.
    Keygen(crate::keygen::KeygenArgs),
    /// Export data in bulk (FHIR Bulk Data $export) as a SMART backend service, into a directory of NDJSON files.
    Export(crate::export::ExportArgs),
    /// Sign in to an EHR from the terminal (a SMART standalone launch with a loopback redirect) and keep the tokens.
    Login(crate::login::LoginArgs),
    /// Revoke the stored login's tokens and delete them.
    Logout(crate::login::LogoutArgs),
    /// Read one FHIR path with the stored login and print the JSON.
    Get(crate::read::GetArgs),
    /// Search one resource type with the stored login: the first page's Bundle, or every match as NDJSON.
    Search(crate::read::SearchArgs),
}

impl Default for Command {
    fn default() -> Self {
        Command::Demo(DemoArgs::default())
    }
}

/// Options of `smart-fhir demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The app's port (its URL is http://localhost:PORT).
    #[arg(long = "app-port", default_value_t = DEFAULT_APP_PORT)]
    pub app_port: u16,
    /// The app's configuration file (default: ./smart-fhir.toml when it exists). The EHR is always the sandbox.
    #[arg(long, env = "SMART_FHIR_CONFIG")]
    pub config: Option<PathBuf>,
    /// The app's session database (default: app-sessions.db in the user's data directory).
    #[arg(long = "session-db")]
    pub session_db: Option<PathBuf>,
    /// The sandbox's options.
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

impl Default for DemoArgs {
    fn default() -> Self {
        Self {
            app_port: DEFAULT_APP_PORT,
            config: None,
            session_db: None,
            sandbox: SandboxArgs::default(),
        }
    }
}

/// Options of `smart-fhir serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The configuration file (default: ./smart-fhir.toml when it exists). Every key can also be set as an
    /// environment variable: SMART_FHIR_ and the key in upper case, e.g. SMART_FHIR_CLIENT_ID.
    #[arg(long, env = "SMART_FHIR_CONFIG")]
    pub config: Option<PathBuf>,
    /// The EHR profile: `sandbox` (default), `cerner-sandbox` (the seed's Cerner R4 sandbox), or a
    /// [profiles.NAME] table of the configuration file.
    #[arg(long)]
    pub profile: Option<String>,
}

/// Options of `smart-fhir sandbox` (also accepted by `demo`).
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// The interface to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The port to listen on (the FHIR base is http://localhost:PORT/fhir).
    #[arg(long, default_value_t = 9000)]
    pub port: u16,
    /// The SQLite database file (default: sandbox.db in the user's data directory). Created and filled with
    /// synthetic patients on first start, reused after.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// How many synthetic patients a new database gets.
    #[arg(long, default_value_t = 50)]
    pub patients: usize,
    /// The seed of the synthetic-patient generator (the same seed gives the same patients).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// A directory of FHIR Bundles (transaction, batch or collection; Synthea output) to import. Repeatable.
    #[arg(long = "import", value_name = "DIR")]
    pub imports: Vec<PathBuf>,
    /// Register a client: 'id=my_app,redirect=http://localhost:8000/fhir-app/' plus optional secret=…,
    /// jwks=FILE or jwks_url=URL, launch=URL, pkce=optional, fail=FAILURE. Repeatable.
    #[arg(long = "client", value_name = "SPEC")]
    pub clients: Vec<sandbox::ClientSpec>,
    /// Accept any client id whose redirect URI is on a loopback address.
    #[arg(long = "open-registration")]
    pub open_registration: bool,
    /// Access-token lifetime in seconds (default: the persona's — 300 for smart, Cerner's 570, Epic's 3600).
    #[arg(long = "token-ttl", value_name = "SECONDS")]
    pub token_ttl: Option<u64>,
    /// Which EHR the sandbox looks like on the wire: smart (SMART App Launch 2.2 to the letter), cerner (Oracle
    /// Health Millennium: tenant paths, a separate authorization host on the next port, …) or epic.
    #[arg(long, value_name = "PERSONA", default_value = "smart")]
    pub persona: sandbox::Persona,
    /// Delay every answer by this many milliseconds, like a real EHR's round trip.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency: u64,
    /// The most resources a second one Bulk Data export job writes, so exports leave the machine to the FHIR
    /// API's reads (0: no limit).
    #[arg(long = "export-rows-per-second", value_name = "N", default_value_t = sandbox::bulk::BulkConfig::default().max_rows_per_second)]
    pub export_rows_per_second: u64,
    /// The public FHIR base URL, when the sandbox is reached through a proxy.
    #[arg(long = "base-url", value_name = "URL")]
    pub base_url: Option<url::Url>,
}

impl Default for SandboxArgs {
    fn default() -> Self {
        // Parsing no arguments yields every default declared above, in one place.
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            args: SandboxArgs,
        }
        Only::parse_from(["smart-fhir"]).args
    }
}

impl SandboxArgs {
    /// The sandbox configuration these options describe.
    pub fn into_config(self) -> anyhow::Result<sandbox::SandboxConfig> {
        if self.token_ttl == Some(0) {
            anyhow::bail!("--token-ttl must be at least 1 second");
        }
        let db = match self.db {
            Some(db) => db,
            None => sandbox::SandboxConfig::default_db_path().context("No database file for the sandbox")?,
        };
        // The sandbox is announced as `localhost` (as real apps and the demo client name it), unless a proxy's URL
        // is given or the port is picked at run time.
        let loopback = matches!(self.host.as_str(), "127.0.0.1" | "localhost");
        let base_url = match self.base_url {
            Some(url) => Some(url),
            None if loopback && self.port != 0 => Some(
                url::Url::parse(&format!(
                    "http://localhost:{}{}",
                    self.port,
                    self.persona.fhir_path()
                ))
                .context("The sandbox's base URL could not be built")?,
            ),
            None => None,
        };
        Ok(sandbox::SandboxConfig {
            host: self.host,
            port: self.port,
            db: Some(db),
            patients: self.patients,
            seed: self.seed,
            imports: self.imports,
            clients: self.clients,
            open_registration: self.open_registration,
            token_ttl: self
                .token_ttl
                .map_or_else(|| self.persona.token_ttl(), Duration::from_secs),
            public_base_url: base_url,
            persona: self.persona,
            latency: Duration::from_millis(self.latency),
            bulk: sandbox::bulk::BulkConfig {
                max_rows_per_second: self.export_rows_per_second,
                ..sandbox::bulk::BulkConfig::default()
            },
            ..sandbox::SandboxConfig::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_means_demo_with_the_seed_ports() {
        let cli = Cli::parse_from(["smart-fhir"]);
        let Command::Demo(args) = cli.command.unwrap_or_default() else {
            panic!("not demo")
        };
        assert_eq!(args.app_port, 8000);
        assert_eq!(args.sandbox.port, 9000);
        assert_eq!(args.sandbox.patients, 50);
        assert_eq!(args.sandbox.seed, 42);
    }

    #[test]
    fn sandbox_options_reach_the_config() {
        let cli = Cli::parse_from([
            "smart-fhir",
            "sandbox",
            "--port",
            "0",
            "--db",
            "/tmp/x.db",
            "--patients",
            "3",
            "--client",
            "id=my_app,redirect=http://localhost:8000/fhir-app/,pkce=optional",
            "--token-ttl",
            "30",
        ]);
        let Some(Command::Sandbox(args)) = cli.command else {
            panic!("not sandbox")
        };
        let config = args.into_config().unwrap();
        assert_eq!(config.port, 0);
        assert_eq!(config.patients, 3);
        assert_eq!(config.clients.len(), 1);
        assert_eq!(config.token_ttl, Duration::from_secs(30));
        assert_eq!(config.db.as_deref(), Some(std::path::Path::new("/tmp/x.db")));
        assert_eq!(
            config.public_base_url, None,
            "a port picked at run time has no fixed base URL"
        );
    }

    #[test]
    fn a_fixed_loopback_port_is_announced_as_localhost() {
        let cli = Cli::parse_from(["smart-fhir", "sandbox", "--db", "/tmp/x.db"]);
        let Some(Command::Sandbox(args)) = cli.command else {
            panic!("not sandbox")
        };
        let config = args.into_config().unwrap();
        assert_eq!(
            config.public_base_url.unwrap().as_str(),
            "http://localhost:9000/fhir"
        );
    }

    #[test]
    fn persona_and_latency_reach_the_config_with_the_personas_base_path_and_token_lifetime() {
        let cli = Cli::parse_from([
            "smart-fhir",
            "sandbox",
            "--db",
            "/tmp/x.db",
            "--persona",
            "cerner",
            "--latency",
            "120",
        ]);
        let Some(Command::Sandbox(args)) = cli.command else {
            panic!("not sandbox")
        };
        let config = args.into_config().unwrap();
        assert_eq!(config.persona, sandbox::Persona::Cerner);
        assert_eq!(config.latency, Duration::from_millis(120));
        assert_eq!(config.token_ttl, Duration::from_secs(570));
        assert_eq!(
            config.public_base_url.unwrap().path(),
            format!("/r4/{}", sandbox::persona::CERNER_TENANT)
        );
        let err = Cli::try_parse_from(["smart-fhir", "sandbox", "--persona", "meditech"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
    }

    #[test]
    fn a_bad_client_spec_is_a_usage_error() {
        let err = Cli::try_parse_from(["smart-fhir", "sandbox", "--client", "redirect=nothing"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
    }
}
