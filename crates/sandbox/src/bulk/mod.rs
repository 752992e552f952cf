//! FHIR Bulk Data Access (IG 2.0.0, <https://hl7.org/fhir/uv/bulkdata/STU2/export.html>): `$export` of the
//! whole server, of every patient, or of a Group's members, as NDJSON files.
//!
//! The flow, as the IG's "Bulk Data Kick-off Request", "Bulk Data Status Request", "Bulk Data Delete Request"
//! and "File Request" sections describe it:
//! - kick-off: `GET` or `POST` (a `Parameters` body) on `[base]/$export`, `[base]/Patient/$export` or
//!   `[base]/Group/[id]/$export`, with `Prefer: respond-async` → `202 Accepted` and `Content-Location: [base]/
//!   $export-status/[job]` (parameters: see the `request` module);
//! - status: `GET` on that URL → `202` with `X-Progress` and `Retry-After` while the job runs, then `200` and the
//!   manifest (`transactionTime`, `request`, `requiresAccessToken: true`, `output[]` and `error[]` with `type`,
//!   `url`, `count`) and an `Expires` header; a failed job answers `500` with an OperationOutcome;
//! - `DELETE` on it cancels the job (or deletes a finished one) → `202`; the URL then answers `404`;
//! - files: `GET [base]/$export-file/[job]/[name]` with a token of the client that started the job, streamed.
//!
//! Limits ([`BulkConfig`], defaults in parentheses): at most `max_jobs_per_client` (2) queued or running jobs per
//! client, beyond which the kick-off answers `429` with `Retry-After`; files of at most
//! `max_resources_per_file` (10,000) resources; a finished job and its files are deleted `retention` (24 h)
//! after it ends. Jobs are rows of the sandbox database and files live in `<database stem>-bulk/<job>/` beside
//! it, so both survive a restart; a job that was running when the sandbox stopped starts again from the
//! beginning (keeping its `transactionTime`) when it starts.

mod export;
mod jobs;
mod pace;
mod request;

use crate::SandboxState;
use crate::error::SandboxError;
use crate::fhir::access::Access;
use crate::fhir::outcome::{FHIR_JSON, OutcomeError, operation_outcome};
use crate::store::{Store, current_row};
use axum::{
    Router,
    body::{Body, Bytes},
    extract::{OriginalUri, Path, RawQuery, State},
    response::{IntoResponse, Response},
    routing::get,
};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use jobs::{FileKind, Job, Status, StoredGrant};
use request::{Level, Source};
use serde_json::{Value, json};
use smart_launch::scope::Permissions;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::limits::BulkConfig;

/// The Bulk Data server's state: its limits, its file directory and the cancel flags of running jobs. Cheap
/// to clone.
#[derive(Clone)]
pub struct BulkServer {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: BulkConfig,
    dir: PathBuf,
    running: Mutex<HashMap<String, Arc<AtomicBool>>>,
    schema_ready: AtomicBool,
}

