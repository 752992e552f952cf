//! The store of sessions and pending launches: SQLite with a write-through cache of loaded sessions, or Redis
//! (see the module doc of `session`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    CACHE_MAX_SESSIONS, CACHE_REVALIDATE, MAX_PENDING_PER_SESSION, PENDING_LAUNCH_TTL, RedisUrl, SessionData,
    SessionError, SessionId, SessionKey, hash_hex, now_unix, redis_store, refresh, seal,
};

/// Whether a write must be on disk before the response (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Durability {
    /// Survives an app crash or restart; a power failure may undo it.
    Normal,
    /// Synced to disk before returning: for writes that take access away.
    Synced,
}

/// A session as the database has it: its data and its generation, which every write increments.
#[derive(Debug, Clone)]
pub struct StoredSession {
    /// What the session holds.
    pub data: Arc<SessionData>,
    /// Incremented by every write: an update made from an older generation is not saved (see
    /// [`SessionStore::save`]).
    pub generation: i64,
}

/// A session held in memory, as the database last had it.
struct CachedSession {
    data: Arc<SessionData>,
    generation: i64,
    /// The row's `expires_at` (Unix seconds).
    expires_at: i64,
    /// When it was read from or written to the database.
    stored: Instant,
}

/// The in-memory copy of loaded sessions, keyed by the id's hash. Only [`SessionStore`] changes it,
/// always while holding the database lock and right after the database changed.
#[derive(Default)]
pub(super) struct SessionCache {
    entries: Mutex<HashMap<String, CachedSession>>,
}

impl SessionCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedSession>> {
        // A poisoned lock only means a panic mid-insert; the map itself is still consistent.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The session, unless absent, expired, or held for longer than [`CACHE_REVALIDATE`].
    fn get(&self, key: &str, now: i64) -> Option<StoredSession> {
        let entries = self.entries();
        let entry = entries.get(key)?;
        (entry.expires_at > now && entry.stored.elapsed() < CACHE_REVALIDATE).then(|| StoredSession {
            data: entry.data.clone(),
            generation: entry.generation,
        })
    }

    fn put(&self, key: &str, data: Arc<SessionData>, generation: i64, expires_at: i64, now: i64) {
        let mut entries = self.entries();
        if entries.len() >= CACHE_MAX_SESSIONS && !entries.contains_key(key) {
            entries.retain(|_, e| e.expires_at > now && e.stored.elapsed() < CACHE_REVALIDATE);
            if entries.len() >= CACHE_MAX_SESSIONS {
                // Still full of live sessions: start over; they are all in the database.
                entries.clear();
            }
        }
        entries.insert(
            key.to_owned(),
            CachedSession {
                data,
                generation,
                expires_at,
                stored: Instant::now(),
            },
        );
    }

    fn remove(&self, key: &str) {
        self.entries().remove(key);
    }

    fn purge(&self, now: i64) {
        self.entries().retain(|_, e| e.expires_at > now);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries().len()
    }
}

/// The SQLite-backed store of sessions and pending launches, with a write-through cache of loaded
/// sessions in front of it. Cheap to clone.
#[derive(Clone)]
pub struct SessionStore {
    /// The SQLite connection; `None` when the sessions live in Redis.
    pub(super) conn: Option<Arc<Mutex<Connection>>>,
    pub(super) cache: Arc<SessionCache>,
    /// The shared Redis store, when configured: every method goes there and the cache is not used, so a
    /// log-out on another instance is never hidden by a copy held here.
    pub(super) redis: Option<Arc<redis_store::RedisSessions>>,
    pub(super) ttl: Duration,
    pub(super) key: SessionKey,
}

