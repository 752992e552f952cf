//! `smart-fhir get PATH` and `smart-fhir search TYPE [name=value]… [--all]`: FHIR reads with the stored login,
//! the JSON as the server sent it on stdout; errors (with the server's OperationOutcome) on stderr and a
//! non-zero exit.

use std::io::Write as _;

use anyhow::{Context as _, bail};
use clap::Args;
use futures::StreamExt as _;
use serde_json::Value;

use crate::outcome::explained;
use crate::token_store::LoggedIn;

/// Options of `smart-fhir get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// What to read, relative to the FHIR base: `Patient/123`, `Observation?patient=123`, `metadata`.
    #[arg(value_name = "PATH")]
    pub path: String,
}

/// Options of `smart-fhir search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The resource type, e.g. Observation.
    #[arg(value_name = "TYPE")]
    pub resource_type: String,
    /// Search parameters, each name=value (e.g. patient=123 category=vital-signs _count=50).
    #[arg(value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Every match across all pages (following each Bundle's next link), one resource per line (NDJSON),
    /// instead of the first page's Bundle.
    #[arg(long)]
    pub all: bool,
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not name=value")),
    }
}

/// `get`: one JSON answer, pretty-printed.
pub async fn get(args: GetArgs) -> anyhow::Result<()> {
    let logged_in = LoggedIn::open()?;
    let answer = logged_in.client.get_json(&args.path).await;
    logged_in.save_if_refreshed().await?;
    let value = answer.map_err(|e| explained(e, &format!("Could not read {}", args.path)))?;
    print_pretty(&value)
}

/// `search`: the first page's Bundle, or with `--all` every entry's resource as NDJSON.
pub async fn search(args: SearchArgs) -> anyhow::Result<()> {
    if !args.resource_type.starts_with(|c: char| c.is_ascii_uppercase())
        || !args.resource_type.chars().all(|c| c.is_ascii_alphanumeric())
    {
        bail!(
            "{:?} is not a FHIR resource type (such as Observation)",
            args.resource_type
        );
    }
    let logged_in = LoggedIn::open()?;
    let result = if args.all {
        print_all(&logged_in, &args).await
    } else {
        print_first(&logged_in, &args).await
    };
    logged_in.save_if_refreshed().await?;
    result
}

/// The first page's Bundle, pretty-printed.
async fn print_first(logged_in: &LoggedIn, args: &SearchArgs) -> anyhow::Result<()> {
    let mut pages = std::pin::pin!(
        logged_in
            .client
            .search_json_pages(&args.resource_type, &args.params)
    );
    match pages.next().await {
        Some(page) => print_pretty(
            &page.map_err(|e| explained(e, &format!("The search for {} failed", args.resource_type)))?,
        ),
        None => Ok(()),
    }
}

/// Every page's entries, one compact resource per line.
async fn print_all(logged_in: &LoggedIn, args: &SearchArgs) -> anyhow::Result<()> {
    let mut pages = std::pin::pin!(
        logged_in
            .client
            .search_json_pages(&args.resource_type, &args.params)
    );
    let mut out = std::io::stdout().lock();
    while let Some(page) = pages.next().await {
        let bundle =
            page.map_err(|e| explained(e, &format!("The search for {} failed", args.resource_type)))?;
        for entry in bundle["entry"].as_array().into_iter().flatten() {
            // `_include`d resources come too (search mode `include`); they are lines like the matches.
            if let Some(resource) = entry.get("resource") {
                serde_json::to_writer(&mut out, resource)?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

fn print_pretty(value: &Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    out.write_all(b"\n")?;
    out.flush().context("stdout could not be written")
}
