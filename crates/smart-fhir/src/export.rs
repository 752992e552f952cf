//! `smart-fhir export`: a Bulk Data `$export` as a SMART backend service, files and manifest written to a
//! directory, progress on stderr (the server's `X-Progress`, then each file with its resources and bytes).

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Args;
use fhir_client::FhirClient;
use fhir_client::bulk::{BulkEvent, ExportJob, ExportLevel, ExportRequest};
use smart_launch::{BackendToken, ClientId, ScopeSet};
use url::Url;

use crate::outcome::explained;

/// Options of `smart-fhir export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The FHIR server's base URL (its token endpoint is discovered from .well-known/smart-configuration).
    #[arg(long = "fhir-base", value_name = "URL")]
    pub fhir_base: Url,
    /// This backend service's client id, registered with the EHR together with the public key.
    #[arg(long = "client-id", value_name = "ID")]
    pub client_id: String,
    /// The private key from `smart-fhir keygen` (RS384 or ES384 PEM).
    #[arg(long = "private-key", value_name = "FILE")]
    pub private_key: PathBuf,
    /// What to export: system (everything), patient (every patient's compartment) or group:ID.
    #[arg(long, value_name = "LEVEL", default_value = "system", value_parser = parse_level)]
    pub level: ExportLevel,
    /// Only these resource types (comma-separated), e.g. Patient,Observation.
    #[arg(long = "type", value_name = "T,…", value_delimiter = ',')]
    pub types: Vec<String>,
    /// Only resources changed after this FHIR instant, e.g. 2026-01-01T00:00:00Z.
    #[arg(long, value_name = "INSTANT")]
    pub since: Option<String>,
    /// The directory the NDJSON files and manifest.json are written to (created if needed).
    #[arg(long, value_name = "DIR", default_value = "export")]
    pub out: PathBuf,
    /// Resume the export at this status URL (printed by an earlier run) instead of starting a new one.
    #[arg(long, value_name = "URL")]
    pub status: Option<Url>,
    /// Files downloaded at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub parallel: usize,
    /// Cancel the export at --status URL (DELETE) instead of waiting for it.
    #[arg(long, requires = "status")]
    pub cancel: bool,
}

fn parse_level(text: &str) -> Result<ExportLevel, String> {
    match text {
        "system" => Ok(ExportLevel::System),
        "patient" => Ok(ExportLevel::Patient),
        other => match other.strip_prefix("group:") {
            Some(id) if !id.is_empty() => Ok(ExportLevel::Group(id.to_owned())),
            _ => Err(format!("{other:?} is not system, patient or group:ID")),
        },
    }
}

