//! The vital signs: charts of the charted ones (each line in its chart's unit, with its reference band) and a
//! row for each of the others.

use std::borrow::Borrow;

use chrono::{DateTime, Utc};
use fhir_client::r4::{Observation, Quantity};

use super::{concept_text, has_code, observation_quantity, observation_time, quantity_text, quantity_unit};
use crate::charts::{Band, BandSource, Chart, Series};
use crate::units;

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

#[cfg(test)]
mod tests {
    use super::super::tests::{parse, vital, vital_in};
    use super::*;

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
}
