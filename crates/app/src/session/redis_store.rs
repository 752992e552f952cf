//! Sessions and pending launches in Redis, shared by every instance of the app (`session_store =
//! "redis://HOST:PORT/DB"`).
//!
//! Keys (the `…` are SHA-256 hex of the session id or `state`, never the values themselves):
//! - `smart-fhir:session:…` — a hash: `d` the sealed [`super::SessionData`], `g` its generation; the key's TTL is
//!   the session's lifetime (an update keeps it: `HSET` does not touch the TTL).
//! - `smart-fhir:pending:…` — `owner|sealed launch`, with the pending-launch TTL.
//! - `smart-fhir:pending-of:…` — the list of a session's pending launches, newest first, for the per-session cap.
//!
//! - `smart-fhir:refresh-lock:…` / `smart-fhir:refresh-result:…` — a token refresh's lock (`SET NX PX`) and its
//!   sealed result, keyed by a hash of the token set it replaces (see the `refresh` module).
//!
//! Every check-and-write is one Lua script (`EVAL`), so it is atomic across instances. Nothing is cached in the app: a
//! log-out on one instance is seen by the next request on any other. The connection is opened on first use and
//! re-opened by [`ConnectionManager`] after Redis went away; while it is away requests fail with
//! [`SessionError::Unavailable`] (a 503 page) and one `warn` line says so, one `info` line when it is back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use super::SessionError;

const SESSION_PREFIX: &str = "smart-fhir:session:";
const PENDING_PREFIX: &str = "smart-fhir:pending:";
const PENDING_OF_PREFIX: &str = "smart-fhir:pending-of:";
const REFRESH_LOCK_PREFIX: &str = "smart-fhir:refresh-lock:";
const REFRESH_RESULT_PREFIX: &str = "smart-fhir:refresh-result:";

/// How long one Redis command may take before the request gets a 503.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Sets `d` and increments `g` when the session exists and (unless ARGV[2] is empty) is at generation ARGV[2];
/// returns the new generation, or -1 when nothing was written.
const WRITE_IF: &str = r"
local g = redis.call('HGET', KEYS[1], 'g')
if not g or (ARGV[2] ~= '' and g ~= ARGV[2]) then return -1 end
redis.call('HSET', KEYS[1], 'd', ARGV[1])
return redis.call('HINCRBY', KEYS[1], 'g', 1)
";

/// Stores a new session KEYS[1] (data ARGV[1], generation 0, TTL ARGV[2] ms), deleting KEYS[2] (the id it
/// replaces; empty for none) in the same step.
const INSERT: &str = r"
if KEYS[2] ~= '' then redis.call('DEL', KEYS[2]) end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'g', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// Stores a pending launch (KEYS[1]) for its session's list (KEYS[2]) and drops the session's oldest beyond ARGV[4].
const PUT_PENDING: &str = r"
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3])
redis.call('LREM', KEYS[2], 0, KEYS[1])
redis.call('LPUSH', KEYS[2], KEYS[1])
while redis.call('LLEN', KEYS[2]) > tonumber(ARGV[4]) do
  redis.call('DEL', redis.call('RPOP', KEYS[2]))
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
";

/// Takes a pending launch out (once) and off its session's list.
const TAKE_PENDING: &str = r"
local v = redis.call('GETDEL', KEYS[1])
if not v then return false end
local bar = string.find(v, '|', 1, true)
if bar then redis.call('LREM', ARGV[1] .. string.sub(v, 1, bar - 1), 0, KEYS[1]) end
return v
";

/// Deletes a session (KEYS[1]) and the pending launches listed in KEYS[2].
const DELETE: &str = r"
for _, k in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do redis.call('DEL', k) end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
";

/// Deletes the lock KEYS[1] if ARGV[1] holds it.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// The Redis side of [`super::SessionStore`].
pub(super) struct RedisSessions {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    /// Whether the last command failed (to log an outage once, and its end).
    down: AtomicBool,
}

impl RedisSessions {
    /// A store on the Redis at `url`; nothing is connected until the first request.
    pub(super) fn new(url: &super::RedisUrl) -> Result<RedisSessions, SessionError> {
        Ok(RedisSessions {
            client: redis::Client::open(url.secret_url().as_str()).map_err(SessionError::Unavailable)?,
            conn: OnceCell::new(),
            down: AtomicBool::new(false),
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, SessionError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(RESPONSE_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1);
        let conn = self
            .conn
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config))
            .await
            .map_err(|e| self.failed(e))?;
        Ok(conn.clone())
    }

