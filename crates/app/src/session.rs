//! Server-side sessions in SQLite.
//!
//! The browser holds only a random 256-bit session id in an `HttpOnly`, `SameSite=Lax` cookie
//! (`Secure` when the app is served over https). Everything else — the CSRF token, the token set,
//! the launch context, and the pending launches waiting for their redirect (keyed by `state`) —
//! stays in the SQLite file, so the app can restart without logging anyone out. The database keys
//! rows by the SHA-256 of the id, so a copy of the file does not hand out live cookies.
//!
//! [`session_layer`] loads the session before a handler runs and saves it afterwards, setting or
//! clearing the cookie as needed; handlers take a [`Session`] argument.
//!
//! Loaded sessions are also kept in memory ([`SessionStore`]'s write-through cache), so a page view
//! does not read and parse the row again. Every change is written to SQLite first and then to the
//! cache, both under the one database lock, so the cache never holds a session the file no longer
//! has: a deleted, rotated or logged-out session is gone from both before the response is sent, and
//! an expired one is not served (the cache keeps each row's expiry). The cache assumes this process
//! is the only writer of the file (one app per session database); edits made behind its back are
//! picked up within [`CACHE_REVALIDATE`].
//!
//! Encryption: every stored session and pending launch is sealed with the app's [`SessionKey`] (see the `seal` module),
//! so the file shows no token; the file is created readable by its owner alone (0600) and its directory, when
//! the app creates it, 0700. Rows written by versions that stored plain JSON are dropped when the file is
//! opened (their users log in again), with one log line saying how many.
//!
//! Durability: the database runs in WAL mode with `synchronous = NORMAL`, so a committed write
//! survives an app crash or restart; a power failure may undo the last moments' logins (the user logs
//! in again) but never leaves the file inconsistent. Writes that take access away (log out, reset,
//! delete) are synced to disk (`synchronous = FULL`) before the response, so they cannot be undone.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use http::header::{COOKIE, SET_COOKIE};
use http::request::Parts;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::AppError;
use crate::launch::LaunchRecord;
use crate::state::AppState;

mod redis_store;
mod refresh;
mod seal;
mod store_url;

pub use refresh::StoreRefreshCoordinator;
pub use seal::{BadSessionKey, SessionKey};
pub use store_url::{BadRedisUrl, RedisUrl};

/// The session cookie's name.
pub const COOKIE_NAME: &str = "smart_fhir_session";

/// How long a started launch waits for its redirect before it is thrown away.
pub const PENDING_LAUNCH_TTL: Duration = Duration::from_secs(10 * 60);

/// How long a session held in memory is served before it is read from the database again (a bound
/// on how stale it can be if something other than this process edits the file).
pub const CACHE_REVALIDATE: Duration = Duration::from_secs(60);

/// At most this many sessions are held in memory (the database holds them all).
pub const CACHE_MAX_SESSIONS: usize = 10_000;

/// At most this many launches wait for their redirect in one session; starting another drops the oldest. A
/// browser that keeps clicking "authorize" (or a script that never follows the redirects) cannot grow the
/// database.
pub const MAX_PENDING_PER_SESSION: usize = 5;

