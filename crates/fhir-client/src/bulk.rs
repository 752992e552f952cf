//! A FHIR Bulk Data Access client (IG 2.0.0, <https://hl7.org/fhir/uv/bulkdata/STU2/export.html>):
//! kick-off, status polling, cancel, resume, and streamed downloads of the NDJSON files.
//!
//! - [`BulkClient::kick_off`] starts a system, patient or group export by GET (query parameters) or
//!   POST (a `Parameters` body), with `Prefer: respond-async`; the answer is the job's status URL
//!   (`Content-Location`), kept in an [`ExportJob`] that can be saved and resumed with
//!   [`ExportJob::resume`].
//! - [`BulkClient::wait`] polls the status URL, honouring `Retry-After` and else backing off
//!   exponentially with jitter up to a cap ([`RetryPolicy::delay`], so the delays are tested without
//!   sleeping), and reports each `X-Progress`.
//! - [`BulkClient::download`] fetches every file of the [`Manifest`] into a directory, a few at a
//!   time ([`BulkClient::concurrency`]), each streamed chunk by chunk to disk: a file is never held in
//!   memory. [`BulkClient::ndjson`] streams one file as parsed lines instead, each read by `fhir_r4` in
//!   tolerant mode as any [`fhir_r4::FromJson`] type (a resource such as `fhir_r4::Observation`, or any
//!   resource as `fhir_r4::Resource`), with the issues the reader found.
//! - Every request asks the [`TokenSource`](smart_launch::TokenSource) for its token, so a backend
//!   token is renewed near expiry during a long job, and a 401 gets one refresh and retry.
//! - The manifest's `error[]` files (OperationOutcome NDJSON) are downloaded like the others and
//!   their issues returned as [`ExportIssue`]s.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use futures::stream::{self, Stream, StreamExt};
use reqwest::header::{self, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use url::Url;

use crate::FhirClient;
use crate::error::FhirError;
use crate::request::{Call, FHIR_JSON, Interaction, body_excerpt, status_error};
use crate::retry::{RetryPolicy, parse_retry_after};

/// The NDJSON media type the IG names for `_outputFormat` and the files.
pub const FHIR_NDJSON: &str = "application/fhir+ndjson";

/// The longest NDJSON line accepted (one resource): 64 MiB.
const MAX_LINE: usize = 64 * 1024 * 1024;

/// What an export covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportLevel {
    /// `[base]/$export`: everything the client may read.
    System,
    /// `[base]/Patient/$export`: every patient's compartment.
    Patient,
    /// `[base]/Group/[id]/$export`: the compartments of a group's members.
    Group(String),
}

/// How the kick-off request is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KickOffMethod {
    /// `GET` with the parameters in the query.
    #[default]
    Get,
    /// `POST` with a FHIR `Parameters` body.
    Post,
}

/// An export to start: the level and the IG's kick-off parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    /// System, patient or group.
    pub level: ExportLevel,
    /// `_type`: only these resource types (empty: all).
    pub types: Vec<String>,
    /// `_since`: only resources changed after this FHIR instant.
    pub since: Option<String>,
    /// `_typeFilter`: FHIR search queries such as `Observation?category=vital-signs`.
    pub type_filters: Vec<String>,
    /// Other kick-off parameters, sent as given (e.g. `_elements`, `includeAssociatedData`).
    pub extra: Vec<(String, String)>,
    /// Send `Prefer: handling=lenient`: the server ignores (with a warning in `error[]`) the
    /// parameters it does not support instead of refusing the export.
    pub lenient: bool,
    /// GET or POST.
    pub method: KickOffMethod,
}

impl ExportRequest {
    /// An export of `level` with no parameters, kicked off by GET.
    pub fn new(level: ExportLevel) -> Self {
        ExportRequest {
            level,
            types: Vec::new(),
            since: None,
            type_filters: Vec::new(),
            extra: Vec::new(),
            lenient: false,
            method: KickOffMethod::Get,
        }
    }

