//! The list sections: problems (active and resolved), medications (ordered and reported), procedures,
//! diagnostic reports with their results, allergies, immunizations and encounters; each newest (or most
//! critical) first, at most [`MAX_ROWS`] rows.

use chrono::{DateTime, Utc};
use fhir_client::r4::{
    AllergyIntolerance, CodeableConcept, Condition, DiagnosticReport, Encounter, Immunization,
    MedicationRequest, MedicationStatement, Observation, Procedure, Resource, TextValue,
};

use super::{
    AllergyRow, ConditionRow, EncounterRow, ImmunizationRow, MAX_ROWS, MedicationRow, MedicationSource,
    ProcedureRow, ReportRow, concept_text, display_date, has_code, lab_rows, parse_fhir_datetime,
    period_text, recorded_absence,
};
use crate::units;

/// Conditions whose clinical status is active (or unstated), newest first.
pub fn condition_rows(conditions: &[Condition]) -> Vec<ConditionRow> {
    problem_rows(conditions, |status| {
        status.is_none_or(|s| has_code(s, &["active", "recurrence", "relapse"]))
    })
}

/// Conditions that are resolved, inactive or in remission (the IPS "History of past problems"),
/// newest first; refuted and entered-in-error ones are left out.
pub fn resolved_condition_rows(conditions: &[Condition]) -> Vec<ConditionRow> {
    problem_rows(conditions, |status| {
        status.is_some_and(|s| has_code(s, &["resolved", "inactive", "remission"]))
    })
}

fn problem_rows(
    conditions: &[Condition],
    wanted: impl Fn(Option<&CodeableConcept>) -> bool,
) -> Vec<ConditionRow> {
    use fhir_client::r4::ConditionAbatement as A;
    use fhir_client::r4::ConditionOnset as O;
    let mut rows: Vec<(Option<DateTime<Utc>>, ConditionRow)> = conditions
        .iter()
        .filter(|c| wanted(c.clinical_status.as_deref()))
        .filter(|c| {
            c.verification_status
                .as_ref()
                .is_none_or(|s| !has_code(s, &["refuted", "entered-in-error"]))
        })
        .filter(|c| c.code.as_deref().and_then(recorded_absence).is_none())
        .filter_map(|c| {
            let name = c.code.as_deref().and_then(concept_text)?;
            let onset = match c.onset.as_ref() {
                Some(O::DateTime(p)) => Some(p.as_str()?.to_owned()),
                Some(O::Period(p)) => p.start.text().map(str::to_owned),
                Some(O::String(s)) => Some(s.as_str()?.to_owned()),
                _ => c.recorded_date.text().map(str::to_owned),
            };
            let status = c
                .clinical_status
                .as_deref()
                .and_then(|s| s.coding.iter().find_map(|x| x.code.text()))
                .filter(|s| matches!(*s, "resolved" | "inactive" | "remission"));
            let abated = match c.abatement.as_ref() {
                Some(A::DateTime(p)) => p.as_str().map(display_date),
                Some(A::Period(p)) => p.end.text().or(p.start.text()).map(display_date),
                Some(A::String(s)) => s.as_str().map(str::to_owned),
                _ => None,
            };
            let resolved = status.map(|s| match &abated {
                Some(at) => format!("{s} {at}"),
                None => s.to_owned(),
            });
            let at = onset.as_deref().and_then(parse_fhir_datetime);
            Some((
                at,
                ConditionRow {
                    name,
                    onset: onset.map(|o| display_date(&o)),
                    resolved,
                },
            ))
        })
        .collect();
    rows.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    rows.into_iter().map(|(_, r)| r).take(MAX_ROWS).collect()
}

/// Active medication orders, newest first.
pub fn medication_rows(requests: &[MedicationRequest]) -> Vec<MedicationRow> {
    use fhir_client::r4::MedicationRequestMedication as M;
    let mut rows: Vec<MedicationRow> = requests
        .iter()
        .filter(|m| matches!(m.status.text(), Some("active" | "on-hold")))
        .filter_map(|m| {
            let name = match m.medication.as_ref()? {
                M::CodeableConcept(c) if recorded_absence(c).is_some() => return None,
                M::CodeableConcept(c) => concept_text(c)?,
                M::Reference(r) => r.display.text().map(str::to_owned)?,
            };
            let dosage = m
                .dosage_instruction
                .iter()
                .find_map(|d| d.text.text().map(str::to_owned));
            Some(MedicationRow {
                name,
                dosage,
                authored: m.authored_on.text().map(display_date),
                source: MedicationSource::Prescribed,
            })
        })
        .collect();
    rows.sort_by(|a, b| b.authored.cmp(&a.authored));
    rows.truncate(MAX_ROWS);
    rows
}

