//! The kick-off request of a Bulk Data export, checked: its level, headers and parameters.
//!
//! Bulk Data Access IG 2.0.0, "Bulk Data Kick-off Request"
//! (<https://hl7.org/fhir/uv/bulkdata/STU2/export.html#bulk-data-kick-off-request>): `Prefer: respond-async` is
//! required; `_outputFormat` accepts `application/fhir+ndjson` and its short forms `application/ndjson` and
//! `ndjson`; `_since`, `_type` and `_typeFilter` narrow the export; `patient` (POST only) narrows a Patient- or
//! Group-level export to some patients. "Query Parameters": a server that does not support a parameter answers
//! 4XX with an OperationOutcome, unless the client sent `Prefer: handling=lenient`, in which case it ignores the
//! parameter and says so (here: in the kick-off response's OperationOutcome and in the manifest's `error` file).
//! `_until` comes from the IG's STU3 draft (only resources last changed at or before the instant).

use crate::fhir::outcome::OutcomeError;
use crate::registry;
use crate::store::normalize;
use crate::store::search::{self, Condition};
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which population is exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Level {
    /// `[base]/$export`: every resource of the server the token may read.
    System,
    /// `[base]/Patient/$export`: the compartments of every patient.
    Patient,
    /// `[base]/Group/[id]/$export`: the compartments of the group's members.
    Group(String),
}

/// The output formats the IG obliges a server to accept; all three mean NDJSON.
const NDJSON_FORMATS: &[&str] = &["application/fhir+ndjson", "application/ndjson", "ndjson"];

/// Parameters of the IG this server does not implement (answered 400, or ignored under `handling=lenient`).
const UNSUPPORTED: &[&str] = &[
    "_elements",
    "includeAssociatedData",
    "organizeOutputBy",
    "allowPartialManifests",
];

/// What an export job is asked to produce, kept with the job (so it survives a restart).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ExportSpec {
    /// The population.
    pub level: Level,
    /// `_type`: only these types (`None`: every type the token may read).
    pub types: Option<Vec<String>>,
    /// `_since`, as stored `lastUpdated` text: only resources changed after it.
    pub since: Option<String>,
    /// `_until`, as stored `lastUpdated` text: only resources changed at or before it.
    pub until: Option<String>,
    /// `_typeFilter`: per type, the search queries (name/value pairs) of which a resource must match one.
    pub type_filters: Vec<(String, Vec<(String, String)>)>,
    /// `patient`: only these patients (ids).
    pub patients: Option<Vec<String>>,
}

impl ExportSpec {
    /// The `_typeFilter` queries of `resource_type` as condition lists (an OR of ANDs of ORs), or `None` when the
    /// type has none. Each query was checked at kick-off, so a failure here (none expected) matches nothing.
    pub(crate) fn filters_for(&self, resource_type: &str) -> Option<Vec<Vec<Vec<Condition>>>> {
        let queries: Vec<Vec<Vec<Condition>>> = self
            .type_filters
            .iter()
            .filter(|(t, _)| t == resource_type)
            .map(|(_, pairs)| {
                conditions(resource_type, pairs).unwrap_or_else(|_| vec![vec![Condition::Never]])
            })
            .collect();
        (!queries.is_empty()).then_some(queries)
    }

    /// True when `_type` lets `resource_type` in.
    pub(crate) fn wants(&self, resource_type: &str) -> bool {
        self.types
            .as_ref()
            .is_none_or(|types| types.iter().any(|t| t == resource_type))
    }
}

/// A checked kick-off: the spec and the warnings about what was ignored under `handling=lenient`.
#[derive(Debug)]
pub(crate) struct KickOff {
    /// What to export.
    pub spec: ExportSpec,
    /// One sentence per parameter ignored (lenient handling).
    pub warnings: Vec<String>,
}

