//! The patient summary: what the start page shows after a launch, as view rows built from typed R4
//! resources.
//!
//! [`Summary`] holds one [`Section`] per part of the page; a section is `NotShared` when the granted
//! scopes do not cover its resource type, and `Failed` (with a sentence) when the EHR refused or
//! failed that one request — the rest of the page still renders. The functions here only turn
//! resources into rows; fetching is in [`crate::fetch`].

use std::borrow::Borrow;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use fhir_client::r4::{
    AllergyIntolerance, Condition, DiagnosticReport, Encounter, Immunization, MedicationRequest,
    MedicationStatement, Observation, Patient, Procedure, Resource, TextValue,
};
use fhir_client::r4::{CodeableConcept, Period, Quantity};

use crate::absence::{self, Recorded};
use crate::charts::{Band, BandSource, Chart, DrawnChart, Series};
use crate::units;

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

/// One chart line: its label and the LOINC codes that feed it.
type Line = (&'static str, &'static [&'static str]);

/// The vital signs the page charts: `(title, unit, lines)`.
const VITALS: &[(&str, &str, &[Line])] = &[
    (
        "Blood pressure",
        "mmHg",
        &[("Systolic", &["8480-6"]), ("Diastolic", &["8462-4"])],
    ),
    ("Heart rate", "/min", &[("Heart rate", &["8867-4"])]),
    ("Weight", "kg", &[("Weight", &["29463-7", "3141-9"])]),
    ("BMI", "kg/m²", &[("BMI", &["39156-5"])]),
    ("Temperature", "°C", &[("Temperature", &["8310-5", "8331-1"])]),
    ("SpO2", "%", &[("SpO2", &["2708-6", "59408-5"])]),
    ("Respiratory rate", "/min", &[("Respiratory rate", &["9279-1"])]),
];

/// Vital-sign charts from Observations (blood pressure read from panel components as well).
///
/// Each line's values are converted to the chart's unit ([`crate::units`]); values in a unit that
/// does not convert get a chart of their own, titled with the unit as sent, so that no axis mixes
/// units.
pub fn vital_charts<O: Borrow<Observation>>(observations: &[O]) -> Vec<Chart> {
    let mut charts = Vec::new();
    let mut as_sent = Vec::new();
    for (title, unit, lines) in VITALS {
        let mut series = Vec::new();
        for (label, codes) in *lines {
            let measured = measurements_for(observations, codes);
            let normalized = units::normalize(measured.iter().map(|(t, v, u)| (*t, *v, u.as_deref())), unit);
            if !normalized.converted.is_empty() {
                series.push(Series {
                    label: (*label).to_owned(),
                    points: normalized.converted,
                });
            }
            for (sent, points) in normalized.as_sent {
                as_sent.push(Chart {
                    title: format!("{title} (as sent)"),
                    unit: if sent.is_empty() {
                        "no unit".to_owned()
                    } else {
                        sent
                    },
                    series: vec![Series {
                        label: (*label).to_owned(),
                        points,
                    }],
                    bands: Vec::new(),
                });
            }
        }
        charts.push(Chart {
            title: (*title).to_owned(),
            unit: (*unit).to_owned(),
            series,
            // The EHR's own reference range where it gives one, else the usual adult range.
            bands: lines
                .iter()
                .filter_map(|(label, codes)| {
                    ehr_band(observations, codes, label, unit)
                        .or_else(|| crate::charts::usual_adult_band(codes[0], label))
                })
                .collect(),
        });
    }
    charts.extend(as_sent);
    charts
}

/// The latest `referenceRange` (low and high, converted to `unit`) of the Observations with one of
/// `codes`, as a band for the line `label`.
fn ehr_band<O: Borrow<Observation>>(
    observations: &[O],
    codes: &[&str],
    label: &str,
    unit: &str,
) -> Option<Band> {
    let latest = observations
        .iter()
        .map(Borrow::borrow)
        .filter(|o| o.code.as_deref().is_some_and(|k| has_code(k, codes)) && !o.reference_range.is_empty())
        .max_by_key(|o| observation_time(o))?;
    let range = latest.reference_range.first()?;
    let limit = |q: Option<&Quantity>| -> Option<f64> {
        let q = q?;
        let v = q.value.as_ref()?.value()?.to_f64();
        match quantity_unit(q) {
            Some(u) => units::convert(v, &u, unit),
            None => Some(v),
        }
    };
    let (low, high) = (limit(range.low.as_deref())?, limit(range.high.as_deref())?);
    (low < high).then(|| Band {
        label: label.to_owned(),
        low,
        high,
        source: BandSource::Ehr,
    })
}

/// `(time, value, unit as sent)` of every measurement with one of `codes`, oldest first.
fn measurements_for<O: Borrow<Observation>>(
    observations: &[O],
    codes: &[&str],
) -> Vec<(DateTime<Utc>, f64, Option<String>)> {
    use fhir_client::r4::ObservationComponentValue as CV;
    let mut points = Vec::new();
    let mut push = |at: DateTime<Utc>, q: &Quantity| {
        if let Some(v) = q.value.as_ref().and_then(|v| v.value()) {
            points.push((at, v.to_f64(), quantity_unit(q)));
        }
    };
    for o in observations.iter().map(Borrow::borrow) {
        let Some(at) = observation_time(o) else { continue };
        if o.code.as_deref().is_some_and(|k| has_code(k, codes))
            && let Some(q) = observation_quantity(o)
        {
            push(at, q);
        }
        for c in &o.component {
            if c.code.as_deref().is_some_and(|k| has_code(k, codes))
                && let Some(CV::Quantity(q)) = c.value.as_ref()
            {
                push(at, q);
            }
        }
    }
    points.sort_by_key(|(t, _, _)| *t);
    points
}

/// The unit to convert a Quantity from: its UCUM code, else its display unit.
fn quantity_unit(q: &Quantity) -> Option<String> {
    units::quantity_unit(q.system.text(), q.code.text(), q.unit.text()).map(str::to_owned)
}

/// A vital sign the page has no chart for: its latest value and how many there were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherVitalRow {
    /// What was measured.
    pub name: String,
    /// The latest value with its unit, as sent.
    pub value: String,
    /// When the latest was measured.
    pub date: Option<String>,
    /// How many measurements of it the EHR returned.
    pub count: usize,
}

/// The vital signs that none of the charts show (height, vendor-coded vitals without LOINC, …),
/// one row per kind with its latest value, by name.
pub fn other_vital_rows<O: Borrow<Observation>>(observations: &[O]) -> Vec<OtherVitalRow> {
    let charted: Vec<&str> = VITALS
        .iter()
        .flat_map(|(_, _, lines)| lines.iter().flat_map(|(_, codes)| codes.iter().copied()))
        .collect();
    let mut rows: Vec<(Option<DateTime<Utc>>, OtherVitalRow)> = Vec::new();
    for o in observations.iter().map(Borrow::borrow) {
        let in_a_chart = o.code.as_deref().is_some_and(|k| has_code(k, &charted))
            || o.component
                .iter()
                .any(|c| c.code.as_deref().is_some_and(|k| has_code(k, &charted)));
        if in_a_chart {
            continue;
        }
        let Some(name) = o.code.as_deref().and_then(concept_text) else {
            continue;
        };
        let value = observation_quantity(o).and_then(quantity_text).or_else(|| {
            use fhir_client::r4::ObservationValue as V;
            match o.value.as_ref()? {
                V::CodeableConcept(c) => concept_text(c),
                V::String(s) => Some(s.as_str()?.to_owned()),
                _ => None,
            }
        });
        let Some(value) = value else { continue };
        let at = observation_time(o);
        match rows.iter_mut().find(|(_, r)| r.name == name) {
            Some((latest, row)) => {
                row.count += 1;
                if at > *latest {
                    *latest = at;
                    row.value = value;
                    row.date = at.map(|t| t.format("%Y-%m-%d").to_string());
                }
            }
            None => rows.push((
                at,
                OtherVitalRow {
                    name,
                    value,
                    date: at.map(|t| t.format("%Y-%m-%d").to_string()),
                    count: 1,
                },
            )),
        }
    }
    rows.into_iter().map(|(_, r)| r).collect()
}

fn interpretation_flag(o: &Observation) -> Option<(String, String)> {
    for concept in &o.interpretation {
        for coding in &concept.coding {
            let code = coding.code.text()?;
            let meaning = match code {
                "H" => "High",
                "HH" | "HU" => "Critically high",
                "L" => "Low",
                "LL" | "LU" => "Critically low",
                "A" => "Abnormal",
                "AA" => "Critically abnormal",
                _ => continue,
            };
            return Some((code.to_owned(), meaning.to_owned()));
        }
    }
    None
}

/// Laboratory rows, newest first, with reference ranges and abnormal flags (from the
/// interpretation, or computed from the range when the EHR gave none). Analytes whose molar mass is
/// known are shown in `lab_units`, with what was sent kept beside them; the flag is the EHR's or is
/// computed in the units it sent, so a conversion never changes it.
pub fn lab_rows<O: Borrow<Observation>>(observations: &[O], lab_units: units::LabUnits) -> Vec<LabRow> {
    let mut sorted: Vec<&Observation> = observations.iter().map(Borrow::borrow).collect();
    sorted.sort_by_key(|o| std::cmp::Reverse(observation_time(o)));
    sorted
        .into_iter()
        .filter_map(|o| {
            let name = o.code.as_deref().and_then(concept_text)?;
            let quantity = observation_quantity(o);
            let value = quantity.and_then(quantity_text).or_else(|| {
                use fhir_client::r4::ObservationValue as V;
                match o.value.as_ref()? {
                    V::CodeableConcept(c) => concept_text(c),
                    V::String(s) => Some(s.as_str()?.to_owned()),
                    _ => None,
                }
            })?;
            let range = o.reference_range.first();
            let range_text = range.and_then(|r| {
                r.text.text().map(str::to_owned).or_else(|| {
                    let low = r
                        .low
                        .as_ref()
                        .and_then(|q| q.value.as_ref())
                        .and_then(|v| v.value())
                        .map(|v| v.as_str().to_owned());
                    let high = r
                        .high
                        .as_ref()
                        .and_then(|q| q.value.as_ref())
                        .and_then(|v| v.value())
                        .map(|v| v.as_str().to_owned());
                    let unit = r
                        .low
                        .as_ref()
                        .or(r.high.as_ref())
                        .and_then(|q| q.unit.text())
                        .map(str::to_owned);
                    let unit = unit.map(|u| format!(" {u}")).unwrap_or_default();
                    match (low, high) {
                        (Some(l), Some(h)) => Some(format!("{l}–{h}{unit}")),
                        (Some(l), None) => Some(format!("≥ {l}{unit}")),
                        (None, Some(h)) => Some(format!("≤ {h}{unit}")),
                        (None, None) => None,
                    }
                })
            });
            let computed = || {
                let v = quantity?.value.as_ref()?.value()?.to_f64();
                let r = range?;
                if r.low
                    .as_ref()
                    .and_then(|q| q.value.as_ref())
                    .and_then(|low| low.value())
                    .is_some_and(|low| v < low.to_f64())
                {
                    Some(("L".to_owned(), "Low".to_owned()))
                } else if r
                    .high
                    .as_ref()
                    .and_then(|q| q.value.as_ref())
                    .and_then(|high| high.value())
                    .is_some_and(|high| v > high.to_f64())
                {
                    Some(("H".to_owned(), "High".to_owned()))
                } else {
                    None
                }
            };
            let (value, range_text, as_sent) = in_lab_units(o, quantity, range, value, range_text, lab_units);
            Some(LabRow {
                name,
                value,
                range: range_text,
                as_sent,
                flag: interpretation_flag(o).or_else(computed),
                date: observation_time(o).map(|t| t.format("%Y-%m-%d").to_string()),
            })
        })
        .take(MAX_ROWS * 2)
        .collect()
}

/// A lab row's value and range in `lab_units`, and what was sent when either changed. The value converts
/// when its analyte (by LOINC code) and unit are known; the range when its bounds are numbers in a known unit
/// (its `text`, when the EHR wrote one, stays as it is), and only when the value did.
fn in_lab_units(
    o: &Observation,
    quantity: Option<&Quantity>,
    range: Option<&fhir_client::r4::ObservationReferenceRange>,
    value: String,
    range_text: Option<String>,
    lab_units: units::LabUnits,
) -> (String, Option<String>, Option<String>) {
    let loinc = o.code.as_deref().and_then(|c| {
        c.coding
            .iter()
            .find(|x| x.system.text() == Some("http://loinc.org"))
            .and_then(|x| x.code.text())
    });
    let number = |q: &Quantity| q.value.as_ref()?.value().map(|v| v.to_f64());
    let converted_value = quantity.and_then(|q| {
        let text = units::lab_text(number(q)?, &quantity_unit(q)?, loinc, lab_units)?;
        Some(format!("{}{text}", q.comparator.text().unwrap_or_default()))
    });
    // Only with the value: a row never shows its value in one unit and its range converted to another.
    let Some(converted_value) = converted_value else {
        return (value, range_text, None);
    };
    let converted_range = range.filter(|r| r.text.text().is_none()).and_then(|r| {
        let unit = r
            .low
            .as_ref()
            .or(r.high.as_ref())
            .and_then(|q| quantity_unit(q))
            .or_else(|| quantity.and_then(quantity_unit))?;
        units::lab_range_text(
            r.low.as_ref().and_then(|q| number(q)),
            r.high.as_ref().and_then(|q| number(q)),
            &unit,
            loinc,
            lab_units,
        )
    });
    let as_sent = match &range_text {
        Some(range) if converted_range.is_some() => format!("{value} (range {range})"),
        _ => value,
    };
    (converted_value, converted_range.or(range_text), Some(as_sent))
}

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
    use super::*;

    fn parse<T: fhir_client::r4::FromJson>(v: serde_json::Value) -> T {
        fhir_client::r4::from_str(&v.to_string(), fhir_client::r4::Mode::Strict)
            .unwrap()
            .0
    }

    fn vital(code: &str, value: f64, when: &str) -> Observation {
        vital_in(code, value, when, "/min")
    }

    fn vital_in(code: &str, value: f64, when: &str, ucum: &str) -> Observation {
        parse(serde_json::json!({
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}], "text": format!("LOINC {code}")},
            "effectiveDateTime": when,
            "valueQuantity": {"value": value, "unit": ucum, "system": "http://unitsofmeasure.org", "code": ucum}
        }))
    }

    #[test]
    fn pounds_and_fahrenheit_are_charted_in_kilograms_and_celsius_and_unknown_units_apart() {
        let charts = vital_charts(&[
            vital_in("29463-7", 154.0, "2015-03-01", "[lb_av]"),
            vital_in("29463-7", 71.0, "2024-03-01", "kg"),
            vital_in("29463-7", 11.2, "2024-04-01", "[stone_av]"),
            vital_in("8310-5", 98.6, "2015-03-01", "[degF]"),
            vital_in("8310-5", 36.9, "2024-03-01", "Cel"),
        ]);
        let weight = charts.iter().find(|c| c.title == "Weight").unwrap();
        let kg: Vec<f64> = weight.series[0]
            .points
            .iter()
            .map(|p| (p.1 * 10.0).round() / 10.0)
            .collect();
        assert_eq!(
            kg,
            vec![69.9, 71.0],
            "154 lb is 69.9 kg, on the same axis as 71 kg"
        );
        let temperature = charts.iter().find(|c| c.title == "Temperature").unwrap();
        assert!((temperature.series[0].points[0].1 - 37.0).abs() < 1e-9);
        let apart = charts.iter().find(|c| c.title == "Weight (as sent)").unwrap();
        assert_eq!(apart.unit, "[stone_av]");
        assert_eq!(apart.series[0].points.len(), 1, "never mixed into the kg chart");
    }

    #[test]
    fn the_ehrs_reference_range_is_the_band_when_it_gives_one() {
        let mut hr = vital("8867-4", 72.0, "2024-01-01");
        hr.reference_range = parse::<Observation>(serde_json::json!({
            "resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "referenceRange": [{"low": {"value": 50, "code": "/min"}, "high": {"value": 90, "code": "/min"}}]
        }))
        .reference_range;
        let charts = vital_charts(&[hr, vital("8867-4", 75.0, "2023-01-01")]);
        let band = &charts.iter().find(|c| c.title == "Heart rate").unwrap().bands[0];
        assert_eq!((band.low, band.high, band.source), (50.0, 90.0, BandSource::Ehr));
        let plain = vital_charts(&[vital("8867-4", 75.0, "2023-01-01")]);
        let usual = &plain.iter().find(|c| c.title == "Heart rate").unwrap().bands[0];
        assert_eq!(usual.source, BandSource::UsualAdult);
    }

    #[test]
    fn vitals_without_a_chart_are_listed_with_their_latest_value() {
        let vitals = [
            vital_in("8302-2", 170.0, "2023-01-01", "cm"),
            vital_in("8302-2", 171.0, "2024-01-01", "cm"),
            vital("9279-1", 16.0, "2024-01-01"),
            vital("8867-4", 70.0, "2024-01-01"),
        ];
        let rows = other_vital_rows(&vitals);
        assert_eq!(
            rows.len(),
            1,
            "heart rate and respiratory rate have charts: {rows:?}"
        );
        assert_eq!(rows[0].name, "LOINC 8302-2");
        assert_eq!(rows[0].value, "171.0 cm", "as sent");
        assert_eq!(rows[0].count, 2);
        let charts = vital_charts(&vitals);
        let rr = charts.iter().find(|c| c.title == "Respiratory rate").unwrap();
        assert_eq!(rr.series[0].points[0].1, 16.0);
        assert_eq!(rr.bands[0].low, 12.0, "with its usual adult range");
    }

    #[test]
    fn blood_pressure_comes_from_panel_components() {
        let panel: Observation = parse(serde_json::json!({
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
            "effectiveDateTime": "2024-03-01T10:00:00Z",
            "component": [
                {"code": {"coding": [{"code": "8480-6"}]}, "valueQuantity": {"value": 128, "unit": "mm[Hg]"}},
                {"code": {"coding": [{"code": "8462-4"}]}, "valueQuantity": {"value": 82, "unit": "mm[Hg]"}}
            ]
        }));
        let charts = vital_charts(&[
            panel,
            vital("8867-4", 72.0, "2024-03-01"),
            vital("8867-4", 75.0, "2023-03-01"),
        ]);
        let bp = &charts[0];
        assert_eq!(bp.series.len(), 2);
        assert_eq!(bp.series[0].points[0].1, 128.0);
        assert_eq!(bp.series[1].points[0].1, 82.0);
        let hr = &charts[1];
        assert_eq!(
            hr.series[0].points.iter().map(|p| p.1).collect::<Vec<_>>(),
            vec![75.0, 72.0],
            "sorted by time"
        );
        assert!(charts[2].is_empty());
    }

    #[test]
    fn labs_show_ranges_and_flags() {
        let flagged: Observation = parse(serde_json::json!({
            "resourceType": "Observation", "status": "final",
            "code": {"text": "Potassium"},
            "effectiveDateTime": "2024-01-02",
            "valueQuantity": {"value": 5.9, "unit": "mmol/L"},
            "interpretation": [{"coding": [{"code": "H"}]}],
            "referenceRange": [{"low": {"value": 3.5, "unit": "mmol/L"}, "high": {"value": 5.1, "unit": "mmol/L"}}]
        }));
        let computed: Observation = parse(serde_json::json!({
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"display": "Hemoglobin"}]},
            "effectiveDateTime": "2024-01-03",
            "valueQuantity": {"value": 10.1, "unit": "g/dL"},
            "referenceRange": [{"low": {"value": 12}, "high": {"value": 16}}]
        }));
        let rows = lab_rows(&[flagged, computed], units::LabUnits::Conventional);
        assert_eq!(rows[0].name, "Hemoglobin", "newest first");
        assert_eq!(rows[0].flag.as_ref().unwrap().0, "L");
        assert_eq!(rows[1].value, "5.9 mmol/L");
        assert_eq!(rows[1].range.as_deref(), Some("3.5–5.1 mmol/L"));
        assert_eq!(rows[1].flag, Some(("H".into(), "High".into())));
    }

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
