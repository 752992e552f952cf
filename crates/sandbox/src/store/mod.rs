//! The sandbox database: FHIR resources in SQLite, one file shared with the authorization server's tables.
//!
//! Every resource is kept as its JSON text in `fhir_resources`, with `meta.versionId` / `meta.lastUpdated` set by
//! the store, the patient whose compartment it belongs to in a column of its own, and its earlier versions in
//! `fhir_history`. Search parameters are extracted on write into four index tables (strings, tokens, dates,
//! references; see [`index`]) that [`search`] queries. The database runs in WAL mode: one writer connection behind
//! a mutex and a small pool of read connections, so searches never wait for a write.
//!
//! All methods block; from async code call them through [`Store::blocking`] (a `spawn_blocking` wrapper).

mod background;
pub mod index;
pub mod normalize;
mod numbers;
mod reindex;
pub mod search;
mod write;

pub use numbers::{NumberTexts, Sent};
pub use reindex::{Reindexed, index_version};
pub use write::{ResourceRow, Written};
pub(crate) use write::{
    current_row, delete_resource, older_versions, put_resource, put_sent, rows_by_rid, version_row,
};

use crate::error::SandboxError;
use crate::generate::Generator;
use rusqlite::{Connection, OptionalExtension, Transaction};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Read connections kept open for reuse. [`Store::blocking`] runs at most this many database tasks at once (the
/// rest wait their turn without holding a thread), so under load a reader finds a pooled connection, with its
/// prepared statements and page cache warm, instead of opening (and dropping) a cold one.
const READ_POOL: usize = 4;

/// The SQLite database behind the sandbox. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// The file's identity (device, inode) when it was opened, to notice it being deleted or replaced.
    file: Option<FileId>,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// One permit per database task that may run at once (see [`READ_POOL`]).
    tasks: Arc<tokio::sync::Semaphore>,
    /// The low-priority thread of [`Store::background`].
    background: background::Background,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS fhir_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS fhir_resources (
    rid INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    last_updated TEXT NOT NULL,
    patient TEXT,
    deleted INTEGER NOT NULL DEFAULT 0,
    json TEXT,
    UNIQUE (type, id)
);
CREATE TABLE IF NOT EXISTS fhir_history (
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    last_updated TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    json TEXT,
    PRIMARY KEY (type, id, version)
) WITHOUT ROWID;
-- The index tables are clustered by resource row (WITHOUT ROWID, keyed from `rid`), which is what the per-row
-- EXISTS probes read; a second index per table serves lookups by value.
CREATE TABLE IF NOT EXISTS fhir_idx_string (
    rid INTEGER NOT NULL, param TEXT NOT NULL, value TEXT NOT NULL, raw TEXT NOT NULL,
    PRIMARY KEY (rid, param, value, raw)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fhir_idx_token (
    rid INTEGER NOT NULL, param TEXT NOT NULL, code TEXT NOT NULL, system TEXT NOT NULL,
    PRIMARY KEY (rid, param, code, system)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fhir_idx_date (
    rid INTEGER NOT NULL, param TEXT NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL,
    PRIMARY KEY (rid, param, lo, hi)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fhir_idx_ref (
    rid INTEGER NOT NULL, param TEXT NOT NULL, target TEXT NOT NULL,
    PRIMARY KEY (rid, param, target)
) WITHOUT ROWID;
";

/// The secondary indexes: dropped during a bulk load and rebuilt after, which is several times faster than
/// maintaining them row by row.
const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS fhir_resources_patient ON fhir_resources (patient, type);
-- A type-wide search (a clinician's or a backend client's, no patient) counts and pages in this index alone,
-- without reading every row's JSON: at 10,000 patients a page of `Observation?_count=1000` went from ~1.4 s to ms.
CREATE INDEX IF NOT EXISTS fhir_resources_type_live ON fhir_resources (type, deleted, rid);
CREATE INDEX IF NOT EXISTS fhir_idx_string_value ON fhir_idx_string (param, value);
CREATE INDEX IF NOT EXISTS fhir_idx_token_code ON fhir_idx_token (param, code, system);
CREATE INDEX IF NOT EXISTS fhir_idx_ref_target ON fhir_idx_ref (param, target);
";

const DROP_INDEXES: &str = "
DROP INDEX IF EXISTS fhir_resources_patient;
DROP INDEX IF EXISTS fhir_resources_type_live;
DROP INDEX IF EXISTS fhir_idx_string_value;
DROP INDEX IF EXISTS fhir_idx_token_code;
DROP INDEX IF EXISTS fhir_idx_ref_target;
";

impl Store {
    /// Opens (creating if needed) the database file at `path` and its FHIR tables.
    pub fn open(path: &Path) -> Result<Store, SandboxError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| SandboxError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        let mut writer = open_connection(path)?;
        writer.execute_batch(SCHEMA)?;
        writer.execute_batch(INDEXES)?;
        drop_value_statistics(&writer)?;
        reindex::reindex_if_changed(&mut writer)?;
        Ok(Store {
            inner: Arc::new(Inner {
                file: file_id(path),
                path: path.to_owned(),
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
                tasks: Arc::new(tokio::sync::Semaphore::new(READ_POOL)),
                background: background::Background::default(),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on the writer connection (the authorization server keeps its own tables through this). Blocks.
    pub fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, SandboxError> {
        let conn = self.writer()?;
        Ok(f(&conn)?)
    }

    /// Runs `f` on a pooled read connection. Blocks.
    pub fn with_reader<T, E: From<SandboxError>>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        let conn = match lock(&self.inner.readers)?.pop() {
            Some(conn) => conn,
            // Opening the path anew after the file was deleted would create an empty database there.
            None => {
                self.check_file()?;
                open_connection(&self.inner.path)?
            }
        };
        let result = f(&conn);
        let mut pool = lock(&self.inner.readers)?;
        if pool.len() < READ_POOL {
            pool.push(conn);
        }
        result
    }

    /// Runs `f` in a write transaction, committed when `f` returns `Ok` and rolled back otherwise. Blocks.
    pub fn write<T, E: From<SandboxError>>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.writer()?;
        let tx = conn.transaction().map_err(SandboxError::from)?;
        let value = f(&tx)?;
        tx.commit().map_err(SandboxError::from)?;
        Ok(value)
    }

    /// Runs blocking store work on tokio's blocking pool, so SQLite never stalls the async runtime; at most
    /// `READ_POOL` such tasks run at once, the others wait here.
    pub async fn blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Store) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<SandboxError> + Send + 'static,
    {
        let store = self.clone();
        // The semaphore is never closed, so acquiring only waits.
        let permit = self.inner.tasks.clone().acquire_owned().await.ok();
        match tokio::task::spawn_blocking(move || {
            let result = f(&store);
            drop(permit);
            result
        })
        .await
        {
            Ok(result) => result,
            Err(e) => Err(E::from(SandboxError::Internal {
                reason: format!("a database task failed ({e})"),
            })),
        }
    }

    /// Runs long background store work (a Bulk Data export's chunks) on the store's one thread at the lowest CPU
    /// priority, one job after another, so that it takes only the CPU the FHIR API leaves (the `background`
    /// module). It takes no [`Store::blocking`] permit; `f` should not hold the write lock for long.
    pub async fn background<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Store) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<SandboxError> + Send + 'static,
    {
        let store = self.clone();
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.inner.background.submit(Box::new(move || {
            // The caller may have stopped waiting (a cancelled job): nobody to tell.
            let _ = answer.send(f(&store));
        }))?;
        answered.await.unwrap_or_else(|_| {
            Err(E::from(SandboxError::Internal {
                reason: "a background database task failed".into(),
            }))
        })
    }

    /// The current version of a resource, or `None` when it does not exist or was deleted.
    pub fn read(&self, resource_type: &str, id: &str) -> Result<Option<Value>, SandboxError> {
        self.with_reader(|conn| {
            let row = current_row(conn, resource_type, id)?;
            Ok(row.and_then(|r| r.resource()))
        })
    }

    /// Patients whose names match every word of `name_query` (prefix, case- and accent-insensitive), or the first
    /// patients when the query is blank; at most `limit`, ordered by family name. The patient picker uses this.
    pub fn find_patients(&self, name_query: &str, limit: usize) -> Result<Vec<Value>, SandboxError> {
        let mut pairs: Vec<(String, String)> = name_query
            .split_whitespace()
            .take(5)
            .map(|w| ("name".to_owned(), w.to_owned()))
            .collect();
        pairs.push(("_sort".into(), "family".into()));
        pairs.push(("_count".into(), limit.to_string()));
        self.search_simple("Patient", &pairs)
    }

    /// The first `limit` practitioners, ordered by family name (the login page lists them).
    pub fn list_practitioners(&self, limit: usize) -> Result<Vec<Value>, SandboxError> {
        let pairs = vec![
            ("_sort".to_owned(), "family".to_owned()),
            ("_count".to_owned(), limit.to_string()),
        ];
        self.search_simple("Practitioner", &pairs)
    }

    /// A patient's encounters, most recent first, at most `limit` (the encounter picker uses this).
    pub fn encounters_for_patient(&self, patient_id: &str, limit: usize) -> Result<Vec<Value>, SandboxError> {
        let pairs = vec![
            ("patient".to_owned(), patient_id.to_owned()),
            ("_sort".to_owned(), "-date".to_owned()),
            ("_count".to_owned(), limit.to_string()),
        ];
        self.search_simple("Encounter", &pairs)
    }

    /// How many live resources of a type the database holds.
    pub fn count(&self, resource_type: &str) -> Result<usize, SandboxError> {
        self.with_reader(|conn| {
            let n: i64 = conn.query_row(
                "SELECT COUNT(*) FROM fhir_resources WHERE type = ?1 AND deleted = 0",
                [resource_type],
                |r| r.get(0),
            )?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }

    fn search_simple(
        &self,
        resource_type: &str,
        pairs: &[(String, String)],
    ) -> Result<Vec<Value>, SandboxError> {
        let request = search::SearchRequest::parse(resource_type, pairs)?;
        self.with_reader(|conn| {
            let result = search::execute(conn, &request, &search::Restriction::none())?;
            Ok(result.matches.into_iter().filter_map(|r| r.resource()).collect())
        })
    }

    /// Fills an empty database with `patients` generated patients from `seed`, once: later starts find the
    /// database already generated and do nothing. Returns how many resources were inserted (0 when none were).
    ///
    /// The load runs in one transaction with the search indexes dropped and rebuilt after, then `ANALYZE` (the
    /// per-index averages only, see `analyze` below) so the query planner knows the table sizes.
    pub fn ensure_populated(&self, patients: usize, seed: u64) -> Result<usize, SandboxError> {
        let mut conn = self.writer()?;
        let already: Option<String> = conn
            .query_row("SELECT value FROM fhir_meta WHERE key = 'generated'", [], |r| {
                r.get(0)
            })
            .optional()?;
        if already.is_some() {
            return Ok(0);
        }
        let now = normalize::instant_text(chrono::Utc::now());
        let tx = conn.transaction()?;
        tx.execute_batch(DROP_INDEXES)?;
        // One thread generates, serializes and extracts index rows; this one inserts.
        let (sender, receiver) = std::sync::mpsc::sync_channel::<write::Prepared>(2048);
        let producer = std::thread::spawn({
            let now = now.clone();
            move || {
                Generator::new(patients, seed).for_each_resource(|resource| {
                    let prepared = write::Prepared::new(resource, &now)?;
                    // A closed channel means the inserting side failed; it reports its own error.
                    sender.send(prepared).map_err(|_| SandboxError::Internal {
                        reason: "generation was cancelled".into(),
                    })
                })
            }
        });
        let mut inserted = 0usize;
        let mut last_patient = 0usize;
        let consumed = receiver.iter().try_for_each(|prepared| {
            if prepared.is_patient() {
                last_patient += 1;
                if last_patient.is_multiple_of(1000) {
                    tracing::info!(
                        patients = last_patient,
                        resources = inserted,
                        "generating synthetic patients"
                    );
                }
            }
            write::insert_prepared(&tx, prepared, &now)?;
            inserted += 1;
            Ok::<_, SandboxError>(())
        });
        drop(receiver);
        let produced = producer.join().unwrap_or_else(|_| {
            Err(SandboxError::Internal {
                reason: "the patient generator panicked".into(),
            })
        });
        consumed?;
        produced?;
        tx.execute_batch(INDEXES)?;
        tx.execute(
            "INSERT OR REPLACE INTO fhir_meta (key, value) VALUES ('generated', ?1)",
            [format!("patients={patients} seed={seed} resources={inserted}")],
        )?;
        tx.commit()?;
        analyze(&conn)?;
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(inserted)
    }

    /// The writer connection, once the database file is checked to be the one opened: SQLite keeps writing into
    /// a deleted file, and everything written after would be lost, so a write is refused instead (503).
    pub(crate) fn writer(&self) -> Result<MutexGuard<'_, Connection>, SandboxError> {
        self.check_file()?;
        lock(&self.inner.writer)
    }

    /// Fails with [`SandboxError::DatabaseGone`] when the database file is no longer the one opened.
    fn check_file(&self) -> Result<(), SandboxError> {
        if self.inner.file.is_some() && file_id(&self.inner.path) != self.inner.file {
            tracing::error!(path = %self.inner.path.display(), "the database file was deleted or replaced; refusing to use it");
            return Err(SandboxError::DatabaseGone {
                path: self.inner.path.clone(),
            });
        }
        Ok(())
    }
}

/// A file's identity: its device and inode.
type FileId = (u64, u64);

#[cfg(unix)]
fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_id(_path: &Path) -> Option<FileId> {
    None
}

fn lock<T>(mutex: &Mutex<T>) -> Result<MutexGuard<'_, T>, SandboxError> {
    mutex.lock().map_err(|_| SandboxError::Internal {
        reason: "a database connection was left unusable by an earlier failure; restart the sandbox".into(),
    })
}

/// `ANALYZE`, keeping only the per-index averages (`sqlite_stat1`) the query planner needs to choose an index.
///
/// The bundled SQLite is built with `SQLITE_ENABLE_STAT4`, and `ANALYZE` also samples index values into
/// `sqlite_stat4`. With samples present, SQLite recompiles a prepared statement on its first step after any
/// parameter the samples could bear on is bound to a new value (sqlite.org/c3ref/prepare.html, the third
/// point under `sqlite3_prepare_v2`): every search for another patient was parsed and planned again, and the
/// statement cache saved nothing (a sixth of the sandbox's CPU when the summary page loads). The searches here
/// start from a patient, an id or one selective index condition, which the averages rank as well.
fn analyze(conn: &Connection) -> Result<(), SandboxError> {
    conn.execute_batch("ANALYZE;")?;
    drop_value_statistics(conn)
}

/// Empties `sqlite_stat4` when it holds samples (a database analyzed before [`analyze`] kept them) and has the
/// planner reload its statistics.
fn drop_value_statistics(conn: &Connection) -> Result<(), SandboxError> {
    let table: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'sqlite_stat4')",
        [],
        |r| r.get(0),
    )?;
    let samples = table && conn.query_row("SELECT EXISTS (SELECT 1 FROM sqlite_stat4)", [], |r| r.get(0))?;
    if samples {
        conn.execute_batch("DELETE FROM sqlite_stat4; ANALYZE sqlite_schema;")?;
    }
    Ok(())
}

fn open_connection(path: &Path) -> Result<Connection, SandboxError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA cache_size = -32000;
         PRAGMA mmap_size = 268435456;
         PRAGMA temp_store = MEMORY;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(super) fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("sandbox.db")).unwrap();
        (dir, store)
    }

    /// How often one cached search statement, run for each patient in turn, was compiled again by SQLite.
    fn recompiles_across_patients(conn: &Connection) -> i32 {
        let patients: Vec<String> = conn
            .prepare("SELECT id FROM fhir_resources WHERE type = 'Patient'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(patients.len() >= 3);
        let sql = "SELECT COUNT(*) FROM fhir_resources r WHERE r.type = ? AND r.deleted = 0 AND r.patient = ? \
                   AND EXISTS (SELECT 1 FROM fhir_idx_token x WHERE x.rid = r.rid AND x.param = ? AND x.code = ?)";
        for patient in &patients {
            let found: i64 = conn
                .prepare_cached(sql)
                .unwrap()
                .query_row(
                    rusqlite::params!["Observation", patient, "category", "vital-signs"],
                    |r| r.get(0),
                )
                .unwrap();
            assert!(found > 0, "patient {patient} has vital signs");
        }
        conn.prepare_cached(sql)
            .unwrap()
            .get_status(rusqlite::StatementStatus::RePrepare)
    }

    #[test]
    fn a_cached_search_is_not_compiled_again_for_each_patient() {
        let (_dir, store) = temp_store();
        store.ensure_populated(4, 42).unwrap();
        let samples: i64 = store
            .with_conn(|c| c.query_row("SELECT COUNT(*) FROM sqlite_stat4", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(samples, 0, "no value samples are kept");
        let stat1: i64 = store
            .with_conn(|c| c.query_row("SELECT COUNT(*) FROM sqlite_stat1", [], |r| r.get(0)))
            .unwrap();
        assert!(stat1 > 0, "the per-index averages are kept");
        let recompiled = store
            .with_reader(|c| Ok::<_, SandboxError>(recompiles_across_patients(c)))
            .unwrap();
        assert_eq!(recompiled, 0);

        // The same database analyzed the plain way (as before): the samples make SQLite recompile the statement
        // whenever the patient changes, and opening the store again removes them.
        store.with_conn(|c| c.execute_batch("ANALYZE;")).unwrap();
        let plain = Connection::open(store.path()).unwrap();
        assert!(recompiles_across_patients(&plain) > 0, "the control recompiles");
        drop(plain);
        let reopened = Store::open(store.path()).unwrap();
        let recompiled = reopened
            .with_reader(|c| Ok::<_, SandboxError>(recompiles_across_patients(c)))
            .unwrap();
        assert_eq!(recompiled, 0);
    }

    fn names_indexed(store: &Store) -> i64 {
        store
            .with_conn(|c| {
                c.query_row(
                    "SELECT COUNT(*) FROM fhir_idx_string WHERE param = 'family'",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap()
    }

    fn family_search(store: &Store, family: &str) -> usize {
        let pairs = vec![("family".to_owned(), family.to_owned())];
        let request = search::SearchRequest::parse("Patient", &pairs).unwrap();
        store
            .with_reader(|c| search::execute(c, &request, &search::Restriction::default()))
            .unwrap()
            .matches
            .len()
    }

    #[test]
    fn the_index_is_rebuilt_at_start_when_the_search_parameters_changed_and_only_then() {
        let (dir, store) = temp_store();
        store.ensure_populated(3, 42).unwrap();
        let recorded = |s: &Store| -> String {
            s.with_conn(|c| {
                c.query_row("SELECT value FROM fhir_meta WHERE key = 'index'", [], |r| {
                    r.get(0)
                })
            })
            .unwrap()
        };
        assert_eq!(recorded(&store), index_version());
        let indexed = names_indexed(&store);
        assert!(indexed >= 3);
        let patient = store.find_patients("", 1).unwrap().remove(0);
        let family = patient["name"][0]["family"].as_str().unwrap().to_owned();
        assert!(family_search(&store, &family) >= 1);

        // Same version: a start does not index again (the rows removed here stay removed).
        store
            .with_conn(|c| c.execute("DELETE FROM fhir_idx_string WHERE param = 'family'", []))
            .unwrap();
        drop(store);
        let store = Store::open(&dir.path().join("sandbox.db")).unwrap();
        assert_eq!(names_indexed(&store), 0);
        assert_eq!(family_search(&store, &family), 0);

        // A database whose index an older parameter table wrote (here: one without `family`): rebuilt at start.
        store
            .with_conn(|c| c.execute("UPDATE fhir_meta SET value = 'older' WHERE key = 'index'", []))
            .unwrap();
        drop(store);
        let store = Store::open(&dir.path().join("sandbox.db")).unwrap();
        assert_eq!(names_indexed(&store), indexed);
        assert!(family_search(&store, &family) >= 1);
        assert_eq!(recorded(&store), index_version());

        // One written before versions were recorded: rebuilt too.
        store
            .with_conn(|c| c.execute("DELETE FROM fhir_meta WHERE key = 'index'", []))
            .unwrap();
        store
            .with_conn(|c| c.execute("DELETE FROM fhir_idx_string", []))
            .unwrap();
        drop(store);
        let store = Store::open(&dir.path().join("sandbox.db")).unwrap();
        assert_eq!(names_indexed(&store), indexed);
    }

    #[test]
    fn population_happens_once_and_is_readable() {
        let (_dir, store) = temp_store();
        let inserted = store.ensure_populated(3, 42).unwrap();
        assert!(inserted > 100);
        assert_eq!(store.ensure_populated(3, 42).unwrap(), 0);
        assert_eq!(store.count("Patient").unwrap(), 3);
        let first = Generator::new(3, 42).patient_record(0).remove(0);
        let id = first["id"].as_str().unwrap();
        let stored = store.read("Patient", id).unwrap().unwrap();
        assert_eq!(stored["name"], first["name"]);
        assert_eq!(stored["meta"]["versionId"], "1");
        assert!(stored["meta"]["lastUpdated"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn picker_queries_find_patients_practitioners_and_encounters() {
        let (_dir, store) = temp_store();
        store.ensure_populated(6, 5).unwrap();
        let all = store.find_patients("", 100).unwrap();
        assert_eq!(all.len(), 6);
        let named = all.iter().find(|p| p.get("name").is_some()).unwrap();
        let family = named["name"][0]["family"].as_str().unwrap();
        let found = store.find_patients(&family[..2].to_lowercase(), 100).unwrap();
        assert!(found.iter().any(|p| p["id"] == named["id"]));
        assert!(store.find_patients("zzzzqqq", 10).unwrap().is_empty());
        assert_eq!(store.list_practitioners(3).unwrap().len(), 3);
        let encounters = store
            .encounters_for_patient(named["id"].as_str().unwrap(), 100)
            .unwrap();
        assert!(!encounters.is_empty());
        let starts: Vec<&str> = encounters
            .iter()
            .map(|e| e["period"]["start"].as_str().unwrap())
            .collect();
        let mut sorted = starts.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(starts, sorted, "most recent first");
    }

    #[test]
    fn updates_keep_history_and_deletes_leave_a_tombstone() {
        let (_dir, store) = temp_store();
        let now = normalize::instant_text(chrono::Utc::now());
        store
            .write(|tx| {
                put_resource(
                    tx,
                    json!({"resourceType": "Patient", "id": "p1", "gender": "male"}),
                    &now,
                )?;
                put_resource(
                    tx,
                    json!({"resourceType": "Patient", "id": "p1", "gender": "female"}),
                    &now,
                )?;
                Ok::<_, SandboxError>(())
            })
            .unwrap();
        assert_eq!(
            store.read("Patient", "p1").unwrap().unwrap()["meta"]["versionId"],
            "2"
        );
        store
            .with_reader(|conn| {
                let current = current_row(conn, "Patient", "p1")?.unwrap();
                let old = version_row(conn, &current, 1)?.unwrap();
                assert_eq!(old.resource().unwrap()["gender"], "male");
                assert_eq!(older_versions(conn, &current)?.len(), 1);
                Ok::<_, SandboxError>(())
            })
            .unwrap();
        store
            .write(|tx| delete_resource(tx, "Patient", "p1", &now))
            .unwrap();
        assert!(store.read("Patient", "p1").unwrap().is_none());
        store
            .with_reader(|conn| {
                let row = current_row(conn, "Patient", "p1")?.unwrap();
                assert!(row.deleted);
                assert_eq!(row.version, 3);
                Ok::<_, SandboxError>(())
            })
            .unwrap();
    }
}
