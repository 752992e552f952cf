//! Running an export job in the background: resource rows streamed from the database into NDJSON files.
//!
//! The job works in chunks of at most [`super::BulkConfig::batch`] rows. Each chunk is one database task
//! through [`Store::blocking`], so it takes one of the store's few task permits and gives it back before the
//! next: FHIR API requests queue between chunks instead of behind the whole export, and memory holds one chunk
//! (plus a file buffer) whatever the population. Rows are read in row-id order with a keyset cursor
//! (`rid > last`), never with OFFSET, so every chunk costs the same.
//!
//! What a job may read is what the token that started it could read, decided by the FHIR server's own access
//! rules (`fhir::access`): `system/` scopes read every patient, `user/` scopes of a signed-in patient and
//! `patient/` scopes only that patient's compartment, v2 constraints (`?category=…`) are applied row by row, and
//! types the scopes do not reach are left out.

use super::BulkServer;
use super::jobs::{self, FileKind, FileRecord, Job, StoredGrant};
use super::request::Level;
use crate::auth::AccessGrant;
use crate::error::SandboxError;
use crate::fhir::access::{Access, Decision};
use crate::registry;
use crate::store::Store;
use crate::store::search::{self, Condition};
use rusqlite::types::Value as Sql;
use smart_launch::scope::{Permissions, ScopeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Why a job stopped early.
enum Stop {
    /// The client cancelled it (DELETE on the status URL).
    Cancelled,
    /// Something failed; the sentence goes to the status response.
    Failed(String),
}

impl From<SandboxError> for Stop {
    fn from(e: SandboxError) -> Self {
        tracing::error!(error = %e, "a bulk export job failed");
        Stop::Failed(
            "The export failed inside the sandbox; the server log has the details. Start a new export."
                .into(),
        )
    }
}

/// The access rules of a stored grant.
pub(crate) fn access_of(client_id: &str, grant: &StoredGrant) -> Access {
    Access::new(AccessGrant {
        client_id: client_id.to_owned(),
        scopes: ScopeSet::parse_lenient(&grant.scopes),
        patient: grant.patient.clone(),
        encounter: None,
        fhir_user: grant.fhir_user.clone(),
        simulated_failure: None,
    })
}

/// Runs job `id` to the end (or until cancelled), recording the outcome. Errors are logged and stored, never
/// raised: nothing waits on this task.
pub(crate) async fn run(server: BulkServer, id: String, cancel: Arc<AtomicBool>) {
    let result = run_job(&server, &id, &cancel).await;
    let store = server.store().clone();
    let retention = i64::try_from(server.config().retention.as_secs()).unwrap_or(i64::MAX);
    let expires_at = chrono::Utc::now().timestamp().saturating_add(retention);
    let dir = server.job_dir(&id);
    let outcome = store
        .blocking(move |store| match result {
            Ok(total) => jobs::finish(
                store,
                &id,
                None,
                &format!("Complete: {total} resources exported."),
                expires_at,
            ),
            Err(Stop::Failed(reason)) => jobs::finish(store, &id, Some(&reason), "Failed.", expires_at),
            Err(Stop::Cancelled) => {
                jobs::delete(store, &id)?;
                remove_dir(&dir);
                Ok(())
            }
        })
        .await;
    if let Err(e) = outcome {
        tracing::error!(error = %e, "the end of a bulk export job could not be recorded");
    }
}

/// Deletes a job's directory; a missing one is fine.
pub(crate) fn remove_dir(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), error = %e, "an export directory could not be deleted");
    }
}

/// What the chunks of one resource type read.
struct TypePlan {
    resource_type: String,
    /// Only resources in these patients' compartments (`None`: no such limit).
    patients: Option<Arc<Vec<String>>>,
    /// Only resources in some patient's compartment (Patient-level export without a patient list).
    compartment_only: bool,
    /// OR of condition lists the row must satisfy (`_typeFilter`), or `None`.
    type_filter: Option<Vec<Vec<Vec<Condition>>>>,
    /// The scopes' constraints, or `None`.
    scope_filter: Option<Vec<Vec<Vec<Condition>>>>,
    since: Option<String>,
    until: Option<String>,
}

/// Where a type's reading has got to.
#[derive(Default, Clone, Copy)]
struct Cursor {
    /// Index into the patient list (when there is one).
    patient: usize,
    /// The last row id read.
    rid: i64,
    done: bool,
}

/// The NDJSON file being written for the current type.
struct OpenFile {
    record: FileRecord,
    out: std::io::BufWriter<std::fs::File>,
}

