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

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// The session cookie's name.
pub const COOKIE_NAME: &str = "smart_fhir_session";

/// How long a started launch waits for its redirect before it is thrown away.
pub const PENDING_LAUNCH_TTL: Duration = Duration::from_secs(10 * 60);

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
}

/// A session id: 32 bytes from the OS CSPRNG, base64url. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(String);

impl SessionId {
    fn generate() -> SessionId {
        SessionId(random_token())
    }

    /// The database key: SHA-256 of the id, hex.
    fn key(&self) -> String {
        hash_hex(&self.0)
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId([redacted])")
    }
}

/// 32 random bytes from the OS-seeded CSPRNG, base64url without padding (43 characters).
pub(crate) fn random_token() -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hash_hex(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// What a session holds.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct SessionData {
    /// The CSRF token every POST form of this session carries.
    pub csrf: Option<String>,
    /// The completed launch: tokens, context, claims. `None` before login and after logout.
    pub launch: Option<LaunchRecord>,
}

/// The SQLite-backed store of sessions and pending launches. Cheap to clone.
#[derive(Clone)]
pub struct SessionStore {
    conn: Arc<Mutex<Connection>>,
    ttl: Duration,
}

impl std::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStore")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SessionStore {
    /// Opens (creating when needed) the session database at `path`. Sessions live `ttl`.
    pub fn open(path: &Path, ttl: Duration) -> Result<SessionStore, SessionError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS sessions (
                 id_hash TEXT PRIMARY KEY,
                 data TEXT NOT NULL,
                 expires_at INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions (expires_at);
             CREATE TABLE IF NOT EXISTS pending_launches (
                 state_hash TEXT PRIMARY KEY,
                 session_hash TEXT NOT NULL,
                 data TEXT NOT NULL,
                 created_at INTEGER NOT NULL
             );",
        )?;
        let store = SessionStore {
            conn: Arc::new(Mutex::new(conn)),
            ttl,
        };
        store.purge_expired_blocking()?;
        Ok(store)
    }

    /// How long a session lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, SessionError> + Send + 'static,
    ) -> Result<T, SessionError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let guard = conn
                .lock()
                .map_err(|_| SessionError::Task("the database lock was poisoned".into()))?;
            f(&guard)
        })
        .await
        .map_err(|e| SessionError::Task(e.to_string()))?
    }

    fn purge_expired_blocking(&self) -> Result<(), SessionError> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| SessionError::Task("the database lock was poisoned".into()))?;
        purge_expired(&conn)
    }

    /// The session with this id, unless it does not exist or has expired.
    pub async fn load(&self, id: &SessionId) -> Result<Option<SessionData>, SessionError> {
        let key = id.key();
        let text: Option<String> = self
            .with_conn(move |conn| {
                Ok(conn
                    .query_row(
                        "SELECT data FROM sessions WHERE id_hash = ?1 AND expires_at > ?2",
                        params![key, now_unix()],
                        |row| row.get(0),
                    )
                    .optional()?)
            })
            .await?;
        Ok(text.map(|t| serde_json::from_str(&t)).transpose()?)
    }

    /// Stores a session. A new session (or a rotated id) starts a fresh lifetime; an update keeps it.
    pub async fn save(&self, id: &SessionId, data: &SessionData, fresh: bool) -> Result<(), SessionError> {
        let key = id.key();
        let text = serde_json::to_string(data)?;
        let expires_at = now_unix() + i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        self.with_conn(move |conn| {
            if fresh {
                purge_expired(conn)?;
                conn.execute(
                    "INSERT OR REPLACE INTO sessions (id_hash, data, expires_at) VALUES (?1, ?2, ?3)",
                    params![key, text, expires_at],
                )?;
            } else {
                conn.execute(
                    "UPDATE sessions SET data = ?2 WHERE id_hash = ?1",
                    params![key, text],
                )?;
            }
            Ok(())
        })
        .await
    }

    /// Deletes a session and the launches it started.
    pub async fn delete(&self, id: &SessionId) -> Result<(), SessionError> {
        let key = id.key();
        self.with_conn(move |conn| {
            conn.execute("DELETE FROM sessions WHERE id_hash = ?1", params![key])?;
            conn.execute(
                "DELETE FROM pending_launches WHERE session_hash = ?1",
                params![key],
            )?;
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
        let session_hash = session.key();
        self.with_conn(move |conn| {
            purge_expired(conn)?;
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
        let session_hash = session.map(SessionId::key);
        self.with_conn(move |conn| {
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
                    session_hash.as_deref().is_some_and(|s| crate::csrf::constant_time_eq(s, &owner));
                (same_session && now_unix() - created_at <= ttl).then_some(data)
            }))
        })
        .await
    }
}

fn purge_expired(conn: &Connection) -> Result<(), SessionError> {
    let now = now_unix();
    let pending_cutoff = now - i64::try_from(PENDING_LAUNCH_TTL.as_secs()).unwrap_or(600);
    conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", params![now])?;
    conn.execute(
        "DELETE FROM pending_launches WHERE created_at < ?1",
        params![pending_cutoff],
    )?;
    Ok(())
}

