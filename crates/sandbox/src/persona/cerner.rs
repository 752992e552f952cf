//! How Oracle Health (Cerner) Millennium R4 writes its resources, after fhir.cerner.com's published examples.

use serde_json::{Value, json};

/// The data-absent-reason extension (FHIR R4 `StructureDefinition/data-absent-reason`).
const DATA_ABSENT_REASON: &str = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";

/// Reshapes one FHIR answer (a resource or a Bundle of them) the way Cerner writes it.
pub(super) fn reshape(value: &mut Value) {
    super::for_each_resource(
        value,
        &mut |resource| match resource.get("resourceType").and_then(Value::as_str) {
            Some("Patient" | "Person") => rank_as_string(resource),
            Some("Observation") => lab_category_absent(resource),
            _ => {}
        },
    );
}

/// Cerner's Patient and Person examples write `telecom[].rank` as a JSON string (`'rank': '1'`,
/// cerner/fhir.cerner.com `lib/resources/example_json/r4_examples_patient.rb` and `r4_examples_person.rb`),
/// where FHIR says positiveInt. Every telecom gets a string rank (its own, else its position), as in those
/// examples, where each contact point carries one.
fn rank_as_string(resource: &mut Value) {
    let Some(telecoms) = resource.get_mut("telecom").and_then(Value::as_array_mut) else {
        return;
    };
    for (i, telecom) in telecoms.iter_mut().enumerate() {
        let Some(map) = telecom.as_object_mut() else {
            continue;
        };
        let rank = match map.get("rank") {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            _ => (i + 1).to_string(),
        };
        map.insert("rank".into(), Value::String(rank));
    }
}

/// Cerner's laboratory Observations (`L-…` ids, e.g. `L-206310347` "Glucose Level POC") carry `category` as a
/// single CodeableConcept holding only a data-absent-reason extension (`valueCode: unknown`) — no coding — and
/// are still the answer to `category=laboratory` (cerner/fhir.cerner.com
/// `lib/resources/example_json/r4_examples_observation.rb`). Vital signs keep their coded category.
fn lab_category_absent(resource: &mut Value) {
    let is_lab = resource
        .get("category")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("coding").and_then(Value::as_array))
        .flatten()
        .any(|coding| coding.get("code").and_then(Value::as_str) == Some("laboratory"));
    if is_lab {
        resource["category"] = json!([{
            "extension": [{ "valueCode": "unknown", "url": DATA_ABSENT_REASON }]
        }]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patient_telecom_ranks_become_strings() {
        let mut patient = json!({
            "resourceType": "Patient", "id": "1",
            "telecom": [{ "system": "phone", "value": "1", "rank": 2 }, { "system": "email", "value": "a@b" }]
        });
        reshape(&mut patient);
        assert_eq!(patient["telecom"][0]["rank"], "2");
        assert_eq!(patient["telecom"][1]["rank"], "2");
    }

    #[test]
    fn lab_observations_in_a_bundle_get_a_data_absent_category_and_vitals_keep_theirs() {
        let category = |code: &str| json!([{ "coding": [{ "system": "x", "code": code }] }]);
        let mut bundle = json!({ "resourceType": "Bundle", "entry": [
            { "resource": { "resourceType": "Observation", "category": category("laboratory") } },
            { "resource": { "resourceType": "Observation", "category": category("vital-signs") } }
        ]});
        reshape(&mut bundle);
        let lab = &bundle["entry"][0]["resource"]["category"][0];
        assert!(lab.get("coding").is_none());
        assert_eq!(lab["extension"][0]["url"], DATA_ABSENT_REASON);
        assert_eq!(
            bundle["entry"][1]["resource"]["category"][0]["coding"][0]["code"],
            "vital-signs"
        );
    }
}
