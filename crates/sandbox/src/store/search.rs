//! FHIR search: a query string parsed into a [`SearchRequest`], run as SQL over the index tables.
//!
//! Repeated parameters are ANDed, comma-separated values ORed. Access rules arrive as a [`Restriction`] (the
//! patient compartment and the scopes' `?category=…` constraints) and become part of the same SQL, so a page,
//! its `total` and its `next` link never count what the token may not see.

use super::index;
use super::normalize;
use super::write::{ResourceRow, current_row, rows_by_rid};
use crate::error::SandboxError;
use crate::registry::{self, ParamKind, SearchParam};
use rusqlite::Connection;
use rusqlite::types::Value as Sql;
use std::collections::HashSet;

/// The page size when `_count` is not given.
pub const DEFAULT_COUNT: usize = 50;
/// The largest page served: a larger `_count` is served as this many, with a `next` link (as HAPI clamps to its
/// maximum page size).
pub const MAX_COUNT: usize = 1000;
/// The most comma-separated values one search parameter may OR together (100); more is refused with a message
/// (SQLite would otherwise fail on the size of the query, ~1,000 values, with "Expression tree is too large").
pub const MAX_SEARCH_VALUES: usize = 100;
/// The most query parameters one search may carry, `_count`, `_sort` and the like included (50); more is refused.
pub const MAX_SEARCH_PARAMETERS: usize = 50;

/// Parameters every search accepts and ignores (formatting hints the server does not need).
const IGNORED: &[&str] = &["_format", "_pretty", "_elements", "_total"];

/// A date-search prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// `eq` (the default): the resource's range lies within the value's.
    Eq,
    /// `ne`: not `eq`.
    Ne,
    /// `lt`: starts before the value.
    Lt,
    /// `gt`: ends after the value.
    Gt,
    /// `le`: `lt` or `eq`.
    Le,
    /// `ge`: `gt` or `eq`.
    Ge,
    /// `sa`: starts after the value ends.
    Sa,
    /// `eb`: ends before the value starts.
    Eb,
    /// `ap`: overlaps the value.
    Ap,
}

/// How a string parameter matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringMode {
    /// Starts with the value (case- and accent-insensitive); the default.
    Prefix,
    /// `:exact`: equals the value, case-sensitive.
    Exact,
    /// `:contains`: contains the value anywhere.
    Contains,
}

/// One search condition on one parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `_id`.
    Id(String),
    /// `_lastUpdated`.
    LastUpdated(Prefix, i64, i64),
    /// `patient` / `subject`: in this patient's compartment.
    Compartment(String),
    /// A string parameter.
    Text {
        /// The parameter.
        param: &'static str,
        /// How it matches.
        mode: StringMode,
        /// The value (normalized unless `:exact`).
        value: String,
    },
    /// A token parameter (`system|code`; `None` matches any), `negate` for `:not`.
    Token {
        /// The parameter.
        param: &'static str,
        /// The system (`Some("")` for `|code`: no system).
        system: Option<String>,
        /// The code (`None` for `system|`).
        code: Option<String>,
        /// `:not`.
        negate: bool,
    },
    /// A date parameter's range test.
    Date {
        /// The parameter.
        param: &'static str,
        /// The comparison.
        prefix: Prefix,
        /// The value's first second (Unix time).
        lo: i64,
        /// The value's last second.
        hi: i64,
    },
    /// A reference parameter: `Type/id`.
    Reference {
        /// The parameter.
        param: &'static str,
        /// `Type/id`.
        target: String,
    },
    /// `$everything`'s `start` / `end`: one of the resource's care dates (its values of the date parameters
    /// `params`) overlaps `[lo, hi]`, or the resource has no care date at all (undated resources stay in).
    CareDate {
        /// The date parameters that hold the type's care dates (none: every resource of the type is undated).
        params: &'static [&'static str],
        /// The range's first second (Unix time).
        lo: i64,
        /// The range's last second.
        hi: i64,
    },
    /// `$everything`'s `_since`: `meta.lastUpdated` is at or after this instant, written as
    /// [`normalize::instant_text`] writes it (so text order is time order).
    UpdatedSince(String),
    /// Matches nothing (a reference to a type that cannot match, a constraint the server cannot evaluate).
    Never,
}