    /// The IG's parameters as name/value pairs, `_outputFormat` first.
    fn parameters(&self) -> Vec<(String, String)> {
        let mut out = vec![(String::from("_outputFormat"), FHIR_NDJSON.to_owned())];
        if !self.types.is_empty() {
            out.push(("_type".into(), self.types.join(",")));
        }
        if let Some(since) = &self.since {
            out.push(("_since".into(), since.clone()));
        }
        out.extend(
            self.type_filters
                .iter()
                .map(|f| ("_typeFilter".into(), f.clone())),
        );
        out.extend(self.extra.iter().cloned());
        out
    }
}

/// A running (or finished) export, known by its status URL. Save [`ExportJob::status_url`] to resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportJob {
    status_url: Url,
}

impl ExportJob {
    /// Resume the job at `status_url` (from an earlier kick-off).
    pub fn resume(status_url: Url) -> Self {
        ExportJob { status_url }
    }

    /// The job's status URL (the kick-off's `Content-Location`).
    pub fn status_url(&self) -> &Url {
        &self.status_url
    }
}

/// One poll's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum JobStatus {
    /// 202: still running.
    Running {
        /// The server's `X-Progress`, if it sent one.
        progress: Option<String>,
        /// The server's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// 200: done; the manifest.
    Complete(Manifest),
}

/// One file of the manifest (`output[]` or `error[]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OutputFile {
    /// The resource type of every line.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Where to fetch it.
    pub url: String,
    /// How many resources it holds, when the server says.
    #[serde(default)]
    pub count: Option<u64>,
}

/// The completion manifest of an export.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// The server time the export's data is as of.
    pub transaction_time: String,
    /// The kick-off request URL.
    pub request: String,
    /// Whether the files need the access token.
    pub requires_access_token: bool,
    /// The data files.
    #[serde(default)]
    pub output: Vec<OutputFile>,
    /// OperationOutcome NDJSON files of what could not be exported.
    #[serde(default)]
    pub error: Vec<OutputFile>,
    /// The manifest as sent (written beside the files).
    #[serde(skip)]
    pub raw: Value,
}

/// What an export is doing, for progress reports.
#[derive(Debug, Clone, PartialEq)]
pub enum BulkEvent {
    /// A 202 poll: the server's `X-Progress` (or none) and the wait before the next poll.
    Polled {
        /// The server's `X-Progress`.
        progress: Option<String>,
        /// How long the client waits before polling again.
        next_poll: Duration,
    },
    /// A file was downloaded completely.
    FileDone(DownloadedFile),
}

/// A file written by [`BulkClient::download`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadedFile {
    /// The manifest entry's type (`OperationOutcome` for an error file).
    pub resource_type: String,
    /// Where it was written.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Its non-empty lines.
    pub lines: u64,
    /// Whether it came from `error[]`.
    pub is_error: bool,
}

/// One issue of the export's `error[]` files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportIssue {
    /// `fatal`, `error`, `warning` or `information`.
    pub severity: String,
    /// The issue type code.
    pub code: String,
    /// The diagnostics or details text, if any.
    pub text: Option<String>,
}

impl std::fmt::Display for ExportIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.severity, self.code)?;
        if let Some(text) = &self.text {
            write!(f, ": {text}")?;
        }
        Ok(())
    }
}

/// What [`BulkClient::download`] fetched.
#[derive(Debug, Clone, PartialEq)]
pub struct Download {
    /// Every file written, data files and error files, in manifest order.
    pub files: Vec<DownloadedFile>,
    /// The issues of the error files.
    pub issues: Vec<ExportIssue>,
    /// Where the manifest was written (`manifest.json`).
    pub manifest_path: PathBuf,
}

/// The Bulk Data client of one [`FhirClient`] (its base, tokens and connection pool).
#[derive(Debug, Clone)]
pub struct BulkClient {
    client: FhirClient,
    poll: RetryPolicy,
    concurrency: usize,
}

/// The default polling policy: without `Retry-After`, 1 s doubling up to 60 s with full jitter;
/// a `Retry-After` is honoured up to 10 minutes.
pub fn default_poll_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: u32::MAX,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(60),
        max_retry_after: Duration::from_secs(600),
    }
}

