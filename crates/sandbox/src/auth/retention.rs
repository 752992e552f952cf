//! How long the authorization server keeps what strangers make it store, and how much of it: expired rows are
//! purged on a timer ([`AuthLimits::purge_interval`]), and the rows anyone can create without signing in —
//! pending authorizations (`/authorize`) and EHR launches (`/launcher`) — are capped per client and overall.
//!
//! Beyond a cap the **oldest rows are dropped** rather than the new request refused. A refusal (429 or 503)
//! would let one stranger lock every user of a client out: fill the cap, and every sign-in fails until the
//! rows expire. Dropping the oldest costs a flood its own earlier rows, and a real user's half-finished
//! sign-in only when the flood outruns the cap while the user is on the pages. This is what Keycloak does
//! (Server Administration Guide, "Limiting authentication sessions": at `authSessionsLimit`, default 300, "the
//! oldest authentication sub-session will be removed"); RFC 6819 §4.4.1.11 (DoS that exhausts resources)
//! advises bounding what one client or user can make the server hold, and RFC 9700 adds nothing on it.

use std::{sync::Weak, time::Duration};

use rusqlite::{Connection, params};

use super::{Inner, records};
pub use crate::limits::{
    AuthLimits, MAX_LAUNCHES, MAX_LAUNCHES_PER_CLIENT, MAX_PENDING, MAX_PENDING_PER_CLIENT, PURGE_INTERVAL,
};
use crate::{error::SandboxError, store::Store};

/// How long used or expired codes and tokens are kept past their expiry, so that a late replay is still
/// recognised as one (and revokes its family) instead of passing for an unknown value.
const REPLAY_MEMORY_MS: i64 = 24 * 3600 * 1000;

/// A table of rows created without authentication, capped per client and overall.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Capped {
    /// `auth_requests`: pending authorizations.
    Pending,
    /// `auth_launches`: EHR launches not yet used.
    Launches,
}

impl Capped {
    fn table(self) -> &'static str {
        match self {
            Capped::Pending => "auth_requests",
            Capped::Launches => "auth_launches",
        }
    }

    fn caps(self, limits: &AuthLimits) -> (usize, usize) {
        match self {
            Capped::Pending => (limits.max_pending_per_client, limits.max_pending),
            Capped::Launches => (limits.max_launches_per_client, limits.max_launches),
        }
    }
}

/// Drops the oldest rows of `table` beyond the caps of `limits`: first `client_id`'s own beyond the per-client
/// cap, then anyone's beyond the overall cap. Run right after an insert, on the same connection.
pub(crate) fn evict_beyond_caps(
    conn: &Connection,
    table: Capped,
    client_id: &str,
    limits: &AuthLimits,
) -> rusqlite::Result<usize> {
    let (per_client, overall) = table.caps(limits);
    let name = table.table();
    let count = |sql: &str, args: &[&dyn rusqlite::ToSql]| -> rusqlite::Result<usize> {
        conn.query_row(sql, args, |r| r.get::<_, i64>(0))
            .map(|n| usize::try_from(n).unwrap_or(0))
    };
    let mut dropped = 0;
    let mine = count(
        &format!("SELECT count(*) FROM {name} WHERE client_id = ?1"),
        &[&client_id],
    )?;
    if mine > per_client {
        dropped += conn.execute(
            &format!(
                "DELETE FROM {name} WHERE rowid IN (SELECT rowid FROM {name} WHERE client_id = ?1 \
                 ORDER BY expires_at, rowid LIMIT ?2)"
            ),
            params![client_id, i64::try_from(mine - per_client).unwrap_or(i64::MAX)],
        )?;
    }
    let all = count(&format!("SELECT count(*) FROM {name}"), &[])?;
    if all > overall {
        dropped += conn.execute(
            &format!(
                "DELETE FROM {name} WHERE rowid IN (SELECT rowid FROM {name} ORDER BY expires_at, rowid LIMIT ?1)"
            ),
            params![i64::try_from(all - overall).unwrap_or(i64::MAX)],
        )?;
    }
    if dropped > 0 {
        tracing::info!(
            table = name,
            client_id,
            dropped,
            "over the cap: the oldest rows were dropped"
        );
    }
    Ok(dropped)
}

/// Deletes what has expired: pending authorizations, launches and `jti`s at once, codes and tokens a day past
/// their expiry. Returns how many rows went. Blocks.
pub(crate) fn purge_expired(store: &Store) -> Result<usize, SandboxError> {
    let now = records::now_ms();
    let replay_horizon = now - REPLAY_MEMORY_MS;
    store.with_conn(|conn| {
        let mut purged = 0;
        purged += conn.execute("DELETE FROM auth_requests WHERE expires_at <= ?1", params![now])?;
        purged += conn.execute("DELETE FROM auth_launches WHERE expires_at <= ?1", params![now])?;
        purged += conn.execute("DELETE FROM auth_jti WHERE expires_at <= ?1", params![now])?;
        purged += conn.execute(
            "DELETE FROM auth_codes WHERE expires_at <= ?1",
            params![replay_horizon],
        )?;
        purged += conn.execute(
            "DELETE FROM auth_tokens WHERE expires_at <= ?1",
            params![replay_horizon],
        )?;
        Ok(purged)
    })
}

/// Purges expired rows every `interval` until the authorization server is dropped.
pub(super) fn spawn_purge(server: Weak<Inner>, interval: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate; the purge at start already ran.
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(inner) = server.upgrade() else { break };
            let store = inner.store.clone();
            drop(inner);
            match store.blocking(purge_expired).await {
                Ok(0) => {}
                Ok(purged) => tracing::debug!(purged, "expired authorization rows purged"),
                Err(e) => tracing::warn!(error = %e, "purging expired authorization rows failed"),
            }
        }
    });
}