impl std::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStore")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SessionStore {
    /// Opens (creating when needed) the session database at `path`, sealing what it stores with `key`.
    /// Sessions live `ttl`.
    pub fn open(path: &Path, ttl: Duration, key: SessionKey) -> Result<SessionStore, SessionError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            seal::create_private_dir(dir)?;
        }
        create_private_file(path)?;
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS sessions (
                 id_hash TEXT PRIMARY KEY,
                 data TEXT NOT NULL,
                 expires_at INTEGER NOT NULL,
                 generation INTEGER NOT NULL DEFAULT 0
             );
             CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions (expires_at);
             CREATE TABLE IF NOT EXISTS pending_launches (
                 state_hash TEXT PRIMARY KEY,
                 session_hash TEXT NOT NULL,
                 data TEXT NOT NULL,
                 created_at INTEGER NOT NULL
             );",
        )?;
        refresh::create_tables(&conn)?;
        // Files written before sessions had a generation get the column.
        let has_generation = conn
            .prepare("SELECT 1 FROM pragma_table_info('sessions') WHERE name = 'generation'")?
            .exists([])?;
        if !has_generation {
            conn.execute_batch("ALTER TABLE sessions ADD COLUMN generation INTEGER NOT NULL DEFAULT 0")?;
        }
        drop_unsealed_rows(&conn)?;
        let store = SessionStore {
            conn: Some(Arc::new(Mutex::new(conn))),
            cache: Arc::new(SessionCache::default()),
            redis: None,
            ttl,
            key,
        };
        store.purge_expired_blocking()?;
        Ok(store)
    }

    /// A store of sessions in the Redis at `url` (`redis://HOST:PORT/DB`), shared with every instance using the
    /// same URL and `key`. Connects on first use (so the app starts while Redis is away, answering 503 meanwhile).
    pub fn redis(url: &RedisUrl, ttl: Duration, key: SessionKey) -> Result<SessionStore, SessionError> {
        Ok(SessionStore {
            conn: None,
            cache: Arc::new(SessionCache::default()),
            redis: Some(Arc::new(redis_store::RedisSessions::new(url)?)),
            ttl,
            key,
        })
    }

    /// How long a session lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Runs `f` in one transaction on the database thread pool, with the cache at hand; the cache is
    /// only changed here, so it changes in the same order as the database.
    pub(super) async fn with_conn<T: Send + 'static>(
        &self,
        durability: Durability,
        f: impl FnOnce(&Connection, &SessionCache) -> Result<T, SessionError> + Send + 'static,
    ) -> Result<T, SessionError> {
        let conn = self
            .conn
            .clone()
            .ok_or_else(|| SessionError::Task("no SQLite database in Redis mode".into()))?;
        let cache = self.cache.clone();
        tokio::task::spawn_blocking(move || {
            let guard = conn
                .lock()
                .map_err(|_| SessionError::Task("the database lock was poisoned".into()))?;
            if durability == Durability::Synced {
                guard.pragma_update(None, "synchronous", "FULL")?;
            }
            let result = in_transaction(&guard, |conn| f(conn, &cache));
            if durability == Durability::Synced {
                guard.pragma_update(None, "synchronous", "NORMAL")?;
            }
            result
        })
        .await
        .map_err(|e| SessionError::Task(e.to_string()))?
    }

    fn purge_expired_blocking(&self) -> Result<(), SessionError> {
        let Some(conn) = &self.conn else { return Ok(()) };
        let conn = conn
            .lock()
            .map_err(|_| SessionError::Task("the database lock was poisoned".into()))?;
        purge_expired(&conn, &self.cache)
    }

    /// Deletes expired sessions and pending launches (the server calls this every [`PURGE_INTERVAL`](super::PURGE_INTERVAL)).
    pub async fn purge(&self) -> Result<(), SessionError> {
        if self.redis.is_some() {
            // Redis expires keys by their TTL.
            return Ok(());
        }
        self.with_conn(Durability::Normal, purge_expired).await
    }

    /// How many sessions and pending launches the database holds (expired ones not yet purged included).
    pub async fn row_counts(&self) -> Result<(usize, usize), SessionError> {
        if let Some(redis) = &self.redis {
            return redis.counts().await;
        }
        self.with_conn(Durability::Normal, |conn, _| {
            let count = |table: &str| -> Result<usize, SessionError> {
                let n: i64 = conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
                Ok(usize::try_from(n).unwrap_or(0))
            };
            Ok((count("sessions")?, count("pending_launches")?))
        })
        .await
    }

    /// The session with this id, unless it does not exist or has expired. Served from memory when it
    /// was loaded or saved recently.
    pub async fn load(&self, id: &SessionId) -> Result<Option<StoredSession>, SessionError> {
        if let Some(redis) = &self.redis {
            let Some((sealed, generation)) = redis.load(id.key()).await? else {
                return Ok(None);
            };
            let Some(plain) = self.key.open(id.key(), &sealed) else {
                tracing::debug!("a stored session does not open under the session key; it is ignored");
                return Ok(None);
            };
            let data = Arc::new(serde_json::from_slice::<SessionData>(&plain)?);
            return Ok(Some(StoredSession { data, generation }));
        }
        if let Some(stored) = self.cache.get(id.key(), now_unix()) {
            return Ok(Some(stored));
        }
        let key = id.key().to_owned();
        let seal_key = self.key.clone();
        self.with_conn(Durability::Normal, move |conn, cache| {
            let now = now_unix();
            let row: Option<(String, i64, i64)> = conn
                .query_row(
                    "SELECT data, expires_at, generation FROM sessions WHERE id_hash = ?1 AND expires_at > ?2",
                    params![key, now],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?;
            let Some((text, expires_at, generation)) = row else {
                cache.remove(&key);
                return Ok(None);
            };
            let Some(plain) = seal_key.open(&key, &text) else {
                tracing::debug!("a stored session does not open under the session key; it is ignored");
                cache.remove(&key);
                return Ok(None);
            };
            let data = Arc::new(serde_json::from_slice::<SessionData>(&plain)?);
            cache.put(&key, data.clone(), generation, expires_at, now);
            Ok(Some(StoredSession { data, generation }))
        })
        .await
    }

    /// Stores a session. `Fresh` starts a new session (a fresh lifetime: the configured one once it holds a
    /// launch, [`PENDING_LAUNCH_TTL`] while it only waits for one); an update keeps its lifetime, does not bring
    /// back a session that expired or was deleted meanwhile, and is dropped when the session was written since
    /// `generation` was loaded — so a page view that refreshed the tokens cannot save its copy back over a
    /// log-out that happened meanwhile.
    pub async fn save(
        &self,
        id: &SessionId,
        data: Arc<SessionData>,
        mode: SaveMode,
    ) -> Result<(), SessionError> {
        self.write(None, id, data, mode, Durability::Normal).await
    }

    /// Moves a session to a new id (login): stores it under `new` with a fresh lifetime and deletes
    /// `old`, in one transaction.
    pub async fn rotate(
        &self,
        old: Option<&SessionId>,
        new: &SessionId,
        data: Arc<SessionData>,
    ) -> Result<(), SessionError> {
        self.write(old, new, data, SaveMode::Fresh, Durability::Normal)
            .await
    }

    async fn write(
        &self,
        replaces: Option<&SessionId>,
        id: &SessionId,
        data: Arc<SessionData>,
        mode: SaveMode,
        durability: Durability,
    ) -> Result<(), SessionError> {
        let key = id.key().to_owned();
        let old_key = replaces.map(|old| old.key().to_owned());
        let text = self.key.seal(&key, &serde_json::to_vec(&*data)?);
        let ttl = if data.launch.is_some() {
            self.ttl
        } else {
            self.ttl.min(PENDING_LAUNCH_TTL)
        };
        if let Some(redis) = &self.redis {
            return match mode {
                SaveMode::Fresh => redis.insert(&key, &text, ttl, old_key.as_deref()).await,
                SaveMode::IfUnchangedSince(generation) => {
                    if !redis.update(&key, &text, Some(generation)).await? {
                        tracing::debug!(
                            "a session changed while a request used it; the newer version is kept"
                        );
                    }
                    Ok(())
                }
                SaveMode::Overwrite => redis.update(&key, &text, None).await.map(drop),
            };
        }
        self.with_conn(durability, move |conn, cache| {
            let now = now_unix();
            let written: Option<(i64, i64)> = match mode {
                SaveMode::Fresh => {
                    purge_expired(conn, cache)?;
                    let expires_at = now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2));
                    conn.execute(
                        "INSERT OR REPLACE INTO sessions (id_hash, data, expires_at, generation) VALUES (?1, ?2, ?3, 0)",
                        params![key, text, expires_at],
                    )?;
                    Some((expires_at, 0))
                }
                SaveMode::IfUnchangedSince(generation) => conn
                    .query_row(
                        "UPDATE sessions SET data = ?2, generation = generation + 1 \
                         WHERE id_hash = ?1 AND expires_at > ?3 AND generation = ?4 RETURNING expires_at, generation",
                        params![key, text, now, generation],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()?,
                SaveMode::Overwrite => conn
                    .query_row(
                        "UPDATE sessions SET data = ?2, generation = generation + 1 \
                         WHERE id_hash = ?1 AND expires_at > ?3 RETURNING expires_at, generation",
                        params![key, text, now],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()?,
            };
            if let Some(old_key) = &old_key {
                delete_rows(conn, old_key)?;
                cache.remove(old_key);
            }
            match written {
                Some((expires_at, generation)) => cache.put(&key, data, generation, expires_at, now),
                None => {
                    if matches!(mode, SaveMode::IfUnchangedSince(_)) {
                        tracing::debug!("a session changed while a request used it; the newer version is kept");
                    }
                    cache.remove(&key);
                }
            }
            Ok(())
        })
        .await
    }

    /// Stores an update that takes access away (log out): it wins over any write in flight, and is synced to
    /// disk before it returns.
    pub async fn save_revocation(&self, id: &SessionId, data: Arc<SessionData>) -> Result<(), SessionError> {
        self.write(None, id, data, SaveMode::Overwrite, Durability::Synced)
            .await
    }

    /// Deletes sessions and the launches they started, synced to disk before it returns.
    pub async fn delete(&self, ids: &[&SessionId]) -> Result<(), SessionError> {
        let keys: Vec<String> = ids.iter().map(|id| id.key().to_owned()).collect();
        if let Some(redis) = &self.redis {
            for key in &keys {
                redis.delete(key).await?;
            }
            return Ok(());
        }
        self.with_conn(Durability::Synced, move |conn, cache| {
            for key in &keys {
                delete_rows(conn, key)?;
                cache.remove(key);
            }
            Ok(())
        })
        .await
    }

    /// Keeps a started launch (serialized) until its redirect arrives, keyed by its `state` and bound
    /// to the session that started it.
    pub async fn put_pending(
        &self,
        state: &str,
        session: &SessionId,
        data: String,
    ) -> Result<(), SessionError> {
        let state_hash = hash_hex(state);
        let session_hash = session.key().to_owned();
        let data = self.key.seal(&state_hash, data.as_bytes());
        if let Some(redis) = &self.redis {
            let ttl = PENDING_LAUNCH_TTL;
            return redis
                .put_pending(&state_hash, &session_hash, &data, ttl, MAX_PENDING_PER_SESSION)
                .await;
        }
        self.with_conn(Durability::Normal, move |conn, cache| {
            purge_expired(conn, cache)?;
            // Room for this one within the session's cap: its oldest launches go.
            conn.execute(
                "DELETE FROM pending_launches WHERE session_hash = ?1 AND state_hash IN (
                     SELECT state_hash FROM pending_launches WHERE session_hash = ?1
                     ORDER BY created_at DESC, rowid DESC LIMIT -1 OFFSET ?2)",
                params![
                    session_hash,
                    i64::try_from(MAX_PENDING_PER_SESSION - 1).unwrap_or(0)
                ],
            )?;
            conn.execute(
                "INSERT OR REPLACE INTO pending_launches (state_hash, session_hash, data, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![state_hash, session_hash, data, now_unix()],
            )?;
            Ok(())
        })
        .await
    }

    /// Takes the launch waiting for `state` out of the store — once: a second call finds nothing.
    /// A launch started by another session is removed too but not returned.
    pub async fn take_pending(
        &self,
        state: &str,
        session: Option<&SessionId>,
    ) -> Result<Option<String>, SessionError> {
        let state_hash = hash_hex(state);
        let session_hash = session.map(|s| s.key().to_owned());
        let seal_key = self.key.clone();
        if let Some(redis) = &self.redis {
            let Some((owner, data)) = redis.take_pending(&state_hash).await? else {
                return Ok(None);
            };
            let same_session = session_hash
                .as_deref()
                .is_some_and(|s| smart_launch::secret::constant_time_eq(s, &owner));
            return Ok(same_session
                .then(|| seal_key.open(&state_hash, &data))
                .flatten()
                .and_then(|plain| String::from_utf8(plain).ok()));
        }
        self.with_conn(Durability::Normal, move |conn, _| {
            let row: Option<(String, String, i64)> = conn
                .query_row(
                    "DELETE FROM pending_launches WHERE state_hash = ?1 RETURNING session_hash, data, created_at",
                    params![state_hash],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?;
            let ttl = i64::try_from(PENDING_LAUNCH_TTL.as_secs()).unwrap_or(600);
            Ok(row.and_then(|(owner, data, created_at)| {
                let same_session =
                    session_hash.as_deref().is_some_and(|s| smart_launch::secret::constant_time_eq(s, &owner));
                (same_session && now_unix() - created_at <= ttl)
                    .then(|| seal_key.open(&state_hash, &data))
                    .flatten()
                    .and_then(|plain| String::from_utf8(plain).ok())
            }))
        })
        .await
    }
}

