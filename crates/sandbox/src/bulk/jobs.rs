//! Export jobs and their files as rows of the sandbox database (tables `bulk_jobs` and `bulk_files`, created
//! here with `CREATE TABLE IF NOT EXISTS` on the store's connection), so that a job and its manifest survive a
//! restart. The files themselves live in a directory beside the database (see [`super::BulkServer`]).

use super::request::ExportSpec;
use crate::error::SandboxError;
use crate::store::Store;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS bulk_jobs (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    grant_json TEXT NOT NULL,
    request_url TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    warnings_json TEXT NOT NULL,
    status TEXT NOT NULL,
    transaction_time TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    progress TEXT NOT NULL DEFAULT '',
    error TEXT
);
CREATE INDEX IF NOT EXISTS bulk_jobs_client ON bulk_jobs (client_id, status);
CREATE TABLE IF NOT EXISTS bulk_files (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
";

/// Creates the tables if they are missing.
pub(crate) fn ensure_schema(store: &Store) -> Result<(), SandboxError> {
    store.with_conn(|conn| conn.execute_batch(SCHEMA))
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Waiting for its task (just created, or found unfinished at start-up).
    Queued,
    /// Writing files.
    Running,
    /// Done: the manifest is ready.
    Complete,
    /// Stopped by an error (kept in `error`).
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Complete => "complete",
            Status::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Status {
        match text {
            "queued" => Status::Queued,
            "running" => Status::Running,
            "complete" => Status::Complete,
            _ => Status::Failed,
        }
    }
}

/// What the token that started a job allowed, kept so the job (also after a restart) reads no more than that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredGrant {
    /// The granted scopes, space-separated.
    pub scopes: String,
    /// The patient in context, if any.
    pub patient: Option<String>,
    /// The signed-in user, if any (`Patient/…` confines `user/` scopes to that patient).
    pub fhir_user: Option<String>,
}

/// One export job.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// The job id (random; the last segment of the status URL).
    pub id: String,
    /// The client that started it: only its tokens may poll, cancel or download.
    pub client_id: String,
    /// What its token allowed.
    pub grant: StoredGrant,
    /// The kick-off URL (the manifest's `request`).
    pub request_url: String,
    /// What to export.
    pub spec: ExportSpec,
    /// Parameters ignored under `handling=lenient`.
    pub warnings: Vec<String>,
    /// Where it is.
    pub status: Status,
    /// The instant of the kick-off (the manifest's `transactionTime`).
    pub transaction_time: String,
    /// When the job and its files are deleted (Unix seconds); set when it ends.
    pub expires_at: Option<i64>,
    /// A sentence for `X-Progress`.
    pub progress: String,
    /// Why it failed.
    pub error: Option<String>,
}

/// Whether a file holds resources (`output`) or OperationOutcomes (`error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// An `output` file.
    Output,
    /// An `error` file.
    Error,
}

/// A finished file of a job.
#[derive(Debug, Clone)]
pub(crate) struct FileRecord {
    /// Its position in the manifest.
    pub seq: i64,
    /// `output` or `error`.
    pub kind: FileKind,
    /// The resource type of every line.
    pub resource_type: String,
    /// The file name in the job's directory (also the last segment of its URL).
    pub name: String,
    /// How many resources (lines) it holds.
    pub count: i64,
}

fn json_err(e: serde_json::Error) -> SandboxError {
    SandboxError::Internal {
        reason: format!("a stored export job could not be read ({e})"),
    }
}

/// Stores a new job.
pub(crate) fn insert(store: &Store, job: &Job, created_at: i64) -> Result<(), SandboxError> {
    let grant = serde_json::to_string(&job.grant).map_err(json_err)?;
    let spec = serde_json::to_string(&job.spec).map_err(json_err)?;
    let warnings = serde_json::to_string(&job.warnings).map_err(json_err)?;
    store.with_conn(|conn| {
        conn.execute(
            "INSERT INTO bulk_jobs (id, client_id, grant_json, request_url, spec_json, warnings_json, status,
                 transaction_time, created_at, progress)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                job.id,
                job.client_id,
                grant,
                job.request_url,
                spec,
                warnings,
                job.status.as_str(),
                job.transaction_time,
                created_at,
                job.progress
            ],
        )
        .map(drop)
    })
}

/// The job `id`, if it exists.
pub(crate) fn get(store: &Store, id: &str) -> Result<Option<Job>, SandboxError> {
    let row = store.with_conn(|conn| {
        conn.query_row(
            "SELECT id, client_id, grant_json, request_url, spec_json, warnings_json, status, transaction_time,
                    expires_at, progress, error
             FROM bulk_jobs WHERE id = ?1",
            [id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, Option<i64>>(8)?,
                    r.get::<_, String>(9)?,
                    r.get::<_, Option<String>>(10)?,
                ))
            },
        )
        .optional()
    })?;
    let Some((
        id,
        client_id,
        grant,
        request_url,
        spec,
        warnings,
        status,
        transaction_time,
        expires_at,
        progress,
        error,
    )) = row
    else {
        return Ok(None);
    };
    Ok(Some(Job {
        id,
        client_id,
        grant: serde_json::from_str(&grant).map_err(json_err)?,
        request_url,
        spec: serde_json::from_str(&spec).map_err(json_err)?,
        warnings: serde_json::from_str(&warnings).map_err(json_err)?,
        status: Status::parse(&status),
        transaction_time,
        expires_at,
        progress,
        error,
    }))
}