/// The `Prefer` header's preferences, lower-cased (`respond-async`, `handling=lenient`), from every `Prefer`
/// header and every comma-separated item (RFC 7240 §2).
fn preferences(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| {
            p.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .replace(' ', "")
                .to_ascii_lowercase()
        })
        .filter(|p| !p.is_empty())
        .collect()
}

/// Checks `Prefer: respond-async` and returns whether the client asked for `handling=lenient`.
pub(crate) fn check_prefer(headers: &HeaderMap) -> Result<bool, OutcomeError> {
    let prefs = preferences(headers);
    if !prefs.iter().any(|p| p == "respond-async") {
        return Err(OutcomeError::BadRequest(
            "A Bulk Data export runs asynchronously: send the header `Prefer: respond-async` with the kick-off \
             request (Bulk Data Access IG, Bulk Data Kick-off Request)."
                .into(),
        ));
    }
    Ok(prefs.iter().any(|p| p == "handling=lenient"))
}

/// Where a parameter came from: the IG allows `patient` only in a POSTed `Parameters` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The query string of a GET (or POST) kick-off.
    Query,
    /// A POSTed `Parameters` resource.
    Body,
}

/// The parameters of a POSTed `Parameters` resource as name/value text pairs (`valueString`, `valueInstant`,
/// `valueReference.reference`, …).
pub(crate) fn parameters_body(body: &[u8]) -> Result<Vec<(String, String)>, OutcomeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        OutcomeError::BadRequest(format!(
            "The kick-off body is not JSON ({e}); POST a FHIR `Parameters` resource, or use GET with query parameters."
        ))
    })?;
    if value.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(OutcomeError::BadRequest(
            "The kick-off body must be a FHIR `Parameters` resource (`\"resourceType\": \"Parameters\"`)."
                .into(),
        ));
    }
    let mut pairs = Vec::new();
    for parameter in value
        .get("parameter")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = parameter.get("name").and_then(Value::as_str) else {
            return Err(OutcomeError::BadRequest(
                "A parameter of the `Parameters` body has no `name`.".into(),
            ));
        };
        let text = parameter.as_object().and_then(|o| {
            o.iter().find_map(|(k, v)| {
                if !k.starts_with("value") {
                    return None;
                }
                match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(r) => r.get("reference").and_then(Value::as_str).map(str::to_owned),
                    Value::Bool(b) => Some(b.to_string()),
                    _ => None,
                }
            })
        });
        let Some(text) = text else {
            return Err(OutcomeError::BadRequest(format!(
                "The parameter `{name}` has no value this server understands (use valueString, valueInstant, \
                 valueCode or valueReference)."
            )));
        };
        pairs.push((name.to_owned(), text));
    }
    Ok(pairs)
}

/// Checks the kick-off parameters of an export at `level`.
pub(crate) fn parse(
    level: Level,
    pairs: &[(String, String, Source)],
    lenient: bool,
) -> Result<KickOff, OutcomeError> {
    let mut spec = ExportSpec {
        level,
        types: None,
        since: None,
        until: None,
        type_filters: Vec::new(),
        patients: None,
    };
    let mut unsupported = Unsupported {
        lenient,
        warnings: Vec::new(),
    };
    for (name, value, source) in pairs {
        let value = value.trim();
        match name.as_str() {
            "_outputFormat" => check_output_format(value)?,
            "_since" => spec.since = Some(instant(name, value, Round::Up)?),
            "_until" => spec.until = Some(instant(name, value, Round::Down)?),
            "_type" => add_types(spec.types.get_or_insert_with(Vec::new), value)?,
            "_typeFilter" => {
                for query in split_type_filters(value) {
                    match type_filter(&query) {
                        Ok(filter) => spec.type_filters.push(filter),
                        Err(reason) => unsupported.report(reason)?,
                    }
                }
            }
            "patient" => add_patient(&mut spec, value, *source, &mut unsupported)?,
            n if UNSUPPORTED.contains(&n) => {
                unsupported.report(format!(
                    "This server does not support the `{n}` parameter of $export."
                ))?;
            }
            other => unsupported.report(format!(
                "`{other}` is not a parameter of $export here (supported: _outputFormat, _since, _until, _type, \
                 _typeFilter, patient)."
            ))?,
        }
    }
    if let (Some(since), Some(until)) = (&spec.since, &spec.until)
        && since > until
    {
        return Err(OutcomeError::BadRequest(
            "`_since` is after `_until`, so no resource could have changed between them; swap them.".into(),
        ));
    }
    Ok(KickOff {
        spec,
        warnings: unsupported.warnings,
    })
}