/// How [`SessionStore::save`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveMode {
    /// A new session (or a new id for one): inserted with a fresh lifetime, generation 0.
    Fresh,
    /// An update of a session loaded at this generation: dropped if it was written since.
    IfUnchangedSince(i64),
    /// An update that wins whatever happened since (a log-out).
    Overwrite,
}

/// Runs `f` between `BEGIN` and `COMMIT` (rolled back when it fails): several statements, one
/// commit, one disk sync at most.
fn in_transaction<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, SessionError>,
) -> Result<T, SessionError> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Deferred)?;
    let value = f(&tx)?;
    tx.commit()?;
    Ok(value)
}

/// Creates the database file readable by its owner alone (0600) when it does not exist yet; SQLite gives its
/// `-wal` and `-shm` files the same mode.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop)
}

/// Deletes the rows an older version stored as plain JSON (tokens in the clear): their users log in again.
fn drop_unsealed_rows(conn: &Connection) -> Result<(), SessionError> {
    let sessions = conn.execute("DELETE FROM sessions WHERE data NOT LIKE 'v1.%'", [])?;
    let pending = conn.execute("DELETE FROM pending_launches WHERE data NOT LIKE 'v1.%'", [])?;
    if sessions + pending > 0 {
        tracing::warn!(
            sessions,
            pending,
            "dropped sessions stored unencrypted by an older version; their users log in again"
        );
    }
    Ok(())
}

