//! The laboratory results: rows newest first, with reference ranges, flags, and values in the configured
//! lab units.

use std::borrow::Borrow;

use fhir_client::r4::{Observation, Quantity, TextValue};

use super::{
    LabRow, MAX_ROWS, concept_text, observation_quantity, observation_time, quantity_text, quantity_unit,
};
use crate::units;

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
        .filter_map(|o| lab_row(o, lab_units))
        .take(MAX_ROWS * 2)
        .collect()
}

/// One laboratory row: `None` for an Observation without a name or a value to show.
fn lab_row(o: &Observation, lab_units: units::LabUnits) -> Option<LabRow> {
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
    let range_text = range.and_then(reference_range_text);
    let (value, range_text, as_sent) = in_lab_units(o, quantity, range, value, range_text, lab_units);
    Some(LabRow {
        name,
        value,
        range: range_text,
        as_sent,
        flag: interpretation_flag(o).or_else(|| range_flag(quantity, range)),
        date: observation_time(o).map(|t| t.format("%Y-%m-%d").to_string()),
    })
}

/// A reference range as sent: its `text`, else its bounds (`low–high unit`, `≥ low`, `≤ high`).
fn reference_range_text(r: &fhir_client::r4::ObservationReferenceRange) -> Option<String> {
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
}

/// The flag computed from the range, for a value the EHR did not interpret: `L` below its low bound, `H`
/// above its high one (in the units sent).
fn range_flag(
    quantity: Option<&Quantity>,
    range: Option<&fhir_client::r4::ObservationReferenceRange>,
) -> Option<(String, String)> {
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

#[cfg(test)]
mod tests {
    use super::super::tests::parse;
    use super::*;

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
}
