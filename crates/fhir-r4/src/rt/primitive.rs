//! `Primitive<T>`: a FHIR primitive's value with its optional `id` and extensions (the JSON `_field` sibling),
//! and the aliases the generated models use for each primitive type.

use super::{Decimal, Error, Members, Object, Reader, Unknown, Writer};
use crate::Extension;

/// A FHIR primitive element: the value (absent when only extensions are sent, as with a data-absent-reason) and
/// the `_field` sibling's `id` and `extension`, boxed because it is rare.
#[derive(Clone, Debug, PartialEq)]
pub struct Primitive<T> {
    /// The value, e.g. `"final"` for `Observation.status`.
    pub value: Option<T>,
    /// The `id` and extensions from the `_field` JSON member, when there was one.
    pub element: Option<Box<PrimitiveElement>>,
}

impl<T> Default for Primitive<T> {
    fn default() -> Self {
        Primitive {
            value: None,
            element: None,
        }
    }
}

impl<T> Primitive<T> {
    /// A primitive holding `value`, with no id or extensions.
    pub fn new(value: T) -> Self {
        Primitive {
            value: Some(value),
            element: None,
        }
    }

    /// The value, if there is one.
    pub fn value(&self) -> Option<&T> {
        self.value.as_ref()
    }

    /// The extensions on the value (the `_field` member's `extension`).
    pub fn extension(&self) -> &[Extension] {
        self.element
            .as_ref()
            .map(|e| e.extension.as_slice())
            .unwrap_or_default()
    }
}

impl Primitive<String> {
    /// The string value, if there is one.
    pub fn as_str(&self) -> Option<&str> {
        self.value.as_deref()
    }
}

impl<T> From<T> for Primitive<T> {
    fn from(value: T) -> Self {
        Primitive::new(value)
    }
}

impl From<&str> for Primitive<String> {
    fn from(value: &str) -> Self {
        Primitive::new(value.to_string())
    }
}

/// The `_field` part of a primitive: its `id` and extensions.
#[derive(Clone, Default, PartialEq)]
pub struct PrimitiveElement {
    /// `Element.id`.
    pub id: Option<String>,
    /// `Element.extension`.
    pub extension: Vec<Extension>,
    /// Members this model does not know, kept to be written back in place.
    pub unknown: Unknown,
}

impl std::fmt::Debug for PrimitiveElement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        super::debug_object(self, f)
    }
}

impl Object for PrimitiveElement {
    const NAME: &'static str = "Element";
}

impl Members for PrimitiveElement {
    fn field_count(&self) -> u16 {
        2
    }
    fn read_member(&mut self, key: &str, r: &mut Reader<'_>) -> Result<Option<(u16, bool)>, Error> {
        Ok(Some(match key {
            "id" => (0, r.plain(&mut self.id)?),
            "extension" => (1, r.objects(&mut self.extension)?),
            _ => return Ok(None),
        }))
    }
    fn write_field(&self, index: u16, w: &mut Writer) {
        match index {
            0 => w.plain("id", &self.id),
            1 => w.objects("extension", &self.extension),
            _ => {}
        }
    }
    fn unknown(&self) -> &Unknown {
        &self.unknown
    }
    fn unknown_mut(&mut self) -> &mut Unknown {
        &mut self.unknown
    }
}

/// FHIR `boolean`.
pub type Boolean = Primitive<bool>;
/// FHIR `integer` (32-bit signed).
pub type Integer = Primitive<i32>;
/// FHIR `positiveInt` (1 and up; 32-bit).
pub type PositiveInt = Primitive<u32>;
/// FHIR `unsignedInt` (0 and up; 32-bit).
pub type UnsignedInt = Primitive<u32>;
/// FHIR `decimal`, kept as written.
pub type FhirDecimal = Primitive<Decimal>;
/// FHIR `string`.
pub type FhirString = Primitive<String>;
/// FHIR `code`.
pub type Code = Primitive<String>;
/// FHIR `id`.
pub type Id = Primitive<String>;
/// FHIR `markdown`.
pub type Markdown = Primitive<String>;
/// FHIR `uri`.
pub type Uri = Primitive<String>;
/// FHIR `url`.
pub type Url = Primitive<String>;
/// FHIR `canonical`.
pub type Canonical = Primitive<String>;
/// FHIR `oid`.
pub type Oid = Primitive<String>;
/// FHIR `uuid`.
pub type Uuid = Primitive<String>;
/// FHIR `base64Binary` (the base64 text).
pub type Base64Binary = Primitive<String>;
/// FHIR `instant` (the text, e.g. `2015-02-07T13:28:17.239+02:00`).
pub type Instant = Primitive<String>;
/// FHIR `date` (the text: `2018`, `1973-06`, `1905-08-23`).
pub type Date = Primitive<String>;
/// FHIR `dateTime` (the text).
pub type DateTime = Primitive<String>;
/// FHIR `time` (the text, e.g. `14:30:00`).
pub type Time = Primitive<String>;
/// FHIR `xhtml` (the narrative's XHTML text).
pub type Xhtml = Primitive<String>;

/// The text of an optional string-valued primitive, for reading without unwrapping twice:
/// `patient.gender.text()`, `coding.system.text() == Some(LOINC)`.
pub trait TextValue {
    /// The value's text; `None` when the element is absent or carries only extensions.
    fn text(&self) -> Option<&str>;
}

impl TextValue for Option<Primitive<String>> {
    fn text(&self) -> Option<&str> {
        self.as_ref().and_then(Primitive::as_str)
    }
}

impl TextValue for Primitive<String> {
    fn text(&self) -> Option<&str> {
        self.as_str()
    }
}
