//! Numbers kept as the client wrote them.
//!
//! A FHIR decimal's text says more than its value: `72.50` states a precision `72.5` does not, and FHIR asks
//! that it be kept ("the precision of the decimal value has significance", R4 datatypes §2.24.0.1,
//! hl7.org/fhir/R4/datatypes.html#decimal). The sandbox works on `serde_json::Value`, whose numbers are `f64`,
//! `i64` or `u64` (the workspace does not turn on `serde_json/arbitrary_precision`, which would change every
//! JSON number in the binary, the app's included). So the text of each number whose value `serde_json` would
//! write differently (`72.50`, `1e2`, `0.1000000000000000055`) is read from the document beside the value
//! ([`NumberTexts::scan`]) and put back when the resource is written ([`write_resource`]): at the same place, and
//! only while the value there is still the same number.

use serde_json::{Number, Value};

/// A resource as a client sent it: its JSON value and the text of the numbers in it that the value alone would
/// not write back as they were written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sent {
    /// The resource.
    pub resource: Value,
    /// Its numbers' text, by where they are in `resource`.
    pub numbers: NumberTexts,
}

impl Sent {
    /// Reads `json` (one JSON text).
    pub fn parse(json: &[u8]) -> serde_json::Result<Sent> {
        let resource = serde_json::from_slice(json)?;
        Ok(Sent {
            resource,
            numbers: NumberTexts::scan(json),
        })
    }
}

impl From<Value> for Sent {
    /// A resource built here: its numbers are written as `serde_json` writes them.
    fn from(resource: Value) -> Sent {
        Sent {
            resource,
            numbers: NumberTexts::default(),
        }
    }
}

/// The numbers of one JSON document that `serde_json` would not write back as they were written, each by its
/// JSON Pointer (RFC 6901), sorted by pointer. Empty for most resources.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct NumberTexts(Vec<NumberText>);

#[derive(Debug, Clone, PartialEq)]
struct NumberText {
    pointer: String,
    value: f64,
    text: Box<str>,
}

impl NumberTexts {
    /// The numbers of `json` (one JSON text that `serde_json` has already read without error) whose text
    /// differs from how their value is written. Text that is not such JSON gives an empty set, never a panic.
    pub fn scan(json: &[u8]) -> NumberTexts {
        let mut scanner = Scanner {
            bytes: json,
            at: 0,
            pointer: String::new(),
            found: Vec::new(),
        };
        scanner.skip_ws();
        if scanner.value(0).is_none() {
            return NumberTexts::default();
        }
        let mut found = scanner.found;
        found.sort_by(|a, b| a.pointer.cmp(&b.pointer));
        NumberTexts(found)
    }

    /// True when every number would be written as it was.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The numbers under `prefix` (a JSON Pointer such as `/entry/3/resource`), with pointers relative to it.
    pub fn within(&self, prefix: &str) -> NumberTexts {
        // Sorted by pointer, the pointers that start with `prefix` are one run: found by binary search, so a
        // Bundle's entries are each taken out in time that does not grow with the other entries' numbers.
        let start = self.0.partition_point(|n| n.pointer.as_str() < prefix);
        NumberTexts(
            self.0[start..]
                .iter()
                .take_while(|n| n.pointer.starts_with(prefix))
                .filter_map(|n| {
                    let rest = n.pointer.strip_prefix(prefix)?;
                    (rest.is_empty() || rest.starts_with('/')).then(|| NumberText {
                        pointer: rest.to_owned(),
                        ..n.clone()
                    })
                })
                .collect(),
        )
    }

    /// Forgets the numbers at and under `pointer` (a patch wrote there).
    pub fn forget(&mut self, pointer: &str) {
        self.0.retain(|n| {
            n.pointer
                .strip_prefix(pointer)
                .is_none_or(|rest| !(rest.is_empty() || rest.starts_with('/')))
        });
    }

    /// Adds `other`'s numbers, placed under `prefix`.
    pub fn extend_at(&mut self, prefix: &str, other: NumberTexts) {
        self.forget(prefix);
        self.0.extend(other.0.into_iter().map(|n| NumberText {
            pointer: format!("{prefix}{}", n.pointer),
            ..n
        }));
        self.0.sort_by(|a, b| a.pointer.cmp(&b.pointer));
    }

