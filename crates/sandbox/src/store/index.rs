//! How a resource's values are pulled out into the index tables: for each search parameter of its type (see
//! [`crate::registry`]), the values at the parameter's paths, as string, token, date or reference rows.

use super::normalize::{date_range, normalize};
use crate::registry::{self, ParamKind, SearchParam, reference_target};
use serde_json::Value;

/// The rows a resource contributes to the index tables.
#[derive(Debug, Default, PartialEq)]
pub struct IndexRows {
    /// `(param, normalized value, raw value)`.
    pub strings: Vec<(&'static str, String, String)>,
    /// `(param, system or "", code)`.
    pub tokens: Vec<(&'static str, String, String)>,
    /// `(param, first second, last second)` as Unix seconds.
    pub dates: Vec<(&'static str, i64, i64)>,
    /// `(param, "Type/id")`.
    pub refs: Vec<(&'static str, String)>,
}

/// Pulls every indexed value out of a resource.
pub fn extract(resource_type: &str, resource: &Value) -> IndexRows {
    let mut rows = IndexRows::default();
    for param in registry::params_for(resource_type) {
        for path in param.paths {
            for value in values_at(resource, path) {
                index_value(param, value, &mut rows);
            }
        }
    }
    rows
}

fn index_value(param: &SearchParam, value: &Value, rows: &mut IndexRows) {
    match param.kind {
        ParamKind::String => {
            let mut texts = Vec::new();
            string_parts(value, &mut texts);
            for text in texts {
                rows.strings.push((param.name, normalize(&text), text));
            }
        }
        ParamKind::Token => token_parts(param.name, value, rows),
        ParamKind::Date => {
            if let Some(range) = value_range(value) {
                rows.dates.push((param.name, range.0, range.1));
            }
        }
        ParamKind::Reference => {
            if let Some((t, id)) = value
                .get("reference")
                .and_then(Value::as_str)
                .and_then(reference_target)
            {
                rows.refs.push((param.name, format!("{t}/{id}")));
            }
        }
        ParamKind::Compartment => {}
    }
}

/// The values at a dotted path, arrays flattened at every step.
pub fn values_at<'v>(resource: &'v Value, path: &str) -> Vec<&'v Value> {
    let mut current = vec![resource];
    for segment in path.split('.') {
        let mut next = Vec::new();
        for v in current {
            match v.get(segment) {
                Some(Value::Array(items)) => next.extend(items.iter()),
                Some(item) => next.push(item),
                None => {}
            }
        }
        current = next;
    }
    current
}

fn string_parts(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| string_parts(i, out)),
        Value::Object(map) => {
            // HumanName and Address: every textual part is searchable.
            for key in [
                "text",
                "family",
                "given",
                "prefix",
                "suffix",
                "line",
                "city",
                "district",
                "state",
                "postalCode",
                "country",
            ] {
                if let Some(v) = map.get(key) {
                    string_parts(v, out);
                }
            }
        }
        _ => {}
    }
}

fn token_parts(name: &'static str, value: &Value, rows: &mut IndexRows) {
    match value {
        Value::String(code) => rows.tokens.push((name, String::new(), code.clone())),
        Value::Bool(b) => rows.tokens.push((name, String::new(), b.to_string())),
        Value::Object(map) => {
            if let Some(Value::Array(codings)) = map.get("coding") {
                // CodeableConcept.
                for coding in codings {
                    token_parts(name, coding, rows);
                }
            } else if let Some(code) = map.get("code").and_then(Value::as_str) {
                // Coding.
                let system = map.get("system").and_then(Value::as_str).unwrap_or_default();
                rows.tokens.push((name, system.to_owned(), code.to_owned()));
            } else if let Some(v) = map.get("value").and_then(Value::as_str) {
                // Identifier or ContactPoint.
                let system = map.get("system").and_then(Value::as_str).unwrap_or_default();
                rows.tokens.push((name, system.to_owned(), v.to_owned()));
            }
        }
        _ => {}
    }
}

fn value_range(value: &Value) -> Option<(i64, i64)> {
    match value {
        Value::String(s) => date_range(s),
        Value::Object(map) => {
            let start = map
                .get("start")
                .and_then(Value::as_str)
                .and_then(date_range)
                .map(|r| r.0);
            let end = map
                .get("end")
                .and_then(Value::as_str)
                .and_then(date_range)
                .map(|r| r.1);
            if start.is_none() && end.is_none() {
                return None;
            }
            Some((start.unwrap_or(i64::MIN), end.unwrap_or(i64::MAX)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::compartment_patient;
    use serde_json::json;

    #[test]
    fn observation_rows_cover_code_category_date_and_encounter() {
        let obs = json!({
            "resourceType": "Observation", "id": "o1", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": "Patient/p1"},
            "encounter": {"reference": "Encounter/e1"},
            "effectiveDateTime": "2024-01-02T03:04:05Z"
        });
        let rows = extract("Observation", &obs);
        assert!(
            rows.tokens
                .contains(&("code", "http://loinc.org".into(), "8867-4".into()))
        );
        assert!(
            rows.tokens
                .iter()
                .any(|t| t.0 == "category" && t.2 == "vital-signs")
        );
        assert!(rows.tokens.contains(&("status", String::new(), "final".into())));
        assert_eq!(rows.refs, vec![("encounter", "Encounter/e1".to_owned())]);
        assert_eq!(rows.dates.len(), 1);
        assert_eq!(compartment_patient("Observation", &obs).as_deref(), Some("p1"));
    }

    #[test]
    fn names_are_indexed_by_every_part_without_accents() {
        let patient = json!({"resourceType": "Patient", "id": "p", "name": [{"family": "Müller", "given": ["Chloé", "Ann"]}]});
        let rows = extract("Patient", &patient);
        let names: Vec<&str> = rows
            .strings
            .iter()
            .filter(|s| s.0 == "name")
            .map(|s| s.1.as_str())
            .collect();
        assert_eq!(names, vec!["muller", "chloe", "ann"]);
        assert_eq!(compartment_patient("Patient", &patient).as_deref(), Some("p"));
    }
}
