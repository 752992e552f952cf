//! Token refreshes coordinated through the session store, so that every instance of the app sharing it (and
//! every request of one instance) refreshes a token set once: [`StoreRefreshCoordinator`].
//!
//! A refresh is keyed by the token set it replaces (a hash of its refresh and access tokens: a persona that keeps
//! the refresh token still gets a new key per access token). Whoever refreshes first takes a lock with an expiry
//! in the store (`SET NX PX` in Redis, a row in SQLite), refreshes at the EHR, keeps the new token set sealed under
//! the old one's key for [`RESULT_TTL`], and lets go of the lock. Everyone else waits for the lock and then takes
//! that result instead of sending the rotated refresh token again — which a rotating server answers by revoking
//! the grant (RFC 9700 §4.14.2: "the authorization server cannot determine which party submitted the invalid
//! refresh token and will revoke the active refresh token"). A holder that dies lets go when its lock expires
//! ([`LOCK_TTL`]).

use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use smart_launch::{BoxFuture, TokenSet};

use super::store::Durability;
use super::{SessionError, SessionStore, random_token};

/// How long a refresh may hold its lock: longer than the refresh request's own timeout (15 s), so a live holder
/// never loses it, short enough that a dead one does not keep others waiting long.
pub const LOCK_TTL: Duration = Duration::from_secs(20);

/// How long a refresh's result is kept for those who still hold the token set it replaced (a request that
/// loaded the session before the refresh was saved).
pub const RESULT_TTL: Duration = Duration::from_secs(10 * 60);

/// How often a waiting request looks again, at most.
const MAX_POLL: Duration = Duration::from_millis(100);

/// A [`smart_launch::RefreshCoordinator`] over the app's session store (SQLite or Redis).
#[derive(Debug, Clone)]
pub struct StoreRefreshCoordinator {
    store: SessionStore,
}

impl StoreRefreshCoordinator {
    /// A coordinator over `store`.
    pub fn new(store: SessionStore) -> StoreRefreshCoordinator {
        StoreRefreshCoordinator { store }
    }

    async fn run(
        &self,
        tokens: &TokenSet,
        refresh: BoxFuture<'_, Result<TokenSet, smart_launch::Error>>,
    ) -> Result<TokenSet, smart_launch::Error> {
        let key = refresh_key(tokens);
        let holder = random_token();
        let gave_up_at = Instant::now() + 2 * LOCK_TTL;
        let mut pause = Duration::from_millis(10);
        loop {
            if let Some(done) = self.result(&key).await.map_err(coordination)? {
                tracing::debug!("another request refreshed these tokens; using its result");
                return Ok(done);
            }
            if self
                .store
                .lock_refresh(&key, &holder)
                .await
                .map_err(coordination)?
            {
                break;
            }
            if Instant::now() > gave_up_at {
                return Err(smart_launch::Error::RefreshCoordination {
                    reason: "another instance held the refresh lock past its expiry".into(),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL);
        }
        // Someone may have finished between the look and the lock.
        let outcome = match self.result(&key).await {
            Ok(Some(done)) => Ok(done),
            Ok(None) => refresh.await,
            Err(e) => Err(coordination(e)),
        };
        if let Ok(next) = &outcome {
            let sealed = serde_json::to_vec(next).map(|json| self.store.key.seal(&key, &json));
            let kept = match sealed {
                Ok(sealed) => self.store.put_refresh_result(&key, sealed).await,
                Err(e) => Err(e.into()),
            };
            if let Err(e) = kept {
                tracing::warn!(error = %e, "a refresh's result could not be shared with the other instances");
            }
        }
        if let Err(e) = self.store.unlock_refresh(&key, &holder).await {
            tracing::warn!(error = %e, "a refresh lock could not be released; it expires by itself");
        }
        outcome
    }

    async fn result(&self, key: &str) -> Result<Option<TokenSet>, SessionError> {
        let Some(sealed) = self.store.refresh_result(key).await? else {
            return Ok(None);
        };
        let Some(plain) = self.store.key.open(key, &sealed) else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_slice(&plain)?))
    }
}