async fn run_job(server: &BulkServer, id: &str, cancel: &AtomicBool) -> Result<u64, Stop> {
    let job = restart(server, id).await?;
    let access = Arc::new(access_of(&job.client_id, &job.grant));
    let plans = plan(server.store(), &job, access.clone()).await?;
    let mut counts = Counts { seq: 0, total: 0 };
    if !job.warnings.is_empty() {
        write_warnings(server, &job, &mut counts.seq).await?;
    }
    let pace = Pacing {
        pace: super::pace::Pace::new(server.config().max_rows_per_second),
        started: std::time::Instant::now(),
    };
    let types = plans.len();
    for (index, plan) in plans.into_iter().enumerate() {
        let step = format!("type {} of {types}", index + 1);
        export_type(server, id, cancel, Arc::new(plan), &step, &pace, &mut counts).await?;
    }
    Ok(counts.total)
}

/// The job's running counts: the sequence number of the next file, and the resources written so far.
struct Counts {
    seq: i64,
    total: u64,
}

/// How fast a job may go: its pace, and when it started.
struct Pacing {
    pace: super::pace::Pace,
    started: std::time::Instant,
}

/// The job `id`, started over (its files and their directory removed); `Stop::Cancelled` when it is gone.
async fn restart(server: &BulkServer, id: &str) -> Result<Job, Stop> {
    let job_id = id.to_owned();
    let dir = server.job_dir(id);
    let job = server
        .store()
        .blocking(move |store| -> Result<Option<Job>, SandboxError> {
            let Some(job) = jobs::get(store, &job_id)? else {
                return Ok(None);
            };
            jobs::restart(store, &job_id)?;
            remove_dir(&dir);
            std::fs::create_dir_all(&dir).map_err(|source| SandboxError::Io {
                path: dir.clone(),
                source,
            })?;
            Ok(Some(job))
        })
        .await?;
    job.ok_or(Stop::Cancelled)
}

