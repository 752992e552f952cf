//! A search's query parameters parsed into a [`SearchRequest`]: each `name[:modifier]=value[,value…]` read by
//! what the type's registry entry says the parameter is.

use super::model::{
    Condition, DEFAULT_COUNT, Include, MAX_COUNT, MAX_SEARCH_PARAMETERS, MAX_SEARCH_VALUES, Prefix,
    SearchRequest, SortKey, StringMode,
};
use crate::error::SandboxError;
use crate::registry::{self, ParamKind, SearchParam};
use crate::store::normalize;

/// Parameters every search accepts and ignores (formatting hints the server does not need).
const IGNORED: &[&str] = &["_format", "_pretty", "_elements", "_total"];

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
    fn subject_of_another_type_matches_nothing() {
        let req = SearchRequest::parse("Observation", &pairs(&[("subject", "Group/1")])).unwrap();
        assert_eq!(req.filters[0], vec![Condition::Never]);
    }
}