impl std::fmt::Debug for BulkServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkServer")
            .field("dir", &self.inner.dir)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl BulkServer {
    /// The Bulk Data server of `store`, with files in `config.dir` or beside the database. Does no I/O.
    pub fn new(store: Store, config: BulkConfig) -> Self {
        let dir = config.dir.clone().unwrap_or_else(|| {
            let db = store.path();
            let stem = db
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "sandbox".into());
            db.with_file_name(format!("{stem}-bulk"))
        });
        Self {
            inner: Arc::new(Inner {
                store,
                config,
                dir,
                running: Mutex::new(HashMap::new()),
                schema_ready: AtomicBool::new(false),
            }),
        }
    }

    /// The limits.
    pub fn config(&self) -> &BulkConfig {
        &self.inner.config
    }

    /// The directory holding one subdirectory of files per job.
    pub fn files_dir(&self) -> &std::path::Path {
        &self.inner.dir
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    fn job_dir(&self, id: &str) -> PathBuf {
        self.inner.dir.join(id)
    }

    /// Creates the job tables on first use. Blocks.
    fn ensure_schema(&self) -> Result<(), SandboxError> {
        if !self.inner.schema_ready.load(Ordering::Acquire) {
            jobs::ensure_schema(&self.inner.store)?;
            self.inner.schema_ready.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Deletes expired jobs and their files. Blocks.
    fn sweep(&self) -> Result<(), SandboxError> {
        let store = &self.inner.store;
        for id in jobs::expired(store, chrono::Utc::now().timestamp())? {
            jobs::delete(store, &id)?;
            export::remove_dir(&self.job_dir(&id));
            tracing::info!(job = %id, "an expired bulk export was deleted");
        }
        Ok(())
    }

    /// Starts (or restarts) the background task of job `id`.
    fn spawn(&self, id: String) {
        let cancel = Arc::new(AtomicBool::new(false));
        if let Ok(mut running) = self.inner.running.lock() {
            running.insert(id.clone(), cancel.clone());
        }
        let server = self.clone();
        tokio::spawn(async move {
            export::run(server.clone(), id.clone(), cancel).await;
            if let Ok(mut running) = server.inner.running.lock() {
                running.remove(&id);
            }
        });
    }

    fn cancel(&self, id: &str) {
        if let Ok(running) = self.inner.running.lock()
            && let Some(flag) = running.get(id)
        {
            flag.store(true, Ordering::Relaxed);
        }
    }

    /// Creates the tables, deletes expired jobs, restarts the jobs a previous run left unfinished, and sweeps
    /// expired jobs every minute from then on. Call once, from within the runtime, when the sandbox starts.
    pub async fn start_background(&self) -> Result<(), SandboxError> {
        let server = self.clone();
        let unfinished = self
            .inner
            .store
            .blocking(move |store| {
                server.ensure_schema()?;
                server.sweep()?;
                jobs::unfinished(store)
            })
            .await?;
        for id in unfinished {
            tracing::info!(job = %id, "restarting a bulk export left unfinished by the last run");
            self.spawn(id);
        }
        let server = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            tick.tick().await;
            loop {
                tick.tick().await;
                let s = server.clone();
                if let Err(e) = server.inner.store.blocking(move |_| s.sweep()).await {
                    tracing::warn!(error = %e, "sweeping expired bulk exports failed");
                }
            }
        });
        Ok(())
    }
}

/// The members of Group `id` as patient ids (inactive members left out), or `None` when there is no such
/// Group. Blocks.
pub(crate) fn group_members(store: &Store, id: &str) -> Result<Option<Vec<String>>, SandboxError> {
    let Some(group) = store.read("Group", id)? else {
        return Ok(None);
    };
    let members = group
        .get("member")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|m| m.get("inactive").and_then(Value::as_bool) != Some(true))
        .filter_map(|m| m.get("entity")?.get("reference")?.as_str())
        .filter_map(request::patient_id)
        .collect();
    Ok(Some(members))
}

/// The Bulk Data routes under the FHIR base path `fhir_path` (`/fhir` for the `smart` persona), merged into
/// the sandbox's router beside the FHIR server (their paths are more specific than its `/{type}/{id}`).
pub(crate) fn router(fhir_path: &str) -> Router<SandboxState> {
    Router::new()
        .route(&format!("{fhir_path}/$export"), get(system_get).post(system_post))
        .route(
            &format!("{fhir_path}/Patient/$export"),
            get(patient_get).post(patient_post),
        )
        .route(
            &format!("{fhir_path}/Group/{{id}}/$export"),
            get(group_get).post(group_post),
        )
        .route(
            &format!("{fhir_path}/$export-status/{{job}}"),
            get(status).delete(cancel),
        )
        .route(&format!("{fhir_path}/$export-file/{{job}}/{{file}}"), get(file))
}

/// A failed Bulk Data request.
enum BulkError {
    /// Any FHIR error (its OperationOutcome and status).
    Fhir(OutcomeError),
    /// 429: the client has too many jobs running.
    TooMany { message: String, retry_after: u64 },
}

impl From<OutcomeError> for BulkError {
    fn from(e: OutcomeError) -> Self {
        BulkError::Fhir(e)
    }
}

impl From<SandboxError> for BulkError {
    fn from(e: SandboxError) -> Self {
        BulkError::Fhir(e.into())
    }
}

impl From<crate::error::BearerError> for BulkError {
    fn from(e: crate::error::BearerError) -> Self {
        BulkError::Fhir(e.into())
    }
}

