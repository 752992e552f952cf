//! A deterministic, seeded generator of synthetic patients.
//!
//! The same `(patients, seed)` always yields the same resources, byte for byte: every patient draws from its own
//! ChaCha stream (`seed`, stream `index + 1`), practitioners and the organization from stream 0, and every date is
//! placed relative to a fixed anchor ([`ANCHOR`]) rather than the clock. Patients can therefore be produced one at a
//! time (the store inserts them as they come, so a 10,000-patient database never sits in memory).
//!
//! A record holds the Patient (MRN, name, address, telecom, general practitioner), a few years of Encounters with
//! vital signs at each (blood pressure panel, heart rate, weight, height, BMI, temperature, SpO2), lab results with
//! reference ranges and interpretations (every fourth patient from the second has fifteen years of visits whose
//! older half is in lb, in and °F; every fourth from the fourth has glucose and cholesterol in mmol/L), Conditions (SNOMED CT), MedicationRequests (RxNorm), AllergyIntolerances
//! and Immunizations (CVX), and — drawn last, so the rest is as it was before they were added — a DiagnosticReport per
//! lab panel with its results, a few Procedures (SNOMED CT) and MedicationStatements the patient reported (RxNorm). One patient (the third, when there are at least three) has no name at all, because
//! real EHRs have such records and apps must cope.

pub mod cohort;
mod record;
pub mod vocabulary;

use chrono::{DateTime, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

/// The instant generated histories end at; dates are placed before it, never relative to the clock.
pub const ANCHOR: &str = "2025-06-01T09:00:00Z";

/// Produces the synthetic population for one `(patients, seed)` pair.
#[derive(Debug, Clone)]
pub struct Generator {
    patients: usize,
    seed: u64,
    organization_id: String,
    practitioners: Vec<PractitionerInfo>,
}

/// What a patient record needs to know about a practitioner.
#[derive(Debug, Clone)]
pub(crate) struct PractitionerInfo {
    pub id: String,
    pub display: String,
    resource: Value,
}

impl Generator {
    /// A generator of `patients` patients from `seed`. Practitioners scale with the population (one per 50
    /// patients, between 5 and 200).
    pub fn new(patients: usize, seed: u64) -> Self {
        let mut rng = Self::stream(seed, 0);
        let organization_id = random_id(&mut rng);
        let count = (patients / 50).clamp(5, 200);
        let practitioners = (0..count)
            .map(|i| record::practitioner(&mut rng, i, &organization_id))
            .collect::<Vec<_>>();
        Self {
            patients,
            seed,
            organization_id,
            practitioners,
        }
    }

    /// How many patients this generator produces.
    pub fn patients(&self) -> usize {
        self.patients
    }

    /// The index of the patient generated without any name, if the population has one.
    pub fn unnamed_patient_index(&self) -> Option<usize> {
        (self.patients >= 3).then_some(2)
    }

    /// The resources shared by all patients: the organization and its practitioners.
    pub fn shared_resources(&self) -> Vec<Value> {
        let mut out = vec![record::organization(&self.organization_id)];
        out.extend(self.practitioners.iter().map(|p| p.resource.clone()));
        out
    }

    /// The full record of patient `index` (`0..patients`): the Patient first, then everything that refers to it.
    pub fn patient_record(&self, index: usize) -> Vec<Value> {
        let rng = Self::stream(self.seed, index as u64 + 1);
        let unnamed = self.unnamed_patient_index() == Some(index);
        record::RecordBuilder::new(rng, index, unnamed, &self.organization_id, &self.practitioners).build()
    }

    /// Calls `sink` with every resource of the population, shared resources first, patient by patient.
    pub fn for_each_resource<E>(&self, mut sink: impl FnMut(Value) -> Result<(), E>) -> Result<(), E> {
        for resource in self.shared_resources() {
            sink(resource)?;
        }
        let mut cohorts = cohort::Cohorts::new();
        for index in 0..self.patients {
            let record = self.patient_record(index);
            cohorts.observe(&record);
            for resource in record {
                sink(resource)?;
            }
        }
        // The cohorts come last: they list the patients above.
        for group in cohorts.groups() {
            sink(group)?;
        }
        Ok(())
    }

    fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        rng
    }
}

/// A resource id drawn from the generator's stream (a UUID, like most EHRs hand out).
pub(crate) fn random_id(rng: &mut ChaCha8Rng) -> String {
    uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .to_string()
}

