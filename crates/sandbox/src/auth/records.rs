//! The authorization server's tables in the sandbox database: pending authorizations, codes, tokens, launch
//! contexts, the `jti` replay cache and the signing key. Secrets (codes, tokens) are stored as SHA-256 hashes only.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::retention::{AuthLimits, Capped, evict_beyond_caps};
use crate::{config::SimulatedFailure, error::SandboxError, store::Store};

/// Creates the authorization server's tables if they are missing.
pub(crate) fn create_tables(store: &Store) -> Result<(), SandboxError> {
    store.with_conn(|conn| {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS auth_signing_key (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 pem TEXT NOT NULL,
                 created_at INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS auth_requests (
                 id TEXT PRIMARY KEY,
                 client_id TEXT NOT NULL DEFAULT '',
                 browser_hash TEXT NOT NULL,
                 csrf TEXT NOT NULL,
                 data TEXT NOT NULL,
                 expires_at INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS auth_codes (
                 hash TEXT PRIMARY KEY,
                 data TEXT NOT NULL,
                 expires_at INTEGER NOT NULL,
                 used INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE IF NOT EXISTS auth_tokens (
                 hash TEXT PRIMARY KEY,
                 kind TEXT NOT NULL,
                 family TEXT NOT NULL,
                 data TEXT NOT NULL,
                 issued_at INTEGER NOT NULL,
                 expires_at INTEGER NOT NULL,
                 state INTEGER NOT NULL DEFAULT 0);
             CREATE INDEX IF NOT EXISTS auth_tokens_family ON auth_tokens(family);
             CREATE TABLE IF NOT EXISTS auth_jti (
                 client_id TEXT NOT NULL,
                 jti TEXT NOT NULL,
                 expires_at INTEGER NOT NULL,
                 PRIMARY KEY (client_id, jti));
             CREATE TABLE IF NOT EXISTS auth_launches (
                 id TEXT PRIMARY KEY,
                 client_id TEXT NOT NULL DEFAULT '',
                 data TEXT NOT NULL,
                 expires_at INTEGER NOT NULL);",
        )?;
        // Databases made before the per-client caps lack the column the caps count by.
        for table in ["auth_requests", "auth_launches"] {
            add_column_if_missing(conn, table, "client_id", "TEXT NOT NULL DEFAULT ''")?;
        }
        // The caps count per client and drop the oldest; the purge deletes by expiry.
        conn.execute_batch(
            "CREATE INDEX IF NOT EXISTS auth_requests_client ON auth_requests(client_id, expires_at);
             CREATE INDEX IF NOT EXISTS auth_requests_expiry ON auth_requests(expires_at);
             CREATE INDEX IF NOT EXISTS auth_launches_client ON auth_launches(client_id, expires_at);
             CREATE INDEX IF NOT EXISTS auth_launches_expiry ON auth_launches(expires_at);
             CREATE INDEX IF NOT EXISTS auth_codes_expiry ON auth_codes(expires_at);
             CREATE INDEX IF NOT EXISTS auth_tokens_expiry ON auth_tokens(expires_at);",
        )
    })
}

fn add_column_if_missing(
    conn: &rusqlite::Connection,
    table: &str,
    column: &str,
    declaration: &str,
) -> rusqlite::Result<()> {
    let present = conn
        .prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?
        .exists(params![table, column])?;
    if !present {
        conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {declaration}"))?;
    }
    Ok(())
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A new random value with 256 bits from the operating system's CSPRNG, base64url encoded.
pub(crate) use smart_launch::secret::random_token;

/// The SHA-256 of a secret, base64url encoded: what the database stores instead of the secret.
pub(crate) fn hash_secret(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

/// What a grant allows, stored with codes and tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GrantRecord {
    pub client_id: String,
    /// The granted scopes, space separated.
    pub scope: String,
    pub patient: Option<String>,
    pub encounter: Option<String>,
    /// Relative reference of the user, e.g. `Practitioner/123`.
    pub fhir_user: Option<String>,
    pub need_patient_banner: bool,
    pub intent: Option<String>,
    pub nonce: Option<String>,
    pub fail: Option<SimulatedFailure>,
    /// Extra context references for `fhirContext` (e.g. `DiagnosticReport/7`).
    #[serde(default)]
    pub fhir_context: Vec<String>,
    /// Epoch seconds when the user authenticated.
    pub auth_time: i64,
}

/// An issued code, with the request it answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CodeRecord {
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub grant: GrantRecord,
}

/// What happened when a code was taken.
pub(crate) enum CodeLookup {
    /// The code is valid: it is now marked used.
    Fresh(Box<CodeRecord>),
    /// The code was used before (a replay).
    Replayed,
    /// The code has expired.
    Expired,
    /// The code is unknown.
    Unknown,
}

pub(crate) fn insert_code(
    store: &Store,
    code_hash: &str,
    record: &CodeRecord,
    expires_at: i64,
) -> Result<(), SandboxError> {
    let data = serde_json::to_string(record)?;
    store.with_conn(|conn| {
        conn.execute(
            "INSERT INTO auth_codes (hash, data, expires_at) VALUES (?1, ?2, ?3)",
            params![code_hash, data, expires_at],
        )
        .map(|_| ())
    })
}

/// Takes a code: marks it used in the same statement that reads it, so two concurrent exchanges cannot both win.
pub(crate) fn take_code(store: &Store, code_hash: &str) -> Result<CodeLookup, SandboxError> {
    let now = now_ms();
    let row: Option<(String, i64, i64)> = store.with_conn(|conn| {
        let row = conn
            .query_row(
                "SELECT data, expires_at, used FROM auth_codes WHERE hash = ?1",
                params![code_hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        if let Some((_, _, 0)) = &row {
            let changed = conn.execute(
                "UPDATE auth_codes SET used = 1 WHERE hash = ?1 AND used = 0",
                params![code_hash],
            )?;
            if changed == 0 {
                return Ok(row.map(|(d, e, _)| (d, e, 1)));
            }
        }
        Ok(row)
    })?;
    Ok(match row {
        None => CodeLookup::Unknown,
        Some((_, _, used)) if used != 0 => CodeLookup::Replayed,
        Some((_, expires_at, _)) if expires_at <= now => CodeLookup::Expired,
        Some((data, _, _)) => CodeLookup::Fresh(Box::new(serde_json::from_str(&data)?)),
    })
}

/// The kind of a stored token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }
}

/// The lifecycle state of a stored token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenState {
    Active,
    Revoked,
    /// A refresh token that was exchanged for a new one.
    Rotated,
}

impl TokenState {
    fn from_i64(v: i64) -> Self {
        match v {
            0 => TokenState::Active,
            2 => TokenState::Rotated,
            _ => TokenState::Revoked,
        }
    }
}

/// A stored token.
#[derive(Debug, Clone)]
pub(crate) struct TokenRow {
    pub kind: TokenKind,
    /// Tokens issued from one code (or one client_credentials grant) share a family; a replay revokes it.
    pub family: String,
    pub grant: GrantRecord,
    pub issued_at: i64,
    pub expires_at: i64,
    pub state: TokenState,
}

pub(crate) fn insert_token(
    store: &Store,
    token_hash: &str,
    kind: TokenKind,
    family: &str,
    grant: &GrantRecord,
    expires_at: i64,
) -> Result<(), SandboxError> {
    let data = serde_json::to_string(grant)?;
    store.with_conn(|conn| {
        conn.execute(
            "INSERT INTO auth_tokens (hash, kind, family, data, issued_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![token_hash, kind.as_str(), family, data, now_ms(), expires_at],
        )
        .map(|_| ())
    })
}

pub(crate) fn find_token(store: &Store, token_hash: &str) -> Result<Option<TokenRow>, SandboxError> {
    // A pooled reader: bearer checks run on every FHIR request and must not queue behind writes.
    let row: Option<(String, String, String, i64, i64, i64)> = store.with_reader(|conn| {
        // A cached statement: this runs on every FHIR request, and compiling it each time showed in a profile of
        // the summary's reads (SQLite's parser and planner, ~11 % of the sandbox's CPU).
        let row = conn
            .prepare_cached(
                "SELECT kind, family, data, issued_at, expires_at, state FROM auth_tokens WHERE hash = ?1",
            )?
            .query_row(params![token_hash], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            });
        row.optional().map_err(SandboxError::from)
    })?;
    let Some((kind, family, data, issued_at, expires_at, state)) = row else {
        return Ok(None);
    };
    Ok(Some(TokenRow {
        kind: if kind == "refresh" {
            TokenKind::Refresh
        } else {
            TokenKind::Access
        },
        family,
        grant: serde_json::from_str(&data)?,
        issued_at,
        expires_at,
        state: TokenState::from_i64(state),
    }))
}

/// Marks an active refresh token rotated; false when another request rotated or revoked it first.
pub(crate) fn rotate_refresh_token(store: &Store, token_hash: &str) -> Result<bool, SandboxError> {
    store.with_conn(|conn| {
        conn.execute(
            "UPDATE auth_tokens SET state = 2 WHERE hash = ?1 AND kind = 'refresh' AND state = 0",
            params![token_hash],
        )
        .map(|n| n == 1)
    })
}

/// Revokes one token.
pub(crate) fn revoke_token(store: &Store, token_hash: &str) -> Result<(), SandboxError> {
    store.with_conn(|conn| {
        conn.execute(
            "UPDATE auth_tokens SET state = 1 WHERE hash = ?1",
            params![token_hash],
        )
        .map(|_| ())
    })
}

/// Revokes every token of a family.
pub(crate) fn revoke_family(store: &Store, family: &str) -> Result<usize, SandboxError> {
    store.with_conn(|conn| {
        conn.execute(
            "UPDATE auth_tokens SET state = 1 WHERE family = ?1",
            params![family],
        )
    })
}

/// Records a client assertion's `jti`; false when it was seen before (a replay).
pub(crate) fn remember_jti(
    store: &Store,
    client_id: &str,
    jti: &str,
    expires_at: i64,
) -> Result<bool, SandboxError> {
    let now = now_ms();
    store.with_conn(|conn| {
        conn.execute("DELETE FROM auth_jti WHERE expires_at <= ?1", params![now])?;
        conn.execute(
            "INSERT OR IGNORE INTO auth_jti (client_id, jti, expires_at) VALUES (?1, ?2, ?3)",
            params![client_id, jti, expires_at],
        )
        .map(|n| n == 1)
    })
}

/// An EHR launch: the context the `launch` parameter stands for.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct EhrLaunch {
    /// The client the launch was made for, when known.
    pub client_id: Option<String>,
    pub patient: Option<String>,
    pub encounter: Option<String>,
    /// Relative reference of the EHR user, e.g. `Practitioner/123`.
    pub user: Option<String>,
    pub need_patient_banner: bool,
    pub intent: Option<String>,
    pub fail: Option<SimulatedFailure>,
    /// Extra context references for `fhirContext` (e.g. `DiagnosticReport/7`).
    #[serde(default)]
    pub fhir_context: Vec<String>,
}