/// A sort key.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    /// `_id`, `_lastUpdated` or a parameter of the type.
    pub param: String,
    /// The parameter's kind (`None` for `_id` / `_lastUpdated`).
    kind: Option<ParamKind>,
    /// Descending (`-date`).
    pub descending: bool,
}

/// An `_include`: follow `param` from the matches, optionally only to `target_type`.
#[derive(Debug, Clone, PartialEq)]
pub struct Include {
    /// The reference parameter.
    pub param: &'static SearchParam,
    /// Only include targets of this type.
    pub target_type: Option<String>,
}

/// A parsed search.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// The resource type searched.
    pub resource_type: String,
    /// AND of ORs.
    pub filters: Vec<Vec<Condition>>,
    /// Sort keys, most significant first.
    pub sort: Vec<SortKey>,
    /// Page size.
    pub count: usize,
    /// Matches skipped (paging).
    pub offset: usize,
    /// `_include`s.
    pub includes: Vec<Include>,
    /// `_summary=count` or `_count=0`: only the total is wanted.
    pub summary_count: bool,
    /// The query parameters that define the search (without `_count` / `_offset`), for `self` / `next` links.
    pub link_params: Vec<(String, String)>,
}

/// Access rules that narrow a search: the caller's patient compartment and the scopes' constraints.
#[derive(Debug, Clone, Default)]
pub struct Restriction {
    /// Only resources in this patient's compartment (shared types excepted).
    pub patient: Option<String>,
    /// Only resources matching one of these condition lists (each an AND of ORs); `None` = no constraint.
    pub any_of: Option<Vec<Vec<Vec<Condition>>>>,
}

impl Restriction {
    /// No restriction.
    pub fn none() -> Self {
        Self::default()
    }
}

/// One page of results.
#[derive(Debug)]
pub struct SearchResult {
    /// All matches (not just this page).
    pub total: usize,
    /// This page's matches.
    pub matches: Vec<ResourceRow>,
}

fn invalid(reason: impl Into<String>) -> SandboxError {
    SandboxError::InvalidSearch {
        reason: reason.into(),
    }
}

impl SearchRequest {
    /// Parses the query parameters of a search on `resource_type`. Unknown parameters and modifiers are
    /// rejected with a message naming them (and the supported ones), rather than silently widening the search.
    pub fn parse(resource_type: &str, pairs: &[(String, String)]) -> Result<SearchRequest, SandboxError> {
        let mut request = SearchRequest {
            resource_type: resource_type.to_owned(),
            filters: Vec::new(),
            sort: Vec::new(),
            count: DEFAULT_COUNT,
            offset: 0,
            includes: Vec::new(),
            summary_count: false,
            link_params: Vec::new(),
        };
        if pairs.len() > MAX_SEARCH_PARAMETERS {
            return Err(invalid(format!(
                "the search has {} parameters, more than the {MAX_SEARCH_PARAMETERS} this server takes in one \
                 search; narrow it, or split it into several searches",
                pairs.len()
            )));
        }
        for (key, value) in pairs {
            let (name, modifier) = match key.split_once(':') {
                Some((n, m)) => (n, Some(m)),
                None => (key.as_str(), None),
            };
            if name != "_count" && name != "_offset" {
                request.link_params.push((key.clone(), value.clone()));
            }
            match name {
                "_count" => {
                    let n: usize = value
                        .trim()
                        .parse()
                        .map_err(|_| invalid(format!("`_count={value}` is not a whole number")))?;
                    request.count = n.min(MAX_COUNT);
                    if n == 0 {
                        request.summary_count = true;
                    }
                }
                "_offset" => {
                    request.offset = value
                        .trim()
                        .parse()
                        .map_err(|_| invalid(format!("`_offset={value}` is not a whole number")))?;
                }
                "_summary" => request.summary_count |= value == "count",
                "_sort" => request.sort = parse_sort(resource_type, value)?,
                "_include" => request.includes.push(parse_include(resource_type, value)?),
                n if IGNORED.contains(&n) => {}
                _ => request
                    .filters
                    .push(parse_condition(resource_type, name, modifier, value)?),
            }
        }
        Ok(request)
    }
}