fn bulk_error(what: &str, reason: impl Into<String>) -> FhirError {
    FhirError::Bulk {
        what: what.to_owned(),
        reason: reason.into(),
    }
}

fn interaction(name: &'static str, idempotent: bool) -> Interaction {
    Interaction {
        name,
        resource_type: None,
        permission: "r",
        idempotent,
    }
}

impl BulkClient {
    /// The bulk client of `client`, polling with [`default_poll_policy`] and 4 downloads at a time.
    pub fn new(client: FhirClient) -> Self {
        BulkClient {
            client,
            poll: default_poll_policy(),
            concurrency: 4,
        }
    }

    /// How polls are spaced (`max_attempts` is ignored: polling goes on until the job ends).
    #[must_use]
    pub fn poll_policy(mut self, policy: RetryPolicy) -> Self {
        self.poll = policy;
        self
    }

    /// At most this many files are downloaded at once (at least 1).
    #[must_use]
    pub fn concurrency(mut self, files: usize) -> Self {
        self.concurrency = files.max(1);
        self
    }

    /// The kick-off URL of `level`.
    fn kick_off_url(&self, level: &ExportLevel) -> Result<Url, FhirError> {
        let base = self.client.base();
        let path = match level {
            ExportLevel::System => String::from("$export"),
            ExportLevel::Patient => String::from("Patient/$export"),
            ExportLevel::Group(id) => {
                if !crate::reference::is_id(id) {
                    return Err(FhirError::InvalidInput(format!("{id:?} is not a FHIR Group id.")));
                }
                format!("Group/{id}/$export")
            }
        };
        base.join(&path)
            .map_err(|e| FhirError::InvalidInput(e.to_string()))
    }

