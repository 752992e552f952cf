//! Every official R4 example parses into the typed model and serializes back to the same JSON.

use std::path::{Path, PathBuf};

use fhir_client::Lossless;
use fhir_client::r4::resources::{Questionnaire, Resource};
use serde_json::Value;

/// The shared data directory: `$SMART_FHIR_SHARED`, or `shared/` next to the repository clone.
fn examples_dir() -> Result<PathBuf, String> {
    let shared = match std::env::var_os("SMART_FHIR_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    let dir = shared.join("data/fhir-r4-examples");
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(format!(
            "{} is not a directory (set SMART_FHIR_SHARED to the folder that holds data/fhir-r4-examples)",
            dir.display()
        ))
    }
}

/// The JSON path of the first place where `expected` and `actual` differ, with both values.
fn first_difference(path: &str, expected: &Value, actual: &Value) -> Option<String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, ev) in e {
                match a.get(key) {
                    Some(av) => {
                        if let Some(d) = first_difference(&format!("{path}.{key}"), ev, av) {
                            return Some(d);
                        }
                    }
                    None => return Some(format!("{path}.{key}: missing after the round trip")),
                }
            }
            a.keys()
                .find(|key| !e.contains_key(*key))
                .map(|key| format!("{path}.{key}: added by the round trip"))
        }
        (Value::Array(e), Value::Array(a)) => {
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                if let Some(d) = first_difference(&format!("{path}[{i}]"), ev, av) {
                    return Some(d);
                }
            }
            (e.len() != a.len()).then(|| format!("{path}: {} items became {}", e.len(), a.len()))
        }
        _ if expected == actual => None,
        _ => Some(format!("{path}: {expected} became {actual}")),
    }
}

/// Parse `value` as a typed resource, serialize it, and say where the result differs.
fn round_trip(value: &Value) -> Result<(), String> {
    let typed: Resource = serde_json::from_value(value.clone()).map_err(|e| format!("parse: {e}"))?;
    let back = serde_json::to_value(&typed).map_err(|e| format!("serialize: {e}"))?;
    match first_difference("$", value, &back) {
        Some(d) => Err(d),
        None => Ok(()),
    }
}

/// The same through [`Lossless`], which keeps what the typed model cannot hold.
fn lossless_round_trip(value: &Value) -> Result<(), String> {
    let typed: Lossless<Resource> =
        serde_json::from_value(value.clone()).map_err(|e| format!("parse: {e}"))?;
    let back = serde_json::to_value(&typed).map_err(|e| format!("serialize: {e}"))?;
    match first_difference("$", value, &back) {
        Some(d) => Err(d),
        None => Ok(()),
    }
}

/// The resources nested inside a Bundle's entries (they are kept as JSON by the Bundle model, so
/// they are round-tripped through the typed model on their own).
fn nested_resources(value: &Value) -> Vec<(String, &Value)> {
    let mut nested = Vec::new();
    if let Some(entries) = value.get("entry").and_then(Value::as_array) {
        for (i, entry) in entries.iter().enumerate() {
            if let Some(resource) = entry.get("resource") {
                nested.push((format!("entry[{i}].resource"), resource));
                for (path, inner) in nested_resources(resource) {
                    nested.push((format!("entry[{i}].resource.{path}"), inner));
                }
            }
        }
    }
    nested
}

#[test]
fn every_official_r4_example_round_trips_through_the_typed_model() {
    let dir = match examples_dir() {
        Ok(dir) => dir,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();

    let mut failures = Vec::new();
    let mut not_resources = Vec::new();
    let mut lossless_failures = Vec::new();
    let mut nested_total = 0;
    let mut nested_failures = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(file).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        if value.get("resourceType").is_none() {
            // `_package.json` is the npm package manifest shipped with the examples.
            not_resources.push(name);
            continue;
        }
        if let Err(why) = round_trip(&value) {
            failures.push((name.clone(), why));
        }
        if let Err(why) = lossless_round_trip(&value) {
            lossless_failures.push((name.clone(), why));
        }
        for (path, inner) in nested_resources(&value) {
            nested_total += 1;
            if let Err(why) = round_trip(inner) {
                nested_failures.push(format!("{name} {path}: {why}"));
            }
        }
    }

    let resources = files.len() - not_resources.len();
    eprintln!(
        "round trip: {}/{resources} example resources ({} files; not a resource: {})",
        resources - failures.len(),
        files.len(),
        not_resources.join(", ")
    );
    eprintln!(
        "round trip through Lossless<Resource>: {}/{resources} example resources",
        resources - lossless_failures.len()
    );
    eprintln!(
        "round trip: {}/{nested_total} resources nested in Bundle entries",
        nested_total - nested_failures.len()
    );
    for (name, why) in &failures {
        let known = KNOWN_INVALID_EXAMPLES.contains(&name.as_str());
        eprintln!(
            "  {} {name}: {why}",
            if known { "known invalid R4:" } else { "FAIL" }
        );
    }
    for (name, why) in &lossless_failures {
        eprintln!("  FAIL (Lossless<Resource>) {name}: {why}");
    }
    for failure in &nested_failures {
        eprintln!("  FAIL {failure}");
    }
    assert!(
        files.len() >= 719,
        "expected the 719 official examples, found {}",
        files.len()
    );
    assert!(
        nested_failures.is_empty(),
        "resources nested in Bundles did not round-trip"
    );
    // Known and explained: Questionnaire-qs1.json breaks R4 itself (32 items lack the required
    // `linkId`, cardinality 1..1), and the `fhir` crate's typed Questionnaire refuses it.
    let failed: Vec<&str> = failures.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        failed, KNOWN_INVALID_EXAMPLES,
        "the set of examples that fail the plain typed round trip changed"
    );
    // Lossless<Resource> finds the missing elements from the R4 definitions, so every example,
    // the invalid one included, comes back exactly as it was.
    assert!(
        lossless_failures.is_empty(),
        "Lossless<Resource> must round-trip every example resource"
    );
    assert_eq!(resources, 718, "expected 718 example resources");

    // The invalid example through both: the same 32 places found, and written back without them.
    let qs1: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("Questionnaire-qs1.json")).unwrap()).unwrap();
    let typed: Lossless<Resource> = serde_json::from_value(qs1.clone()).unwrap();
    let paths = typed.missing_required_elements();
    assert_eq!(paths.len(), 32, "{paths:?}");
    assert!(paths.iter().all(|p| p.ends_with(".linkId")), "{paths:?}");
    let concrete: Lossless<Questionnaire> = serde_json::from_value(qs1.clone()).unwrap();
    assert_eq!(concrete.missing_required_elements(), paths);
    let back = serde_json::to_value(&concrete).unwrap();
    assert_eq!(first_difference("$", &qs1, &back), None);
    eprintln!(
        "round trip: Questionnaire-qs1.json through Lossless<Resource> and Lossless<Questionnaire>: \
         exact (32 missing linkId kept missing)"
    );
}

/// Official examples that are not valid R4, so a strict typed model rejects them.
const KNOWN_INVALID_EXAMPLES: &[&str] = &["Questionnaire-qs1.json"];