/// How often expired sessions and pending launches are deleted (by a background task of the server), so rows
/// nobody returns for do not wait for the next login to go.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// The session store failed (the database file cannot be opened, read or written).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// SQLite reported an error.
    #[error("The session database failed: {0}.")]
    Database(#[from] rusqlite::Error),
    /// A stored session could not be read back.
    #[error("A stored session could not be read: {0}.")]
    Corrupt(#[from] serde_json::Error),
    /// The database file's directory could not be created.
    #[error("The session database directory could not be created: {0}.")]
    Io(#[from] std::io::Error),
    /// A blocking database task did not finish.
    #[error("A session database task failed: {0}.")]
    Task(String),
    /// The Redis session store cannot be reached or failed (the request gets a 503).
    #[error("The session store (Redis) is unavailable: {0}.")]
    Unavailable(redis::RedisError),
}

/// A session id: 32 bytes from the OS CSPRNG, base64url. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId {
    value: String,
    /// SHA-256 of the value, hex: the database and cache key (computed once).
    key: String,
}

impl SessionId {
    fn new(value: String) -> SessionId {
        let key = hash_hex(&value);
        SessionId { value, key }
    }

    fn generate() -> SessionId {
        SessionId::new(random_token())
    }

    /// The database key: SHA-256 of the id, hex.
    fn key(&self) -> &str {
        &self.key
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId([redacted])")
    }
}

/// 32 random bytes from the OS-seeded CSPRNG, base64url without padding (43 characters).
pub(crate) use smart_launch::secret::random_token;

fn hash_hex(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(value.as_bytes());
    let mut out = String::with_capacity(digest.len() * 2);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// What a session holds.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct SessionData {
    /// A CSRF token stored by an earlier version of the app. Tokens are now derived from the session id (see
    /// [`Session::csrf_token`]) and never stored, so showing a form does not create a row; a stored one is still
    /// honoured until the session's next login.
    pub csrf: Option<String>,
    /// The completed launch: tokens, context, claims. `None` before login and after logout.
    pub launch: Option<LaunchRecord>,
    /// The last launch step by step (the `/inspect/timeline` page), bounded by the app
    /// ([`crate::timeline::bound`]); kept for failed launches too, replaced by the next launch.
    #[serde(default)]
    pub timeline: Option<smart_launch::LaunchTrace>,
}

/// Whether a write must be on disk before the response (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
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
struct SessionCache {
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
    conn: Option<Arc<Mutex<Connection>>>,
    cache: Arc<SessionCache>,
    /// The shared Redis store, when configured: every method goes there and the cache is not used, so a
    /// log-out on another instance is never hidden by a copy held here.
    redis: Option<Arc<redis_store::RedisSessions>>,
    ttl: Duration,
    key: SessionKey,
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
    async fn with_conn<T: Send + 'static>(
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

    /// Deletes expired sessions and pending launches (the server calls this every [`PURGE_INTERVAL`]).
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

/// Where the session key is kept when none is configured: `session.key` beside the session database.
pub fn key_file_beside(session_db: &Path) -> std::path::PathBuf {
    session_db.with_file_name("session.key")
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

/// What happens to the session when the response is sent.
#[derive(Debug, Default)]
struct SessionInner {
    /// The id the browser presented and the store knows; `None` for a new visitor.
    id: Option<SessionId>,
    /// An id given to this session during the request (new session or rotation).
    new_id: Option<SessionId>,
    /// Shared with the store's cache until changed (copy on write).
    data: Arc<SessionData>,
    /// The stored generation `data` was loaded at.
    generation: i64,
    dirty: bool,
    /// The change takes access away (log out): it is synced to disk before the response.
    revokes: bool,
    destroyed: bool,
}

impl SessionInner {
    fn data_mut(&mut self) -> &mut SessionData {
        self.dirty = true;
        Arc::make_mut(&mut self.data)
    }
}

/// The current request's session. Handlers read and change it; [`session_layer`] saves it.
#[derive(Clone, Debug, Default)]
pub struct Session {
    inner: Arc<Mutex<SessionInner>>,
}

impl Session {
    fn lock(&self) -> std::sync::MutexGuard<'_, SessionInner> {
        // A poisoned lock only means a handler panicked mid-update; the data is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The session's CSRF token: derived from the session's secret id (a domain-separated SHA-256 of it, which
    /// reveals nothing of the id), so it needs no storage and showing a form writes nothing. A visitor without a
    /// session gets a token derived from a secret of this process instead: such a visitor has nothing a forged
    /// POST could change. A token stored by an earlier version of the app is used while the session has it.
    pub fn csrf_token(&self) -> String {
        let inner = self.lock();
        if let Some(token) = &inner.data.csrf {
            return token.clone();
        }
        match inner.new_id.as_ref().or(inner.id.as_ref()) {
            Some(id) => derived_csrf(&id.value),
            None => derived_csrf(anonymous_secret()),
        }
    }

    /// The CSRF token a POST of this session must carry (the same as [`Session::csrf_token`]).
    pub fn stored_csrf(&self) -> Option<String> {
        Some(self.csrf_token())
    }

    /// The completed launch, if the user is logged in.
    pub fn launch(&self) -> Option<LaunchRecord> {
        self.lock().data.launch.clone()
    }

    /// Looks at the completed launch without copying it; `None` when the user is not logged in.
    pub fn with_launch<R>(&self, f: impl FnOnce(&LaunchRecord) -> R) -> Option<R> {
        self.lock().data.launch.as_ref().map(f)
    }

    /// Stores (or replaces, after a refresh) the completed launch.
    pub fn set_launch(&self, launch: LaunchRecord) {
        self.lock().data_mut().launch = Some(launch);
    }

    /// The last launch's timeline.
    pub fn timeline(&self) -> Option<smart_launch::LaunchTrace> {
        self.lock().data.timeline.clone()
    }

    /// Stores (or replaces) the last launch's timeline.
    pub fn set_timeline(&self, timeline: smart_launch::LaunchTrace) {
        self.lock().data_mut().timeline = Some(timeline);
    }

    /// Forgets the completed launch (log out / change patient), keeping the session.
    pub fn clear_launch(&self) {
        let mut inner = self.lock();
        inner.data_mut().launch = None;
        inner.revokes = true;
    }

    /// The session's id, giving it one now when it is new (to bind a pending launch to it).
    pub fn ensure_id(&self) -> SessionId {
        let mut inner = self.lock();
        if let Some(id) = inner.new_id.clone().or_else(|| inner.id.clone()) {
            return id;
        }
        let id = SessionId::generate();
        inner.new_id = Some(id.clone());
        inner.dirty = true;
        id
    }

    /// The id the browser presented, if the store knew it.
    pub fn current_id(&self) -> Option<SessionId> {
        let inner = self.lock();
        inner.new_id.clone().or_else(|| inner.id.clone())
    }

    /// A key for in-memory caches of this session (the id's hash), if it has an id.
    pub fn cache_key(&self) -> Option<String> {
        let inner = self.lock();
        inner
            .new_id
            .as_ref()
            .or(inner.id.as_ref())
            .map(|id| id.key().to_owned())
    }

    /// Gives the session a new id (after login), so an id seen before login is worthless. The CSRF
    /// token is renewed too.
    pub fn rotate_id(&self) {
        let mut inner = self.lock();
        inner.new_id = Some(SessionId::generate());
        // The CSRF token follows from the new id; a stored one of an older version is dropped.
        inner.data_mut().csrf = None;
    }

    /// Deletes the session and its cookie (reset).
    pub fn destroy(&self) {
        let mut inner = self.lock();
        inner.destroyed = true;
        inner.data = Arc::default();
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Session>().cloned().ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!(
                "the session layer is not installed on this route"
            ))
        })
    }
}

