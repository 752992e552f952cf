//! The patient summary: what the start page shows after a launch, as view rows built from typed R4
//! resources.
//!
//! [`Summary`] holds one [`Section`] per part of the page; a section is `NotShared` when the granted
//! scopes do not cover its resource type, and `Failed` (with a sentence) when the EHR refused or
//! failed that one request — the rest of the page still renders. The functions here only turn
//! resources into rows; fetching is in `crate::fetch`.
//!
//! Here: the rows' types, the banner and the readers every section shares (concepts, dates, quantities,
//! recorded absences). The vital signs are in `vitals` (charts, and rows for the rest), the laboratory results
//! in `labs`, the other list sections in `lists`.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use fhir_client::r4::{CodeableConcept, Period, Quantity};
use fhir_client::r4::{Observation, Patient, TextValue};

use crate::absence::{self, Recorded};
use crate::charts::DrawnChart;
use crate::units;

mod labs;
mod lists;
mod vitals;

pub use labs::lab_rows;
pub use lists::{
    allergy_rows, condition_rows, encounter_rows, immunization_rows, medication_rows, procedure_rows,
    report_rows, resolved_condition_rows, statement_rows,
};
pub use vitals::{OtherVitalRow, other_vital_rows, vital_charts};

/// One part of the summary.
#[derive(Debug, Clone, PartialEq)]
pub enum Section<T> {
    /// The rows to show (possibly none).
    Shown(Vec<T>),
    /// The granted scopes do not include this resource type.
    NotShared,
    /// The request failed; the sentence says why.
    Failed(String),
}

/// Name, gender, birth date with age, identifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientBanner {
    /// The display name.
    pub name: String,
    /// `male`, `female`, `other`, `unknown`.
    pub gender: Option<String>,
    /// As recorded (`YYYY-MM-DD`, or less precise).
    pub birth_date: Option<String>,
    /// "42 years", "7 months".
    pub age: Option<String>,
    /// `(label, value)`: the identifier's type text, or its system, and its value.
    pub identifiers: Vec<(String, String)>,
}

/// A laboratory result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabRow {
    /// What was measured.
    pub name: String,
    /// The value with its unit.
    pub value: String,
    /// The reference range, e.g. "3.5–5.1 mmol/L".
    pub range: Option<String>,
    /// The value and range as the EHR sent them, when `value` and `range` are converted to the
    /// configured lab units (`lab_units`): e.g. `"5.5 mmol/L (range 3.9–5.5 mmol/L)"`.
    pub as_sent: Option<String>,
    /// `(short flag, meaning)`, e.g. `("H", "High")`, when abnormal.
    pub flag: Option<(String, String)>,
    /// When measured.
    pub date: Option<String>,
}

/// A condition (problem), active or resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionRow {
    /// The condition.
    pub name: String,
    /// Since when.
    pub onset: Option<String>,
    /// For a resolved (inactive, in remission) problem: its clinical status and, when recorded, its
    /// abatement date ("resolved 2024-03-11").
    pub resolved: Option<String>,
}

/// Where a medication in the list comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MedicationSource {
    /// An order (MedicationRequest): prescribed.
    Prescribed,
    /// A MedicationStatement: reported (by the patient, a relative, another clinician).
    Reported,
}

/// An active medication: an order, or a statement that the patient takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MedicationRow {
    /// The medication.
    pub name: String,
    /// The dosage text.
    pub dosage: Option<String>,
    /// When prescribed, or since when taken (reported).
    pub authored: Option<String>,
    /// Prescribed or reported.
    pub source: MedicationSource,
}

/// A procedure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcedureRow {
    /// What was done.
    pub name: String,
    /// When (a date, or a period "2024-01-02 – 2024-01-05").
    pub date: Option<String>,
    /// `completed`, `in-progress`, `not-done`, …
    pub status: Option<String>,
}

/// A diagnostic report (a lab panel, an imaging report) with its results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    /// The report's name (its code).
    pub name: String,
    /// When the report is about (`effective[x]`), else when issued.
    pub date: Option<String>,
    /// `final`, `preliminary`, `amended`, …
    pub status: Option<String>,
    /// The report's results the EHR returned (included Observations), with ranges and flags.
    pub results: Vec<LabRow>,
    /// The report's conclusion text.
    pub conclusion: Option<String>,
}

/// An allergy or intolerance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllergyRow {
    /// The substance.
    pub substance: String,
    /// `low`, `high`, `unable-to-assess`.
    pub criticality: Option<String>,
    /// The reactions' manifestations.
    pub reactions: Option<String>,
}

/// An immunization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImmunizationRow {
    /// The vaccine.
    pub vaccine: String,
    /// When given.
    pub date: Option<String>,
}

