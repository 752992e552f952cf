//! Rows in and out of `fhir_resources` / `fhir_history`, and keeping the index tables in step with them.

use super::index::{self, IndexRows};
use super::numbers::{self, NumberTexts, Sent};
use crate::error::SandboxError;
use crate::registry;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Value, json};

/// The text stored for `resource`: `resourceType` first, then the other elements (sorted, as `serde_json`'s map
/// keeps them), each number in `numbers` written as the client wrote it. Real FHIR servers write `resourceType`
/// first, and a client that looks for the type before choosing what to parse the resource into finds it at once;
/// the FHIR JSON format allows any order, so clients must not rely on it (ours does not).
pub(crate) fn resource_json(resource: &Value, numbers: &NumberTexts) -> serde_json::Result<String> {
    use serde::ser::{SerializeMap, Serializer as _};
    if !numbers.is_empty() {
        return numbers::write_resource(resource, numbers);
    }
    let Some(map) = resource.as_object() else {
        return serde_json::to_string(resource);
    };
    let mut out = Vec::with_capacity(512);
    let mut ser = serde_json::Serializer::new(&mut out);
    let mut m = ser.serialize_map(Some(map.len()))?;
    if let Some(ty) = map.get("resourceType") {
        m.serialize_entry("resourceType", ty)?;
    }
    for (key, value) in map.iter().filter(|(k, _)| *k != "resourceType") {
        m.serialize_entry(key, value)?;
    }
    m.end()?;
    String::from_utf8(out).map_err(serde::ser::Error::custom)
}

/// One stored version of a resource, as the database holds it.
#[derive(Debug, Clone)]
pub struct ResourceRow {
    /// The row id (stable for the life of the resource; used by the search index).
    pub rid: i64,
    /// The resource type.
    pub resource_type: String,
    /// The logical id.
    pub id: String,
    /// The version (`meta.versionId`).
    pub version: i64,
    /// `meta.lastUpdated`.
    pub last_updated: String,
    /// The patient whose compartment the resource belongs to.
    pub patient: Option<String>,
    /// True when this version is a deletion.
    pub deleted: bool,
    /// The resource JSON (absent for deletions).
    pub json: Option<String>,
}

impl ResourceRow {
    /// The resource as a JSON value (`None` for a deletion or unreadable text).
    pub fn resource(&self) -> Option<Value> {
        self.json.as_deref().and_then(|j| serde_json::from_str(j).ok())
    }

    /// `Type/id`.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.resource_type, self.id)
    }

    /// The weak ETag of this version: `W/"3"`.
    pub fn etag(&self) -> String {
        format!("W/\"{}\"", self.version)
    }
}

/// What a write stored.
#[derive(Debug, Clone)]
pub struct Written {
    /// The row as stored.
    pub row: ResourceRow,
    /// True when the resource did not exist (or was deleted) before.
    pub created: bool,
    /// The stored resource, with its `meta`.
    pub resource: Value,
}

const COLUMNS: &str = "rid, type, id, version, last_updated, patient, deleted, json";

fn from_row(r: &Row<'_>) -> rusqlite::Result<ResourceRow> {
    Ok(ResourceRow {
        rid: r.get(0)?,
        resource_type: r.get(1)?,
        id: r.get(2)?,
        version: r.get(3)?,
        last_updated: r.get(4)?,
        patient: r.get(5)?,
        deleted: r.get::<_, i64>(6)? != 0,
        json: r.get(7)?,
    })
}

/// The current row of `type/id` (possibly a deletion), or `None` when it never existed.
pub(crate) fn current_row(
    conn: &Connection,
    resource_type: &str,
    id: &str,
) -> rusqlite::Result<Option<ResourceRow>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM fhir_resources WHERE type = ?1 AND id = ?2"
    ))?
    .query_row(params![resource_type, id], from_row)
    .optional()
}

