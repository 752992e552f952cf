//! `Group` cohorts of the generated population, by condition, for Bulk Data's Group-level `$export`
//! (`[base]/Group/[id]/$export`): the patients with a Condition of the cohort's SNOMED CT code.

use super::vocabulary::SNOMED;
use serde_json::{Value, json};

/// The cohorts: (Group id, SNOMED CT code, name).
pub const COHORTS: &[(&str, &str, &str)] = &[
    ("cohort-hypertension", "38341003", "Patients with hypertension"),
    ("cohort-diabetes", "44054006", "Patients with type 2 diabetes"),
    ("cohort-asthma", "195967001", "Patients with asthma"),
];

/// Collects the members of every cohort as patient records go by.
#[derive(Debug, Default)]
pub(crate) struct Cohorts {
    members: Vec<Vec<String>>,
}

impl Cohorts {
    pub(crate) fn new() -> Self {
        Self {
            members: vec![Vec::new(); COHORTS.len()],
        }
    }

    /// Notes the cohorts a patient's record puts them in (`record[0]` is the Patient).
    pub(crate) fn observe(&mut self, record: &[Value]) {
        let Some(patient) = record.first().and_then(|p| p.get("id")).and_then(Value::as_str) else {
            return;
        };
        for (i, (_, code, _)) in COHORTS.iter().enumerate() {
            let has = record.iter().any(|r| {
                r["resourceType"] == "Condition" && r["code"]["coding"][0]["code"].as_str() == Some(*code)
            });
            if has && let Some(list) = self.members.get_mut(i) {
                list.push(patient.to_owned());
            }
        }
    }

    /// One `Group` resource per cohort (actual, of persons, with its members).
    pub(crate) fn groups(&self) -> Vec<Value> {
        COHORTS
            .iter()
            .zip(&self.members)
            .map(|((id, code, name), members)| {
                json!({
                    "resourceType": "Group",
                    "id": id,
                    "type": "person",
                    "actual": true,
                    "name": name,
                    "code": { "coding": [{ "system": SNOMED, "code": code }], "text": name },
                    "quantity": members.len(),
                    "member": members.iter().map(|p| json!({ "entity": { "reference": format!("Patient/{p}") } })).collect::<Vec<_>>()
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::Generator;

    #[test]
    fn cohorts_list_the_patients_with_their_condition() {
        let generator = Generator::new(12, 42);
        let mut all = Vec::new();
        generator
            .for_each_resource(|r| {
                all.push(r);
                Ok::<_, ()>(())
            })
            .unwrap();
        let groups: Vec<&Value> = all.iter().filter(|r| r["resourceType"] == "Group").collect();
        assert_eq!(groups.len(), COHORTS.len());
        let diabetes = groups.iter().find(|g| g["id"] == "cohort-diabetes").unwrap();
        let members = diabetes["member"].as_array().unwrap();
        let codes: std::collections::BTreeSet<&str> = all
            .iter()
            .filter(|r| r["resourceType"] == "Condition")
            .filter_map(|r| r["code"]["coding"][0]["code"].as_str())
            .collect();
        assert!(!members.is_empty(), "{diabetes} {codes:?}");
        for member in members {
            let reference = member["entity"]["reference"].as_str().unwrap();
            let patient = reference.trim_start_matches("Patient/");
            assert!(
                all.iter().any(|r| r["resourceType"] == "Condition"
                    && r["subject"]["reference"] == reference
                    && r["code"]["coding"][0]["code"] == "44054006"),
                "{patient}"
            );
        }
    }
}