impl IntoResponse for BulkError {
    fn into_response(self) -> Response {
        match self {
            BulkError::Fhir(e) => e.into_response(),
            BulkError::TooMany { message, retry_after } => {
                let body = operation_outcome("error", "throttled", &message).to_string();
                let mut response = (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON))],
                    body,
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, retry_after.into());
                response
            }
        }
    }
}

fn base_of(state: &SandboxState) -> String {
    state.fhir_base().as_str().trim_end_matches('/').to_owned()
}

fn status_url(state: &SandboxState, job: &str) -> String {
    format!("{}/$export-status/{job}", base_of(state))
}

fn file_url(state: &SandboxState, job: &str, name: &str) -> String {
    format!("{}/$export-file/{job}/{name}", base_of(state))
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String, Source)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .map(|(k, v)| (k, v, Source::Query))
        .collect()
}

async fn system_get(
    State(state): State<SandboxState>,
    uri: OriginalUri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    kick_off(state, Level::System, uri, headers, query, None).await
}

async fn system_post(
    State(state): State<SandboxState>,
    uri: OriginalUri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    kick_off(state, Level::System, uri, headers, query, Some(body)).await
}

async fn patient_get(
    State(state): State<SandboxState>,
    uri: OriginalUri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    kick_off(state, Level::Patient, uri, headers, query, None).await
}

async fn patient_post(
    State(state): State<SandboxState>,
    uri: OriginalUri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    kick_off(state, Level::Patient, uri, headers, query, Some(body)).await
}

async fn group_get(
    State(state): State<SandboxState>,
    Path(id): Path<String>,
    uri: OriginalUri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    kick_off(state, Level::Group(id), uri, headers, query, None).await
}

async fn group_post(
    State(state): State<SandboxState>,
    Path(id): Path<String>,
    uri: OriginalUri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    kick_off(state, Level::Group(id), uri, headers, query, Some(body)).await
}

async fn kick_off(
    state: SandboxState,
    level: Level,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    query: Option<String>,
    body: Option<Bytes>,
) -> Response {
    match kick_off_inner(state, level, uri, headers, query, body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn kick_off_inner(
    state: SandboxState,
    level: Level,
    uri: http::Uri,
    headers: HeaderMap,
    query: Option<String>,
    body: Option<Bytes>,
) -> Result<Response, BulkError> {
    let lenient = request::check_prefer(&headers)?;
    let mut pairs = query_pairs(query.as_deref());
    if let Some(body) = &body {
        pairs.extend(
            request::parameters_body(body)?
                .into_iter()
                .map(|(k, v)| (k, v, Source::Body)),
        );
    }
    let kick = request::parse(level, &pairs, lenient)?;
    let request_url = request_url(&state, &uri);
    let bulk = state.bulk().clone();
    let st = state.clone();
    let (job_id, warnings) = state
        .store()
        .blocking(move |store| -> Result<(String, Vec<String>), BulkError> {
            let grant = st.auth().check_bearer(&headers)?;
            bulk.ensure_schema()?;
            bulk.sweep()?;
            authorize(store, &grant, &kick.spec)?;
            let max = bulk.config().max_jobs_per_client;
            if jobs::active_count(store, &grant.client_id)? >= max {
                return Err(BulkError::TooMany {
                    message: format!(
                        "Client `{}` already has {max} exports running, the most this server runs at once for one \
                         client. Wait for one to finish (or cancel one with DELETE on its status URL) and try again.",
                        grant.client_id
                    ),
                    retry_after: bulk.config().retry_after.as_secs().max(1),
                });
            }
            let job = Job {
                id: uuid::Uuid::new_v4().simple().to_string(),
                client_id: grant.client_id.clone(),
                grant: StoredGrant {
                    scopes: grant.scopes.to_string(),
                    patient: grant.patient.clone(),
                    fhir_user: grant.fhir_user.clone(),
                },
                request_url,
                spec: kick.spec,
                warnings: kick.warnings,
                status: Status::Queued,
                transaction_time: crate::store::normalize::instant_text(chrono::Utc::now()),
                expires_at: None,
                progress: "Queued.".into(),
                error: None,
            };
            jobs::insert(store, &job, chrono::Utc::now().timestamp())?;
            Ok((job.id, job.warnings))
        })
        .await?;
    state.bulk().spawn(job_id.clone());
    Ok(accepted(&state, &job_id, &warnings))
}

/// The manifest's `request`: the kick-off URL as the client sent it, on the public base.
fn request_url(state: &SandboxState, uri: &http::Uri) -> String {
    let fhir_path = state.auth().persona().fhir_path();
    let path = uri.path().strip_prefix(fhir_path.as_str()).unwrap_or(uri.path());
    match uri.query() {
        Some(q) => format!("{}{path}?{q}", base_of(state)),
        None => format!("{}{path}", base_of(state)),
    }
}

/// The kick-off's `202 Accepted`: an OperationOutcome with the request's warnings, and the job's status URL in
/// `Content-Location`.
fn accepted(state: &SandboxState, job_id: &str, warnings: &[String]) -> Response {
    let mut issues: Vec<Value> = vec![json!({
        "severity": "information",
        "code": "informational",
        "diagnostics": "The export has started; poll the Content-Location URL for its status."
    })];
    issues.extend(warnings.iter().map(|w| {
        json!({ "severity": "warning", "code": "not-supported", "diagnostics": w, "details": { "text": w } })
    }));
    let body = json!({ "resourceType": "OperationOutcome", "issue": issues }).to_string();
    let mut response = (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON))],
        body,
    )
        .into_response();
    if let Ok(location) = HeaderValue::from_str(&status_url(state, job_id)) {
        response.headers_mut().insert(header::CONTENT_LOCATION, location);
    }
    response
}