/// Parses one `name[:modifier]=value[,value…]` into the ORed conditions it stands for: the values split
/// (`split_values`), then each read by what the parameter is (`_id` and `_lastUpdated`, which every type has, or
/// one of the type's declared parameters, `value_condition`).
pub fn parse_condition(
    resource_type: &str,
    name: &str,
    modifier: Option<&str>,
    value: &str,
) -> Result<Vec<Condition>, SandboxError> {
    let values = split_values(name, value)?;
    let no_modifier = || match modifier {
        Some(m) => Err(unsupported_modifier(name, m)),
        None => Ok(()),
    };
    match name {
        "_id" => {
            no_modifier()?;
            Ok(values.into_iter().map(|v| Condition::Id(v.to_owned())).collect())
        }
        "_lastUpdated" => {
            no_modifier()?;
            values
                .into_iter()
                .map(|v| {
                    let (prefix, lo, hi) = parse_date(name, v)?;
                    Ok(Condition::LastUpdated(prefix, lo, hi))
                })
                .collect()
        }
        _ => {
            let param = declared_param(resource_type, name)?;
            values
                .into_iter()
                .map(|v| value_condition(param, modifier, v))
                .collect()
        }
    }
}

/// A parameter's comma-separated values (ORed), refusing chains, empty values and more than
/// [`MAX_SEARCH_VALUES`].
fn split_values<'v>(name: &str, value: &'v str) -> Result<Vec<&'v str>, SandboxError> {
    if name.contains('.') {
        return Err(invalid(format!(
            "chained parameters such as `{name}` are not supported"
        )));
    }
    let values: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return Err(invalid(format!("the parameter `{name}` has no value")));
    }
    if values.len() > MAX_SEARCH_VALUES {
        return Err(invalid(format!(
            "`{name}` has {} comma-separated values, more than the {MAX_SEARCH_VALUES} this server ORs together in \
             one parameter; split the search into several",
            values.len()
        )));
    }
    Ok(values)
}

fn unsupported_modifier(name: &str, modifier: &str) -> SandboxError {
    invalid(format!("the modifier `:{modifier}` is not supported on `{name}`"))
}

/// `name` as one of `resource_type`'s search parameters; the error lists those it has.
fn declared_param(resource_type: &str, name: &str) -> Result<&'static SearchParam, SandboxError> {
    registry::param(resource_type, name).ok_or_else(|| {
        let mut known: Vec<&str> = vec!["_id", "_lastUpdated"];
        known.extend(registry::params_for(resource_type).iter().map(|p| p.name));
        invalid(format!(
            "`{name}` is not a supported search parameter of {resource_type} (supported: {}; and _count, _offset, _sort, _include, _summary)",
            known.join(", ")
        ))
    })
}