fn delete_rows(conn: &Connection, key: &str) -> Result<(), SessionError> {
    conn.execute("DELETE FROM sessions WHERE id_hash = ?1", params![key])?;
    conn.execute(
        "DELETE FROM pending_launches WHERE session_hash = ?1",
        params![key],
    )?;
    Ok(())
}

fn purge_expired(conn: &Connection, cache: &SessionCache) -> Result<(), SessionError> {
    let now = now_unix();
    let pending_cutoff = now - i64::try_from(PENDING_LAUNCH_TTL.as_secs()).unwrap_or(600);
    conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", params![now])?;
    conn.execute(
        "DELETE FROM pending_launches WHERE created_at < ?1",
        params![pending_cutoff],
    )?;
    refresh::purge(conn)?;
    cache.purge(now);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &tempfile::TempDir) -> SessionStore {
        SessionStore::open(&dir.path().join("s.db"), Duration::from_secs(3600), test_key()).unwrap()
    }

    fn test_key() -> SessionKey {
        SessionKey::from_hex(&"ab".repeat(32)).unwrap()
    }

    fn with_csrf(csrf: &str) -> Arc<SessionData> {
        Arc::new(SessionData {
            csrf: Some(csrf.into()),
            launch: None,
            timeline: None,
        })
    }

    fn csrf_of(stored: Option<StoredSession>) -> Option<String> {
        stored.and_then(|s| s.data.csrf.clone())
    }

    #[tokio::test]
    async fn sessions_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let id = SessionId::generate();
        store(&dir)
            .save(&id, with_csrf("c"), SaveMode::Fresh)
            .await
            .unwrap();
        let reopened = store(&dir);
        assert_eq!(csrf_of(reopened.load(&id).await.unwrap()).as_deref(), Some("c"));
        assert!(reopened.load(&SessionId::generate()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_raw_id_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let id = SessionId::generate();
        store(&dir)
            .save(&id, Arc::default(), SaveMode::Fresh)
            .await
            .unwrap();
        let conn = Connection::open(dir.path().join("s.db")).unwrap();
        let key: String = conn
            .query_row("SELECT id_hash FROM sessions", [], |r| r.get(0))
            .unwrap();
        assert_ne!(key, id.value);
        assert_eq!(key, hash_hex(&id.value));
        assert_eq!(key.len(), 64);
    }

    #[tokio::test]
    async fn expired_sessions_are_not_loaded_from_memory_or_the_file() {
        let dir = tempfile::tempdir().unwrap();
        // A lifetime of zero: expired as soon as it is written (and cached).
        let s = SessionStore::open(&dir.path().join("s.db"), Duration::ZERO, test_key()).unwrap();
        let id = SessionId::generate();
        s.save(&id, with_csrf("c"), SaveMode::Fresh).await.unwrap();
        assert!(s.load(&id).await.unwrap().is_none());
        let reopened = store(&dir);
        assert!(reopened.load(&id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_loaded_session_is_served_from_memory() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let id = SessionId::generate();
        s.save(&id, with_csrf("c"), SaveMode::Fresh).await.unwrap();
        // Behind the store's back (what another process could do): the cached copy is still served,
        // which shows a page view does not read the file.
        Connection::open(dir.path().join("s.db"))
            .unwrap()
            .execute("DELETE FROM sessions", [])
            .unwrap();
        assert_eq!(csrf_of(s.load(&id).await.unwrap()).as_deref(), Some("c"));
        assert_eq!(s.cache.len(), 1);
    }

    #[tokio::test]
    async fn a_deleted_session_is_not_served_from_memory() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let id = SessionId::generate();
        let other = SessionId::generate();
        s.save(&id, with_csrf("c"), SaveMode::Fresh).await.unwrap();
        s.save(&other, with_csrf("o"), SaveMode::Fresh).await.unwrap();
        assert!(s.load(&id).await.unwrap().is_some());
        s.delete(&[&id]).await.unwrap();
        assert!(s.load(&id).await.unwrap().is_none());
        assert!(
            store(&dir).load(&id).await.unwrap().is_none(),
            "gone from the file too"
        );
        assert_eq!(csrf_of(s.load(&other).await.unwrap()).as_deref(), Some("o"));
    }

    #[tokio::test]
    async fn a_rotated_session_is_served_only_under_its_new_id() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let old = SessionId::generate();
        s.save(&old, with_csrf("before"), SaveMode::Fresh).await.unwrap();
        assert!(s.load(&old).await.unwrap().is_some());
        let new = SessionId::generate();
        s.rotate(Some(&old), &new, with_csrf("after")).await.unwrap();
        assert!(s.load(&old).await.unwrap().is_none());
        assert_eq!(csrf_of(s.load(&new).await.unwrap()).as_deref(), Some("after"));
        let reopened = store(&dir);
        assert!(reopened.load(&old).await.unwrap().is_none());
        assert_eq!(
            csrf_of(reopened.load(&new).await.unwrap()).as_deref(),
            Some("after")
        );
    }

    #[tokio::test]
    async fn an_update_is_served_at_once_and_written_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let id = SessionId::generate();
        s.save(&id, with_csrf("one"), SaveMode::Fresh).await.unwrap();
        assert!(s.load(&id).await.unwrap().is_some());
        s.save(&id, with_csrf("two"), SaveMode::Overwrite).await.unwrap();
        assert_eq!(csrf_of(s.load(&id).await.unwrap()).as_deref(), Some("two"));
        s.save_revocation(&id, with_csrf("three")).await.unwrap();
        assert_eq!(csrf_of(s.load(&id).await.unwrap()).as_deref(), Some("three"));
        assert_eq!(
            csrf_of(store(&dir).load(&id).await.unwrap()).as_deref(),
            Some("three")
        );
    }

    #[tokio::test]
    async fn an_update_does_not_bring_back_a_deleted_session() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let id = SessionId::generate();
        s.save(&id, with_csrf("c"), SaveMode::Fresh).await.unwrap();
        s.delete(&[&id]).await.unwrap();
        s.save(&id, with_csrf("late"), SaveMode::Overwrite).await.unwrap();
        assert!(s.load(&id).await.unwrap().is_none());
        assert!(store(&dir).load(&id).await.unwrap().is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = SessionCache::default();
        let far = now_unix() + 3600;
        for i in 0..=CACHE_MAX_SESSIONS {
            cache.put(&format!("k{i}"), Arc::default(), 0, far, now_unix());
        }
        assert!(cache.len() <= CACHE_MAX_SESSIONS);
        assert!(
            cache.get(&format!("k{CACHE_MAX_SESSIONS}"), now_unix()).is_some(),
            "the newest is kept"
        );
        cache.put("expired", Arc::default(), 0, 0, now_unix());
        assert!(cache.get("expired", now_unix()).is_none());
    }

    #[tokio::test]
    async fn a_pending_launch_is_taken_once_and_only_by_its_session() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let mine = SessionId::generate();
        let other = SessionId::generate();
        s.put_pending("state-1", &mine, "p1".into()).await.unwrap();
        assert_eq!(
            s.take_pending("state-1", Some(&mine)).await.unwrap().as_deref(),
            Some("p1")
        );
        assert!(s.take_pending("state-1", Some(&mine)).await.unwrap().is_none());

        s.put_pending("state-2", &mine, "p2".into()).await.unwrap();
        assert!(s.take_pending("state-2", Some(&other)).await.unwrap().is_none());
        // The attempt from the wrong session burned it.
        assert!(s.take_pending("state-2", Some(&mine)).await.unwrap().is_none());
        assert!(s.take_pending("state-3", None).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn rows_are_sealed_and_plain_rows_of_an_older_version_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let id = SessionId::generate();
        s.save(&id, with_csrf("secret-csrf"), SaveMode::Fresh)
            .await
            .unwrap();
        s.put_pending("state-9", &id, "pending-secret".into())
            .await
            .unwrap();
        let conn = Connection::open(dir.path().join("s.db")).unwrap();
        let stored: String = conn
            .query_row("SELECT data FROM sessions", [], |r| r.get(0))
            .unwrap();
        let pending: String = conn
            .query_row("SELECT data FROM pending_launches", [], |r| r.get(0))
            .unwrap();
        assert!(!stored.contains("secret-csrf") && !pending.contains("pending-secret"));
        // Another key cannot read them.
        let other = SessionStore::open(
            &dir.path().join("s.db"),
            Duration::from_secs(3600),
            SessionKey::generate(),
        )
        .unwrap();
        assert!(other.load(&id).await.unwrap().is_none());
        // A row as an older version wrote it (plain JSON) is dropped when the file is opened.
        let old = SessionId::generate();
        conn.execute(
            "INSERT INTO sessions (id_hash, data, expires_at) VALUES (?1, '{\"csrf\":\"x\"}', ?2)",
            params![old.key(), now_unix() + 3600],
        )
        .unwrap();
        let reopened = store(&dir);
        assert!(reopened.load(&old).await.unwrap().is_none());
        assert_eq!(
            reopened.row_counts().await.unwrap().0,
            1,
            "only the sealed row is left"
        );
        assert_eq!(
            csrf_of(reopened.load(&id).await.unwrap()).as_deref(),
            Some("secret-csrf")
        );
    }

    #[tokio::test]
    async fn a_save_from_before_a_logout_does_not_undo_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let id = SessionId::generate();
        s.save(&id, with_csrf("logged-in"), SaveMode::Fresh)
            .await
            .unwrap();
        // A page view loads the session, then (while it refreshes tokens) the user logs out.
        let page_view = s.load(&id).await.unwrap().unwrap();
        let logout = s.load(&id).await.unwrap().unwrap();
        assert_eq!(page_view.generation, logout.generation);
        s.save_revocation(&id, with_csrf("logged-out")).await.unwrap();
        // The page view's copy, saved after, is dropped: the log-out stands, in memory and in the file.
        s.save(
            &id,
            with_csrf("refreshed"),
            SaveMode::IfUnchangedSince(page_view.generation),
        )
        .await
        .unwrap();
        assert_eq!(csrf_of(s.load(&id).await.unwrap()).as_deref(), Some("logged-out"));
        assert_eq!(
            csrf_of(store(&dir).load(&id).await.unwrap()).as_deref(),
            Some("logged-out")
        );
        // A save from the current generation goes through.
        let current = s.load(&id).await.unwrap().unwrap();
        s.save(
            &id,
            with_csrf("next"),
            SaveMode::IfUnchangedSince(current.generation),
        )
        .await
        .unwrap();
        assert_eq!(csrf_of(s.load(&id).await.unwrap()).as_deref(), Some("next"));
    }
}
