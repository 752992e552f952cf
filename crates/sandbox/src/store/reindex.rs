//! The search index rebuilt when the search parameters change, so a parameter added to the registry
//! ([`crate::registry`]) or an extraction rule changed works on a database created before it.
//!
//! The database records which version of the parameters its index rows were extracted with (`fhir_meta`'s
//! `index` key, [`index_version`]). When a store opens a database whose version differs, or one with resources
//! but no version (written before versions were recorded), every current resource is indexed again, in one
//! transaction; the history and the resources' own text are not touched.

use super::index;
use super::write::insert_index;
use crate::error::SandboxError;
use crate::registry::{self, ResourceKind};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

/// Raise when `index::extract` reads a resource differently with the same parameters (the parameters themselves
/// are part of the version already).
const EXTRACTION_RULES: u32 = 1;

/// The version of the search index: a digest of every registered type's search parameters (name, kind, paths,
/// target), of those of types without an entry, and of `EXTRACTION_RULES`. Only what decides the index rows is in
/// it: a type's compartment, care dates or generator can change without a rebuild.
pub fn index_version() -> String {
    version_of(registry::KINDS)
}

/// [`index_version`] for the table `kinds`.
fn version_of(kinds: &[ResourceKind]) -> String {
    let params: Vec<_> = kinds.iter().map(|k| (k.name, k.params())).collect();
    let mut digest = Sha256::new();
    digest.update(
        format!(
            "rules={EXTRACTION_RULES};types={params:?};unregistered={:?}",
            registry::unregistered_params()
        )
        .as_bytes(),
    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{ParamKind, SearchParam};

    /// `KINDS` with Patient's parameters replaced.
    fn with_patient_params(params: &'static [SearchParam]) -> Vec<ResourceKind> {
        registry::KINDS
            .iter()
            .map(|k| match k.name {
                "Patient" => ResourceKind {
                    search: Some(params),
                    ..*k
                },
                _ => *k,
            })
            .collect()
    }

    const FAMILY: &[SearchParam] = &[SearchParam {
        name: "family",
        kind: ParamKind::String,
        paths: &["name.family"],
        target: None,
    }];
    const FAMILY_ELSEWHERE: &[SearchParam] = &[SearchParam {
        name: "family",
        kind: ParamKind::String,
        paths: &["name.family", "contact.name.family"],
        target: None,
    }];
    const FAMILY_AS_TOKEN: &[SearchParam] = &[SearchParam {
        name: "family",
        kind: ParamKind::Token,
        paths: &["name.family"],
        target: None,
    }];

    #[test]
    fn the_version_changes_with_a_parameter_and_only_with_what_decides_index_rows() {
        assert_eq!(version_of(registry::KINDS), index_version());
        let one = version_of(&with_patient_params(FAMILY));
        assert_ne!(one, index_version(), "a parameter removed");
        assert_ne!(
            one,
            version_of(&with_patient_params(FAMILY_ELSEWHERE)),
            "a path added"
        );
        assert_ne!(
            one,
            version_of(&with_patient_params(FAMILY_AS_TOKEN)),
            "the kind changed"
        );
        assert_eq!(
            one,
            version_of(&with_patient_params(FAMILY)),
            "the same table, the same version"
        );

        let care_dates_changed: Vec<ResourceKind> = registry::KINDS
            .iter()
            .map(|k| ResourceKind {
                care_dates: &[],
                ..*k
            })
            .collect();
        assert_eq!(version_of(&care_dates_changed), index_version());
    }
}
