//! Server-side sessions in SQLite (or Redis, shared by several instances).
//!
//! The browser holds only a random 256-bit session id in an `HttpOnly`, `SameSite=Lax` cookie
//! (`Secure` when the app is served over https). Everything else — the CSRF token, the token set,
//! the launch context, and the pending launches waiting for their redirect (keyed by `state`) —
//! stays in the SQLite file, so the app can restart without logging anyone out. The database keys
//! rows by the SHA-256 of the id, so a copy of the file does not hand out live cookies.
//!
//! The app's session layer (`routes::session_layer`) loads the session before a handler runs (`Session::load`)
//! and saves it afterwards (`commit`), setting or clearing the cookie as needed; handlers take a `Session`
//! argument. This module knows nothing of the router, the app's state or its pages.
//!
//! Here: the shared pieces (ids, `SessionData`, the limits); `store` (SQLite, with the in-memory cache, or
//! Redis through `redis_store`; pending launches too); `request` (the request's `Session` and its cookie);
//! `seal` (encryption at rest: [`SessionKey`]); `refresh` (refreshes once across instances); `store_url` (the
//! Redis URL: [`RedisUrl`]). Only what the configuration and the binary name is public.
//!
//! Loaded sessions are also kept in memory (`SessionStore`'s write-through cache), so a page view
//! does not read and parse the row again. Every change is written to SQLite first and then to the
//! cache, both under the one database lock, so the cache never holds a session the file no longer
//! has: a deleted, rotated or logged-out session is gone from both before the response is sent, and
//! an expired one is not served (the cache keeps each row's expiry). The cache assumes this process
//! is the only writer of the file (one app per session database); edits made behind its back are
//! picked up within `CACHE_REVALIDATE` (a minute).
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

use std::path::Path;
use std::time::Duration;

mod data;
mod redis_store;
mod refresh;
mod request;
mod seal;
mod store;
mod store_url;

use data::hash_hex;
pub(crate) use data::{SessionData, SessionId};
pub(crate) use refresh::StoreRefreshCoordinator;
pub(crate) use request::{Session, commit, session_id_from_headers};
pub use seal::{BadSessionKey, SessionKey};
pub(crate) use store::{SaveMode, SessionStore};
pub use store_url::{BadRedisUrl, RedisUrl};

/// The session cookie's name.
pub(crate) const COOKIE_NAME: &str = "smart_fhir_session";

/// How long a started launch waits for its redirect before it is thrown away.
pub const PENDING_LAUNCH_TTL: Duration = Duration::from_secs(10 * 60);

/// How long a session held in memory is served before it is read from the database again (a bound
/// on how stale it can be if something other than this process edits the file).
pub(crate) const CACHE_REVALIDATE: Duration = Duration::from_secs(60);

/// At most this many sessions are held in memory (the database holds them all).
pub(crate) const CACHE_MAX_SESSIONS: usize = 10_000;

/// At most this many launches wait for their redirect in one session; starting another drops the oldest. A
/// browser that keeps clicking "authorize" (or a script that never follows the redirects) cannot grow the
/// database.
pub const MAX_PENDING_PER_SESSION: usize = 5;

/// How often expired sessions and pending launches are deleted (by a background task of the server), so rows
/// nobody returns for do not wait for the next login to go.
pub(crate) const PURGE_INTERVAL: Duration = Duration::from_secs(60);

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

/// 32 random bytes from the OS-seeded CSPRNG, base64url without padding (43 characters).
pub(crate) use smart_launch::secret::random_token;

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Where the session key is kept when none is configured: `session.key` beside the session database.
pub fn key_file_beside(session_db: &Path) -> std::path::PathBuf {
    session_db.with_file_name("session.key")
}