/// Stores a launch, then drops the oldest beyond the caps of `limits` (anyone may call `/launcher`).
pub(crate) fn insert_launch(
    store: &Store,
    id: &str,
    record: &EhrLaunch,
    expires_at: i64,
    limits: &AuthLimits,
) -> Result<(), SandboxError> {
    let data = serde_json::to_string(record)?;
    let client_id = record.client_id.as_deref().unwrap_or_default();
    store.with_conn(|conn| {
        conn.execute(
            "INSERT INTO auth_launches (id, client_id, data, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![id, client_id, data, expires_at],
        )?;
        evict_beyond_caps(conn, Capped::Launches, client_id, limits).map(|_| ())
    })
}

/// Removes the launch `id` and returns it if it had not expired: a launch id is good for one authorization.
pub(crate) fn take_launch(store: &Store, id: &str) -> Result<Option<EhrLaunch>, SandboxError> {
    let now = now_ms();
    let data: Option<String> = store.with_conn(|conn| {
        conn.query_row(
            "DELETE FROM auth_launches WHERE id = ?1 RETURNING data, expires_at",
            params![id],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
        )
        .optional()
        .map(|row| {
            row.filter(|(_, expires_at)| *expires_at > now)
                .map(|(data, _)| data)
        })
    })?;
    data.map(|d| serde_json::from_str(&d))
        .transpose()
        .map_err(Into::into)
}

