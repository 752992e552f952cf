#![doc = include_str!("../README.md")]

mod cli;
mod export;
mod keygen;
mod logging;
mod login;
mod outcome;
mod read;
mod token_store;

use anyhow::Context as _;
use clap::Parser as _;

use crate::cli::{Cli, Command, DemoArgs, SandboxArgs, ServeArgs};

/// mimalloc instead of the system allocator: parsing FHIR JSON makes many small allocations, and
/// with it the typed parse of a searchset page runs about 1.5x faster here (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    match cli.command.unwrap_or_default() {
        Command::Demo(args) => demo(args).await,
        Command::Serve(args) => serve(args).await,
        Command::Sandbox(args) => sandbox(args).await,
        Command::Keygen(args) => keygen::run(&args),
        Command::Export(args) => export::run(args).await,
        Command::Login(args) => login::login(args).await,
        Command::Logout(args) => login::logout(args).await,
        Command::Get(args) => read::get(args).await,
        Command::Search(args) => read::search(args).await,
    }
}

/// The sandbox alone.
async fn sandbox(args: SandboxArgs) -> anyhow::Result<()> {
    let config = args.into_config()?;
    let running = sandbox::Sandbox::start(config)
        .await
        .context("The sandbox EHR could not start")?;
    running.state.auth().warm_up();
    print_sandbox_banner(&running);
    wait_for_ctrl_c().await;
    running.shutdown().await;
    Ok(())
}

/// The app alone, against a configured EHR.
async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = app::AppConfig::load(args.config.as_deref(), args.profile.as_deref())
        .context("The app's configuration is not valid")?;
    let running = app::start(config).await.context("The app could not start")?;
    println!("smart-fhir app: {}", running.url);
    println!("  register with the EHR: redirect URI {}", running.redirect_uri);
    println!("                         launch URI   {}", running.launch_uri);
    if let Some(jwks) = running.state.jwks_url() {
        println!("                         JWKS URL     {jwks}");
    }
    wait_for_ctrl_c().await;
    running.shutdown().await;
    Ok(())
}

/// Sandbox and app in one process: the default command.
async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let mut sandbox_config = args.sandbox.into_config()?;
    let mut app_config = app::AppConfig::load(args.config.as_deref(), Some(app::config::SANDBOX_PROFILE))
        .context("The app's configuration is not valid")?;
    if let Some(db) = args.session_db {
        app_config.session_db = db;
    }
    // Both servers are reached as `localhost` (the name the demo client is registered under), whatever the ports.
    let sandbox_base = match sandbox_config.public_base_url.clone() {
        Some(base) => base,
        None => anyhow::bail!("The demo needs a fixed sandbox port (not 0) or --base-url."),
    };
    sandbox_config.public_base_url = Some(sandbox_base.clone());
    app_config
        .allowed_issuers
        .retain(|iss| *iss != app_config.fhir_base);
    app_config.fhir_base = sandbox_base.clone();
    app_config.allowed_issuers.insert(0, sandbox_base);
    app_config.listen.set_port(args.app_port);
    app_config.public_url = Some(localhost_url(args.app_port, "")?);
    // The app derives its redirect URI (`{public_url}fhir-app/`) from the public URL; the profile's fixed one would
    // name port 8000 whatever the port.
    app_config.redirect_uri = None;
    let custom_port = args.app_port != cli::DEFAULT_APP_PORT;

    let sandbox = sandbox::Sandbox::start(sandbox_config)
        .await
        .context("The sandbox EHR could not start")?;
    sandbox.state.auth().warm_up();
    let app = app::start(app_config).await.context("The app could not start")?;
    if custom_port {
        // The always-registered demo client knows port 8000 only: register the app's real URLs.
        let client = sandbox::ClientSpec::public("smart-fhir-demo", app.redirect_uri.clone())
            .with_launch_uri(app.launch_uri.clone());
        sandbox
            .state
            .auth()
            .register_client(client)
            .context("The demo client could not be registered")?;
    }
    print_sandbox_banner(&sandbox);
    println!();
    println!("smart-fhir app:     {}   <- open this in a browser", app.url);
    wait_for_ctrl_c().await;
    app.shutdown().await;
    sandbox.shutdown().await;
    Ok(())
}

/// `http://localhost:{port}/{path}`.
fn localhost_url(port: u16, path: &str) -> anyhow::Result<url::Url> {
    url::Url::parse(&format!("http://localhost:{port}/{path}")).context("A localhost URL could not be built")
}

fn print_sandbox_banner(running: &sandbox::RunningSandbox) {
    println!("smart-fhir sandbox EHR");
    println!("  FHIR base:        {}", running.fhir_base);
    println!("  persona:          {}", running.state.auth().persona());
    if let Some(auth) = running.auth_addr {
        println!("  authorization:    {auth} (a host of its own, as the persona's EHR has)");
    }
    println!("  EHR launch page:  {}", running.launch_page());
    for (dir, report) in &running.imports {
        println!("  imported {}: {report}", dir.display());
    }
    println!("  clients:");
    for client in running.state.auth().clients() {
        let kind = client.kind;
        let redirects: Vec<&str> = client.redirect_uris.iter().map(url::Url::as_str).collect();
        println!("    {} ({kind}) redirect {}", client.id, redirects.join(" "));
    }
}

async fn wait_for_ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        // No signal handler could be installed: serve until killed.
        std::future::pending::<()>().await;
    }
    eprintln!("smart-fhir: shutting down");
}