/// Medications the patient is reported to take (MedicationStatement `active` or `intended`),
/// newest first; a statement coded as an absence (IPS `no-known-medications`) is not a row.
pub fn statement_rows(statements: &[MedicationStatement]) -> Vec<MedicationRow> {
    use fhir_client::r4::MedicationStatementEffective as E;
    use fhir_client::r4::MedicationStatementMedication as M;
    let mut rows: Vec<MedicationRow> = statements
        .iter()
        .filter(|m| matches!(m.status.text(), Some("active" | "intended")))
        .filter_map(|m| {
            let name = match m.medication.as_ref()? {
                M::CodeableConcept(c) if recorded_absence(c).is_some() => return None,
                M::CodeableConcept(c) => concept_text(c)?,
                M::Reference(r) => r.display.text().map(str::to_owned)?,
            };
            let since = match m.effective.as_ref() {
                Some(E::DateTime(p)) => p.as_str().map(display_date),
                Some(E::Period(p)) => p.start.text().map(display_date),
                None => None,
            };
            Some(MedicationRow {
                name,
                dosage: m.dosage.iter().find_map(|d| d.text.text().map(str::to_owned)),
                authored: since.or_else(|| m.date_asserted.text().map(display_date)),
                source: MedicationSource::Reported,
            })
        })
        .collect();
    rows.sort_by(|a, b| b.authored.cmp(&a.authored));
    rows.truncate(MAX_ROWS);
    rows
}

/// Procedures (not entered in error, not a recorded absence), newest first.
pub fn procedure_rows(procedures: &[Procedure]) -> Vec<ProcedureRow> {
    use fhir_client::r4::ProcedurePerformed as P;
    let mut rows: Vec<(Option<DateTime<Utc>>, ProcedureRow)> = procedures
        .iter()
        .filter(|p| p.status.text() != Some("entered-in-error"))
        .filter(|p| p.code.as_deref().and_then(recorded_absence).is_none())
        .filter_map(|p| {
            let name = p.code.as_deref().and_then(concept_text)?;
            let (at, date) = match p.performed.as_ref() {
                Some(P::DateTime(d)) => (
                    d.as_str().and_then(parse_fhir_datetime),
                    d.as_str().map(display_date),
                ),
                Some(P::Period(period)) => (
                    period.start.text().and_then(parse_fhir_datetime),
                    period_text(period),
                ),
                Some(P::String(s)) => (None, s.as_str().map(str::to_owned)),
                _ => (None, None),
            };
            Some((
                at,
                ProcedureRow {
                    name,
                    date,
                    status: p.status.text().map(str::to_owned),
                },
            ))
        })
        .collect();
    rows.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    rows.into_iter().map(|(_, r)| r).take(MAX_ROWS).collect()
}

/// Diagnostic reports, newest first, each with its results read from `included` (the
/// Observations `_include=DiagnosticReport:result` brought, matched by `Observation/{id}`, also
/// when the reference is an absolute URL). A result the EHR did not include is left out.
pub fn report_rows(
    reports: &[DiagnosticReport],
    included: &[Resource],
    lab_units: units::LabUnits,
) -> Vec<ReportRow> {
    use fhir_client::r4::DiagnosticReportEffective as E;
    let observations: Vec<&Observation> = included
        .iter()
        .filter_map(|r| match r {
            Resource::Observation(o) => Some(&**o),
            _ => None,
        })
        .collect();
    let find = |reference: &str| {
        let id = reference
            .strip_prefix("Observation/")
            .or_else(|| reference.rsplit_once("/Observation/").map(|(_, id)| id))?;
        let id = id.split("/_history/").next().unwrap_or(id);
        observations.iter().copied().find(|o| o.id.as_deref() == Some(id))
    };
    let mut rows: Vec<(Option<DateTime<Utc>>, ReportRow)> = reports
        .iter()
        .filter(|r| r.status.text() != Some("entered-in-error"))
        .filter_map(|r| {
            let name = r.code.as_deref().and_then(concept_text)?;
            let when = match r.effective.as_ref() {
                Some(E::DateTime(d)) => d.as_str(),
                Some(E::Period(p)) => p.start.text(),
                None => None,
            }
            .or_else(|| r.issued.text());
            let results: Vec<&Observation> = r
                .result
                .iter()
                .filter_map(|x| x.reference.text())
                .filter_map(find)
                .collect();
            Some((
                when.and_then(parse_fhir_datetime),
                ReportRow {
                    name,
                    date: when.map(display_date),
                    status: r.status.text().map(str::to_owned),
                    results: lab_rows(&results, lab_units),
                    conclusion: r.conclusion.text().map(str::to_owned),
                },
            ))
        })
        .collect();
    rows.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    rows.into_iter().map(|(_, r)| r).take(MAX_ROWS).collect()
}