/// Rows by row id, in the order given (missing ids are skipped).
pub(crate) fn rows_by_rid(conn: &Connection, rids: &[i64]) -> rusqlite::Result<Vec<ResourceRow>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM fhir_resources WHERE rid = ?1"))?;
    let mut out = Vec::with_capacity(rids.len());
    for rid in rids {
        if let Some(row) = stmt.query_row([rid], from_row).optional()? {
            out.push(row);
        }
    }
    Ok(out)
}

/// One version of the resource whose current row is `current`, current or historical. A historical version's
/// `patient` is the compartment its own content puts it in (a deletion: the compartment of the version it
/// deleted), not the current version's.
pub(crate) fn version_row(
    conn: &Connection,
    current: &ResourceRow,
    version: i64,
) -> rusqlite::Result<Option<ResourceRow>> {
    if current.version == version {
        return Ok(Some(current.clone()));
    }
    let (resource_type, id) = (&current.resource_type, &current.id);
    // The version asked for and the one before it (whose compartment a deletion inherits).
    let mut stmt = conn.prepare_cached(
        "SELECT version, last_updated, deleted, json FROM fhir_history WHERE type = ?1 AND id = ?2 \
         AND version IN (?3, ?3 - 1) ORDER BY version",
    )?;
    let rows = stmt
        .query_map(params![resource_type, id, version], |r| historical(current, r))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(with_own_compartments(rows).pop().filter(|r| r.version == version))
}

/// The versions before `current`, newest first; each carries the compartment of its own content (see
/// [`version_row`]).
pub(crate) fn older_versions(conn: &Connection, current: &ResourceRow) -> rusqlite::Result<Vec<ResourceRow>> {
    let (resource_type, id) = (&current.resource_type, &current.id);
    let mut stmt = conn.prepare_cached(
        "SELECT version, last_updated, deleted, json FROM fhir_history WHERE type = ?1 AND id = ?2 ORDER BY version",
    )?;
    let older = stmt
        .query_map(params![resource_type, id], |r| historical(current, r))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(with_own_compartments(older).into_iter().rev().collect())
}

/// A `fhir_history` row (`version, last_updated, deleted, json`) of the resource whose current row is `current`;
/// its `patient` is filled in by [`with_own_compartments`].
fn historical(current: &ResourceRow, r: &Row<'_>) -> rusqlite::Result<ResourceRow> {
    Ok(ResourceRow {
        rid: current.rid,
        resource_type: current.resource_type.clone(),
        id: current.id.clone(),
        version: r.get(0)?,
        last_updated: r.get(1)?,
        patient: None,
        deleted: r.get::<_, i64>(2)? != 0,
        json: r.get(3)?,
    })
}

/// Sets each version's `patient` (oldest first) from its own content; a deletion keeps the compartment of the
/// version before it.
fn with_own_compartments(mut oldest_first: Vec<ResourceRow>) -> Vec<ResourceRow> {
    let mut previous: Option<String> = None;
    for row in &mut oldest_first {
        row.patient = match row.resource() {
            Some(resource) => registry::compartment_patient(&row.resource_type, &resource),
            None => previous.clone(),
        };
        previous = row.patient.clone();
    }
    oldest_first
}

fn type_and_id(resource: &Value) -> Result<(String, String), SandboxError> {
    let resource_type = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .filter(|t| registry::is_valid_type(t))
        .ok_or_else(|| SandboxError::InvalidResource {
            reason: "it has no valid `resourceType`".into(),
        })?;
    let id = resource
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| registry::is_valid_id(id))
        .ok_or_else(|| SandboxError::InvalidResource {
            reason: "it has no valid `id` (1–64 letters, digits, `-` or `.`)".into(),
        })?;
    Ok((resource_type.to_owned(), id.to_owned()))
}

fn stamp(resource: &mut Value, version: i64, now: &str) -> Result<(), SandboxError> {
    let Some(map) = resource.as_object_mut() else {
        return Err(SandboxError::InvalidResource {
            reason: "it is not a JSON object".into(),
        });
    };
    let meta = map.entry("meta").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta["versionId"] = json!(version.to_string());
    meta["lastUpdated"] = json!(now);
    Ok(())
}