/// How many jobs of `client_id` are queued or running.
pub(crate) fn active_count(store: &Store, client_id: &str) -> Result<usize, SandboxError> {
    store.with_conn(|conn| {
        conn.query_row(
            "SELECT COUNT(*) FROM bulk_jobs WHERE client_id = ?1 AND status IN ('queued', 'running')",
            [client_id],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| usize::try_from(n).unwrap_or(0))
    })
}

/// The ids of jobs that were queued or running (to restart after the sandbox restarts).
pub(crate) fn unfinished(store: &Store) -> Result<Vec<String>, SandboxError> {
    store.with_conn(|conn| {
        conn.prepare("SELECT id FROM bulk_jobs WHERE status IN ('queued', 'running') ORDER BY created_at")?
            .query_map([], |r| r.get(0))?
            .collect()
    })
}

/// The ids of jobs whose expiry is at or before `now` (Unix seconds).
pub(crate) fn expired(store: &Store, now: i64) -> Result<Vec<String>, SandboxError> {
    store.with_conn(|conn| {
        conn.prepare("SELECT id FROM bulk_jobs WHERE expires_at IS NOT NULL AND expires_at <= ?1")?
            .query_map([now], |r| r.get(0))?
            .collect()
    })
}

/// Marks a job running with a fresh start: its earlier files (from before a restart) are forgotten.
pub(crate) fn restart(store: &Store, id: &str) -> Result<(), SandboxError> {
    store.write(|tx| {
        tx.execute("DELETE FROM bulk_files WHERE job_id = ?1", [id])?;
        tx.execute(
            "UPDATE bulk_jobs SET status = 'running', progress = 'Starting.' WHERE id = ?1",
            [id],
        )?;
        Ok::<_, SandboxError>(())
    })
}

/// Sets the `X-Progress` sentence.
pub(crate) fn set_progress(store: &Store, id: &str, progress: &str) -> Result<(), SandboxError> {
    store.with_conn(|conn| {
        conn.execute(
            "UPDATE bulk_jobs SET progress = ?2 WHERE id = ?1",
            params![id, progress],
        )
        .map(drop)
    })
}

/// Records a finished file.
pub(crate) fn add_file(store: &Store, job_id: &str, file: &FileRecord) -> Result<(), SandboxError> {
    let kind = match file.kind {
        FileKind::Output => "output",
        FileKind::Error => "error",
    };
    store.with_conn(|conn| {
        conn.execute(
            "INSERT OR REPLACE INTO bulk_files (job_id, seq, kind, type, name, count) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![job_id, file.seq, kind, file.resource_type, file.name, file.count],
        )
        .map(drop)
    })
}

/// The files of a job, in manifest order.
pub(crate) fn files(store: &Store, job_id: &str) -> Result<Vec<FileRecord>, SandboxError> {
    store.with_conn(|conn| {
        conn.prepare("SELECT seq, kind, type, name, count FROM bulk_files WHERE job_id = ?1 ORDER BY seq")?
            .query_map([job_id], |r| {
                Ok(FileRecord {
                    seq: r.get(0)?,
                    kind: if r.get::<_, String>(1)? == "error" {
                        FileKind::Error
                    } else {
                        FileKind::Output
                    },
                    resource_type: r.get(2)?,
                    name: r.get(3)?,
                    count: r.get(4)?,
                })
            })?
            .collect()
    })
}

/// Ends a job: complete, or failed with `error`; it expires at `expires_at`.
pub(crate) fn finish(
    store: &Store,
    id: &str,
    error: Option<&str>,
    progress: &str,
    expires_at: i64,
) -> Result<(), SandboxError> {
    let status = if error.is_some() {
        Status::Failed
    } else {
        Status::Complete
    };
    store.with_conn(|conn| {
        conn.execute(
            "UPDATE bulk_jobs SET status = ?2, error = ?3, progress = ?4, expires_at = ?5 WHERE id = ?1",
            params![id, status.as_str(), error, progress, expires_at],
        )
        .map(drop)
    })
}

/// Forgets a job and its files' rows; returns whether it existed.
pub(crate) fn delete(store: &Store, id: &str) -> Result<bool, SandboxError> {
    store.write(|tx| {
        tx.execute("DELETE FROM bulk_files WHERE job_id = ?1", [id])?;
        let n = tx.execute("DELETE FROM bulk_jobs WHERE id = ?1", [id])?;
        Ok::<_, SandboxError>(n > 0)
    })
}
