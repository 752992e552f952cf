//! `Writer`: compact JSON output for the generated models (fields in FHIR order, unknown members back in
//! place, `_field` siblings and their `null`s where the model has primitive extensions).

use super::read::special_bytes;
use super::{Members, Object, PrimValue, Primitive};
use crate::Resource;

/// Writes one JSON document (used by the generated code; see [`crate::to_vec`]).
#[derive(Debug, Default)]
pub struct Writer {
    out: Vec<u8>,
    comma: bool,
}

impl Writer {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Writer {
            out: Vec::with_capacity(n),
            comma: false,
        }
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.out
    }

    #[inline]
    fn sep(&mut self) {
        if self.comma {
            self.out.push(b',');
        }
    }

    /// `"key":` (member names in the models are plain ASCII and need no escaping).
    #[inline]
    pub(crate) fn key(&mut self, key: &str) {
        self.sep();
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.comma = false;
    }

    fn key_underscore(&mut self, key: &str) {
        self.sep();
        self.out.extend_from_slice(b"\"_");
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.comma = false;
    }

    /// A JSON string value.
    pub(crate) fn string(&mut self, s: &str) {
        self.sep();
        self.out.push(b'"');
        let b = s.as_bytes();
        let mut start = 0;
        while let Some(i) = next_special(b, start) {
            self.out.extend_from_slice(&b[start..i]);
            let c = b[i];
            match c {
                b'"' => self.out.extend_from_slice(b"\\\""),
                b'\\' => self.out.extend_from_slice(b"\\\\"),
                b'\n' => self.out.extend_from_slice(b"\\n"),
                b'\r' => self.out.extend_from_slice(b"\\r"),
                b'\t' => self.out.extend_from_slice(b"\\t"),
                _ => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    self.out.extend_from_slice(b"\\u00");
                    self.out.push(HEX[usize::from(c >> 4)]);
                    self.out.push(HEX[usize::from(c & 0xf)]);
                }
            }
            start = i + 1;
        }
        self.out.extend_from_slice(&b[start..]);
        self.out.push(b'"');
        self.comma = true;
    }

    /// An integer, without going through `fmt`.
    pub(crate) fn integer(&mut self, n: i64) {
        self.sep();
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut m = n.unsigned_abs();
        loop {
            i -= 1;
            digits[i] = b'0' + (m % 10) as u8;
            m /= 10;
            if m == 0 {
                break;
            }
        }
        if n < 0 {
            self.out.push(b'-');
        }
        self.out.extend_from_slice(&digits[i..]);
        self.comma = true;
    }

    /// A JSON number, boolean or other literal text, written as is.
    pub(crate) fn raw(&mut self, text: &str) {
        self.sep();
        self.out.extend_from_slice(text.as_bytes());
        self.comma = true;
    }

    /// An unknown member, written back as it was read.
    pub(crate) fn raw_member(&mut self, key: &str, json: &str) {
        self.string(key);
        self.out.push(b':');
        self.comma = false;
        self.raw(json);
    }

    fn null(&mut self) {
        self.raw("null");
    }

    fn begin(&mut self, c: u8) {
        self.sep();
        self.out.push(c);
        self.comma = false;
    }

    fn end(&mut self, c: u8) {
        self.out.push(c);
        self.comma = true;
    }

    /// An object: `resourceType` first for resources, then the fields in FHIR order with unknown members where
    /// they stood.
    #[inline]
    pub(crate) fn write_object<T: Object>(&mut self, value: &T) {
        self.write_members(value, if T::RESOURCE { Some(T::NAME) } else { None });
    }

    /// The one driver for every struct.
    pub(crate) fn write_members(&mut self, value: &dyn Members, resource_type: Option<&'static str>) {
        self.begin(b'{');
        if let Some(name) = resource_type {
            self.key("resourceType");
            self.string(name);
        }
        let fields = value.field_count();
        let unknown = value.unknown();
        if unknown.is_empty() {
            for i in 0..fields {
                value.write_field(i, self);
            }
        } else {
            for i in 0..fields {
                unknown.write_at(i, self);
                value.write_field(i, self);
            }
            unknown.write_at(fields, self);
        }
        self.end(b'}');
    }

    // ---- fields, used by the generated code ---------------------------------------------------------------

    /// A plain string field.
    pub(crate) fn plain(&mut self, key: &str, v: &Option<String>) {
        if let Some(s) = v {
            self.key(key);
            self.string(s);
        }
    }

    /// A primitive field: `key` for the value, `_key` for its id and extensions.
    pub(crate) fn prim<T: PrimValue>(&mut self, key: &str, v: &Option<Primitive<T>>) {
        if let Some(p) = v {
            self.prim_value(key, p);
        }
    }

    /// A present primitive (also a primitive choice such as `valueString`).
    pub(crate) fn prim_value<T: PrimValue>(&mut self, key: &str, p: &Primitive<T>) {
        if let Some(value) = &p.value {
            self.key(key);
            value.write(self);
        }
        if let Some(e) = &p.element {
            self.key_underscore(key);
            self.write_object(&**e);
        }
    }

    /// An array of primitives, with a parallel `_key` array (`null` where an entry has nothing) when any has
    /// an id or extensions.
    pub(crate) fn prim_vec<T: PrimValue>(&mut self, key: &str, v: &[Primitive<T>]) {
        if v.iter().any(|p| p.value.is_some()) {
            self.key(key);
            self.begin(b'[');
            for p in v {
                match &p.value {
                    Some(value) => value.write(self),
                    None => self.null(),
                }
            }
            self.end(b']');
        }
        if v.iter().any(|p| p.element.is_some()) {
            self.key_underscore(key);
            self.begin(b'[');
            for p in v {
                match &p.element {
                    Some(e) => self.write_object(&**e),
                    None => self.null(),
                }
            }
            self.end(b']');
        }
    }

    /// A single complex field.
    pub(crate) fn boxed<T: Object>(&mut self, key: &str, v: &Option<Box<T>>) {
        if let Some(v) = v {
            self.key(key);
            self.write_object(&**v);
        }
    }

    /// A complex value under `key` (a complex choice such as `valueQuantity`).
    pub(crate) fn object<T: Object>(&mut self, key: &str, v: &T) {
        self.key(key);
        self.write_object(v);
    }

    /// An array of complex values.
    pub(crate) fn objects<T: Object>(&mut self, key: &str, v: &[T]) {
        if !v.is_empty() {
            self.key(key);
            self.begin(b'[');
            for item in v {
                self.write_object(item);
            }
            self.end(b']');
        }
    }

    /// A single resource field.
    pub(crate) fn resource(&mut self, key: &str, v: &Option<Resource>) {
        if let Some(r) = v {
            self.key(key);
            r.write_json(self);
        }
    }

    /// An array of resources.
    pub(crate) fn resources(&mut self, key: &str, v: &[Resource]) {
        if !v.is_empty() {
            self.key(key);
            self.begin(b'[');
            for r in v {
                r.write_json(self);
            }
            self.end(b']');
        }
    }
}