    /// Start the export: `202 Accepted` with the status URL in `Content-Location`.
    pub async fn kick_off(&self, request: &ExportRequest) -> Result<ExportJob, FhirError> {
        let mut url = self.kick_off_url(&request.level)?;
        let params = request.parameters();
        let body = match request.method {
            KickOffMethod::Get => {
                url.query_pairs_mut().extend_pairs(params.iter());
                None
            }
            KickOffMethod::Post => {
                let parameter: Vec<Value> = params
                    .iter()
                    .map(|(name, value)| {
                        let kind = if name == "_since" {
                            "valueInstant"
                        } else {
                            "valueString"
                        };
                        json!({"name": name, kind: value})
                    })
                    .collect();
                let body = json!({"resourceType": "Parameters", "parameter": parameter});
                Some((body.to_string().into_bytes(), FHIR_JSON))
            }
        };
        let method = if body.is_some() { Method::POST } else { Method::GET };
        let answer = self
            .client
            .transport()
            .execute(Call {
                method,
                url: url.clone(),
                body,
                headers: vec![(
                    header::HeaderName::from_static("prefer"),
                    HeaderValue::from_static(if request.lenient {
                        "respond-async, handling=lenient"
                    } else {
                        "respond-async"
                    }),
                )],
                // Not repeated after a timeout: the first request may have started a job.
                interaction: interaction("$export kick-off", false),
            })
            .await?;
        let location = answer
            .headers
            .get(header::CONTENT_LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                bulk_error(
                    "kick-off",
                    format!("{url} answered without a Content-Location status URL"),
                )
            })?;
        let status_url = url.join(location).map_err(|e| {
            bulk_error(
                "kick-off",
                format!("the status URL {location:?} is not a URL: {e}"),
            )
        })?;
        self.check_origin(&status_url)?;
        Ok(ExportJob { status_url })
    }

    /// The token goes only to this client's server (same scheme, host and port as the base).
    fn check_origin(&self, url: &Url) -> Result<(), FhirError> {
        if url.origin() == self.client.base().origin() {
            Ok(())
        } else {
            Err(FhirError::ForeignUrl {
                url: url.to_string(),
                base: self.client.base().to_string(),
            })
        }
    }

    /// Poll the status URL once.
    pub async fn status(&self, job: &ExportJob) -> Result<JobStatus, FhirError> {
        self.check_origin(&job.status_url)?;
        let answer = self
            .client
            .transport()
            .execute(Call {
                method: Method::GET,
                url: job.status_url.clone(),
                body: None,
                headers: Vec::new(),
                interaction: interaction("$export status", true),
            })
            .await?;
        if answer.status == StatusCode::ACCEPTED {
            let text = |name: &str| {
                answer
                    .headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            return Ok(JobStatus::Running {
                progress: text("x-progress"),
                retry_after: text("retry-after").and_then(|v| parse_retry_after(&v, SystemTime::now())),
            });
        }
        let not_a_manifest = |message: String| FhirError::InvalidBody {
            url: answer.url.to_string(),
            expected: String::from("Bulk Data manifest"),
            path: String::from("."),
            message,
            body: body_excerpt(&answer.body),
        };
        let raw: Value = serde_json::from_slice(&answer.body).map_err(|e| not_a_manifest(e.to_string()))?;
        let mut manifest: Manifest =
            serde_json::from_value(raw.clone()).map_err(|e| not_a_manifest(e.to_string()))?;
        manifest.raw = raw;
        Ok(JobStatus::Complete(manifest))
    }

    /// The wait before the next poll: `Retry-After` when sent (capped), else jittered exponential backoff.
    pub fn next_poll(&self, polls: u32, retry_after: Option<Duration>, rng: &mut impl rand::Rng) -> Duration {
        self.poll.delay(polls, retry_after, rng)
    }

    /// Poll until the job completes, reporting each 202 to `on_event`; a failed job's 4xx/5xx (with
    /// its OperationOutcome) is the error.
    pub async fn wait(
        &self,
        job: &ExportJob,
        on_event: &mut (dyn FnMut(&BulkEvent) + Send),
    ) -> Result<Manifest, FhirError> {
        let mut polls: u32 = 0;
        loop {
            match self.status(job).await? {
                JobStatus::Complete(manifest) => return Ok(manifest),
                JobStatus::Running {
                    progress,
                    retry_after,
                } => {
                    let next_poll = self.next_poll(polls, retry_after, &mut rand::rng());
                    polls = polls.saturating_add(1);
                    on_event(&BulkEvent::Polled { progress, next_poll });
                    tokio::time::sleep(next_poll).await;
                }
            }
        }
    }

    /// Cancel the job (`DELETE` on the status URL; the server answers 202).
    pub async fn cancel(&self, job: &ExportJob) -> Result<(), FhirError> {
        self.check_origin(&job.status_url)?;
        self.client
            .transport()
            .execute(Call {
                method: Method::DELETE,
                url: job.status_url.clone(),
                body: None,
                headers: Vec::new(),
                interaction: interaction("$export cancel", true),
            })
            .await
            .map(|_| ())
    }

    /// GET one file of `manifest`, with the token when the manifest requires one; the open response.
    async fn open(&self, manifest: &Manifest, file: &OutputFile) -> Result<reqwest::Response, FhirError> {
        let url = self.client.base().join(&file.url).map_err(|e| {
            bulk_error(
                "download",
                format!("the file URL {:?} is not a URL: {e}", file.url),
            )
        })?;
        if manifest.requires_access_token {
            self.check_origin(&url)?;
        }
        let transport = self.client.transport();
        let auth = transport.auth.as_ref().filter(|_| manifest.requires_access_token);
        let mut token = match auth {
            Some(source) => Some(source.access_token().await?),
            None => None,
        };
        let mut refreshed = false;
        loop {
            let mut request = transport
                .http
                .get(url.clone())
                .header(header::ACCEPT, FHIR_NDJSON);
            if let Some(token) = &token {
                request = request.bearer_auth(token.secret());
            }
            let response = request.send().await.map_err(|e| FhirError::Transport {
                url: url.to_string(),
                source: e,
            })?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            if status == StatusCode::UNAUTHORIZED
                && !refreshed
                && let (Some(source), Some(rejected)) = (auth, &token)
            {
                refreshed = true;
                token = Some(source.refresh_after_unauthorized(rejected).await?);
                continue;
            }
            let headers = response.headers().clone();
            let body = response.bytes().await.unwrap_or_default();
            let call = Call {
                method: Method::GET,
                url,
                body: None,
                headers: Vec::new(),
                interaction: interaction("$export file download", true),
            };
            return Err(status_error(status, &call, &headers, &body));
        }
    }

    /// Stream one file's lines, each read by `fhir_r4` in tolerant mode as `T` (e.g. `fhir_r4::Patient`, or
    /// `fhir_r4::Resource` for a file of any type) together with the issues found in it, chunk by chunk:
    /// the file is never held in memory. A line that is not JSON of type `T` is an error item; a line over
    /// 64 MiB ends the stream with an error.
    pub fn ndjson<'a, T: fhir_r4::FromJson + 'a>(
        &'a self,
        manifest: &'a Manifest,
        file: &'a OutputFile,
    ) -> impl Stream<Item = Result<(T, Vec<fhir_r4::Issue>), FhirError>> + 'a {
        let url = file.url.clone();
        stream::once(async move { self.open(manifest, file).await }).flat_map(move |opened| match opened {
            Ok(response) => lines::<T>(response, url.clone()).left_stream(),
            Err(e) => stream::once(async move { Err(e) }).right_stream(),
        })
    }

    /// Download every file of `manifest` into `dir` (created if needed), at most
    /// [`BulkClient::concurrency`] at once, each streamed to disk; the manifest is written as
    /// `manifest.json`. Data files are named `<Type>.<n>.ndjson` (`n` counting each type's files from `000`),
    /// error files `error.<n>.ndjson`.
    pub async fn download(
        &self,
        manifest: &Manifest,
        dir: &Path,
        on_event: &mut (dyn FnMut(&BulkEvent) + Send),
    ) -> Result<Download, FhirError> {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| io_error(dir, e))?;
        let manifest_path = dir.join("manifest.json");
        let pretty = serde_json::to_vec_pretty(&manifest.raw).unwrap_or_default();
        tokio::fs::write(&manifest_path, pretty)
            .await
            .map_err(|e| io_error(&manifest_path, e))?;
        // Each type's files are numbered from 000 in manifest order: Patient.000, Patient.001, Condition.000.
        let mut per_type: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        let jobs: Vec<(usize, &OutputFile, PathBuf, bool)> = manifest
            .output
            .iter()
            .enumerate()
            .map(|(at, f)| {
                let name = safe_name(&f.resource_type);
                let n = per_type.entry(name.clone()).or_default();
                let path = dir.join(format!("{name}.{n:03}.ndjson"));
                *n += 1;
                (at, f, path, false)
            })
            .chain(manifest.error.iter().enumerate().map(|(n, f)| {
                let at = manifest.output.len() + n;
                (at, f, dir.join(format!("error.{n:03}.ndjson")), true)
            }))
            .collect();
        let mut done: Vec<(usize, DownloadedFile)> = Vec::with_capacity(jobs.len());
        let mut downloads = stream::iter(jobs)
            .map(|(at, file, path, is_error)| async move {
                self.save(manifest, file, path, is_error).await.map(|d| (at, d))
            })
            .buffer_unordered(self.concurrency);
        while let Some(result) = downloads.next().await {
            let (at, file) = result?;
            on_event(&BulkEvent::FileDone(file.clone()));
            done.push((at, file));
        }
        drop(downloads);
        done.sort_by_key(|(at, _)| *at);
        let files: Vec<DownloadedFile> = done.into_iter().map(|(_, f)| f).collect();
        let mut issues = Vec::new();
        for file in files.iter().filter(|f| f.is_error) {
            issues.extend(read_issues(&file.path).await?);
        }
        Ok(Download {
            files,
            issues,
            manifest_path,
        })
    }

    /// Stream one file to `path`, counting bytes and lines.
    async fn save(
        &self,
        manifest: &Manifest,
        file: &OutputFile,
        path: PathBuf,
        is_error: bool,
    ) -> Result<DownloadedFile, FhirError> {
        let mut response = self.open(manifest, file).await?;
        let mut out = tokio::fs::File::create(&path)
            .await
            .map_err(|e| io_error(&path, e))?;
        let (mut bytes, mut lines, mut last) = (0u64, 0u64, b'\n');
        while let Some(chunk) = response.chunk().await.map_err(|e| FhirError::Transport {
            url: file.url.clone(),
            source: e,
        })? {
            for window in chunk.iter() {
                if *window == b'\n' && last != b'\n' {
                    lines += 1;
                }
                last = *window;
            }
            bytes += chunk.len() as u64;
            out.write_all(&chunk).await.map_err(|e| io_error(&path, e))?;
        }
        if last != b'\n' {
            lines += 1;
        }
        out.flush().await.map_err(|e| io_error(&path, e))?;
        Ok(DownloadedFile {
            resource_type: file.resource_type.clone(),
            path,
            bytes,
            lines,
            is_error,
        })
    }
}

