//! How Epic on FHIR answers searches, after fhir.epic.com's API specifications (the "Error codes" table every
//! `fhir.epic.com/Specifications?api=…` page carries) and its FHIR tutorial.

use serde_json::{Value, json};

/// The code system of Epic's FHIR error codes (`OperationOutcome.issue.details.coding.system` in Epic's answers).
const EPIC_ERROR_SYSTEM: &str = "urn:oid:1.2.840.114350.1.13.0.1.7.2.657369";

/// Reshapes one FHIR answer the way Epic writes it: searchsets carry OperationOutcome entries
/// (`search.mode = outcome`) — code 4101 "Resource request returns no results." when nothing matched, and a
/// `suppressed` warning (4119) beside the results otherwise, since Epic says that some information may not have
/// been returned because of business rules, consent or access constraints. Neither counts in `total`.
pub(super) fn reshape(value: &mut Value) {
    if value.get("resourceType").and_then(Value::as_str) != Some("Bundle")
        || value.get("type").and_then(Value::as_str) != Some("searchset")
    {
        return;
    }
    let matches = value.get("entry").and_then(Value::as_array).map_or(0, |entries| {
        entries
            .iter()
            .filter(|e| e.pointer("/search/mode").and_then(Value::as_str) == Some("match"))
            .count()
    });
    let outcome = if matches == 0 {
        outcome_entry("processing", "4101", "Resource request returns no results.")
    } else {
        outcome_entry(
            "suppressed",
            "4119",
            "Some information was not or may not have been returned due to business rules, consent or privacy \
             rules, or access permission constraints.",
        )
    };
    match value.get_mut("entry").and_then(Value::as_array_mut) {
        Some(entries) => entries.push(outcome),
        None => value["entry"] = json!([outcome]),
    }
}

fn outcome_entry(code: &str, epic_code: &str, text: &str) -> Value {
    json!({
        "fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        "resource": {
            "resourceType": "OperationOutcome",
            "issue": [{
                "severity": "warning",
                "code": code,
                "details": {
                    "coding": [{ "system": EPIC_ERROR_SYSTEM, "code": epic_code, "display": text }],
                    "text": text
                },
                "diagnostics": text
            }]
        },
        "search": { "mode": "outcome" }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_searchset_gets_a_4101_outcome_entry_and_keeps_total_zero() {
        let mut bundle = json!({ "resourceType": "Bundle", "type": "searchset", "total": 0 });
        reshape(&mut bundle);
        let entry = &bundle["entry"][0];
        assert_eq!(entry["search"]["mode"], "outcome");
        assert_eq!(
            entry["resource"]["issue"][0]["details"]["coding"][0]["code"],
            "4101"
        );
        assert_eq!(bundle["total"], 0);
    }

    #[test]
    fn results_get_a_suppressed_warning_after_them() {
        let mut bundle = json!({ "resourceType": "Bundle", "type": "searchset", "total": 1, "entry": [
            { "resource": { "resourceType": "Patient", "id": "1" }, "search": { "mode": "match" } }
        ]});
        reshape(&mut bundle);
        assert_eq!(bundle["entry"][0]["resource"]["id"], "1");
        assert_eq!(bundle["entry"][1]["resource"]["issue"][0]["code"], "suppressed");
        assert_eq!(bundle["total"], 1);
    }
}
