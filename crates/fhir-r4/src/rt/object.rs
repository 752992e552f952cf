//! The traits between the generated models and the reader/writer: `Object` (a generated struct's field
//! table), `PrimValue` (how each primitive's value is read and written), and the public `FromJson`/`ToJson`.

use super::{Decimal, Error, Reader, Unknown, Writer};
use crate::Resource;

/// A generated struct's identity: its FHIR name and whether it is a resource. The field table itself is
/// [`Members`], kept apart so that the reader's and writer's drivers take it as `dyn Members` and exist once,
/// not once per struct (most of this crate's build time is code generation).
///
/// Implemented by the generated code only.
pub trait Object: Members + Default {
    /// The FHIR type or element path (`Observation`, `Observation.component`).
    const NAME: &'static str;
    /// Whether this is a resource (it has a `resourceType`).
    const RESOURCE: bool = false;
}

/// A generated struct as a table of fields: read one member by its JSON name, write one field by its index.
pub trait Members {
    /// How many fields the struct has (the `unknown` map aside).
    fn field_count(&self) -> u16;
    /// Reads the member `key`: `None` when no field has that name, else the field's index and whether the
    /// value was accepted (when not, the reader keeps it as an unknown member).
    fn read_member(&mut self, key: &str, r: &mut Reader<'_>) -> Result<Option<(u16, bool)>, Error>;
    /// Writes field `index` (nothing when it is absent).
    fn write_field(&self, index: u16, w: &mut Writer);
    /// Records missing required elements after the object was read.
    fn check(&self, r: &mut Reader<'_>) {
        let _ = r;
    }
    /// The members this model does not know.
    fn unknown(&self) -> &Unknown;
    /// The members this model does not know, to add to.
    fn unknown_mut(&mut self) -> &mut Unknown;
}

/// The value type of a FHIR primitive (`bool`, `i32`, `u32`, [`Decimal`], `String`).
pub trait PrimValue: Sized {
    /// Reads the value here; `None` (recording the issue, not moving) when it is not one.
    fn read(r: &mut Reader<'_>) -> Result<Option<Self>, Error>;
    /// Writes the value.
    fn write(&self, w: &mut Writer);
}

impl PrimValue for String {
    fn read(r: &mut Reader<'_>) -> Result<Option<Self>, Error> {
        let s = r.read_string()?;
        if s.is_none() {
            r.wrong("a string");
        }
        Ok(s)
    }
    fn write(&self, w: &mut Writer) {
        w.string(self);
    }
}

impl PrimValue for bool {
    fn read(r: &mut Reader<'_>) -> Result<Option<Self>, Error> {
        if let Some(b) = r.read_bool() {
            return Ok(Some(b));
        }
        let b = r.coerce_string("a boolean", |s| match s {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        })?;
        if b.is_none() {
            r.wrong("a boolean");
        }
        Ok(b)
    }
    fn write(&self, w: &mut Writer) {
        w.raw(if *self { "true" } else { "false" });
    }
}

/// Reads an integer of type `T` written as a JSON integer, or (coerced) as a string holding one.
fn read_int<T: std::str::FromStr>(r: &mut Reader<'_>, expected: &'static str) -> Result<Option<T>, Error> {
    let save = r.clone_pos();
    if let Some(text) = r.read_number() {
        if let Ok(n) = text.parse::<T>() {
            return Ok(Some(n));
        }
        r.restore_pos(save);
        r.wrong(expected);
        return Ok(None);
    }
    let n = r.coerce_string(expected, |s| {
        if super::decimal::is_json_number(s) {
            s.parse::<T>().ok()
        } else {
            None
        }
    })?;
    if n.is_none() {
        r.wrong(expected);
    }
    Ok(n)
}

impl PrimValue for i32 {
    fn read(r: &mut Reader<'_>) -> Result<Option<Self>, Error> {
        read_int(r, "an integer")
    }
    fn write(&self, w: &mut Writer) {
        w.integer(i64::from(*self));
    }
}

impl PrimValue for u32 {
    fn read(r: &mut Reader<'_>) -> Result<Option<Self>, Error> {
        read_int(r, "a non-negative integer")
    }
    fn write(&self, w: &mut Writer) {
        w.integer(i64::from(*self));
    }
}

impl PrimValue for Decimal {
    fn read(r: &mut Reader<'_>) -> Result<Option<Self>, Error> {
        if let Some(text) = r.read_number() {
            return Ok(Some(Decimal::from_checked(text)));
        }
        let d = r.coerce_string("a decimal number", Decimal::new)?;
        if d.is_none() {
            r.wrong("a decimal number");
        }
        Ok(d)
    }
    fn write(&self, w: &mut Writer) {
        w.raw(self.as_str());
    }
}

/// A type [`from_slice`](crate::from_slice) can read: every generated struct and [`Resource`].
pub trait FromJson: Sized {
    /// The type's name in messages (`Patient`, `Resource`).
    const TYPE_NAME: &'static str;
    /// The `resourceType` the JSON must carry, for a resource type.
    const RESOURCE_TYPE: Option<&'static str>;
    /// Reads the value here; `None` when the JSON is not of this type.
    fn read_json(r: &mut Reader<'_>) -> Result<Option<Self>, Error>;
}

impl<T: Object> FromJson for T {
    const TYPE_NAME: &'static str = T::NAME;
    const RESOURCE_TYPE: Option<&'static str> = if T::RESOURCE { Some(T::NAME) } else { None };
    fn read_json(r: &mut Reader<'_>) -> Result<Option<Self>, Error> {
        r.read_object::<T>()
    }
}

impl FromJson for Resource {
    const TYPE_NAME: &'static str = "Resource";
    const RESOURCE_TYPE: Option<&'static str> = None;
    fn read_json(r: &mut Reader<'_>) -> Result<Option<Self>, Error> {
        match r.find_resource_type()? {
            Some(name) => Resource::read_typed(&name, r),
            None => Ok(None),
        }
    }
}

/// A type [`to_vec`](crate::to_vec) can write: every generated struct and [`Resource`].
pub trait ToJson {
    /// Writes the value as JSON.
    fn write_json(&self, w: &mut Writer);
}

impl<T: Object> ToJson for T {
    fn write_json(&self, w: &mut Writer) {
        w.write_object(self);
    }
}

impl ToJson for Resource {
    fn write_json(&self, w: &mut Writer) {
        Resource::write_json(self, w);
    }
}