/// The index of the first byte at or after `from` that a JSON string must escape.
fn next_special(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let mask = special_bytes(u64::from_le_bytes(word));
        if mask != 0 {
            return Some(i + (mask.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i.min(b.len())..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| i + p)
}

/// `Debug` for the generated structs: the type name and the compact JSON of what is present
/// (`Coding {"system":"http://loinc.org","code":"8867-4"}`), instead of every absent field.
pub fn debug_object<T: Object>(value: &T, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    debug_members(value, T::NAME, T::RESOURCE, f)
}

fn debug_members(
    value: &dyn Members,
    name: &'static str,
    resource: bool,
    f: &mut std::fmt::Formatter<'_>,
) -> std::fmt::Result {
    let mut w = Writer::default();
    w.write_members(value, resource.then_some(name));
    write!(f, "{name} {}", String::from_utf8_lossy(&w.out))
}

#[cfg(test)]
mod tests {
    use crate::{Coding, Primitive};

    #[test]
    fn debug_shows_the_type_and_what_is_present() {
        let coding = Coding {
            system: Some(Primitive::from("http://loinc.org")),
            code: Some(Primitive::from("8867-4")),
            ..Coding::default()
        };
        assert_eq!(
            format!("{coding:?}"),
            r#"Coding {"system":"http://loinc.org","code":"8867-4"}"#
        );
    }

    #[test]
    fn strings_and_integers_are_written_as_json() {
        let mut w = super::Writer::default();
        w.string("plain, long enough for a word: \"q\" \\ \n\t\u{1} é ✓ end");
        w.integer(-2147483648);
        w.integer(0);
        w.integer(4294967295);
        let out = String::from_utf8(w.into_bytes()).unwrap_or_default();
        assert_eq!(
            out,
            r#""plain, long enough for a word: \"q\" \\ \n\t\u0001 é ✓ end",-2147483648,0,4294967295"#
        );
    }
}