impl smart_launch::RefreshCoordinator for StoreRefreshCoordinator {
    fn coordinate<'a>(
        &'a self,
        tokens: &'a TokenSet,
        refresh: BoxFuture<'a, Result<TokenSet, smart_launch::Error>>,
    ) -> BoxFuture<'a, Result<TokenSet, smart_launch::Error>> {
        Box::pin(self.run(tokens, refresh))
    }
}

fn coordination(e: SessionError) -> smart_launch::Error {
    smart_launch::Error::RefreshCoordination {
        reason: e.to_string(),
    }
}

/// The key of the refresh that replaces `tokens`: SHA-256 of its refresh and access tokens (never the tokens).
fn refresh_key(tokens: &TokenSet) -> String {
    let refresh = tokens
        .refresh_token
        .as_ref()
        .map(|t| t.secret())
        .unwrap_or_default();
    let digest = Sha256::new()
        .chain_update(b"smart-fhir refresh v1\0")
        .chain_update(refresh.as_bytes())
        .chain_update(b"\0")
        .chain_update(tokens.access_token.secret().as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

/// The SQLite tables of refresh locks and results.
pub(super) fn create_tables(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS refresh_locks (
             key TEXT PRIMARY KEY,
             holder TEXT NOT NULL,
             expires_at_ms INTEGER NOT NULL
         );
         CREATE TABLE IF NOT EXISTS refresh_results (
             key TEXT PRIMARY KEY,
             data TEXT NOT NULL,
             expires_at_ms INTEGER NOT NULL
         );",
    )
}

/// Deletes expired refresh locks and results.
pub(super) fn purge(conn: &Connection) -> rusqlite::Result<()> {
    let now = now_ms();
    conn.execute(
        "DELETE FROM refresh_locks WHERE expires_at_ms <= ?1",
        params![now],
    )?;
    conn.execute(
        "DELETE FROM refresh_results WHERE expires_at_ms <= ?1",
        params![now],
    )?;
    Ok(())
}

impl SessionStore {
    /// Takes the refresh lock `key` for `holder` unless someone holds it (an expired lock is nobody's).
    async fn lock_refresh(&self, key: &str, holder: &str) -> Result<bool, SessionError> {
        if let Some(redis) = &self.redis {
            return redis.lock(key, holder, LOCK_TTL).await;
        }
        let (key, holder) = (key.to_owned(), holder.to_owned());
        self.with_conn(Durability::Normal, move |conn, _| {
            let now = now_ms();
            conn.execute(
                "DELETE FROM refresh_locks WHERE key = ?1 AND expires_at_ms <= ?2",
                params![key, now],
            )?;
            let taken = conn.execute(
                "INSERT OR IGNORE INTO refresh_locks (key, holder, expires_at_ms) VALUES (?1, ?2, ?3)",
                params![key, holder, now.saturating_add(millis(LOCK_TTL))],
            )?;
            Ok(taken == 1)
        })
        .await
    }

    /// Lets go of the refresh lock `key` if `holder` still holds it.
    async fn unlock_refresh(&self, key: &str, holder: &str) -> Result<(), SessionError> {
        if let Some(redis) = &self.redis {
            return redis.unlock(key, holder).await;
        }
        let (key, holder) = (key.to_owned(), holder.to_owned());
        self.with_conn(Durability::Normal, move |conn, _| {
            conn.execute(
                "DELETE FROM refresh_locks WHERE key = ?1 AND holder = ?2",
                params![key, holder],
            )?;
            Ok(())
        })
        .await
    }

    /// Keeps the sealed result of the refresh `key` for [`RESULT_TTL`].
    async fn put_refresh_result(&self, key: &str, sealed: String) -> Result<(), SessionError> {
        if let Some(redis) = &self.redis {
            return redis.put_result(key, &sealed, RESULT_TTL).await;
        }
        let key = key.to_owned();
        self.with_conn(Durability::Normal, move |conn, _| {
            conn.execute(
                "INSERT OR REPLACE INTO refresh_results (key, data, expires_at_ms) VALUES (?1, ?2, ?3)",
                params![key, sealed, now_ms().saturating_add(millis(RESULT_TTL))],
            )?;
            Ok(())
        })
        .await
    }

    /// The sealed result of the refresh `key`, while it is kept.
    async fn refresh_result(&self, key: &str) -> Result<Option<String>, SessionError> {
        if let Some(redis) = &self.redis {
            return redis.result(key).await;
        }
        let key = key.to_owned();
        self.with_conn(Durability::Normal, move |conn, _| {
            Ok(conn
                .query_row(
                    "SELECT data FROM refresh_results WHERE key = ?1 AND expires_at_ms > ?2",
                    params![key, now_ms()],
                    |row| row.get(0),
                )
                .optional()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use chrono::Utc;
    use smart_launch::{AccessToken, RefreshCoordinator as _, RefreshToken};

    use super::*;
    use crate::session::SessionKey;

    fn tokens(access: &str, refresh: &str) -> TokenSet {
        let url = url::Url::parse("http://127.0.0.1:9/fhir").unwrap();
        TokenSet {
            access_token: AccessToken::new(access),
            token_type: "Bearer".into(),
            expires_at: None,
            refresh_token: Some(RefreshToken::new(refresh)),
            scope: smart_launch::ScopeSet::default(),
            id_token: None,
            issued_at: Utc::now(),
            fhir_base: url.clone(),
            token_endpoint: url,
        }
    }

    #[tokio::test]
    async fn concurrent_refreshes_of_one_token_set_reach_the_server_once_and_share_its_result() {
        let dir = tempfile::tempdir().unwrap();
        let key = SessionKey::from_hex(&"cd".repeat(32)).unwrap();
        let path = dir.path().join("s.db");
        // Two stores on one file: two processes' views of the same database.
        let coordinators = [
            StoreRefreshCoordinator::new(
                SessionStore::open(&path, Duration::from_secs(3600), key.clone()).unwrap(),
            ),
            StoreRefreshCoordinator::new(SessionStore::open(&path, Duration::from_secs(3600), key).unwrap()),
        ];
        let sent = Arc::new(AtomicUsize::new(0));
        let old = tokens("a1", "r1");
        let refreshes = (0..8).map(|i| {
            let (coordinator, sent, old) = (coordinators[i % 2].clone(), sent.clone(), old.clone());
            tokio::spawn(async move {
                let server = async {
                    let n = sent.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    Ok(tokens(&format!("a2-{n}"), &format!("r2-{n}")))
                };
                coordinator.coordinate(&old, Box::pin(server)).await.unwrap()
            })
        });
        let results = futures::future::join_all(refreshes).await;
        assert_eq!(sent.load(Ordering::SeqCst), 1, "one refresh reached the server");
        for result in results {
            assert_eq!(result.unwrap().access_token.secret(), "a2-0");
        }
        // The next refresh (of the new token set) is a refresh of its own.
        let newer = coordinators[0]
            .coordinate(
                &tokens("a2-0", "r2-0"),
                Box::pin(async { Ok(tokens("a3", "r3")) }),
            )
            .await
            .unwrap();
        assert_eq!(newer.access_token.secret(), "a3");
    }

    #[tokio::test]
    async fn a_failed_refresh_lets_the_next_one_try_and_shares_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let key = SessionKey::from_hex(&"cd".repeat(32)).unwrap();
        let store = SessionStore::open(&dir.path().join("s.db"), Duration::from_secs(3600), key).unwrap();
        let coordinator = StoreRefreshCoordinator::new(store);
        let old = tokens("a1", "r1");
        let failed = coordinator
            .coordinate(&old, Box::pin(async { Err(smart_launch::Error::NoRefreshToken) }))
            .await;
        assert!(failed.is_err());
        let next = coordinator
            .coordinate(&old, Box::pin(async { Ok(tokens("a2", "r2")) }))
            .await
            .unwrap();
        assert_eq!(next.access_token.secret(), "a2");
    }

    #[test]
    fn the_key_changes_with_the_access_token_when_the_refresh_token_is_kept() {
        assert_ne!(refresh_key(&tokens("a1", "r")), refresh_key(&tokens("a2", "r")));
        assert!(!refresh_key(&tokens("a1", "r")).contains("a1"));
    }
}
