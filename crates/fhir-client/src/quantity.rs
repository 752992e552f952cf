//! Quantities shown with their unit, keeping the decimal exactly as written.

use crate::r4::{Quantity, TextValue};

/// "< 7.20 mmol/L": comparator, the value as written (its precision kept), and the unit (the
/// human `unit`, else the UCUM `code`). `None` when the quantity has no value.
///
/// ```
/// use fhir_client::quantity::display_quantity;
/// use fhir_client::r4::{Mode, Quantity};
///
/// let json = r#"{"value": 6.30, "unit": "mmol/l", "code": "mmol/L"}"#;
/// let (q, _) = fhir_client::r4::from_str::<Quantity>(json, Mode::Strict)?;
/// assert_eq!(display_quantity(&q).as_deref(), Some("6.30 mmol/l"));
/// # Ok::<(), fhir_client::r4::Error>(())
/// ```
pub fn display_quantity(quantity: &Quantity) -> Option<String> {
    let value = quantity.value.as_ref()?.value()?.as_str();
    let mut text = String::new();
    if let Some(comparator) = quantity.comparator.text() {
        text.push_str(comparator);
        text.push(' ');
    }
    text.push_str(value);
    let unit = quantity
        .unit
        .text()
        .or_else(|| quantity.code.text())
        .filter(|u| !u.is_empty() && *u != "1");
    if let Some(unit) = unit {
        text.push(' ');
        text.push_str(unit);
    }
    Some(text)
}

/// The value as a float, for arithmetic and charts (precision is lost here, on purpose).
pub fn quantity_value(quantity: &Quantity) -> Option<f64> {
    quantity
        .value
        .as_ref()
        .and_then(|v| v.value())
        .map(|d| d.to_f64())
        .filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Quantity {
        crate::r4::from_str(text, crate::r4::Mode::Strict).unwrap().0
    }

    #[test]
    fn precision_comparator_and_unit_fallback_are_kept() {
        assert_eq!(
            display_quantity(&q(r#"{"value": 120.0, "unit": "mm[Hg]"}"#)).as_deref(),
            Some("120.0 mm[Hg]")
        );
        assert_eq!(
            display_quantity(&q(r#"{"value": 5, "comparator": "<", "code": "mg"}"#)).as_deref(),
            Some("< 5 mg")
        );
        assert_eq!(
            display_quantity(&q(r#"{"value": 2, "code": "1"}"#)).as_deref(),
            Some("2")
        );
        assert_eq!(display_quantity(&q(r#"{"unit": "kg"}"#)), None);
        assert_eq!(quantity_value(&q(r#"{"value": 0.50}"#)), Some(0.5));
    }
}