/// Allergies that are not resolved or refuted, high criticality first.
pub fn allergy_rows(allergies: &[AllergyIntolerance]) -> Vec<AllergyRow> {
    let mut rows: Vec<AllergyRow> = allergies
        .iter()
        .filter(|a| {
            a.clinical_status
                .as_ref()
                .is_none_or(|s| !has_code(s, &["resolved", "inactive"]))
        })
        .filter(|a| {
            a.verification_status
                .as_ref()
                .is_none_or(|s| !has_code(s, &["refuted", "entered-in-error"]))
        })
        .filter(|a| a.code.as_deref().and_then(recorded_absence).is_none())
        .filter_map(|a| {
            let substance = a.code.as_deref().and_then(concept_text)?;
            let reactions: Vec<String> = a
                .reaction
                .iter()
                .flat_map(|r| r.manifestation.iter())
                .filter_map(concept_text)
                .collect();
            Some(AllergyRow {
                substance,
                criticality: a.criticality.text().map(str::to_owned),
                reactions: (!reactions.is_empty()).then(|| reactions.join(", ")),
            })
        })
        .collect();
    rows.sort_by_key(|r| r.criticality.as_deref() != Some("high"));
    rows.truncate(MAX_ROWS);
    rows
}

/// Immunizations given (not entered in error), newest first.
pub fn immunization_rows(immunizations: &[Immunization]) -> Vec<ImmunizationRow> {
    use fhir_client::r4::ImmunizationOccurrence as O;
    let mut rows: Vec<ImmunizationRow> = immunizations
        .iter()
        .filter(|i| {
            i.status.text() == Some("completed")
                && i.vaccine_code.as_deref().and_then(recorded_absence).is_none()
        })
        .filter_map(|i| {
            let vaccine = i.vaccine_code.as_deref().and_then(concept_text)?;
            let date = match i.occurrence.as_ref() {
                Some(O::DateTime(p)) => p.as_str().map(display_date),
                Some(O::String(s)) => Some(s.as_str()?.to_owned()),
                None => None,
            };
            Some(ImmunizationRow { vaccine, date })
        })
        .collect();
    rows.sort_by(|a, b| b.date.cmp(&a.date));
    rows.truncate(MAX_ROWS);
    rows
}

/// Encounters, newest first.
pub fn encounter_rows(encounters: &[Encounter]) -> Vec<EncounterRow> {
    let mut rows: Vec<(Option<DateTime<Utc>>, EncounterRow)> = encounters
        .iter()
        .map(|e| {
            let kind = e
                .type_
                .iter()
                .find_map(concept_text)
                .or_else(|| e.class.as_ref().and_then(|c| c.display.text()).map(str::to_owned))
                .or_else(|| e.class.as_ref().and_then(|c| c.code.text()).map(str::to_owned))
                .unwrap_or_else(|| "Encounter".to_owned());
            let start = e
                .period
                .as_ref()
                .and_then(|p| p.start.text())
                .and_then(parse_fhir_datetime);
            (
                start,
                EncounterRow {
                    kind,
                    period: e.period.as_deref().and_then(period_text),
                    status: e.status.text().map(str::to_owned),
                },
            )
        })
        .collect();
    rows.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    rows.into_iter().map(|(_, r)| r).take(MAX_ROWS).collect()
}

#[cfg(test)]
mod tests {
    use super::super::absence_in;
    use super::super::tests::parse;
    use super::*;
    use crate::absence::Recorded;

