//! Quantities shown with their unit, keeping the decimal exactly as written.

use crate::error::coded_text;
use crate::r4::types::Quantity;

/// "< 7.20 mmol/L": comparator, the value as written (its precision kept), and the unit (the
/// human `unit`, else the UCUM `code`). `None` when the quantity has no value.
///
/// ```
/// use fhir_client::quantity::display_quantity;
/// use fhir_client::r4::types::Quantity;
///
/// let q: Quantity = serde_json::from_str(r#"{"value": 6.30, "unit": "mmol/l", "code": "mmol/L"}"#)?;
/// assert_eq!(display_quantity(&q).as_deref(), Some("6.30 mmol/l"));
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn display_quantity(quantity: &Quantity) -> Option<String> {
    let value = quantity.value.as_ref()?.as_str();
    let mut text = String::new();
    if let Some(comparator) = &quantity.comparator {
        text.push_str(&coded_text(comparator));
        text.push(' ');
    }
    text.push_str(value);
    let unit = quantity
        .unit
        .as_ref()
        .map(|u| u.0.as_str())
        .or_else(|| quantity.code.as_ref().map(|c| c.0.as_str()))
        .filter(|u| !u.is_empty() && *u != "1");
    if let Some(unit) = unit {
        text.push(' ');
        text.push_str(unit);
    }
    Some(text)
}

/// The value as a float, for arithmetic and charts (precision is lost here, on purpose).
pub fn quantity_value(quantity: &Quantity) -> Option<f64> {
    quantity.value.as_ref().and_then(|v| v.as_str().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Quantity {
        serde_json::from_str(text).unwrap()
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