/// An encounter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncounterRow {
    /// The encounter's type (or class).
    pub kind: String,
    /// When.
    pub period: Option<String>,
    /// `finished`, `in-progress`, …
    pub status: Option<String>,
}

/// Everything the start page shows about the patient.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The name used in "ready to make API requests for …".
    pub patient_name: String,
    /// The banner, unless the EHR said it shows its own (`need_patient_banner: false`).
    pub banner: Option<PatientBanner>,
    /// Vital-sign charts.
    pub vitals: Section<DrawnChart>,
    /// The vital signs no chart shows (empty when vital signs were not shared or failed).
    pub other_vitals: Vec<OtherVitalRow>,
    /// The time window the dated sections were fetched for.
    pub window: crate::window::Window,
    /// Sentences about sections whose search stopped before the EHR's last page.
    pub notes: Vec<String>,
    /// Absences the EHR recorded ("No known allergies"), by section title.
    pub absences: Vec<(String, Recorded)>,
    /// Recent laboratory results.
    pub labs: Section<LabRow>,
    /// Active conditions.
    pub conditions: Section<ConditionRow>,
    /// Resolved, inactive and in-remission conditions (empty unless `conditions` is shown).
    pub resolved_conditions: Vec<ConditionRow>,
    /// Active medication orders (prescribed).
    pub medications: Section<MedicationRow>,
    /// Active medication statements (reported).
    pub medication_statements: Section<MedicationRow>,
    /// Procedures.
    pub procedures: Section<ProcedureRow>,
    /// Diagnostic reports with their results.
    pub reports: Section<ReportRow>,
    /// Allergies.
    pub allergies: Section<AllergyRow>,
    /// Immunizations.
    pub immunizations: Section<ImmunizationRow>,
    /// Recent encounters.
    pub encounters: Section<EncounterRow>,
    /// What the searches read, by type, and the problems met reading it (the timeline's step F).
    pub reading: crate::reading::Reading,
}

/// How many rows the list sections show.
pub const MAX_ROWS: usize = 10;

/// The text of a concept: its `text`, else the first coding's display, else its first code.
pub fn concept_text(concept: &CodeableConcept) -> Option<String> {
    concept
        .text
        .text()
        .or_else(|| concept.coding.iter().find_map(|c| c.display.text()))
        .or_else(|| concept.coding.iter().find_map(|c| c.code.text()))
        .filter(|t| !t.trim().is_empty())
        .map(str::to_owned)
}

/// The absence a concept records (SNOMED CT 716186003 "No known allergy", IPS `no-known-…`).
pub fn recorded_absence(concept: &CodeableConcept) -> Option<Recorded> {
    absence::recorded(concept.coding.iter().filter_map(|c| {
        let code = c.code.text()?;
        Some((c.system.text(), code))
    }))
}

/// The first recorded absence among `resources` (by the concept `code` picks out).
pub fn absence_in<R>(resources: &[R], code: impl Fn(&R) -> Option<&CodeableConcept>) -> Option<Recorded> {
    resources.iter().find_map(|r| code(r).and_then(recorded_absence))
}

fn has_code(concept: &CodeableConcept, codes: &[&str]) -> bool {
    concept
        .coding
        .iter()
        .any(|c| c.code.text().is_some_and(|code| codes.contains(&code)))
}

/// Parses a FHIR `dateTime`/`date`/`instant` at any precision (a bare date is midnight UTC).
pub fn parse_fhir_datetime(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(dt.with_timezone(&Utc));
    }
    let date = match text.len() {
        10 => NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?,
        7 => NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").ok()?,
        4 => NaiveDate::from_ymd_opt(text.parse().ok()?, 1, 1)?,
        _ => return None,
    };
    Some(Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0)?))
}

/// A FHIR date or dateTime for display: the date part, as precise as recorded.
pub fn display_date(text: &str) -> String {
    text.split('T').next().unwrap_or(text).to_owned()
}

fn period_text(period: &Period) -> Option<String> {
    match (period.start.text(), period.end.text()) {
        (Some(s), Some(e)) if display_date(s) != display_date(e) => {
            Some(format!("{} – {}", display_date(s), display_date(e)))
        }
        (Some(s), _) => Some(display_date(s)),
        (None, Some(e)) => Some(format!("until {}", display_date(e))),
        (None, None) => None,
    }
}

fn quantity_text(q: &Quantity) -> Option<String> {
    let value = q.value.as_ref()?.value()?.as_str().to_owned();
    let comparator = q.comparator.text().map(str::to_owned).unwrap_or_default();
    let unit = q.unit.text().or_else(|| q.code.text()).map(str::to_owned);
    Some(match unit {
        Some(unit) if !unit.is_empty() => format!("{comparator}{value} {unit}"),
        _ => format!("{comparator}{value}"),
    })
}