impl FhirClient {
    /// This client's Bulk Data client (same base, tokens and connections).
    pub fn bulk(&self) -> BulkClient {
        BulkClient::new(self.clone())
    }
}

fn io_error(path: &Path, source: std::io::Error) -> FhirError {
    FhirError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A resource type as a file name part: letters and digits only.
fn safe_name(resource_type: &str) -> String {
    let name: String = resource_type
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    if name.is_empty() {
        String::from("Resource")
    } else {
        name
    }
}

/// The issues of an OperationOutcome NDJSON file, read line by line.
async fn read_issues(path: &Path) -> Result<Vec<ExportIssue>, FhirError> {
    use tokio::io::AsyncBufReadExt;
    let file = tokio::fs::File::open(path).await.map_err(|e| io_error(path, e))?;
    let mut reader = tokio::io::BufReader::new(file).lines();
    let mut issues = Vec::new();
    while let Some(line) = reader.next_line().await.map_err(|e| io_error(path, e))? {
        if line.trim().is_empty() {
            continue;
        }
        let outcome: Value = serde_json::from_str(&line).map_err(|e| FhirError::InvalidBody {
            url: path.display().to_string(),
            expected: String::from("OperationOutcome"),
            path: String::from("."),
            message: e.to_string(),
            body: line.chars().take(500).collect(),
        })?;
        issues.extend(issues_of(&outcome));
    }
    Ok(issues)
}

/// The issues of one OperationOutcome (as JSON, so this does not depend on the models).
fn issues_of(outcome: &Value) -> Vec<ExportIssue> {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    outcome["issue"]
        .as_array()
        .map(|issues| {
            issues
                .iter()
                .map(|issue| ExportIssue {
                    severity: text(&issue["severity"]).unwrap_or_else(|| String::from("error")),
                    code: text(&issue["code"]).unwrap_or_else(|| String::from("unknown")),
                    text: text(&issue["diagnostics"]).or_else(|| text(&issue["details"]["text"])),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One NDJSON line read as `T` by `fhir_r4` (tolerant); `None` for a blank line.
fn parse_line<T: fhir_r4::FromJson>(
    line: &[u8],
    number: u64,
    url: &str,
) -> Option<Result<(T, Vec<fhir_r4::Issue>), FhirError>> {
    let line = line.trim_ascii();
    if line.is_empty() {
        return None;
    }
    Some(
        fhir_r4::from_slice::<T>(line, fhir_r4::Mode::Tolerant).map_err(|e| FhirError::InvalidBody {
            url: url.to_owned(),
            expected: format!("an NDJSON line holding a {}", T::TYPE_NAME),
            path: format!("line {number}"),
            message: e.to_string(),
            body: body_excerpt(line),
        }),
    )
}

/// The lines of an NDJSON response, parsed one at a time as they arrive.
fn lines<T: fhir_r4::FromJson>(
    response: reqwest::Response,
    url: String,
) -> impl Stream<Item = Result<(T, Vec<fhir_r4::Issue>), FhirError>> {
    struct State {
        response: Option<reqwest::Response>,
        buffer: Vec<u8>,
        /// How much of `buffer` is known to hold no newline (so a long line is scanned once).
        scanned: usize,
        /// Lines taken out of the buffer so far (for error messages).
        line: u64,
        url: String,
    }
    let state = State {
        response: Some(response),
        buffer: Vec::new(),
        scanned: 0,
        line: 0,
        url,
    };
    stream::unfold(state, move |mut state| async move {
        loop {
            if let Some(at) = state.buffer[state.scanned..].iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = state.buffer.drain(..=state.scanned + at).collect();
                state.scanned = 0;
                state.line += 1;
                if let Some(item) = parse_line::<T>(&line, state.line, &state.url) {
                    return Some((item, state));
                }
                continue;
            }
            let Some(response) = state.response.as_mut() else {
                let rest = std::mem::take(&mut state.buffer);
                state.line += 1;
                return parse_line::<T>(&rest, state.line, &state.url).map(|item| (item, state));
            };
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    state.scanned = state.buffer.len();
                    state.buffer.extend_from_slice(&chunk);
                    if state.buffer.len() > MAX_LINE {
                        state.response = None;
                        state.buffer.clear();
                        let error = bulk_error("download", format!("{} has a line over 64 MiB", state.url));
                        return Some((Err(error), state));
                    }
                }
                Ok(None) => state.response = None,
                Err(e) => {
                    state.response = None;
                    state.buffer.clear();
                    let error = FhirError::Transport {
                        url: state.url.clone(),
                        source: e,
                    };
                    return Some((Err(error), state));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn polls_honour_retry_after_and_else_back_off_with_jitter_under_the_cap() {
        let bulk = FhirClient::open("http://127.0.0.1:9/fhir").unwrap().bulk();
        let mut rng = StdRng::seed_from_u64(3);
        assert_eq!(
            bulk.next_poll(5, Some(Duration::from_secs(120)), &mut rng),
            Duration::from_secs(120)
        );
        assert_eq!(
            bulk.next_poll(0, Some(Duration::from_secs(3600)), &mut rng),
            Duration::from_secs(600)
        );
        for polls in 0..30 {
            let ceiling = Duration::from_secs((1u64 << polls.min(10)).min(60));
            assert!(bulk.next_poll(polls, None, &mut rng) <= ceiling);
        }
        let late: std::collections::HashSet<_> =
            (0..20).map(|_| bulk.next_poll(12, None, &mut rng)).collect();
        assert!(late.len() > 1, "jittered");
    }

    #[test]
    fn parameters_go_in_the_ig_names() {
        let mut request = ExportRequest::new(ExportLevel::Group("g1".into()));
        request.types = vec!["Patient".into(), "Observation".into()];
        request.since = Some("2026-01-01T00:00:00Z".into());
        request.type_filters = vec!["Observation?category=vital-signs".into()];
        assert_eq!(
            request.parameters(),
            [
                ("_outputFormat", FHIR_NDJSON),
                ("_type", "Patient,Observation"),
                ("_since", "2026-01-01T00:00:00Z"),
                ("_typeFilter", "Observation?category=vital-signs"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .to_vec()
        );
        let bulk = FhirClient::open("http://127.0.0.1:9/fhir").unwrap().bulk();
        assert!(bulk.kick_off_url(&ExportLevel::Group("../x".into())).is_err());
        assert_eq!(
            bulk.kick_off_url(&ExportLevel::Patient).unwrap().as_str(),
            "http://127.0.0.1:9/fhir/Patient/$export"
        );
    }

    #[test]
    fn error_files_issues_are_read_from_json() {
        let outcome = json!({"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "processing", "diagnostics": "Patient/7 could not be read"},
            {"severity": "warning", "code": "informational", "details": {"text": "skipped"}}
        ]});
        let issues = issues_of(&outcome);
        assert_eq!(issues.len(), 2);
        assert_eq!(
            issues[0].to_string(),
            "error (processing): Patient/7 could not be read"
        );
        assert_eq!(issues[1].text.as_deref(), Some("skipped"));
    }
}