    /// The text written for the number at `pointer`, when it was recorded and is still `value`.
    fn text_at(&self, pointer: &str, value: f64) -> Option<&str> {
        let i = self
            .0
            .binary_search_by(|n| n.pointer.as_str().cmp(pointer))
            .ok()?;
        let n = &self.0[i];
        (n.value == value).then_some(&*n.text)
    }
}

/// `resource`'s stored text: `resourceType` first, then the other members (in the map's order), with the
/// numbers of `numbers` written as they were read.
pub(crate) fn write_resource(resource: &Value, numbers: &NumberTexts) -> serde_json::Result<String> {
    let mut out = String::with_capacity(512);
    let mut pointer = String::new();
    match resource.as_object() {
        Some(map) => {
            out.push('{');
            let members = map
                .get_key_value("resourceType")
                .into_iter()
                .chain(map.iter().filter(|(k, _)| *k != "resourceType"));
            write_members(members, &mut out, &mut pointer, numbers)?;
            out.push('}');
        }
        None => write_value(resource, &mut out, &mut pointer, numbers)?,
    }
    Ok(out)
}

fn write_members<'a>(
    members: impl Iterator<Item = (&'a String, &'a Value)>,
    out: &mut String,
    pointer: &mut String,
    numbers: &NumberTexts,
) -> serde_json::Result<()> {
    for (i, (key, value)) in members.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(key)?);
        out.push(':');
        let len = pointer.len();
        push_segment(pointer, key);
        write_value(value, out, pointer, numbers)?;
        pointer.truncate(len);
    }
    Ok(())
}

fn write_value(
    value: &Value,
    out: &mut String,
    pointer: &mut String,
    numbers: &NumberTexts,
) -> serde_json::Result<()> {
    match value {
        Value::Number(n) => match n.as_f64().and_then(|v| numbers.text_at(pointer, v)) {
            Some(text) => out.push_str(text),
            None => out.push_str(&n.to_string()),
        },
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                write_value(item, out, pointer, numbers)?;
                pointer.truncate(len);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            write_members(map.iter(), out, pointer, numbers)?;
            out.push('}');
        }
        other => out.push_str(&serde_json::to_string(other)?),
    }
    Ok(())
}

/// Appends `/key` to `pointer`, escaped as RFC 6901 says (`~` as `~0`, `/` as `~1`).
fn push_segment(pointer: &mut String, key: &str) {
    pointer.push('/');
    for c in key.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

/// A reader of JSON text that only follows structure and looks at numbers. Its recursion is bounded by the
/// text's nesting, which `serde_json` has already limited to 128 levels; deeper text is given up on.
struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
    pointer: String,
    found: Vec<NumberText>,
}