/// The age in whole years (or months under two) at `today`.
pub fn age(birth: NaiveDate, today: NaiveDate) -> Option<String> {
    let mut months = (today.year() - birth.year()) * 12 + today.month() as i32 - birth.month() as i32;
    if today.day() < birth.day() {
        months -= 1;
    }
    if months < 0 {
        return None;
    }
    Some(if months < 24 {
        format!("{months} month{}", if months == 1 { "" } else { "s" })
    } else {
        format!("{} years", months / 12)
    })
}

/// The banner for a patient (`name` from [`fhir_client`]'s name display).
pub fn banner(patient: &Patient, name: String, today: NaiveDate) -> PatientBanner {
    let birth_date = patient.birth_date.text().map(str::to_owned);
    let age = birth_date
        .as_deref()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .and_then(|b| age(b, today));
    let identifiers = patient
        .identifier
        .iter()
        .filter_map(|id| {
            let value = id.value.text()?.to_owned();
            let label = id
                .type_
                .as_deref()
                .and_then(concept_text)
                .or_else(|| {
                    id.system
                        .text()
                        .map(|s| s.rsplit(['/', ':']).next().unwrap_or(s).to_owned())
                })
                .unwrap_or_else(|| "ID".to_owned());
            Some((label, value))
        })
        .take(4)
        .collect();
    PatientBanner {
        name,
        gender: patient.gender.text().map(str::to_owned),
        birth_date,
        age,
        identifiers,
    }
}

/// When an Observation was made (`effective[x]`, a period's start).
pub fn observation_time(o: &Observation) -> Option<DateTime<Utc>> {
    use fhir_client::r4::ObservationEffective as E;
    let text = match o.effective.as_ref()? {
        E::DateTime(p) => p.as_str()?.to_owned(),
        E::Instant(p) => p.as_str()?.to_owned(),
        E::Period(p) => p.start.text()?.to_owned(),
        E::Timing(_) => return None,
    };
    parse_fhir_datetime(&text)
}

fn observation_quantity(o: &Observation) -> Option<&Quantity> {
    use fhir_client::r4::ObservationValue as V;
    match o.value.as_ref()? {
        V::Quantity(q) => Some(q),
        _ => None,
    }
}

/// The unit to convert a Quantity from: its UCUM code, else its display unit.
fn quantity_unit(q: &Quantity) -> Option<String> {
    units::quantity_unit(q.system.text(), q.code.text(), q.unit.text()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn parse<T: fhir_client::r4::FromJson>(v: serde_json::Value) -> T {
        fhir_client::r4::from_str(&v.to_string(), fhir_client::r4::Mode::Strict)
            .unwrap()
            .0
    }

    pub(super) fn vital(code: &str, value: f64, when: &str) -> Observation {
        vital_in(code, value, when, "/min")
    }

    pub(super) fn vital_in(code: &str, value: f64, when: &str, ucum: &str) -> Observation {
        parse(serde_json::json!({
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}], "text": format!("LOINC {code}")},
            "effectiveDateTime": when,
            "valueQuantity": {"value": value, "unit": ucum, "system": "http://unitsofmeasure.org", "code": ucum}
        }))
    }

    #[test]
    fn ages_and_dates() {
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(age(d("1980-06-15"), d("2024-06-14")).as_deref(), Some("43 years"));
        assert_eq!(age(d("1980-06-15"), d("2024-06-15")).as_deref(), Some("44 years"));
        assert_eq!(age(d("2024-01-20"), d("2024-06-15")).as_deref(), Some("4 months"));
        assert_eq!(age(d("2025-01-01"), d("2024-06-15")), None);
        assert!(parse_fhir_datetime("2024-02").is_some());
        assert!(parse_fhir_datetime("2024").is_some());
        assert!(parse_fhir_datetime("2024-02-03T04:05:06+01:00").is_some());
        assert!(parse_fhir_datetime("yesterday").is_none());
    }

    #[test]
    fn banner_lists_identifiers_and_age() {
        let p: Patient = parse(serde_json::json!({
            "resourceType": "Patient", "gender": "female", "birthDate": "1970-01-01",
            "identifier": [{"type": {"text": "MRN"}, "value": "12345"}, {"system": "urn:oid:1.2.3", "value": "x"}]
        }));
        let b = banner(
            &p,
            "Jane Doe".into(),
            NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
        );
        assert_eq!(b.gender.as_deref(), Some("female"));
        assert_eq!(b.age.as_deref(), Some("54 years"));
        assert_eq!(b.identifiers[0], ("MRN".into(), "12345".into()));
    }
}