/// Exports one type, chunk by chunk, recording the files each chunk closes and the progress (`step`: "type 2 of
/// 5"), and pausing between chunks to keep the job's pace.
async fn export_type(
    server: &BulkServer,
    id: &str,
    cancel: &AtomicBool,
    plan: Arc<TypePlan>,
    step: &str,
    pacing: &Pacing,
    counts: &mut Counts,
) -> Result<(), Stop> {
    let mut cursor = Cursor::default();
    let mut file: Option<OpenFile> = None;
    while !cursor.done {
        if cancel.load(Ordering::Relaxed) {
            return Err(Stop::Cancelled);
        }
        let (plan_c, dir, batch, per_file, job_id, seq) = (
            plan.clone(),
            server.job_dir(id),
            server.config().batch,
            server.config().max_resources_per_file,
            id.to_owned(),
            counts.seq,
        );
        // The reading and writing at the lowest CPU priority (see `Store::background`); what the chunk
        // closed is recorded, with the progress, as ordinary store work.
        let Chunk {
            cursor: next_cursor,
            file: next_file,
            written,
            closed,
            seq: next_seq,
        } = server
            .store()
            .background(move |store| chunk(store, &plan_c, cursor, file, &dir, seq, batch, per_file))
            .await?;
        cursor = next_cursor;
        file = next_file;
        counts.seq = next_seq;
        counts.total += written;
        let progress = format!(
            "Exporting {} ({step}): {} resources written so far.",
            plan.resource_type, counts.total
        );
        server
            .store()
            .blocking(move |store| {
                for record in &closed {
                    jobs::add_file(store, &job_id, record)?;
                }
                jobs::set_progress(store, &job_id, &progress)
            })
            .await?;
        // After the chunk and its permit: the FHIR API's requests go first while the job waits.
        let pause = pacing.pace.pause(counts.total, pacing.started.elapsed());
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    if let Some(open) = file {
        let job_id = id.to_owned();
        server
            .store()
            .blocking(move |store| close(store, &job_id, open))
            .await?;
    }
    Ok(())
}

/// The types to export and how to read each, from the spec and the token's access.
async fn plan(store: &Store, job: &Job, access: Arc<Access>) -> Result<Vec<TypePlan>, Stop> {
    let job = job.clone();
    store
        .blocking(move |store| -> Result<Vec<TypePlan>, Stop> {
            let present: Vec<String> = store.with_reader(|conn| {
                conn.prepare_cached(
                    "SELECT DISTINCT type FROM fhir_resources WHERE deleted = 0 ORDER BY type",
                )?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
                .map_err(SandboxError::from)
            })?;
            let members = population(store, &job)?;
            let mut plans = Vec::new();
            for resource_type in present {
                if !job.spec.wants(&resource_type) {
                    continue;
                }
                let population_level = job.spec.level != Level::System;
                if population_level && registry::is_shared(&resource_type) {
                    // Patient- and Group-level exports hold the patients' compartments; shared resources
                    // (practitioners, organizations, medications) belong to no patient.
                    continue;
                }
                if population_level && resource_type == "Group" {
                    continue;
                }
                let Ok(Decision { patient, any_of }) = access.decide(&resource_type, Permissions::V1_READ)
                else {
                    // The kick-off refused a named type the token cannot read; without `_type`, unreadable
                    // types are simply not part of the export.
                    continue;
                };
                let patients = match (&members, patient) {
                    (Some(list), Some(p)) => {
                        Some(Arc::new(list.iter().filter(|m| **m == p).cloned().collect()))
                    }
                    (Some(list), None) => Some(list.clone()),
                    (None, Some(p)) if !registry::is_shared(&resource_type) => Some(Arc::new(vec![p])),
                    (None, _) => None,
                };
                plans.push(TypePlan {
                    type_filter: job.spec.filters_for(&resource_type),
                    resource_type,
                    patients,
                    compartment_only: job.spec.level == Level::Patient,
                    scope_filter: any_of,
                    since: job.spec.since.clone(),
                    until: job.spec.until.clone(),
                });
            }
            Ok(plans)
        })
        .await
}

/// The patients a Patient- or Group-level export is limited to (`None`: no list, e.g. every patient).
fn population(store: &Store, job: &Job) -> Result<Option<Arc<Vec<String>>>, SandboxError> {
    let group = match &job.spec.level {
        Level::Group(id) => Some(super::group_members(store, id)?.unwrap_or_default()),
        _ => None,
    };
    let list = match (group, &job.spec.patients) {
        (Some(members), Some(wanted)) => Some(members.into_iter().filter(|m| wanted.contains(m)).collect()),
        (Some(members), None) => Some(members),
        (None, Some(wanted)) => Some(wanted.clone()),
        (None, None) => None,
    };
    Ok(list.map(Arc::new))
}

/// Writes the lenient-handling warnings as an `error` file of OperationOutcomes.
async fn write_warnings(server: &BulkServer, job: &Job, seq: &mut i64) -> Result<(), Stop> {
    let path = server.job_dir(&job.id).join("0.OperationOutcome.ndjson");
    let (warnings, job_id) = (job.warnings.clone(), job.id.clone());
    server
        .store()
        .blocking(move |store| -> Result<(), SandboxError> {
            let mut text = String::new();
            for warning in &warnings {
                let outcome = crate::fhir::outcome::operation_outcome("warning", "not-supported", warning);
                text.push_str(&outcome.to_string());
                text.push('\n');
            }
            std::fs::write(&path, text).map_err(|source| SandboxError::Io {
                path: path.clone(),
                source,
            })?;
            let count = i64::try_from(warnings.len()).unwrap_or(i64::MAX);
            jobs::add_file(
                store,
                &job_id,
                &FileRecord {
                    seq: 0,
                    kind: FileKind::Error,
                    resource_type: "OperationOutcome".into(),
                    name: "0.OperationOutcome.ndjson".into(),
                    count,
                },
            )
        })
        .await?;
    *seq = 1;
    Ok(())
}

/// What one chunk of an export did.
struct Chunk {
    /// Where the next chunk starts.
    cursor: Cursor,
    /// The file still being written, if any.
    file: Option<OpenFile>,
    /// Resources written.
    written: u64,
    /// Files that reached their size and were flushed, to be recorded in the manifest.
    closed: Vec<FileRecord>,
    /// The next file's sequence number.
    seq: i64,
}

/// Reads up to `batch` rows for `plan` after `cursor`, appends the ones that pass the filters to the open file
/// (opening and rotating files of at most `per_file` resources). Runs on the store's background thread, so it
/// only reads the database: the files it closes are returned to be recorded.
#[allow(clippy::too_many_arguments)]
fn chunk(
    store: &Store,
    plan: &TypePlan,
    mut cursor: Cursor,
    mut file: Option<OpenFile>,
    dir: &Path,
    mut seq: i64,
    batch: usize,
    per_file: usize,
) -> Result<Chunk, SandboxError> {
    let rows = store.with_reader(|conn| -> Result<Vec<(i64, String)>, SandboxError> {
        let mut rows = Vec::new();
        while rows.len() < batch && !cursor.done {
            let patient = match &plan.patients {
                Some(list) => match list.get(cursor.patient) {
                    Some(p) => Some(p.as_str()),
                    None => {
                        cursor.done = true;
                        break;
                    }
                },
                None => None,
            };
            let want = batch - rows.len();
            let got = read_rows(conn, plan, patient, cursor.rid, want)?;
            let short = got.len() < want;
            if let Some((rid, _)) = got.last() {
                cursor.rid = *rid;
            }
            for (rid, json) in got {
                if passes(conn, plan, rid)? {
                    rows.push((rid, json));
                }
            }
            if short {
                if plan.patients.is_some() {
                    cursor.patient += 1;
                    cursor.rid = 0;
                } else {
                    cursor.done = true;
                }
            }
        }
        Ok(rows)
    })?;
    let mut written = 0u64;
    let mut closed = Vec::new();
    for (_, json) in rows {
        let open = match file.as_mut() {
            Some(open) => open,
            None => file.insert(open_file(dir, &plan.resource_type, &mut seq)?),
        };
        let wrote = open
            .out
            .write_all(json.as_bytes())
            .and_then(|()| open.out.write_all(b"\n"));
        if let Err(source) = wrote {
            return Err(SandboxError::Io {
                path: dir.join(&open.record.name),
                source,
            });
        }
        open.record.count += 1;
        written += 1;
        if usize::try_from(open.record.count).unwrap_or(usize::MAX) >= per_file
            && let Some(full) = file.take()
        {
            closed.push(flush(full)?);
        }
    }
    Ok(Chunk {
        cursor,
        file,
        written,
        closed,
        seq,
    })
}

fn open_file(dir: &Path, resource_type: &str, seq: &mut i64) -> Result<OpenFile, SandboxError> {
    let name = format!("{seq}.{resource_type}.ndjson");
    let path: PathBuf = dir.join(&name);
    let handle = std::fs::File::create(&path).map_err(|source| SandboxError::Io { path, source })?;
    let record = FileRecord {
        seq: *seq,
        kind: FileKind::Output,
        resource_type: resource_type.to_owned(),
        name,
        count: 0,
    };
    *seq += 1;
    Ok(OpenFile {
        record,
        out: std::io::BufWriter::with_capacity(64 * 1024, handle),
    })
}

/// Flushes a file; its record is what the manifest lists.
fn flush(mut open: OpenFile) -> Result<FileRecord, SandboxError> {
    open.out.flush().map_err(|source| SandboxError::Io {
        path: PathBuf::from(&open.record.name),
        source,
    })?;
    Ok(open.record)
}

/// Flushes a file and records it in the manifest.
fn close(store: &Store, job_id: &str, open: OpenFile) -> Result<(), SandboxError> {
    let record = flush(open)?;
    jobs::add_file(store, job_id, &record)
}

/// Up to `limit` live rows of the plan's type after row `after`, in row-id order: `(rid, json)`.
fn read_rows(
    conn: &rusqlite::Connection,
    plan: &TypePlan,
    patient: Option<&str>,
    after: i64,
    limit: usize,
) -> Result<Vec<(i64, String)>, SandboxError> {
    let mut sql = String::from(
        "SELECT rid, json FROM fhir_resources WHERE type = ? AND deleted = 0 AND rid > ? AND json IS NOT NULL",
    );
    let mut args = vec![Sql::Text(plan.resource_type.clone()), Sql::Integer(after)];
    if let Some(p) = patient {
        sql.push_str(" AND patient = ?");
        args.push(Sql::Text(p.to_owned()));
    } else if plan.compartment_only {
        sql.push_str(" AND patient IS NOT NULL");
    }
    if let Some(since) = &plan.since {
        sql.push_str(" AND last_updated > ?");
        args.push(Sql::Text(since.clone()));
    }
    if let Some(until) = &plan.until {
        sql.push_str(" AND last_updated <= ?");
        args.push(Sql::Text(until.clone()));
    }
    sql.push_str(" ORDER BY rid LIMIT ?");
    args.push(Sql::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The row passes the `_typeFilter` queries and the scopes' constraints.
fn passes(conn: &rusqlite::Connection, plan: &TypePlan, rid: i64) -> Result<bool, SandboxError> {
    for filter in [&plan.type_filter, &plan.scope_filter].into_iter().flatten() {
        if !search::row_matches(conn, rid, &plan.resource_type, filter)? {
            return Ok(false);
        }
    }
    Ok(true)
}