/// One value of a declared parameter as a condition, read by the parameter's kind.
fn value_condition(
    param: &'static SearchParam,
    modifier: Option<&str>,
    v: &str,
) -> Result<Condition, SandboxError> {
    match param.kind {
        ParamKind::String => {
            let mode = match modifier {
                None => StringMode::Prefix,
                Some("exact") => StringMode::Exact,
                Some("contains") => StringMode::Contains,
                Some(m) => return Err(unsupported_modifier(param.name, m)),
            };
            let value = if mode == StringMode::Exact {
                v.to_owned()
            } else {
                normalize::normalize(v)
            };
            Ok(Condition::Text {
                param: param.name,
                mode,
                value,
            })
        }
        ParamKind::Token => {
            let negate = match modifier {
                None => false,
                Some("not") => true,
                Some(m) => return Err(unsupported_modifier(param.name, m)),
            };
            let (system, code) = match v.split_once('|') {
                Some((s, c)) => (Some(s.to_owned()), (!c.is_empty()).then(|| c.to_owned())),
                None => (None, Some(v.to_owned())),
            };
            Ok(Condition::Token {
                param: param.name,
                system,
                code,
                negate,
            })
        }
        ParamKind::Date => {
            if let Some(m) = modifier {
                return Err(unsupported_modifier(param.name, m));
            }
            let (prefix, lo, hi) = parse_date(param.name, v)?;
            Ok(Condition::Date {
                param: param.name,
                prefix,
                lo,
                hi,
            })
        }
        ParamKind::Reference | ParamKind::Compartment => {
            let target = reference_value(param, modifier, v)?;
            if param.kind == ParamKind::Compartment {
                return Ok(match target.split_once('/') {
                    Some(("Patient", id)) => Condition::Compartment(id.to_owned()),
                    _ => Condition::Never,
                });
            }
            Ok(Condition::Reference {
                param: param.name,
                target,
            })
        }
    }
}

fn reference_value(param: &SearchParam, modifier: Option<&str>, v: &str) -> Result<String, SandboxError> {
    if let Some((t, id)) = registry::reference_target(v) {
        return Ok(format!("{t}/{id}"));
    }
    let target_type = match modifier {
        Some(m) if registry::is_valid_type(m) => Some(m),
        Some(m) => {
            return Err(invalid(format!(
                "the modifier `:{m}` is not supported on `{}`",
                param.name
            )));
        }
        None => param.target,
    };
    match target_type {
        Some(t) if registry::is_valid_id(v) => Ok(format!("{t}/{v}")),
        _ => Err(invalid(format!(
            "`{}={v}` is not a reference (write `Type/id` or an id)",
            param.name
        ))),
    }
}

fn parse_date(name: &str, v: &str) -> Result<(Prefix, i64, i64), SandboxError> {
    let prefixes = [
        ("eq", Prefix::Eq),
        ("ne", Prefix::Ne),
        ("lt", Prefix::Lt),
        ("gt", Prefix::Gt),
        ("le", Prefix::Le),
        ("ge", Prefix::Ge),
        ("sa", Prefix::Sa),
        ("eb", Prefix::Eb),
        ("ap", Prefix::Ap),
    ];
    let (prefix, rest) = prefixes
        .iter()
        .find_map(|(p, prefix)| v.strip_prefix(p).map(|rest| (*prefix, rest)))
        .unwrap_or((Prefix::Eq, v));
    let (lo, hi) = normalize::date_range(rest).ok_or_else(|| {
        invalid(format!("`{name}={v}` is not a date: write e.g. `2024`, `2024-03`, `ge2024-03-01` or `lt2024-03-01T10:00:00Z`"))
    })?;
    Ok((prefix, lo, hi))
}

fn parse_sort(resource_type: &str, value: &str) -> Result<Vec<SortKey>, SandboxError> {
    if value.split(',').count() > MAX_SEARCH_VALUES {
        return Err(invalid(format!(
            "`_sort` has more than {MAX_SEARCH_VALUES} keys; sort by a few parameters"
        )));
    }
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|key| {
            let (descending, name) = match key.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, key),
            };
            let kind = match name {
                "_id" | "_lastUpdated" => None,
                _ => match registry::param(resource_type, name) {
                    Some(p) if matches!(p.kind, ParamKind::String | ParamKind::Date | ParamKind::Token) => {
                        Some(p.kind)
                    }
                    _ => return Err(invalid(format!("cannot sort {resource_type} by `{name}`"))),
                },
            };
            Ok(SortKey {
                param: name.to_owned(),
                kind,
                descending,
            })
        })
        .collect()
}