/// Checks that the token may start this export: every named type readable, some type readable when none is
/// named, the Group present and readable, the named patients present.
fn authorize(
    store: &Store,
    grant: &crate::auth::AccessGrant,
    spec: &request::ExportSpec,
) -> Result<(), BulkError> {
    let access = Access::new(grant.clone());
    match &spec.types {
        Some(types) => {
            for t in types {
                access.decide(t, Permissions::V1_READ)?;
            }
        }
        None => {
            if !grant
                .scopes
                .resource_scopes()
                .any(|s| s.permissions.contains(Permissions::V1_READ))
            {
                return Err(OutcomeError::InsufficientScope {
                    message: format!(
                        "The token's scopes ({}) read no resources, so an export would be empty. Ask for \
                         `system/*.rs` (or `system/*.read`), or narrow it by type, e.g. `system/Observation.rs`.",
                        grant.scopes
                    ),
                    scope: "system/*.rs".into(),
                }
                .into());
            }
        }
    }
    store.with_reader(|conn| -> Result<(), BulkError> {
        if let Level::Group(id) = &spec.level {
            let row = current_row(conn, "Group", id)
                .map_err(SandboxError::from)?
                .filter(|r| !r.deleted)
                .ok_or_else(|| {
                    OutcomeError::NotFound(format!(
                        "There is no Group `{id}` to export; `GET [base]/Group` lists the groups."
                    ))
                })?;
            access.check_row(conn, &row, Permissions::READ)?;
        }
        for patient in spec.patients.iter().flatten() {
            let found = current_row(conn, "Patient", patient)
                .map_err(SandboxError::from)?
                .is_some_and(|r| !r.deleted);
            if !found {
                return Err(OutcomeError::BadRequest(format!(
                    "`patient` names Patient/{patient}, which is not on this server."
                ))
                .into());
            }
        }
        Ok(())
    })
}

/// The job at a status or file URL, when the token is one of the client that started it. Blocks.
fn job_for(state: &SandboxState, headers: &HeaderMap, id: &str) -> Result<Job, BulkError> {
    let grant = state.auth().check_bearer(headers)?;
    state.bulk().ensure_schema()?;
    state.bulk().sweep()?;
    match jobs::get(state.store(), id)? {
        Some(job) if job.client_id == grant.client_id => Ok(job),
        Some(_) => Err(OutcomeError::Forbidden(
            "This export was started by another client; only tokens of that client may see it.".into(),
        )
        .into()),
        None => Err(OutcomeError::NotFound(
            "There is no export job at this URL: it was cancelled, it expired, or it never existed. Start a new \
             export."
                .into(),
        )
        .into()),
    }
}