/// As deep as `serde_json` reads (its recursion limit).
const MAX_DEPTH: usize = 128;

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        self.skip_ws();
        (self.peek() == Some(b)).then(|| self.at += 1)
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.skip_ws();
        match self.peek()? {
            b'{' => {
                self.at += 1;
                if self.eat(b'}').is_some() {
                    return Some(());
                }
                loop {
                    self.skip_ws();
                    let key = self.string()?;
                    self.eat(b':')?;
                    let len = self.pointer.len();
                    push_segment(&mut self.pointer, &key);
                    self.value(depth + 1)?;
                    self.pointer.truncate(len);
                    if self.eat(b',').is_none() {
                        return self.eat(b'}');
                    }
                }
            }
            b'[' => {
                self.at += 1;
                if self.eat(b']').is_some() {
                    return Some(());
                }
                let mut i = 0usize;
                loop {
                    let len = self.pointer.len();
                    self.pointer.push('/');
                    self.pointer.push_str(&i.to_string());
                    self.value(depth + 1)?;
                    self.pointer.truncate(len);
                    i += 1;
                    if self.eat(b',').is_none() {
                        return self.eat(b']');
                    }
                }
            }
            b'"' => self.string().map(drop),
            b'-' | b'0'..=b'9' => self.number(),
            _ => {
                // `true`, `false`, `null`.
                while self.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
                    self.at += 1;
                }
                Some(())
            }
        }
    }

    /// A string's decoded text (object keys need it for their pointer; values are only skipped).
    fn string(&mut self) -> Option<String> {
        let start = self.at;
        if self.peek()? != b'"' {
            return None;
        }
        self.at += 1;
        let mut escaped = false;
        loop {
            match self.peek()? {
                b'\\' => {
                    escaped = true;
                    self.at += 2;
                }
                b'"' => {
                    self.at += 1;
                    break;
                }
                _ => self.at += 1,
            }
        }
        let raw = std::str::from_utf8(self.bytes.get(start..self.at)?).ok()?;
        if escaped {
            serde_json::from_str(raw).ok()
        } else {
            Some(raw[1..raw.len() - 1].to_owned())
        }
    }

    fn number(&mut self) -> Option<()> {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|b| matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
        {
            self.at += 1;
        }
        let text = std::str::from_utf8(self.bytes.get(start..self.at)?).ok()?;
        let number: Number = text.parse().ok()?;
        if number.to_string() != text
            && let Some(value) = number.as_f64()
        {
            self.found.push(NumberText {
                pointer: self.pointer.clone(),
                value,
                text: text.into(),
            });
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        let value: Value = serde_json::from_str(text).unwrap();
        write_resource(&value, &NumberTexts::scan(text.as_bytes())).unwrap()
    }

    #[test]
    fn decimals_are_written_as_they_were_read() {
        assert_eq!(
            round_trip(r#"{"valueQuantity":{"value":72.50,"unit":"kg"},"resourceType":"Observation"}"#),
            r#"{"resourceType":"Observation","valueQuantity":{"unit":"kg","value":72.50}}"#
        );
        assert_eq!(
            round_trip(r#"{"a":[1.0,2,3.10,{"b/c~":1e2}],"n":-0.0,"big":123456789012345678901234567890}"#),
            r#"{"a":[1.0,2,3.10,{"b/c~":1e2}],"big":123456789012345678901234567890,"n":-0.0}"#
        );
        assert_eq!(round_trip(r#"[0.10, 5]"#), "[0.10,5]");
    }

    #[test]
    fn only_numbers_written_differently_are_recorded() {
        assert!(NumberTexts::scan(br#"{"a":1,"b":-2.5,"c":[0.1,"1.50"],"d":true,"e":null}"#).is_empty());
        let found = NumberTexts::scan(br#" { "a\"b" : [ 1.50 ] } "#);
        assert_eq!(found.0.len(), 1);
        assert_eq!(found.0[0].pointer, "/a\"b/0");
        assert_eq!(&*found.0[0].text, "1.50");
    }

    #[test]
    fn a_changed_value_is_written_as_serde_json_writes_it() {
        let text = r#"{"resourceType":"Observation","valueQuantity":{"value":72.50}}"#;
        let numbers = NumberTexts::scan(text.as_bytes());
        let mut value: Value = serde_json::from_str(text).unwrap();
        value["valueQuantity"]["value"] = serde_json::json!(80.25);
        assert_eq!(
            write_resource(&value, &numbers).unwrap(),
            r#"{"resourceType":"Observation","valueQuantity":{"value":80.25}}"#
        );
    }

    #[test]
    fn numbers_move_with_the_part_of_the_document_they_are_in() {
        let bundle = br#"{"entry":[{"resource":{"v":1.0}},{"resource":{"v":2.50,"w":[3.0]}}]}"#;
        let numbers = NumberTexts::scan(bundle);
        let second = numbers.within("/entry/1/resource");
        assert_eq!(
            write_resource(&serde_json::json!({"v": 2.5, "w": [3.0]}), &second).unwrap(),
            r#"{"v":2.50,"w":[3.0]}"#
        );
        let mut first = numbers.within("/entry/0/resource");
        first.forget("/v");
        assert!(first.is_empty());
        first.extend_at("/x", NumberTexts::scan(b"[1.10]"));
        assert_eq!(
            write_resource(&serde_json::json!({"x": [1.1]}), &first).unwrap(),
            r#"{"x":[1.10]}"#
        );
    }

    #[test]
    fn text_that_is_not_json_gives_nothing_and_does_not_panic() {
        for text in [
            &b""[..],
            b"{",
            b"[1.0,",
            br#"{"a":"#,
            br#""\"#,
            b"\xff",
            br#"{"a":1.50"#,
        ] {
            assert!(NumberTexts::scan(text).is_empty(), "{text:?}");
        }
        let deep = format!("{}1.0{}", "[".repeat(200), "]".repeat(200));
        assert!(NumberTexts::scan(deep.as_bytes()).is_empty());
    }
}