/// The `system/` read scope of the export: the listed types, or everything.
fn scope(types: &[String]) -> String {
    if types.is_empty() {
        return String::from("system/*.rs");
    }
    types
        .iter()
        .map(|t| format!("system/{t}.rs"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Run the export to the end.
pub async fn run(args: ExportArgs) -> anyhow::Result<()> {
    let key = Arc::new(crate::keygen::load(&args.private_key)?);
    let scope =
        ScopeSet::parse(&scope(&args.types)).context("The resource types do not make a valid scope")?;
    let tokens = BackendToken::discover(&args.fhir_base, ClientId::new(args.client_id.clone()), key, scope)
        .await
        .with_context(|| {
            format!(
                "Could not set up backend-services authorization with {}",
                args.fhir_base
            )
        })?;
    let client = FhirClient::with_token_source(args.fhir_base.as_str(), Arc::new(tokens))?;
    let bulk = client.bulk().concurrency(args.parallel);
    let job = match args.status {
        Some(url) => ExportJob::resume(url),
        None => {
            let mut request = ExportRequest::new(args.level.clone());
            request.types = args.types.clone();
            request.since = args.since.clone();
            let job = bulk
                .kick_off(&request)
                .await
                .map_err(|e| explained(e, "The export could not be started"))?;
            eprintln!("Export started; resume with --status {}", job.status_url());
            job
        }
    };
    if args.cancel {
        bulk.cancel(&job).await.map_err(|e| {
            explained(
                e,
                &format!("The export at {} could not be cancelled", job.status_url()),
            )
        })?;
        println!("Cancelled the export at {}.", job.status_url());
        return Ok(());
    }
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    let manifest = bulk
        .wait(&job, &mut |event| progress.show(event))
        .await
        .map_err(|e| explained(e, &format!("The export at {} failed", job.status_url())))?;
    progress.files_total = manifest.output.len() + manifest.error.len();
    let download = bulk
        .download(&manifest, &args.out, &mut |event| progress.show(event))
        .await
        .map_err(|e| explained(e, "The export's files could not be downloaded"))?;
    progress.finish();
    let data: Vec<_> = download.files.iter().filter(|f| !f.is_error).collect();
    let resources: u64 = data.iter().map(|f| f.lines).sum();
    let bytes: u64 = data.iter().map(|f| f.bytes).sum();
    println!(
        "Exported {resources} resources in {} files ({bytes} bytes) to {}; manifest {}",
        data.len(),
        args.out.display(),
        download.manifest_path.display()
    );
    for issue in &download.issues {
        eprintln!("  server issue: {issue}");
    }
    if download
        .issues
        .iter()
        .any(|i| matches!(i.severity.as_str(), "error" | "fatal"))
    {
        bail!("The server reported errors for part of the export (listed above)");
    }
    Ok(())
}

/// The progress display on stderr: the server's `X-Progress` while the job runs, then files and bytes. On a
/// terminal one line is rewritten in place; otherwise (a log, a pipe) each step is a line of its own.
struct Progress {
    in_place: bool,
    files_total: usize,
    files_done: usize,
    resources: u64,
    bytes: u64,
}

impl Progress {
    fn new(in_place: bool) -> Progress {
        Progress {
            in_place,
            files_total: 0,
            files_done: 0,
            resources: 0,
            bytes: 0,
        }
    }

    fn show(&mut self, event: &BulkEvent) {
        let line = match event {
            BulkEvent::Polled { progress, next_poll } => format!(
                "exporting: {} (next check in {:.1} s)",
                progress.as_deref().unwrap_or("the server reports no progress"),
                next_poll.as_secs_f64()
            ),
            BulkEvent::FileDone(file) => {
                self.files_done += 1;
                self.resources += file.lines;
                self.bytes += file.bytes;
                if !self.in_place {
                    eprintln!(
                        "  {} {} resources, {} bytes -> {}",
                        file.resource_type,
                        file.lines,
                        file.bytes,
                        file.path.display()
                    );
                }
                format!(
                    "downloading: {}/{} files, {} resources, {}",
                    self.files_done,
                    self.files_total,
                    self.resources,
                    human_bytes(self.bytes)
                )
            }
        };
        let mut err = std::io::stderr().lock();
        if self.in_place {
            // Carriage return and erase-line: the line is redrawn, not appended.
            let _ = write!(err, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    fn finish(&self) {
        if self.in_place {
            eprintln!();
        }
    }
}

/// `1234567` → `1.2 MB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "kB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_scopes_are_read_as_the_ig_names_them() {
        assert_eq!(parse_level("system"), Ok(ExportLevel::System));
        assert_eq!(
            parse_level("group:cohort-1"),
            Ok(ExportLevel::Group("cohort-1".into()))
        );
        assert!(parse_level("group:").is_err());
        assert_eq!(scope(&[]), "system/*.rs");
        assert_eq!(
            scope(&["Patient".into(), "Condition".into()]),
            "system/Patient.rs system/Condition.rs"
        );
    }

    #[test]
    fn byte_counts_are_shown_in_decimal_units() {
        assert_eq!(human_bytes(999), "999 bytes");
        assert_eq!(human_bytes(1_234_567), "1.2 MB");
    }
}