/// The fixed anchor as a timestamp.
pub(crate) fn anchor() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(ANCHOR)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc.timestamp_nanos(0))
}

/// A CodeableConcept with one coding and the display as text.
pub(crate) fn concept(system: &str, code: &str, display: &str) -> Value {
    json!({ "coding": [{ "system": system, "code": code, "display": display }], "text": display })
}

/// A reference to `type/id`.
pub(crate) fn reference(resource_type: &str, id: &str) -> Value {
    json!({ "reference": format!("{resource_type}/{id}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_names_the_part_of_the_generator_that_makes_each_type() {
        use crate::registry::{Generated, KINDS};
        use std::collections::BTreeSet;
        let types_of = |resources: &[Value]| -> BTreeSet<String> {
            resources
                .iter()
                .filter_map(|r| r["resourceType"].as_str().map(str::to_owned))
                .collect()
        };
        let claimed = |part: Generated| -> BTreeSet<String> {
            KINDS
                .iter()
                .filter(|k| k.generated == part)
                .map(|k| k.name.to_owned())
                .collect()
        };
        let g = Generator::new(30, 42);
        let records: Vec<Value> = (0..30).flat_map(|i| g.patient_record(i)).collect();
        assert_eq!(
            types_of(&g.shared_resources()),
            claimed(Generated::SharedResources)
        );
        assert_eq!(types_of(&records), claimed(Generated::PatientRecord));
        assert_eq!(
            types_of(&cohort::Cohorts::new().groups()),
            claimed(Generated::Cohorts)
        );
    }

    #[test]
    fn same_seed_gives_same_resources() {
        let a = Generator::new(4, 7);
        let b = Generator::new(4, 7);
        let mut left = Vec::new();
        let mut right = Vec::new();
        a.for_each_resource(|r| {
            left.push(r);
            Ok::<_, ()>(())
        })
        .unwrap();
        b.for_each_resource(|r| {
            right.push(r);
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(left, right);
        assert!(left.len() > 50, "a record has many resources, got {}", left.len());
    }

    #[test]
    fn different_seeds_give_different_patients() {
        let a = Generator::new(2, 1).patient_record(0);
        let b = Generator::new(2, 2).patient_record(0);
        assert_ne!(a[0], b[0]);
    }

    #[test]
    fn a_patient_record_does_not_depend_on_population_size() {
        // Streams are per patient, so patient 5 is the same whether 10 or 20 are generated (practitioner count
        // stays at the minimum of 5 for both).
        assert_eq!(
            Generator::new(10, 3).patient_record(5),
            Generator::new(20, 3).patient_record(5)
        );
    }

    #[test]
    fn third_patient_has_no_name_and_others_do() {
        let g = Generator::new(5, 42);
        for index in 0..5 {
            let patient = &g.patient_record(index)[0];
            assert_eq!(patient["resourceType"], "Patient");
            assert_eq!(
                patient.get("name").is_none(),
                index == 2,
                "patient {index}: {patient}"
            );
        }
    }

    #[test]
    fn vital_signs_use_loinc_and_ucum() {
        let record = Generator::new(1, 42).patient_record(0);
        let vitals: Vec<&Value> = record
            .iter()
            .filter(|r| r["category"][0]["coding"][0]["code"] == "vital-signs")
            .collect();
        let codes: std::collections::BTreeSet<&str> = vitals
            .iter()
            .filter_map(|v| v["code"]["coding"][0]["code"].as_str())
            .collect();
        for code in [
            "85354-9", "8867-4", "29463-7", "8302-2", "39156-5", "8310-5", "59408-5",
        ] {
            assert!(codes.contains(code), "missing vital {code}: {codes:?}");
        }
        let bp = vitals
            .iter()
            .find(|v| v["code"]["coding"][0]["code"] == "85354-9")
            .unwrap();
        assert_eq!(bp["component"][0]["code"]["coding"][0]["code"], "8480-6");
        assert_eq!(bp["component"][1]["code"]["coding"][0]["code"], "8462-4");
        assert_eq!(bp["component"][0]["valueQuantity"]["system"], vocabulary::UCUM);
        assert_eq!(bp["component"][0]["valueQuantity"]["code"], "mm[Hg]");
    }

    #[test]
    fn labs_carry_reference_range_and_matching_interpretation() {
        let g = Generator::new(30, 42);
        let mut seen = 0;
        for index in 0..30 {
            for r in g.patient_record(index) {
                if r["category"][0]["coding"][0]["code"] != "laboratory" {
                    continue;
                }
                seen += 1;
                let value = r["valueQuantity"]["value"].as_f64().unwrap();
                let range = &r["referenceRange"][0];
                let flag = r["interpretation"][0]["coding"][0]["code"].as_str().unwrap();
                let low = range["low"]["value"].as_f64();
                let high = range["high"]["value"].as_f64();
                let expected = match (low, high) {
                    (Some(l), _) if value < l => "L",
                    (_, Some(h)) if value > h => "H",
                    _ => "N",
                };
                assert_eq!(flag, expected, "{r}");
            }
        }
        assert!(seen > 30, "expected labs, saw {seen}");
    }

    #[test]
    fn every_resource_references_its_patient() {
        let record = Generator::new(1, 9).patient_record(0);
        let patient_ref = format!("Patient/{}", record[0]["id"].as_str().unwrap());
        for r in &record[1..] {
            let subject = r.get("subject").or_else(|| r.get("patient")).unwrap();
            assert_eq!(subject["reference"], patient_ref.as_str(), "{r}");
        }
    }

    #[test]
    fn some_records_are_long_and_change_units_and_some_labs_are_si() {
        let g = Generator::new(4, 42);
        let vitals = |index: usize, code: &str| -> Vec<(String, String)> {
            g.patient_record(index)
                .into_iter()
                .filter(|r| r["code"]["coding"][0]["code"] == code)
                .map(|r| {
                    (
                        r["effectiveDateTime"].as_str().unwrap_or_default().to_owned(),
                        r["valueQuantity"]["code"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        };
        let mut weights = vitals(1, "29463-7");
        weights.sort();
        assert!(weights.len() >= 20, "a long history: {} weights", weights.len());
        let first = weights[0].0[..4].parse::<i32>().unwrap();
        assert!(first <= 2013, "starting 12 or more years before 2025: {first}");
        let units: Vec<&str> = weights.iter().map(|(_, u)| u.as_str()).collect();
        let half = units.len() / 2;
        assert!(
            units[..half].iter().all(|u| *u == "[lb_av]"),
            "older half in pounds: {units:?}"
        );
        assert!(
            units[half..].iter().all(|u| *u == "kg"),
            "newer half in kilograms: {units:?}"
        );
        assert!(vitals(1, "8310-5").iter().any(|(_, u)| u == "[degF]"));
        assert!(vitals(1, "8302-2").iter().any(|(_, u)| u == "[in_i]"));
        for usual in [0, 2] {
            assert!(
                vitals(usual, "29463-7").iter().all(|(_, u)| u == "kg"),
                "patient {usual} is metric"
            );
        }
        let glucose = g
            .patient_record(3)
            .into_iter()
            .find(|r| r["code"]["coding"][0]["code"] == "15074-8")
            .expect("patient 3 has glucose in mmol/L");
        assert_eq!(glucose["valueQuantity"]["code"], "mmol/L");
        assert_eq!(glucose["referenceRange"][0]["low"]["value"], 3.9, "70 mg/dL");
        assert!(vitals(3, "2339-0").is_empty(), "not also in mg/dL");
    }

    #[test]
    fn every_lab_result_is_in_one_report_and_records_have_procedures_and_reported_medications() {
        let g = Generator::new(12, 42);
        let (mut procedures, mut statements) = (0, 0);
        for index in 0..12 {
            let record = g.patient_record(index);
            let labs: Vec<String> = record
                .iter()
                .filter(|r| r["category"][0]["coding"][0]["code"] == "laboratory")
                .map(|r| format!("Observation/{}", r["id"].as_str().unwrap()))
                .collect();
            let mut reported: Vec<String> = record
                .iter()
                .filter(|r| r["resourceType"] == "DiagnosticReport")
                .flat_map(|r| r["result"].as_array().unwrap().clone())
                .map(|reference| reference["reference"].as_str().unwrap().to_owned())
                .collect();
            reported.sort();
            let mut expected = labs.clone();
            expected.sort();
            assert_eq!(
                reported, expected,
                "patient {index}: each lab in exactly one report"
            );
            procedures += record.iter().filter(|r| r["resourceType"] == "Procedure").count();
            statements += record
                .iter()
                .filter(|r| r["resourceType"] == "MedicationStatement")
                .count();
        }
        assert!(
            procedures > 0 && statements > 0,
            "{procedures} procedures, {statements} statements"
        );
    }
}