/// An authorization in progress between `/authorize` and the redirect back to the app.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PendingAuthorization {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: String,
    /// The requested scopes, space separated.
    pub scope: String,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    /// The EHR launch this authorization continues, if any.
    pub launch: Option<EhrLaunch>,
    /// The signed-in sandbox user (`Patient/…` or `Practitioner/…`).
    pub user: Option<String>,
    pub patient: Option<String>,
    pub encounter: Option<String>,
    /// True once the user passed the encounter picker (or it was not needed).
    pub encounter_done: bool,
    pub fail: Option<SimulatedFailure>,
}

/// Stores a pending authorization, then drops the oldest beyond the caps of `limits` (anyone may call
/// `/authorize`).
pub(crate) fn insert_pending(
    store: &Store,
    id: &str,
    browser_hash: &str,
    csrf: &str,
    pending: &PendingAuthorization,
    expires_at: i64,
    limits: &AuthLimits,
) -> Result<(), SandboxError> {
    let data = serde_json::to_string(pending)?;
    store.with_conn(|conn| {
        conn.execute(
            "INSERT INTO auth_requests (id, client_id, browser_hash, csrf, data, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, pending.client_id, browser_hash, csrf, data, expires_at],
        )?;
        evict_beyond_caps(conn, Capped::Pending, &pending.client_id, limits).map(|_| ())
    })
}