/// What to do with a parameter the server does not support: in strict handling a 400, in lenient handling a
/// warning (IG: Query Parameters).
struct Unsupported {
    lenient: bool,
    warnings: Vec<String>,
}

impl Unsupported {
    fn report(&mut self, reason: String) -> Result<(), OutcomeError> {
        if self.lenient {
            self.warnings
                .push(format!("{reason} It was ignored (Prefer: handling=lenient)."));
            Ok(())
        } else {
            Err(OutcomeError::BadRequest(format!(
                "{reason} Leave it out, or send `Prefer: handling=lenient` to have unsupported parameters ignored."
            )))
        }
    }
}

/// `_outputFormat`: only NDJSON is written.
fn check_output_format(value: &str) -> Result<(), OutcomeError> {
    if NDJSON_FORMATS.contains(&value) {
        Ok(())
    } else {
        Err(OutcomeError::BadRequest(format!(
            "`_outputFormat={value}` is not a format this server writes; it writes NDJSON \
             (`application/fhir+ndjson`, also accepted as `application/ndjson` or `ndjson`)."
        )))
    }
}

/// `_type`: each comma-separated name must be a FHIR resource type; repeats are kept once.
fn add_types(types: &mut Vec<String>, value: &str) -> Result<(), OutcomeError> {
    for t in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if !registry::is_valid_type(t) {
            return Err(OutcomeError::BadRequest(format!(
                "`_type` names `{t}`, which is not a FHIR resource type (write types as `Patient,Observation`)."
            )));
        }
        if !types.iter().any(|x| x == t) {
            types.push(t.to_owned());
        }
    }
    Ok(())
}

/// `patient`: only from a POSTed `Parameters` body, only below the system level, a reference to a Patient.
fn add_patient(
    spec: &mut ExportSpec,
    value: &str,
    source: Source,
    unsupported: &mut Unsupported,
) -> Result<(), OutcomeError> {
    if source == Source::Query {
        return unsupported.report(
            "`patient` is accepted only in a POSTed `Parameters` body (Bulk Data Access IG 2.0.0), not in the \
             query string."
                .to_owned(),
        );
    }
    if spec.level == Level::System {
        return Err(OutcomeError::BadRequest(
            "`patient` narrows a Patient- or Group-level export; a system-level `$export` does not take it."
                .into(),
        ));
    }
    let id = patient_id(value).ok_or_else(|| {
        OutcomeError::BadRequest(format!(
            "`patient` must be a reference to a Patient (`Patient/123`), not `{value}`."
        ))
    })?;
    spec.patients.get_or_insert_with(Vec::new).push(id);
    Ok(())
}

