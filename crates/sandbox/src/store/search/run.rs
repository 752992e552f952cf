//! Running a search on the database: one page and its total, every match (for `$everything`), and the resources
//! the `_include`s reach.

use super::model::{Condition, Restriction, SearchRequest, SearchResult};
use super::sql::{order_term, where_clause};
use crate::error::SandboxError;
use crate::registry::ParamKind;
use crate::store::write::{ResourceRow, current_row, rows_by_rid};
use rusqlite::Connection;
use rusqlite::types::Value as Sql;
use std::collections::HashSet;

/// Runs a search: the total and one page of matches.
pub fn execute(
    conn: &Connection,
    request: &SearchRequest,
    restriction: &Restriction,
) -> Result<SearchResult, SandboxError> {
    let mut sql_where = String::new();
    let mut args: Vec<Sql> = Vec::new();
    where_clause(
        &request.resource_type,
        &request.filters,
        restriction,
        &mut sql_where,
        &mut args,
    );

    let total: i64 = conn
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM fhir_resources r WHERE {sql_where}"
        ))?
        .query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?;
    if request.summary_count {
        return Ok(SearchResult {
            total: usize::try_from(total).unwrap_or(0),
            matches: Vec::new(),
        });
    }
    let mut order = String::new();
    for key in &request.sort {
        order_term(key, &mut order, &mut args);
        order.push_str(", ");
    }
    order.push_str("r.rid");
    args.push(Sql::Integer(i64::try_from(request.count).unwrap_or(i64::MAX)));
    args.push(Sql::Integer(i64::try_from(request.offset).unwrap_or(i64::MAX)));
    let sql =
        format!("SELECT r.rid FROM fhir_resources r WHERE {sql_where} ORDER BY {order} LIMIT ? OFFSET ?");
    let rids = conn
        .prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(args.iter()), |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(SearchResult {
        total: usize::try_from(total).unwrap_or(0),
        matches: rows_by_rid(conn, &rids)?,
    })
}

/// Every match of `filters` on `resource_type` under `restriction`, as row ids in insertion order (for
/// `$everything`, which pages over several types at once).
pub fn matching_rids(
    conn: &Connection,
    resource_type: &str,
    filters: &[Vec<Condition>],
    restriction: &Restriction,
) -> Result<Vec<i64>, SandboxError> {
    let mut sql_where = String::new();
    let mut args: Vec<Sql> = Vec::new();
    where_clause(resource_type, filters, restriction, &mut sql_where, &mut args);
    let rids = conn
        .prepare_cached(&format!(
            "SELECT r.rid FROM fhir_resources r WHERE {sql_where} ORDER BY r.rid"
        ))?
        .query_map(rusqlite::params_from_iter(args.iter()), |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rids)
}

/// The resources the `_include`s of `request` reach from `matches` (deduplicated, without the matches themselves
/// and without deleted targets). The caller still checks that the token may read each one.
pub fn includes(
    conn: &Connection,
    request: &SearchRequest,
    matches: &[ResourceRow],
) -> Result<Vec<ResourceRow>, SandboxError> {
    let mut seen: HashSet<String> = matches.iter().map(ResourceRow::reference).collect();
    let mut out = Vec::new();
    for include in &request.includes {
        let mut targets: Vec<String> = Vec::new();
        for row in matches {
            match include.param.kind {
                ParamKind::Compartment => {
                    if let Some(p) = &row.patient {
                        targets.push(format!("Patient/{p}"));
                    }
                }
                _ => {
                    let mut stmt =
                        conn.prepare_cached("SELECT target FROM fhir_idx_ref WHERE rid = ?1 AND param = ?2")?;
                    let found = stmt
                        .query_map(rusqlite::params![row.rid, include.param.name], |r| {
                            r.get::<_, String>(0)
                        })?
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    targets.extend(found);
                }
            }
        }
        for target in targets {
            let Some((t, id)) = target.split_once('/') else {
                continue;
            };
            if include.target_type.as_deref().is_some_and(|wanted| wanted != t)
                || !seen.insert(target.clone())
            {
                continue;
            }
            if let Some(row) = current_row(conn, t, id)?.filter(|r| !r.deleted) {
                out.push(row);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::normalize;

    #[test]
    fn care_dates_narrow_dated_resources_and_keep_undated_ones() {
        use crate::store::{Store, put_resource};
        use serde_json::json;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("sandbox.db")).unwrap();
        let encounter = |id: &str, start: Option<&str>| {
            let mut e = json!({"resourceType": "Encounter", "id": id, "status": "finished",
                "class": {"code": "AMB"}, "subject": {"reference": "Patient/p1"}});
            if let Some(start) = start {
                e["period"] = json!({"start": start, "end": start});
            }
            e
        };
        store
            .write(|tx| {
                put_resource(
                    tx,
                    json!({"resourceType": "Patient", "id": "p1"}),
                    "2024-01-01T00:00:00.000Z",
                )?;
                put_resource(
                    tx,
                    encounter("e2023", Some("2023-06-01")),
                    "2024-01-01T00:00:00.000Z",
                )?;
                put_resource(
                    tx,
                    encounter("e2024", Some("2024-06-01")),
                    "2024-05-01T12:00:00.500Z",
                )?;
                put_resource(tx, encounter("undated", None), "2024-05-01T12:00:00.499Z")?;
                Ok::<_, SandboxError>(())
            })
            .unwrap();
        let ids = |filters: Vec<Vec<Condition>>| -> Vec<String> {
            store
                .with_reader(|conn| {
                    let rids = matching_rids(conn, "Encounter", &filters, &Restriction::none())?;
                    Ok::<_, SandboxError>(rows_by_rid(conn, &rids)?.into_iter().map(|r| r.id).collect())
                })
                .unwrap()
        };
        let (lo, hi) = normalize::date_range("2024").unwrap();
        let in_2024 = Condition::CareDate {
            params: &["date"],
            lo,
            hi,
        };
        assert_eq!(ids(vec![vec![in_2024.clone()]]), ["e2024", "undated"]);
        let no_params = Condition::CareDate { params: &[], lo, hi };
        assert_eq!(ids(vec![vec![no_params]]).len(), 3);
        let since = Condition::UpdatedSince("2024-05-01T12:00:00.500Z".into());
        assert_eq!(ids(vec![vec![since.clone()]]), ["e2024"]);
        assert_eq!(ids(vec![vec![in_2024], vec![since]]), ["e2024"]);
    }
}