/// The CSRF token of a session whose secret is `secret`.
fn derived_csrf(secret: &str) -> String {
    use base64::Engine as _;
    let digest = Sha256::new()
        .chain_update(b"smart-fhir csrf v1\0")
        .chain_update(secret.as_bytes())
        .finalize();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// A random secret of this process, for the CSRF token of visitors without a session.
fn anonymous_secret() -> &'static str {
    static SECRET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SECRET.get_or_init(random_token)
}

/// The session id from a `Cookie` header.
fn session_id_from_headers(headers: &http::HeaderMap) -> Option<SessionId> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
        .filter(|value| {
            value.len() == 43
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(|value| SessionId::new(value.to_owned()))
}

fn cookie_header(value: &str, max_age: u64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .ok()
}

/// Middleware: loads the session named by the cookie, runs the handler, then saves the session and
/// sets (or clears) the cookie.
pub async fn session_layer(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let store = state.sessions();
    let presented = session_id_from_headers(request.headers());
    let mut inner = SessionInner::default();
    if let Some(id) = presented.clone() {
        match store.load(&id).await {
            Ok(Some(stored)) => {
                inner.id = Some(id);
                inner.data = stored.data;
                inner.generation = stored.generation;
            }
            Ok(None) => {}
            Err(e) => return AppError::Session(e).into_response(),
        }
    }
    let session = Session {
        inner: Arc::new(Mutex::new(inner)),
    };
    request.extensions_mut().insert(session.clone());
    let mut response = next.run(request).await;
    match commit(&session, store, presented.is_some(), state.secure_cookies()).await {
        Ok(Some(cookie)) => {
            response.headers_mut().append(SET_COOKIE, cookie);
        }
        Ok(None) => {}
        Err(e) => return AppError::Session(e).into_response(),
    }
    response
}

/// Saves the session's changes; returns the `Set-Cookie` value to send, if any.
async fn commit(
    session: &Session,
    store: &SessionStore,
    cookie_presented: bool,
    secure: bool,
) -> Result<Option<HeaderValue>, SessionError> {
    let (id, new_id, data, generation, revokes, destroyed) = {
        let inner = session.lock();
        if !inner.dirty && !inner.destroyed {
            // A page view that changed nothing: no write, no cookie.
            return Ok(None);
        }
        (
            inner.id.clone(),
            inner.new_id.clone(),
            inner.data.clone(),
            inner.generation,
            inner.revokes,
            inner.destroyed,
        )
    };
    if destroyed {
        let ids: Vec<&SessionId> = id.iter().chain(new_id.iter()).collect();
        if !ids.is_empty() {
            store.delete(&ids).await?;
        }
        return Ok(if cookie_presented {
            cookie_header("", 0, secure)
        } else {
            None
        });
    }
    match (id, new_id) {
        (old, Some(new_id)) => {
            store.rotate(old.as_ref(), &new_id, data).await?;
            Ok(cookie_header(&new_id.value, store.ttl().as_secs(), secure))
        }
        (Some(id), None) if revokes => {
            store.save_revocation(&id, data).await?;
            Ok(None)
        }
        (Some(id), None) => {
            store
                .save(&id, data, SaveMode::IfUnchangedSince(generation))
                .await?;
            Ok(None)
        }
        // A visitor without a session whose request left nothing worth keeping: no row, no cookie.
        (None, None) if data.launch.is_none() => Ok(None),
        (None, None) => {
            let id = SessionId::generate();
            store.save(&id, data, SaveMode::Fresh).await?;
            Ok(cookie_header(&id.value, store.ttl().as_secs(), secure))
        }
    }
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

    #[test]
    fn the_key_is_the_hex_sha256_of_the_id() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            hash_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
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

    #[test]
    fn session_ids_are_256_bit_and_distinct() {
        let a = SessionId::generate();
        assert_eq!(a.value.len(), 43);
        assert_ne!(a, SessionId::generate());
        assert_eq!(format!("{a:?}"), "SessionId([redacted])");
    }

    #[test]
    fn cookie_parsing_finds_only_well_formed_ids() {
        let id = SessionId::generate();
        let mut headers = http::HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_str(&format!("a=b; {COOKIE_NAME}={}", id.value)).unwrap(),
        );
        assert_eq!(session_id_from_headers(&headers), Some(id));
        headers.insert(COOKIE, HeaderValue::from_static("smart_fhir_session=short"));
        assert_eq!(session_id_from_headers(&headers), None);
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_on_https() {
        let plain = cookie_header("v", 60, false).unwrap();
        let plain = plain.to_str().unwrap();
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Lax") && !plain.contains("Secure"));
        assert!(
            cookie_header("v", 60, true)
                .unwrap()
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
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
