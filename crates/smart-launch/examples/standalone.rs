#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! A standalone SMART launch from the command line.
//!
//! ```text
//! cargo run -p smart-launch --example standalone -- \
//!     http://127.0.0.1:8080/fhir smart-fhir-demo http://localhost:8000/fhir-app/ \
//!     "launch/patient openid fhirUser patient/Patient.read"
//! ```
//!
//! Arguments (or the environment variables `SMART_FHIR_BASE`, `SMART_CLIENT_ID`,
//! `SMART_REDIRECT_URI`, `SMART_SCOPE`): FHIR base, client id, redirect URI, scope. The program
//! prints the authorize URL; open it, log in, and paste the URL the browser was sent back to.

use std::io::{BufRead as _, Write as _};
use std::process::ExitCode;

use smart_launch::{ScopeSet, SmartClient, SmartClientConfig, Url};

fn setting(args: &[String], index: usize, env: &str, default: Option<&str>) -> Result<String, String> {
    args.get(index)
        .cloned()
        .or_else(|| std::env::var(env).ok())
        .or_else(|| default.map(str::to_owned))
        .ok_or_else(|| format!("Missing argument {index} (or the environment variable {env})."))
}

async fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fhir_base = setting(&args, 0, "SMART_FHIR_BASE", None)?;
    let client_id = setting(&args, 1, "SMART_CLIENT_ID", None)?;
    let redirect = setting(
        &args,
        2,
        "SMART_REDIRECT_URI",
        Some("http://localhost:8000/fhir-app/"),
    )?;
    let scope = setting(
        &args,
        3,
        "SMART_SCOPE",
        Some("launch/patient openid fhirUser patient/Patient.read"),
    )?;

    let fhir_base =
        Url::parse(&fhir_base).map_err(|e| format!("The FHIR base {fhir_base:?} is not a URL: {e}."))?;
    let redirect =
        Url::parse(&redirect).map_err(|e| format!("The redirect URI {redirect:?} is not a URL: {e}."))?;
    let scope = ScopeSet::parse(&scope).map_err(|e| e.to_string())?;

    let client =
        SmartClient::new(SmartClientConfig::new(client_id, redirect, scope)).map_err(|e| e.to_string())?;
    let (request, pending) = client
        .standalone_launch(&fhir_base)
        .await
        .map_err(|e| e.to_string())?;
    println!("Open this URL in a browser and log in:\n\n{}\n", request.url);
    print!("Then paste the URL you were redirected to: ");
    std::io::stdout().flush().map_err(|e| e.to_string())?;

    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let back = Url::parse(line.trim()).map_err(|e| format!("That is not a URL: {e}."))?;
    let launch = client
        .complete_from_url(pending, &back)
        .await
        .map_err(|e| e.to_string())?;

    println!(
        "patient: {}",
        launch.context.patient.as_deref().unwrap_or("(none)")
    );
    println!("granted scopes: {}", launch.tokens.scope);
    if let Some(user) = &launch.fhir_user {
        println!("user: {}", user.reference());
    }
    for missing in &launch.scope_comparison.missing {
        println!("not granted: {missing}");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
