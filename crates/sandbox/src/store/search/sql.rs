//! Conditions as SQL over the resource rows (`r`) and the index tables (`x`): the `WHERE` clause of a search and
//! its `ORDER BY` terms.

use super::model::{Condition, Prefix, Restriction, SortKey, StringMode};
use super::plan;
use crate::registry::{self, ParamKind};
use crate::store::normalize;
use rusqlite::types::Value as Sql;

pub(super) fn where_clause(
    resource_type: &str,
    filters: &[Vec<Condition>],
    restriction: &Restriction,
    sql: &mut String,
    args: &mut Vec<Sql>,
) {
    sql.push_str("r.type = ? AND r.deleted = 0");
    args.push(Sql::Text(resource_type.to_owned()));
    if let Some(patient) = &restriction.patient
        && !registry::is_shared(resource_type)
    {
        sql.push_str(" AND r.patient = ?");
        args.push(Sql::Text(patient.clone()));
    }
    let driver = plan::driver(filters, restriction);
    for (i, group) in filters.iter().enumerate() {
        sql.push_str(" AND ");
        group_sql(group, driver == Some(i), sql, args);
    }
    if let Some(any_of) = &restriction.any_of {
        sql.push_str(" AND (");
        if any_of.is_empty() {
            sql.push('0');
        }
        for (i, all) in any_of.iter().enumerate() {
            if i > 0 {
                sql.push_str(" OR ");
            }
            sql.push_str("(1");
            for group in all {
                sql.push_str(" AND ");
                group_sql(group, false, sql, args);
            }
            sql.push(')');
        }
        sql.push(')');
    }
}

fn group_sql(group: &[Condition], drive: bool, sql: &mut String, args: &mut Vec<Sql>) {
    sql.push('(');
    for (i, c) in group.iter().enumerate() {
        if i > 0 {
            sql.push_str(" OR ");
        }
        condition_sql(c, drive, sql, args);
    }
    if group.is_empty() {
        sql.push('0');
    }
    sql.push(')');
}

/// One condition as SQL on the resource row `r`: a column test, or a test on one of the index tables. With
/// `drive`, an index condition selects the candidate rows (`r.rid IN (SELECT x.rid …)`); otherwise it is checked
/// per row (`EXISTS (SELECT 1 … AND x.rid = r.rid)`).
fn condition_sql(c: &Condition, drive: bool, sql: &mut String, args: &mut Vec<Sql>) {
    match c {
        Condition::Id(id) => {
            sql.push_str("r.id = ?");
            args.push(Sql::Text(id.clone()));
        }
        Condition::Compartment(patient) => {
            sql.push_str("r.patient = ?");
            args.push(Sql::Text(patient.clone()));
        }
        Condition::LastUpdated(prefix, lo, hi) => {
            let lo_text = normalize::instant_text_from_secs(*lo);
            let hi_text = normalize::instant_text_from_secs(*hi).replace(".000Z", ".999Z");
            instant_test(
                *prefix,
                "r.last_updated",
                Sql::Text(lo_text),
                Sql::Text(hi_text),
                sql,
                args,
            );
        }
        Condition::Text { param, mode, value } => {
            open_index("fhir_idx_string", param, drive, sql, args);
            text_test(*mode, value, sql, args);
            sql.push(')');
        }
        Condition::Token {
            param,
            system,
            code,
            negate,
        } => {
            if *negate {
                sql.push_str("NOT ");
            }
            open_index("fhir_idx_token", param, drive, sql, args);
            let mut tests = Vec::with_capacity(2);
            if let Some(code) = code {
                tests.push("x.code = ?");
                args.push(Sql::Text(code.clone()));
            }
            if let Some(system) = system {
                tests.push("x.system = ?");
                args.push(Sql::Text(system.clone()));
            }
            if tests.is_empty() {
                tests.push("1");
            }
            sql.push_str(&tests.join(" AND "));
            sql.push(')');
        }
        Condition::Date {
            param,
            prefix,
            lo,
            hi,
        } => {
            open_index("fhir_idx_date", param, drive, sql, args);
            range_test(*prefix, *lo, *hi, sql, args);
            sql.push(')');
        }
        Condition::Reference { param, target } => {
            open_index("fhir_idx_ref", param, drive, sql, args);
            sql.push_str("x.target = ?)");
            args.push(Sql::Text(target.clone()));
        }
        Condition::CareDate { params, lo, hi } => care_date_sql(params, *lo, *hi, sql, args),
        Condition::UpdatedSince(instant) => {
            sql.push_str("r.last_updated >= ?");
            args.push(Sql::Text(instant.clone()));
        }
        Condition::Never => sql.push('0'),
    }
}

/// Opens a test on the index `table`'s rows of `param` (`x`), ending in `AND ` for the caller's test and its `)`.
fn open_index(table: &str, param: &str, drive: bool, sql: &mut String, args: &mut Vec<Sql>) {
    if drive {
        sql.push_str(&format!("r.rid IN (SELECT x.rid FROM {table} x WHERE "));
    } else {
        sql.push_str(&format!(
            "EXISTS (SELECT 1 FROM {table} x WHERE x.rid = r.rid AND "
        ));
    }
    sql.push_str("x.param = ? AND ");
    args.push(Sql::Text(param.to_owned()));
}

