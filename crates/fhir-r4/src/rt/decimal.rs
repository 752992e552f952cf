//! `Decimal`: a FHIR decimal kept exactly as written (`0.50` stays `0.50`, `1e3` stays `1e3`).

use std::fmt;
use std::str::FromStr;

/// A FHIR `decimal`, stored as its JSON number text so that precision and form survive a round trip.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Decimal(Box<str>);

impl Decimal {
    /// The decimal written as `text`, when `text` is a JSON number (`-1.50`, `3e-2`).
    pub fn new(text: &str) -> Option<Self> {
        is_json_number(text).then(|| Decimal(text.into()))
    }

    /// The text exactly as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The nearest `f64` (precision beyond an `f64` is lost in the result, never in `self`).
    pub fn to_f64(&self) -> f64 {
        self.0.parse().unwrap_or(f64::NAN)
    }

    /// From text the reader already checked.
    pub(crate) fn from_checked(text: &str) -> Self {
        Decimal(text.into())
    }
}

/// The error of `"…".parse::<Decimal>()`: the text is not a JSON number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotADecimal;

impl fmt::Display for NotADecimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a decimal number (expected JSON number syntax such as 1.50)")
    }
}

impl std::error::Error for NotADecimal {}

impl FromStr for Decimal {
    type Err = NotADecimal;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Decimal::new(s).ok_or(NotADecimal)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<i64> for Decimal {
    fn from(n: i64) -> Self {
        Decimal(n.to_string().into())
    }
}

/// Whether `s` is exactly one JSON number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
pub(crate) fn is_json_number(s: &str) -> bool {
    number_len(s.as_bytes()) == Some(s.len())
}

/// The length of the JSON number at the start of `b`, if one starts there.
pub(crate) fn number_len(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_keeps_the_text_as_written() {
        for text in [
            "0.50",
            "1e3",
            "-0.0",
            "100",
            "3.14159265358979323846264338327950288",
        ] {
            assert_eq!(Decimal::new(text).map(|d| d.to_string()), Some(text.to_string()));
        }
    }

    #[test]
    fn decimal_rejects_what_json_does_not_allow() {
        for text in ["", "01", "1.", ".5", "+1", "1e", "0x10", "1.5 ", "NaN"] {
            assert_eq!(Decimal::new(text), None, "{text:?}");
        }
    }
}