/// What happens to the session when the response is sent.
#[derive(Debug, Default)]
struct SessionInner {
    /// The id the browser presented and the store knows; `None` for a new visitor.
    id: Option<SessionId>,
    /// An id given to this session during the request (new session or rotation).
    new_id: Option<SessionId>,
    data: SessionData,
    dirty: bool,
    destroyed: bool,
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

    /// The session's CSRF token, created on first use.
    pub fn csrf_token(&self) -> String {
        let mut inner = self.lock();
        if let Some(token) = &inner.data.csrf {
            return token.clone();
        }
        let token = random_token();
        inner.data.csrf = Some(token.clone());
        inner.dirty = true;
        token
    }

    /// The stored CSRF token, if any (for checking a POST).
    pub fn stored_csrf(&self) -> Option<String> {
        self.lock().data.csrf.clone()
    }

    /// The completed launch, if the user is logged in.
    pub fn launch(&self) -> Option<LaunchRecord> {
        self.lock().data.launch.clone()
    }

    /// Stores (or replaces, after a refresh) the completed launch.
    pub fn set_launch(&self, launch: LaunchRecord) {
        let mut inner = self.lock();
        inner.data.launch = Some(launch);
        inner.dirty = true;
    }

    /// Forgets the completed launch (log out / change patient), keeping the session.
    pub fn clear_launch(&self) {
        let mut inner = self.lock();
        inner.data.launch = None;
        inner.dirty = true;
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
        self.current_id().map(|id| id.key())
    }

    /// Gives the session a new id (after login), so an id seen before login is worthless. The CSRF
    /// token is renewed too.
    pub fn rotate_id(&self) {
        let mut inner = self.lock();
        inner.new_id = Some(SessionId::generate());
        inner.data.csrf = Some(random_token());
        inner.dirty = true;
    }

    /// Deletes the session and its cookie (reset).
    pub fn destroy(&self) {
        let mut inner = self.lock();
        inner.destroyed = true;
        inner.data = SessionData::default();
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
        .map(|value| SessionId(value.to_owned()))
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
            Ok(Some(data)) => {
                inner.id = Some(id);
                inner.data = data;
            }
            Ok(None) => {}
            Err(e) => return AppError::Internal(e.into()).into_response(),
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
        Err(e) => return AppError::Internal(e.into()).into_response(),
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
    let (id, new_id, data, dirty, destroyed) = {
        let inner = session.lock();
        (
            inner.id.clone(),
            inner.new_id.clone(),
            inner.data.clone(),
            inner.dirty,
            inner.destroyed,
        )
    };
    if destroyed {
        if let Some(id) = &id {
            store.delete(id).await?;
        }
        if let Some(id) = &new_id {
            store.delete(id).await?;
        }
        return Ok(if cookie_presented {
            cookie_header("", 0, secure)
        } else {
            None
        });
    }
    if !dirty {
        return Ok(None);
    }
    match (id, new_id) {
        (old, Some(new_id)) => {
            store.save(&new_id, &data, true).await?;
            if let Some(old) = old {
                store.delete(&old).await?;
            }
            Ok(cookie_header(&new_id.0, store.ttl().as_secs(), secure))
        }
        (Some(id), None) => {
            store.save(&id, &data, false).await?;
            Ok(None)
        }
        (None, None) => {
            let id = SessionId::generate();
            store.save(&id, &data, true).await?;
            Ok(cookie_header(&id.0, store.ttl().as_secs(), secure))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &tempfile::TempDir) -> SessionStore {
        SessionStore::open(&dir.path().join("s.db"), Duration::from_secs(3600)).unwrap()
    }

    #[tokio::test]
    async fn sessions_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let id = SessionId::generate();
        let data = SessionData {
            csrf: Some("c".into()),
            launch: None,
        };
        store(&dir).save(&id, &data, true).await.unwrap();
        let reopened = store(&dir);
        assert_eq!(
            reopened.load(&id).await.unwrap().unwrap().csrf.as_deref(),
            Some("c")
        );
        assert!(reopened.load(&SessionId::generate()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_raw_id_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let id = SessionId::generate();
        store(&dir)
            .save(&id, &SessionData::default(), true)
            .await
            .unwrap();
        let conn = Connection::open(dir.path().join("s.db")).unwrap();
        let key: String = conn
            .query_row("SELECT id_hash FROM sessions", [], |r| r.get(0))
            .unwrap();
        assert_ne!(key, id.0);
        assert_eq!(key.len(), 64);
    }

    #[tokio::test]
    async fn expired_sessions_are_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let id = SessionId::generate();
        s.save(&id, &SessionData::default(), true).await.unwrap();
        let key = id.key();
        s.with_conn(move |c| {
            c.execute(
                "UPDATE sessions SET expires_at = 0 WHERE id_hash = ?1",
                params![key],
            )?;
            Ok(())
        })
        .await
        .unwrap();
        assert!(s.load(&id).await.unwrap().is_none());
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
        assert_eq!(a.0.len(), 43);
        assert_ne!(a, SessionId::generate());
        assert_eq!(format!("{a:?}"), "SessionId([redacted])");
    }

    #[test]
    fn cookie_parsing_finds_only_well_formed_ids() {
        let id = SessionId::generate();
        let mut headers = http::HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_str(&format!("a=b; {COOKIE_NAME}={}", id.0)).unwrap(),
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
}