fn parse_include(resource_type: &str, value: &str) -> Result<Include, SandboxError> {
    let mut parts = value.split(':');
    let (source, name, target) = (parts.next(), parts.next(), parts.next());
    let (Some(source), Some(name)) = (source, name) else {
        return Err(invalid(format!(
            "`_include={value}` must read `{resource_type}:parameter[:TargetType]`"
        )));
    };
    if source != resource_type {
        return Err(invalid(format!(
            "`_include={value}` names {source}, but this search is on {resource_type}"
        )));
    }
    match registry::param(resource_type, name) {
        Some(param) if matches!(param.kind, ParamKind::Reference | ParamKind::Compartment) => Ok(Include {
            param,
            target_type: target.map(str::to_owned),
        }),
        _ => Err(invalid(format!(
            "`{name}` is not a reference parameter of {resource_type} that can be included"
        ))),
    }
}

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

fn where_clause(
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
    // Without a patient or id to start from, let one selective index condition drive the query (`rid IN …`);
    // the others are then checked per candidate row (`EXISTS …`).
    let anchored = restriction.patient.is_some()
        || filters.iter().any(|g| {
            g.iter()
                .all(|c| matches!(c, Condition::Compartment(_) | Condition::Id(_)))
        });
    let driver = if anchored {
        None
    } else {
        filters.iter().position(|g| g.len() == 1 && is_driver(&g[0]))
    };
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

fn is_driver(c: &Condition) -> bool {
    matches!(
        c,
        Condition::Text {
            mode: StringMode::Prefix | StringMode::Exact,
            ..
        } | Condition::Token {
            negate: false,
            code: Some(_),
            ..
        } | Condition::Reference { .. }
    )
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

fn order_term(key: &SortKey, sql: &mut String, args: &mut Vec<Sql>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parses_tokens_dates_references_and_paging() {
        let req = SearchRequest::parse(
            "Observation",
            &pairs(&[
                ("patient", "Patient/p1"),
                (
                    "category",
                    "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs",
                ),
                ("code", "8867-4,8480-6"),
                ("date", "ge2024-01-01"),
                ("_count", "10"),
                ("_offset", "20"),
                ("_sort", "-date"),
                ("_include", "Observation:encounter"),
            ]),
        )
        .unwrap();
        assert_eq!(req.filters.len(), 4);
        assert_eq!(req.filters[0], vec![Condition::Compartment("p1".into())]);
        assert_eq!(req.filters[2].len(), 2);
        assert!(matches!(
            req.filters[3][0],
            Condition::Date {
                prefix: Prefix::Ge,
                ..
            }
        ));
        assert_eq!((req.count, req.offset), (10, 20));
        assert!(req.sort[0].descending);
        assert_eq!(req.includes[0].param.name, "encounter");
        assert!(
            req.link_params
                .iter()
                .all(|(k, _)| k != "_count" && k != "_offset")
        );
    }

    #[test]
    fn rejects_unknown_parameters_modifiers_and_bad_values() {
        for (k, v) in [
            ("colour", "red"),
            ("code:below", "x"),
            ("date", "last tuesday"),
            ("_count", "many"),
            ("subject.name", "x"),
            ("_include", "Patient:general-practitioner"),
            ("_sort", "value"),
        ] {
            let err = SearchRequest::parse("Observation", &pairs(&[(k, v)])).unwrap_err();
            assert!(
                matches!(err, SandboxError::InvalidSearch { .. }),
                "{k}={v}: {err}"
            );
        }
    }

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

    #[test]
    fn subject_of_another_type_matches_nothing() {
        let req = SearchRequest::parse("Observation", &pairs(&[("subject", "Group/1")])).unwrap();
        assert_eq!(req.filters[0], vec![Condition::Never]);
    }
}