/// `Patient/123` (or an absolute URL ending so) as `123`.
pub(crate) fn patient_id(reference: &str) -> Option<String> {
    let reference = reference.trim().trim_end_matches('/');
    let (rest, id) = reference.rsplit_once('/')?;
    let is_patient = rest == "Patient" || rest.ends_with("/Patient");
    (is_patient
        && !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
    .then(|| id.to_owned())
}

/// Splits a `_typeFilter` value at the commas that start a new query (`Type?…`), keeping commas inside a query
/// (`code=a,b` ORs two codes) where they belong.
fn split_type_filters(value: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for piece in value.split(',') {
        let starts_query = piece
            .split_once('?')
            .is_some_and(|(t, _)| registry::is_valid_type(t.trim()));
        match out.last_mut() {
            Some(last) if !starts_query => {
                last.push(',');
                last.push_str(piece);
            }
            _ => out.push(piece.trim().to_owned()),
        }
    }
    out.retain(|q| !q.is_empty());
    out
}

/// One `_typeFilter` query, `Observation?category=laboratory&status=final`, checked; `Err` says why it cannot
/// be evaluated.
fn type_filter(query: &str) -> Result<(String, Vec<(String, String)>), String> {
    let Some((resource_type, search)) = query.split_once('?') else {
        return Err(format!(
            "The `_typeFilter` `{query}` is not a search query: write it as `Type?name=value`, e.g. \
             `Observation?category=laboratory`."
        ));
    };
    if !registry::is_valid_type(resource_type) {
        return Err(format!(
            "The `_typeFilter` `{query}` does not start with a resource type."
        ));
    }
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(search.as_bytes())
        .into_owned()
        .collect();
    conditions(resource_type, &pairs)
        .map_err(|e| format!("The `_typeFilter` `{query}` cannot be evaluated here: {e}."))?;
    Ok((resource_type.to_owned(), pairs))
}

/// The conditions of one `_typeFilter` query (an AND of ORs); result parameters (`_count`, `_sort`, …) have
/// no meaning in a filter and are refused.
fn conditions(resource_type: &str, pairs: &[(String, String)]) -> Result<Vec<Vec<Condition>>, String> {
    pairs
        .iter()
        .map(|(key, value)| {
            let (name, modifier) = match key.split_once(':') {
                Some((n, m)) => (n, Some(m)),
                None => (key.as_str(), None),
            };
            if name.starts_with('_') && !matches!(name, "_id" | "_lastUpdated") {
                return Err(format!("`{name}` is not a filter"));
            }
            search::parse_condition(resource_type, name, modifier, value).map_err(|e| e.to_string())
        })
        .collect()
}

#[derive(Clone, Copy)]
enum Round {
    Up,
    Down,
}

/// An instant parameter as stored `lastUpdated` text (milliseconds, UTC), rounded so that the comparison keeps
/// its meaning at the stored precision. A `+` in the zone that form-decoding turned into a space is repaired.
fn instant(name: &str, value: &str, round: Round) -> Result<String, OutcomeError> {
    let bad = || {
        OutcomeError::BadRequest(format!(
            "`{name}={value}` is not an instant: write it with seconds and a time zone, as `2024-03-15T10:00:00Z` \
             (encode a `+` in the zone as `%2B`)."
        ))
    };
    let parsed = chrono::DateTime::parse_from_rfc3339(value)
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(&value.replacen(' ', "+", 1)))
        .map_err(|_| bad())?
        .with_timezone(&chrono::Utc);
    let below_ms = parsed.timestamp_subsec_nanos() % 1_000_000;
    let rounded = match round {
        Round::Up if below_ms > 0 => parsed
            .checked_add_signed(chrono::TimeDelta::nanoseconds(i64::from(1_000_000 - below_ms)))
            .ok_or_else(bad)?,
        Round::Down if below_ms > 0 => parsed
            .checked_sub_signed(chrono::TimeDelta::nanoseconds(i64::from(below_ms)))
            .ok_or_else(bad)?,
        _ => parsed,
    };
    Ok(normalize::instant_text(rounded))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(items: &[(&str, &str)]) -> Vec<(String, String, Source)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned(), Source::Query))
            .collect()
    }

    fn message(result: Result<KickOff, OutcomeError>) -> String {
        match result {
            Ok(k) => panic!("expected an error, got {k:?}"),
            Err(e) => e.message(),
        }
    }

    #[test]
    fn the_three_ndjson_spellings_are_accepted_and_others_refused() {
        for format in NDJSON_FORMATS {
            assert!(parse(Level::System, &query(&[("_outputFormat", format)]), false).is_ok());
        }
        let m = message(parse(
            Level::System,
            &query(&[("_outputFormat", "text/csv")]),
            true,
        ));
        assert!(m.contains("text/csv") && m.contains("NDJSON"), "{m}");
    }

    #[test]
    fn types_since_and_until_are_kept() {
        let k = parse(
            Level::Patient,
            &query(&[
                ("_type", "Patient, Observation"),
                ("_type", "Condition,Observation"),
                ("_since", "2024-03-15T10:00:00.0001 01:00"),
                ("_until", "2025-01-01T00:00:00Z"),
            ]),
            false,
        )
        .unwrap();
        assert_eq!(k.spec.types.unwrap(), ["Patient", "Observation", "Condition"]);
        assert_eq!(k.spec.since.unwrap(), "2024-03-15T09:00:00.001Z");
        assert_eq!(k.spec.until.unwrap(), "2025-01-01T00:00:00.000Z");
    }

    #[test]
    fn unsupported_parameters_are_refused_unless_lenient() {
        let strict = message(parse(Level::System, &query(&[("_elements", "id")]), false));
        assert!(
            strict.contains("_elements") && strict.contains("handling=lenient"),
            "{strict}"
        );
        let lenient = parse(Level::System, &query(&[("_elements", "id"), ("foo", "1")]), true).unwrap();
        assert_eq!(lenient.warnings.len(), 2);
        assert!(lenient.warnings[1].contains("`foo`"), "{:?}", lenient.warnings);
    }

    #[test]
    fn type_filters_split_between_queries_and_keep_commas_inside_one() {
        let k = parse(
            Level::System,
            &query(&[(
                "_typeFilter",
                "Observation?category=laboratory,vital-signs,Condition?clinical-status=active",
            )]),
            false,
        )
        .unwrap();
        assert_eq!(k.spec.type_filters.len(), 2);
        assert_eq!(k.spec.type_filters[0].1[0].1, "laboratory,vital-signs");
        assert!(k.spec.filters_for("Observation").is_some());
        assert!(k.spec.filters_for("Patient").is_none());
        let m = message(parse(
            Level::System,
            &query(&[("_typeFilter", "Observation?nonsense=1")]),
            false,
        ));
        assert!(m.contains("nonsense"), "{m}");
    }

    #[test]
    fn patient_is_taken_from_a_posted_body_only_and_not_at_system_level() {
        let body = br#"{"resourceType":"Parameters","parameter":[
            {"name":"patient","valueReference":{"reference":"Patient/abc"}},
            {"name":"_type","valueString":"Observation"}]}"#;
        let pairs: Vec<(String, String, Source)> = parameters_body(body)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v, Source::Body))
            .collect();
        let k = parse(Level::Patient, &pairs, false).unwrap();
        assert_eq!(k.spec.patients.unwrap(), ["abc"]);
        assert!(message(parse(Level::System, &pairs, false)).contains("system-level"));
        assert!(
            message(parse(
                Level::Patient,
                &query(&[("patient", "Patient/abc")]),
                false
            ))
            .contains("POST")
        );
    }

    #[test]
    fn prefer_needs_respond_async_and_reads_lenient() {
        let mut headers = HeaderMap::new();
        assert!(check_prefer(&headers).is_err());
        headers.insert("prefer", "respond-async, handling=lenient".parse().unwrap());
        assert!(check_prefer(&headers).unwrap());
        headers.insert("prefer", "respond-async".parse().unwrap());
        assert!(!check_prefer(&headers).unwrap());
    }

    #[test]
    fn reversed_since_and_until_and_bad_instants_are_refused() {
        assert!(
            message(parse(Level::System, &query(&[("_since", "2024-03-15")]), false)).contains("instant")
        );
        let m = message(parse(
            Level::System,
            &query(&[
                ("_since", "2025-01-01T00:00:00Z"),
                ("_until", "2024-01-01T00:00:00Z"),
            ]),
            false,
        ));
        assert!(m.contains("swap"), "{m}");
    }
}