    #[test]
    fn inactive_conditions_and_stopped_medications_are_left_out() {
        let active: Condition = parse(serde_json::json!({
            "resourceType": "Condition", "subject": {"reference": "Patient/1"},
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": {"text": "Hypertension"}, "onsetDateTime": "2019-05-01"
        }));
        let resolved: Condition = parse(serde_json::json!({
            "resourceType": "Condition", "subject": {"reference": "Patient/1"},
            "clinicalStatus": {"coding": [{"code": "resolved"}]}, "code": {"text": "Flu"}
        }));
        let rows = condition_rows(&[active, resolved]);
        assert_eq!(
            rows,
            vec![ConditionRow {
                name: "Hypertension".into(),
                onset: Some("2019-05-01".into()),
                resolved: None,
            }]
        );

        let med: MedicationRequest = parse(serde_json::json!({
            "resourceType": "MedicationRequest", "status": "active", "intent": "order",
            "subject": {"reference": "Patient/1"},
            "medicationCodeableConcept": {"text": "Lisinopril 10 mg"},
            "dosageInstruction": [{"text": "once daily"}]
        }));
        let stopped: MedicationRequest = parse(serde_json::json!({
            "resourceType": "MedicationRequest", "status": "stopped", "intent": "order",
            "subject": {"reference": "Patient/1"}, "medicationCodeableConcept": {"text": "Old"}
        }));
        let rows = medication_rows(&[med, stopped]);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].dosage.as_deref(), Some("once daily"));
    }

    #[test]
    fn a_recorded_no_known_allergy_is_an_absence_not_a_row() {
        let nka: AllergyIntolerance = parse(serde_json::json!({
            "resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/1"},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "716186003", "display": "No known allergy"}]}
        }));
        assert!(
            allergy_rows(std::slice::from_ref(&nka)).is_empty(),
            "not listed as a substance"
        );
        assert_eq!(
            absence_in(&[nka], |a| a.code.as_deref()),
            Some(Recorded::KnownNone("No known allergies"))
        );
    }

    #[test]
    fn allergies_put_high_criticality_first() {
        let low: AllergyIntolerance = parse(serde_json::json!({
            "resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/1"},
            "code": {"text": "Dust"}, "criticality": "low"
        }));
        let high: AllergyIntolerance = parse(serde_json::json!({
            "resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/1"},
            "code": {"text": "Penicillin"}, "criticality": "high",
            "reaction": [{"manifestation": [{"text": "Hives"}]}]
        }));
        let rows = allergy_rows(&[low, high]);
        assert_eq!(rows[0].substance, "Penicillin");
        assert_eq!(rows[0].reactions.as_deref(), Some("Hives"));
    }

    #[test]
    fn resolved_problems_are_listed_apart_with_when_they_resolved() {
        let condition = |status: &str, name: &str, extra: serde_json::Value| -> Condition {
            let mut v = serde_json::json!({
                "resourceType": "Condition", "subject": {"reference": "Patient/1"},
                "clinicalStatus": {"coding": [{"code": status}]}, "code": {"text": name},
                "onsetDateTime": "2020-01-01"
            });
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            parse(v)
        };
        let conditions = [
            condition("active", "Hypertension", serde_json::json!({})),
            condition(
                "resolved",
                "Sinusitis",
                serde_json::json!({"abatementDateTime": "2021-02-03T10:00:00Z"}),
            ),
            condition("remission", "Asthma", serde_json::json!({})),
            condition(
                "resolved",
                "Not really",
                serde_json::json!({"verificationStatus": {"coding": [{"code": "refuted"}]}}),
            ),
        ];
        let active = condition_rows(&conditions);
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].resolved, None);
        let resolved = resolved_condition_rows(&conditions);
        let names: Vec<(&str, Option<&str>)> = resolved
            .iter()
            .map(|r| (r.name.as_str(), r.resolved.as_deref()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("Sinusitis", Some("resolved 2021-02-03")),
                ("Asthma", Some("remission"))
            ],
            "refuted problems are neither active nor resolved"
        );
    }

    #[test]
    fn procedures_show_their_period_and_status_newest_first_without_errors() {
        let procedure = |name: &str, performed: serde_json::Value, status: &str| -> Procedure {
            let mut v = serde_json::json!({
                "resourceType": "Procedure", "status": status,
                "subject": {"reference": "Patient/1"}, "code": {"text": name}
            });
            for (k, x) in performed.as_object().unwrap() {
                v[k] = x.clone();
            }
            parse(v)
        };
        let rows = procedure_rows(&[
            procedure(
                "Colonoscopy",
                serde_json::json!({"performedDateTime": "2019-04-01"}),
                "completed",
            ),
            procedure(
                "Appendectomy",
                serde_json::json!({"performedPeriod": {"start": "2023-05-01T10:00:00Z", "end": "2023-05-02T09:00:00Z"}}),
                "completed",
            ),
            procedure(
                "Typo",
                serde_json::json!({"performedDateTime": "2024-01-01"}),
                "entered-in-error",
            ),
            procedure(
                "Knee arthroscopy",
                serde_json::json!({"performedString": "as a child"}),
                "not-done",
            ),
        ]);
        assert_eq!(
            rows,
            vec![
                ProcedureRow {
                    name: "Appendectomy".into(),
                    date: Some("2023-05-01 – 2023-05-02".into()),
                    status: Some("completed".into())
                },
                ProcedureRow {
                    name: "Colonoscopy".into(),
                    date: Some("2019-04-01".into()),
                    status: Some("completed".into())
                },
                ProcedureRow {
                    name: "Knee arthroscopy".into(),
                    date: Some("as a child".into()),
                    status: Some("not-done".into())
                },
            ]
        );
    }

    #[test]
    fn reports_group_their_included_results_with_flags_and_skip_results_not_returned() {
        let report: DiagnosticReport = parse(serde_json::json!({
            "resourceType": "DiagnosticReport", "status": "final",
            "code": {"text": "Basic metabolic panel"},
            "effectiveDateTime": "2024-01-02T08:00:00Z",
            "result": [
                {"reference": "Observation/k"},
                {"reference": "https://ehr.example/fhir/Observation/na/_history/2"},
                {"reference": "Observation/missing"}
            ]
        }));
        let older: DiagnosticReport = parse(serde_json::json!({
            "resourceType": "DiagnosticReport", "status": "preliminary",
            "code": {"text": "CBC"}, "issued": "2023-01-01T00:00:00Z"
        }));
        let potassium: Resource = parse(serde_json::json!({
            "resourceType": "Observation", "id": "k", "status": "final", "code": {"text": "Potassium"},
            "effectiveDateTime": "2024-01-02T08:00:00Z",
            "valueQuantity": {"value": 5.9, "unit": "mmol/L"},
            "referenceRange": [{"low": {"value": 3.5, "unit": "mmol/L"}, "high": {"value": 5.1, "unit": "mmol/L"}}]
        }));
        let sodium: Resource = parse(serde_json::json!({
            "resourceType": "Observation", "id": "na", "status": "final", "code": {"text": "Sodium"},
            "effectiveDateTime": "2024-01-02T08:00:00Z",
            "valueQuantity": {"value": 140, "unit": "mmol/L"}
        }));
        let rows = report_rows(
            &[older, report],
            &[potassium, sodium],
            units::LabUnits::Conventional,
        );
        assert_eq!(rows[0].name, "Basic metabolic panel", "newest first");
        assert_eq!(rows[0].date.as_deref(), Some("2024-01-02"));
        assert_eq!(rows[0].status.as_deref(), Some("final"));
        let results: Vec<(&str, Option<&str>)> = rows[0]
            .results
            .iter()
            .map(|r| (r.name.as_str(), r.flag.as_ref().map(|f| f.0.as_str())))
            .collect();
        assert_eq!(results, vec![("Potassium", Some("H")), ("Sodium", None)]);
        assert_eq!(rows[0].results[0].range.as_deref(), Some("3.5–5.1 mmol/L"));
        assert_eq!(
            rows[1].date.as_deref(),
            Some("2023-01-01"),
            "issued when no effective"
        );
        assert!(rows[1].results.is_empty());
    }

    #[test]
    fn reported_medications_are_marked_reported_and_stopped_or_absent_ones_left_out() {
        let statement = |status: &str, medication: serde_json::Value| -> MedicationStatement {
            parse(serde_json::json!({
                "resourceType": "MedicationStatement", "status": status,
                "subject": {"reference": "Patient/1"},
                "medicationCodeableConcept": medication,
                "effectivePeriod": {"start": "2024-02-01"},
                "dosage": [{"text": "1 tablet daily"}]
            }))
        };
        let none = statement(
            "active",
            serde_json::json!({"coding": [{"system": crate::absence::IPS_ABSENT_UNKNOWN, "code": "no-known-medications"}]}),
        );
        let statements = [
            statement("active", serde_json::json!({"text": "Aspirin 81 mg"})),
            statement("stopped", serde_json::json!({"text": "Ibuprofen"})),
            none.clone(),
        ];
        let rows = statement_rows(&statements);
        assert_eq!(
            rows,
            vec![MedicationRow {
                name: "Aspirin 81 mg".into(),
                dosage: Some("1 tablet daily".into()),
                authored: Some("2024-02-01".into()),
                source: MedicationSource::Reported,
            }]
        );
        assert_eq!(
            absence_in(&[none], |m| match m.medication.as_ref() {
                Some(fhir_client::r4::MedicationStatementMedication::CodeableConcept(c)) => Some(&**c),
                _ => None,
            }),
            Some(Recorded::KnownNone("No known medications"))
        );
    }
}