async fn status(State(state): State<SandboxState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let st = state.clone();
    let result = state
        .store()
        .blocking(move |store| -> Result<(Job, Vec<jobs::FileRecord>), BulkError> {
            let job = job_for(&st, &headers, &id)?;
            let files = jobs::files(store, &job.id)?;
            Ok((job, files))
        })
        .await;
    let (job, files) = match result {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    match job.status {
        Status::Queued | Status::Running => {
            let mut response = StatusCode::ACCEPTED.into_response();
            let headers = response.headers_mut();
            if let Ok(progress) = HeaderValue::from_str(&job.progress) {
                headers.insert("x-progress", progress);
            }
            headers.insert(
                header::RETRY_AFTER,
                state.bulk().config().retry_after.as_secs().max(1).into(),
            );
            response
        }
        Status::Failed => {
            let message = job.error.unwrap_or_else(|| "The export failed.".into());
            let body = operation_outcome("fatal", "exception", &message).to_string();
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON))],
                body,
            )
                .into_response()
        }
        Status::Complete => manifest(&state, &job, &files),
    }
}

/// The complete-status response: the manifest (IG: "Response - Complete Status") and its `Expires`.
fn manifest(state: &SandboxState, job: &Job, files: &[jobs::FileRecord]) -> Response {
    let entry = |f: &jobs::FileRecord| json!({ "type": f.resource_type, "url": file_url(state, &job.id, &f.name), "count": f.count });
    let output: Vec<Value> = files
        .iter()
        .filter(|f| f.kind == FileKind::Output)
        .map(entry)
        .collect();
    let error: Vec<Value> = files
        .iter()
        .filter(|f| f.kind == FileKind::Error)
        .map(entry)
        .collect();
    let body = json!({
        "transactionTime": job.transaction_time,
        "request": job.request_url,
        "requiresAccessToken": true,
        "output": output,
        "error": error,
    });
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body.to_string(),
    )
        .into_response();
    if let Some(at) = job
        .expires_at
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        && let Ok(v) = HeaderValue::from_str(&at.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
    {
        response.headers_mut().insert(header::EXPIRES, v);
    }
    response
}

async fn cancel(State(state): State<SandboxState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let st = state.clone();
    let result = state
        .store()
        .blocking(move |store| -> Result<(), BulkError> {
            let job = job_for(&st, &headers, &id)?;
            st.bulk().cancel(&job.id);
            jobs::delete(store, &job.id)?;
            if !matches!(job.status, Status::Queued | Status::Running) {
                export::remove_dir(&st.bulk().job_dir(&job.id));
            }
            Ok(())
        })
        .await;
    match result {
        Ok(()) => {
            let body = operation_outcome(
                "information",
                "informational",
                "The export was cancelled and its files deleted; its status URL now answers 404.",
            )
            .to_string();
            (
                StatusCode::ACCEPTED,
                [(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON))],
                body,
            )
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn file(
    State(state): State<SandboxState>,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let st = state.clone();
    let result = state
        .store()
        .blocking(move |store| -> Result<PathBuf, BulkError> {
            let job = job_for(&st, &headers, &id)?;
            let known =
                job.status == Status::Complete && jobs::files(store, &job.id)?.iter().any(|f| f.name == name);
            if !known {
                return Err(OutcomeError::NotFound(format!(
                    "Export {id} has no file `{name}`; the manifest (its status URL) lists the files."
                ))
                .into());
            }
            Ok(st.bulk().job_dir(&job.id).join(&name))
        })
        .await;
    let path = match result {
        Ok(path) => path,
        Err(e) => return e.into_response(),
    };
    let handle = match tokio::fs::File::open(&path).await {
        Ok(handle) => handle,
        Err(e) => {
            return OutcomeError::Internal(format!("export file {} cannot be opened: {e}", path.display()))
                .into_response();
        }
    };
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/fhir+ndjson"),
        )],
        Body::from_stream(file_stream(handle)),
    )
        .into_response()
}

/// A file as a stream of 64 KiB chunks (never the whole file in memory).
fn file_stream(
    handle: tokio::fs::File,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures::stream::unfold(Some(handle), |handle| async move {
        use tokio::io::AsyncReadExt;
        let mut handle = handle?;
        let mut buf = vec![0u8; 64 * 1024];
        match handle.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(handle)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}
