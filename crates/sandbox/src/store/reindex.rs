//! The search index rebuilt when the search parameters change, so a parameter added to the table in `index.rs`
//! (or an extraction rule changed) works on a database created before it.
//!
//! The database records which version of the parameters its index rows were extracted with (`fhir_meta`'s
//! `index` key, [`index_version`]). When a store opens a database whose version differs, or one with resources
//! but no version (written before versions were recorded), every current resource is indexed again, in one
//! transaction; the history and the resources' own text are not touched.

use super::index;
use super::write::insert_index;
use crate::error::SandboxError;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

/// Raise when `index::extract` reads a resource differently with the same parameter table (the table itself is
/// part of the version already).
const EXTRACTION_RULES: u32 = 1;

/// The version of the search index: a digest of every type's parameters (name, kind, paths, target) and of
/// `EXTRACTION_RULES`.
pub fn index_version() -> String {
    let mut digest = Sha256::new();
    digest.update(format!("rules={EXTRACTION_RULES};types={:?}", index::RESOURCE_TYPES).as_bytes());
    let hash = digest.finalize();
    hash[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// What opening found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reindexed {
    /// The index was extracted with today's parameters (or the database is empty).
    Current,
    /// The index was rebuilt for this many resources.
    Rebuilt(usize),
}

/// Rebuilds the index on `conn` (the writer) when it was extracted with other parameters than today's.
pub(crate) fn reindex_if_changed(conn: &mut Connection) -> Result<Reindexed, SandboxError> {
    let version = index_version();
    let recorded: Option<String> = conn
        .query_row("SELECT value FROM fhir_meta WHERE key = 'index'", [], |r| {
            r.get(0)
        })
        .optional()?;
    if recorded.as_deref() == Some(version.as_str()) {
        return Ok(Reindexed::Current);
    }
    let tx = conn.transaction()?;
    let any: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM fhir_resources)", [], |r| r.get(0))?;
    let mut count = 0usize;
    if any {
        tracing::info!(recorded = ?recorded, now = %version, "the search parameters changed; rebuilding the search index");
        for table in [
            "fhir_idx_string",
            "fhir_idx_token",
            "fhir_idx_date",
            "fhir_idx_ref",
        ] {
            tx.execute(&format!("DELETE FROM {table}"), [])?;
        }
        let mut rows = tx.prepare("SELECT rid, type, json FROM fhir_resources WHERE deleted = 0")?;
        let mut cursor = rows.query([])?;
        while let Some(row) = cursor.next()? {
            let rid: i64 = row.get(0)?;
            let resource_type: String = row.get(1)?;
            let json: Option<String> = row.get(2)?;
            let Some(resource) = json.as_deref().and_then(|j| serde_json::from_str(j).ok()) else {
                continue;
            };
            insert_index(&tx, rid, &index::extract(&resource_type, &resource))?;
            count += 1;
        }
        drop(cursor);
        drop(rows);
        tracing::info!(resources = count, "search index rebuilt");
    }
    tx.execute(
        "INSERT OR REPLACE INTO fhir_meta (key, value) VALUES ('index', ?1)",
        params![version],
    )?;
    tx.commit()?;
    Ok(if any {
        Reindexed::Rebuilt(count)
    } else {
        Reindexed::Current
    })
}