    /// Notes a failure (the first of an outage is logged) and turns it into [`SessionError::Unavailable`].
    fn failed(&self, error: redis::RedisError) -> SessionError {
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(%error, "the Redis session store is unavailable; requests get a 503 until it is back");
        }
        SessionError::Unavailable(error)
    }

    fn succeeded<T>(&self, value: T) -> T {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!("the Redis session store is available again");
        }
        value
    }

    /// Sends `cmd`; once more when the connection was found dropped or refused (Redis restarted: the command
    /// never reached a server, and the manager has begun reconnecting), so the first request after an outage
    /// already succeeds.
    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, SessionError> {
        let mut conn = self.conn().await?;
        let mut result = cmd.query_async::<T>(&mut conn).await;
        if let Err(e) = &result
            && (e.is_connection_dropped() || e.is_connection_refusal())
        {
            result = cmd.query_async::<T>(&mut conn).await;
        }
        match result {
            Ok(v) => Ok(self.succeeded(v)),
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Runs the Lua `source` (`EVAL`) on `keys` and `args`: one atomic step on the server.
    async fn script<T: redis::FromRedisValue>(
        &self,
        source: &str,
        keys: &[&str],
        args: &[&str],
    ) -> Result<T, SessionError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(source).arg(keys.len()).arg(keys).arg(args);
        self.run(cmd).await
    }

    /// The sealed data and generation of the session keyed `hash`, if it exists (Redis drops it when it expires).
    pub(super) async fn load(&self, hash: &str) -> Result<Option<(String, i64)>, SessionError> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(format!("{SESSION_PREFIX}{hash}")).arg("d").arg("g");
        let (data, generation): (Option<String>, Option<i64>) = self.run(cmd).await?;
        Ok(data.zip(generation))
    }

    /// Stores a new session (generation 0) living `ttl`, deleting `replaces` (a rotation) in the same step.
    pub(super) async fn insert(
        &self,
        hash: &str,
        sealed: &str,
        ttl: Duration,
        replaces: Option<&str>,
    ) -> Result<(), SessionError> {
        let key = format!("{SESSION_PREFIX}{hash}");
        let old = replaces
            .map(|old| format!("{SESSION_PREFIX}{old}"))
            .unwrap_or_default();
        let ttl_ms = millis(ttl).to_string();
        self.script::<i64>(INSERT, &[&key, &old], &[sealed, &ttl_ms])
            .await
            .map(drop)
    }

    /// Updates an existing session, only if it is still at `generation` when one is given; `false` when nothing
    /// was written (deleted, expired, or written since).
    pub(super) async fn update(
        &self,
        hash: &str,
        sealed: &str,
        generation: Option<i64>,
    ) -> Result<bool, SessionError> {
        let key = format!("{SESSION_PREFIX}{hash}");
        let expected = generation.map(|g| g.to_string()).unwrap_or_default();
        let written: i64 = self.script(WRITE_IF, &[&key], &[sealed, &expected]).await?;
        Ok(written >= 0)
    }

    /// Deletes a session and the launches it started.
    pub(super) async fn delete(&self, hash: &str) -> Result<(), SessionError> {
        let keys = [
            format!("{SESSION_PREFIX}{hash}"),
            format!("{PENDING_OF_PREFIX}{hash}"),
        ];
        self.script::<i64>(DELETE, &[&keys[0], &keys[1]], &[])
            .await
            .map(drop)
    }

    /// Keeps a sealed pending launch for `ttl`, bound to its session, at most `cap` per session.
    pub(super) async fn put_pending(
        &self,
        state_hash: &str,
        session_hash: &str,
        sealed: &str,
        ttl: Duration,
        cap: usize,
    ) -> Result<(), SessionError> {
        let keys = [
            format!("{PENDING_PREFIX}{state_hash}"),
            format!("{PENDING_OF_PREFIX}{session_hash}"),
        ];
        let ttl_ms = millis(ttl).to_string();
        self.script::<i64>(
            PUT_PENDING,
            &[&keys[0], &keys[1]],
            &[session_hash, sealed, &ttl_ms, &cap.to_string()],
        )
        .await
        .map(drop)
    }

    /// Takes the pending launch of `state_hash` out, once: its owner's hash and sealed data.
    pub(super) async fn take_pending(
        &self,
        state_hash: &str,
    ) -> Result<Option<(String, String)>, SessionError> {
        let key = format!("{PENDING_PREFIX}{state_hash}");
        let value: Option<String> = self.script(TAKE_PENDING, &[&key], &[PENDING_OF_PREFIX]).await?;
        Ok(value.and_then(|v| {
            v.split_once('|')
                .map(|(owner, data)| (owner.to_owned(), data.to_owned()))
        }))
    }

    /// Takes the refresh lock `key` for `holder` for `ttl` unless someone holds it (`SET NX PX`).
    pub(super) async fn lock(&self, key: &str, holder: &str, ttl: Duration) -> Result<bool, SessionError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(format!("{REFRESH_LOCK_PREFIX}{key}"))
            .arg(holder)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl));
        let set: Option<String> = self.run(cmd).await?;
        Ok(set.is_some())
    }

    /// Lets go of the refresh lock `key` if `holder` still holds it.
    pub(super) async fn unlock(&self, key: &str, holder: &str) -> Result<(), SessionError> {
        let lock = format!("{REFRESH_LOCK_PREFIX}{key}");
        self.script::<i64>(UNLOCK, &[&lock], &[holder]).await.map(drop)
    }

    /// Keeps a sealed refresh result for `ttl`.
    pub(super) async fn put_result(
        &self,
        key: &str,
        sealed: &str,
        ttl: Duration,
    ) -> Result<(), SessionError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(format!("{REFRESH_RESULT_PREFIX}{key}"))
            .arg(sealed)
            .arg("PX")
            .arg(millis(ttl));
        self.run::<()>(cmd).await
    }

    /// The sealed refresh result `key`, while Redis keeps it.
    pub(super) async fn result(&self, key: &str) -> Result<Option<String>, SessionError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(format!("{REFRESH_RESULT_PREFIX}{key}"));
        self.run(cmd).await
    }

    /// How many sessions and pending launches Redis holds (a `SCAN`, for diagnostics and tests).
    pub(super) async fn counts(&self) -> Result<(usize, usize), SessionError> {
        Ok((
            self.count(SESSION_PREFIX).await?,
            self.count(PENDING_PREFIX).await?,
        ))
    }

    async fn count(&self, prefix: &str) -> Result<usize, SessionError> {
        let mut cursor: u64 = 0;
        let mut total = 0;
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(format!("{prefix}*"))
                .arg("COUNT")
                .arg(1000);
            let (next, keys): (u64, Vec<String>) = self.run(cmd).await?;
            total += keys.len();
            if next == 0 {
                return Ok(total);
            }
            cursor = next;
        }
    }
}

/// A TTL in milliseconds for `PX` / `PEXPIRE` (at least 1: Redis refuses 0).
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}