/// A pending authorization as stored, with what binds it to the browser.
pub(crate) struct PendingRow {
    pub browser_hash: String,
    pub csrf: String,
    pub pending: PendingAuthorization,
}

pub(crate) fn find_pending(store: &Store, id: &str) -> Result<Option<PendingRow>, SandboxError> {
    let now = now_ms();
    let row: Option<(String, String, String)> = store.with_conn(|conn| {
        conn.query_row(
            "SELECT browser_hash, csrf, data FROM auth_requests WHERE id = ?1 AND expires_at > ?2",
            params![id, now],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
    })?;
    let Some((browser_hash, csrf, data)) = row else {
        return Ok(None);
    };
    Ok(Some(PendingRow {
        browser_hash,
        csrf,
        pending: serde_json::from_str(&data)?,
    }))
}

pub(crate) fn update_pending(
    store: &Store,
    id: &str,
    pending: &PendingAuthorization,
) -> Result<(), SandboxError> {
    let data = serde_json::to_string(pending)?;
    store.with_conn(|conn| {
        conn.execute(
            "UPDATE auth_requests SET data = ?2 WHERE id = ?1",
            params![id, data],
        )
        .map(|_| ())
    })
}

/// Deletes a pending authorization; true when this call removed it (so a double submit finishes only once).
pub(crate) fn delete_pending(store: &Store, id: &str) -> Result<bool, SandboxError> {
    store.with_conn(|conn| {
        conn.execute("DELETE FROM auth_requests WHERE id = ?1", params![id])
            .map(|n| n == 1)
    })
}

/// The stored signing key (PKCS#1 PEM), if any.
pub(crate) fn load_signing_key(store: &Store) -> Result<Option<String>, SandboxError> {
    store.with_conn(|conn| {
        conn.query_row("SELECT pem FROM auth_signing_key WHERE id = 1", [], |r| r.get(0))
            .optional()
    })
}

/// Stores a signing key unless one exists (another process may have won the race).
pub(crate) fn store_signing_key(store: &Store, pem: &str) -> Result<(), SandboxError> {
    store.with_conn(|conn| {
        conn.execute(
            "INSERT OR IGNORE INTO auth_signing_key (id, pem, created_at) VALUES (1, ?1, ?2)",
            params![pem, now_ms()],
        )
        .map(|_| ())
    })
}