/// A string parameter's test on `x`: a prefix of the normalized value (the default), the exact raw value, or a
/// part of the normalized value.
fn text_test(mode: StringMode, value: &str, sql: &mut String, args: &mut Vec<Sql>) {
    match mode {
        StringMode::Prefix => {
            sql.push_str("x.value >= ? AND x.value < ?");
            args.push(Sql::Text(value.to_owned()));
            args.push(Sql::Text(format!("{value}\u{10FFFF}")));
        }
        StringMode::Exact => {
            sql.push_str("x.raw = ?");
            args.push(Sql::Text(value.to_owned()));
        }
        StringMode::Contains => {
            sql.push_str("instr(x.value, ?) > 0");
            args.push(Sql::Text(value.to_owned()));
        }
    }
}

/// [`Condition::CareDate`]: no date row of `params` at all, or one that overlaps `[lo, hi]`.
fn care_date_sql(params: &[&str], lo: i64, hi: i64, sql: &mut String, args: &mut Vec<Sql>) {
    if params.is_empty() {
        sql.push('1');
        return;
    }
    let placeholders = vec!["?"; params.len()].join(", ");
    let param_args = || params.iter().map(|p| Sql::Text((*p).to_owned()));
    sql.push_str(&format!(
        "(NOT EXISTS (SELECT 1 FROM fhir_idx_date x WHERE x.rid = r.rid AND x.param IN ({placeholders})) \
         OR EXISTS (SELECT 1 FROM fhir_idx_date x WHERE x.rid = r.rid AND x.param IN ({placeholders}) AND "
    ));
    args.extend(param_args());
    args.extend(param_args());
    range_test(Prefix::Ap, lo, hi, sql, args);
    sql.push_str("))");
}

/// The FHIR R4 prefix semantics for a target range `[x.lo, x.hi]` against the value's `[lo, hi]`.
fn range_test(prefix: Prefix, lo: i64, hi: i64, sql: &mut String, args: &mut Vec<Sql>) {
    let (text, binds): (&str, Vec<i64>) = match prefix {
        Prefix::Eq => ("(x.lo >= ? AND x.hi <= ?)", vec![lo, hi]),
        Prefix::Ne => ("NOT (x.lo >= ? AND x.hi <= ?)", vec![lo, hi]),
        Prefix::Gt => ("x.hi > ?", vec![hi]),
        Prefix::Lt => ("x.lo < ?", vec![lo]),
        Prefix::Ge => ("(x.hi > ? OR (x.lo >= ? AND x.hi <= ?))", vec![hi, lo, hi]),
        Prefix::Le => ("(x.lo < ? OR (x.lo >= ? AND x.hi <= ?))", vec![lo, lo, hi]),
        Prefix::Sa => ("x.lo > ?", vec![hi]),
        Prefix::Eb => ("x.hi < ?", vec![lo]),
        Prefix::Ap => ("(x.lo <= ? AND x.hi >= ?)", vec![hi, lo]),
    };
    sql.push_str(text);
    args.extend(binds.into_iter().map(Sql::Integer));
}

/// The same for an instant column (`_lastUpdated`), whose range is a single point.
fn instant_test(prefix: Prefix, column: &str, lo: Sql, hi: Sql, sql: &mut String, args: &mut Vec<Sql>) {
    let (text, binds) = match prefix {
        Prefix::Eq | Prefix::Ap => (format!("({column} >= ? AND {column} <= ?)"), vec![lo, hi]),
        Prefix::Ne => (format!("NOT ({column} >= ? AND {column} <= ?)"), vec![lo, hi]),
        Prefix::Gt | Prefix::Sa => (format!("{column} > ?"), vec![hi]),
        Prefix::Lt | Prefix::Eb => (format!("{column} < ?"), vec![lo]),
        Prefix::Ge => (format!("{column} >= ?"), vec![lo]),
        Prefix::Le => (format!("{column} <= ?"), vec![hi]),
    };
    sql.push_str(&text);
    args.extend(binds);
}

pub(super) fn order_term(key: &SortKey, sql: &mut String, args: &mut Vec<Sql>) {
    let dir = if key.descending { "DESC" } else { "ASC" };
    let expr = match (key.param.as_str(), key.kind) {
        ("_id", _) => {
            sql.push_str(&format!("r.id {dir}"));
            return;
        }
        ("_lastUpdated", _) => {
            sql.push_str(&format!("r.last_updated {dir}"));
            return;
        }
        (_, Some(ParamKind::Date)) => {
            let (agg, col) = if key.descending {
                ("MAX", "hi")
            } else {
                ("MIN", "lo")
            };
            format!("(SELECT {agg}(x.{col}) FROM fhir_idx_date x WHERE x.rid = r.rid AND x.param = ?)")
        }
        (_, Some(ParamKind::Token)) => {
            "(SELECT MIN(x.code) FROM fhir_idx_token x WHERE x.rid = r.rid AND x.param = ?)".to_owned()
        }
        _ => "(SELECT MIN(x.value) FROM fhir_idx_string x WHERE x.rid = r.rid AND x.param = ?)".to_owned(),
    };
    // Resources without the value sort last either way (a nameless patient at the end of a name-sorted list).
    sql.push_str(&format!("{expr} IS NULL, {expr} {dir}"));
    args.push(Sql::Text(key.param.clone()));
    args.push(Sql::Text(key.param.clone()));
}
