//! Whether one resource satisfies conditions: the current version by SQL on its row, an older version in Rust on
//! its own extracted values (the index holds only the current version's).

use super::model::{Condition, Prefix, Restriction, StringMode};
use super::sql::where_clause;
use crate::error::SandboxError;
use crate::store::index;
use crate::store::normalize;
use crate::store::write::ResourceRow;
use rusqlite::Connection;
use rusqlite::types::Value as Sql;

/// True when the row `rid` satisfies `filters` (used to apply scope constraints to a read).
pub fn row_matches(
    conn: &Connection,
    rid: i64,
    resource_type: &str,
    any_of: &[Vec<Vec<Condition>>],
) -> Result<bool, SandboxError> {
    let mut sql_where = String::new();
    let mut args: Vec<Sql> = Vec::new();
    let restriction = Restriction {
        patient: None,
        any_of: Some(any_of.to_vec()),
    };
    where_clause(resource_type, &[], &restriction, &mut sql_where, &mut args);
    args.push(Sql::Integer(rid));
    let n: i64 = conn
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM fhir_resources r WHERE {sql_where} AND r.rid = ?"
        ))?
        .query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?;
    Ok(n > 0)
}

/// True when one version of a resource (`row`, whose content is `resource`) satisfies `any_of`, evaluated on that
/// version's own values rather than on the index, which holds only the current version's. Scope constraints on
/// history and vread use this, so an old version is judged by what it said then.
pub fn version_matches(
    row: &ResourceRow,
    resource: &serde_json::Value,
    any_of: &[Vec<Vec<Condition>>],
) -> bool {
    let values = index::extract(&row.resource_type, resource);
    any_of.iter().any(|all| {
        all.iter()
            .all(|group| group.iter().any(|c| condition_holds(c, row, &values)))
    })
}

/// [`condition_sql`]'s test, on one version's extracted values.
fn condition_holds(c: &Condition, row: &ResourceRow, values: &index::IndexRows) -> bool {
    match c {
        Condition::Id(id) => row.id == *id,
        Condition::Compartment(patient) => row.patient.as_deref() == Some(patient.as_str()),
        Condition::LastUpdated(prefix, lo, hi) => {
            let lo = normalize::instant_text_from_secs(*lo);
            let hi = normalize::instant_text_from_secs(*hi).replace(".000Z", ".999Z");
            let at = row.last_updated.as_str();
            let within = at >= lo.as_str() && at <= hi.as_str();
            match prefix {
                Prefix::Eq | Prefix::Ap => within,
                Prefix::Ne => !within,
                Prefix::Gt | Prefix::Sa => at > hi.as_str(),
                Prefix::Lt | Prefix::Eb => at < lo.as_str(),
                Prefix::Ge => at >= lo.as_str(),
                Prefix::Le => at <= hi.as_str(),
            }
        }
        Condition::Text { param, mode, value } => values.strings.iter().any(|(p, normalized, raw)| {
            *p == *param
                && match mode {
                    StringMode::Prefix => normalized.starts_with(value.as_str()),
                    StringMode::Exact => raw == value,
                    StringMode::Contains => normalized.contains(value.as_str()),
                }
        }),
        Condition::Token {
            param,
            system,
            code,
            negate,
        } => {
            let found = values.tokens.iter().any(|(p, s, k)| {
                *p == *param
                    && code.as_ref().is_none_or(|code| code == k)
                    && system.as_ref().is_none_or(|system| system == s)
            });
            found != *negate
        }
        Condition::Date {
            param,
            prefix,
            lo,
            hi,
        } => values
            .dates
            .iter()
            .any(|(p, x_lo, x_hi)| p == param && range_holds(*prefix, *lo, *hi, *x_lo, *x_hi)),
        Condition::Reference { param, target } => {
            values.refs.iter().any(|(p, t)| *p == *param && t == target)
        }
        Condition::CareDate { params, lo, hi } => {
            let mut care = values
                .dates
                .iter()
                .filter(|(p, _, _)| params.contains(p))
                .peekable();
            care.peek().is_none()
                || care.any(|(_, x_lo, x_hi)| range_holds(Prefix::Ap, *lo, *hi, *x_lo, *x_hi))
        }
        Condition::UpdatedSince(instant) => row.last_updated.as_str() >= instant.as_str(),
        Condition::Never => false,
    }
}

/// [`range_test`] in Rust: the value's `[lo, hi]` against a resource's `[x_lo, x_hi]`.
fn range_holds(prefix: Prefix, lo: i64, hi: i64, x_lo: i64, x_hi: i64) -> bool {
    let within = x_lo >= lo && x_hi <= hi;
    match prefix {
        Prefix::Eq => within,
        Prefix::Ne => !within,
        Prefix::Gt => x_hi > hi,
        Prefix::Lt => x_lo < lo,
        Prefix::Ge => x_hi > hi || within,
        Prefix::Le => x_lo < lo || within,
        Prefix::Sa => x_lo > hi,
        Prefix::Eb => x_hi < lo,
        Prefix::Ap => x_lo <= hi && x_hi >= lo,
    }
}