/// A new resource made ready for insertion: stamped, serialized and its index rows extracted (CPU work that a
/// bulk load does on another thread than the inserts).
pub(crate) struct Prepared {
    resource_type: String,
    id: String,
    patient: Option<String>,
    json: String,
    rows: IndexRows,
}

impl Prepared {
    /// Prepares version 1 of `resource`, last updated `now`.
    pub(crate) fn new(resource: Value, now: &str) -> Result<Prepared, SandboxError> {
        Prepared::with_numbers(resource, &NumberTexts::default(), now)
    }

    /// Prepares version 1 of `resource` with the text of its numbers as sent.
    pub(crate) fn with_numbers(
        mut resource: Value,
        numbers: &NumberTexts,
        now: &str,
    ) -> Result<Prepared, SandboxError> {
        let (resource_type, id) = type_and_id(&resource)?;
        stamp(&mut resource, 1, now)?;
        let patient = registry::compartment_patient(&resource_type, &resource);
        let rows = index::extract(&resource_type, &resource);
        let json = resource_json(&resource, numbers)?;
        Ok(Prepared {
            resource_type,
            id,
            patient,
            json,
            rows,
        })
    }

    /// True for a Patient (bulk loads count them for progress).
    pub(crate) fn is_patient(&self) -> bool {
        self.resource_type == "Patient"
    }
}

/// Inserts a prepared resource known not to exist yet (no lookup first). Fails on a duplicate id.
pub(crate) fn insert_prepared(
    conn: &Connection,
    prepared: Prepared,
    now: &str,
) -> Result<ResourceRow, SandboxError> {
    let Prepared {
        resource_type,
        id,
        patient,
        json,
        rows,
    } = prepared;
    conn.prepare_cached(
        "INSERT INTO fhir_resources (type, id, version, last_updated, patient, deleted, json) VALUES (?1, ?2, 1, ?3, ?4, 0, ?5)",
    )?
    .execute(params![resource_type, id, now, patient, json])?;
    let rid = conn.last_insert_rowid();
    insert_index(conn, rid, &rows)?;
    Ok(ResourceRow {
        rid,
        resource_type,
        id,
        version: 1,
        last_updated: now.to_owned(),
        patient,
        deleted: false,
        json: Some(json),
    })
}

/// Inserts a resource known not to exist yet. Fails on a duplicate id.
pub(crate) fn insert_fresh(
    conn: &Connection,
    resource: Value,
    numbers: &NumberTexts,
    now: &str,
) -> Result<ResourceRow, SandboxError> {
    insert_prepared(conn, Prepared::with_numbers(resource, numbers, now)?, now)
}

/// [`put_sent`] for a resource built here (its numbers are written as `serde_json` writes them).
pub(crate) fn put_resource(conn: &Connection, resource: Value, now: &str) -> Result<Written, SandboxError> {
    put_sent(conn, Sent::from(resource), now)
}

/// Creates or updates the resource sent (its `resourceType` and `id` say which), keeping the previous version in
/// the history and re-indexing it; its numbers are stored as the client wrote them. The caller checks
/// preconditions (`If-Match`) on [`current_row`] first.
pub(crate) fn put_sent(conn: &Connection, sent: Sent, now: &str) -> Result<Written, SandboxError> {
    let Sent {
        mut resource,
        numbers,
    } = sent;
    let numbers = &numbers;
    let (resource_type, id) = type_and_id(&resource)?;
    let Some(current) = current_row(conn, &resource_type, &id)? else {
        let row = insert_fresh(conn, resource.clone(), numbers, now)?;
        stamp(&mut resource, 1, now)?;
        return Ok(Written {
            row,
            created: true,
            resource,
        });
    };
    archive(conn, &current)?;
    let version = current.version + 1;
    stamp(&mut resource, version, now)?;
    let patient = registry::compartment_patient(&resource_type, &resource);
    let json = resource_json(&resource, numbers)?;
    conn.prepare_cached(
        "UPDATE fhir_resources SET version = ?1, last_updated = ?2, patient = ?3, deleted = 0, json = ?4 WHERE rid = ?5",
    )?
    .execute(params![version, now, patient, json, current.rid])?;
    clear_index(conn, current.rid)?;
    insert_index(conn, current.rid, &index::extract(&resource_type, &resource))?;
    let row = ResourceRow {
        rid: current.rid,
        resource_type,
        id,
        version,
        last_updated: now.to_owned(),
        patient,
        deleted: false,
        json: Some(json),
    };
    Ok(Written {
        row,
        created: current.deleted,
        resource,
    })
}

/// Deletes `type/id`: a new version marked deleted, the old one kept in the history, the index rows dropped.
/// Returns the deleted row, or `None` when the resource never existed. Deleting twice is harmless.
pub(crate) fn delete_resource(
    conn: &Connection,
    resource_type: &str,
    id: &str,
    now: &str,
) -> Result<Option<ResourceRow>, SandboxError> {
    let Some(current) = current_row(conn, resource_type, id)? else {
        return Ok(None);
    };
    if current.deleted {
        return Ok(Some(current));
    }
    archive(conn, &current)?;
    let version = current.version + 1;
    conn.prepare_cached(
        "UPDATE fhir_resources SET version = ?1, last_updated = ?2, deleted = 1, json = NULL WHERE rid = ?3",
    )?
    .execute(params![version, now, current.rid])?;
    clear_index(conn, current.rid)?;
    Ok(Some(ResourceRow {
        version,
        last_updated: now.to_owned(),
        deleted: true,
        json: None,
        ..current
    }))
}

fn archive(conn: &Connection, row: &ResourceRow) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO fhir_history (type, id, version, last_updated, deleted, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![row.resource_type, row.id, row.version, row.last_updated, row.deleted as i64, row.json])?;
    Ok(())
}

fn clear_index(conn: &Connection, rid: i64) -> rusqlite::Result<()> {
    for table in [
        "fhir_idx_string",
        "fhir_idx_token",
        "fhir_idx_date",
        "fhir_idx_ref",
    ] {
        conn.prepare_cached(&format!("DELETE FROM {table} WHERE rid = ?1"))?
            .execute([rid])?;
    }
    Ok(())
}

pub(super) fn insert_index(conn: &Connection, rid: i64, rows: &IndexRows) -> rusqlite::Result<()> {
    if !rows.strings.is_empty() {
        let mut stmt = conn.prepare_cached(
            "INSERT OR IGNORE INTO fhir_idx_string (rid, param, value, raw) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (param, value, raw) in &rows.strings {
            stmt.execute(params![rid, param, value, raw])?;
        }
    }
    if !rows.tokens.is_empty() {
        let mut stmt = conn.prepare_cached(
            "INSERT OR IGNORE INTO fhir_idx_token (rid, param, system, code) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (param, system, code) in &rows.tokens {
            stmt.execute(params![rid, param, system, code])?;
        }
    }
    if !rows.dates.is_empty() {
        let mut stmt = conn.prepare_cached(
            "INSERT OR IGNORE INTO fhir_idx_date (rid, param, lo, hi) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (param, lo, hi) in &rows.dates {
            stmt.execute(params![rid, param, lo, hi])?;
        }
    }
    if !rows.refs.is_empty() {
        let mut stmt = conn
            .prepare_cached("INSERT OR IGNORE INTO fhir_idx_ref (rid, param, target) VALUES (?1, ?2, ?3)")?;
        for (param, target) in &rows.refs {
            stmt.execute(params![rid, param, target])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_starts_with_the_resource_type_and_keeps_every_element() {
        let resource =
            json!({"status": "final", "id": "o1", "resourceType": "Observation", "code": {"text": "t"}});
        let text = resource_json(&resource, &NumberTexts::default()).unwrap();
        assert!(text.starts_with(r#"{"resourceType":"Observation","#), "{text}");
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), resource);
        // Not an object (never stored, but must not fail): written as it is.
        assert_eq!(
            resource_json(&json!([1, 2]), &NumberTexts::default()).unwrap(),
            "[1,2]"
        );
    }
}
