//! The hand-written runtime the generated models stand on: the JSON reader and writer, `Decimal`,
//! `Primitive<T>`, the unknown-member map, modes, issues and errors.

mod decimal;
mod issue;
mod object;
mod primitive;
mod read;
mod unknown;
mod write;

pub use decimal::{Decimal, NotADecimal};
pub use issue::{Error, Issue, IssueKind, Mode};
pub use object::{FromJson, Members, Object, PrimValue, ToJson};
pub use primitive::*;
pub use read::Reader;
pub use unknown::{Unknown, UnknownMember};
pub use write::{Writer, debug_object};

/// Reads a `T` (a resource, data type or [`Resource`](crate::Resource)) from JSON bytes.
///
/// Returns the value and the issues found, each with its FHIR path. In [`Mode::Strict`] any issue that does not
/// fit the model (all but missing required elements) fails the read with [`Error::Invalid`] listing them all; in
/// [`Mode::Tolerant`] they are only reported. Malformed JSON, or JSON of another type (another `resourceType`,
/// not an object), fails in both modes.
pub fn from_slice<T: FromJson>(bytes: &[u8], mode: Mode) -> Result<(T, Vec<Issue>), Error> {
    let src = std::str::from_utf8(bytes).map_err(|e| Error::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    from_str(src, mode)
}

/// Reads a `T` from JSON text; see [`from_slice`].
pub fn from_str<T: FromJson>(src: &str, mode: Mode) -> Result<(T, Vec<Issue>), Error> {
    let mut r = Reader::new(src);
    let found = r.find_resource_type()?;
    let not_this = |found: String| Error::NotThisType {
        expected: T::TYPE_NAME,
        found,
    };
    if let Some(expected) = T::RESOURCE_TYPE
        && found.as_deref() != Some(expected)
    {
        return Err(not_this(match found {
            Some(t) => format!("resourceType {t:?}"),
            None => "an object without a resourceType".to_string(),
        }));
    }
    let value = match T::read_json(&mut r)? {
        Some(v) => v,
        None => {
            return Err(not_this(match found {
                Some(t) => format!("resourceType {t:?}, which is not an R4 resource"),
                None => "no object with a resourceType".to_string(),
            }));
        }
    };
    if !r.at_end() {
        return Err(r.syntax("trailing characters after the JSON value"));
    }
    let issues = r.into_issues();
    if mode == Mode::Strict && issues.iter().any(|i| !i.kind.fits_the_model()) {
        return Err(Error::Invalid { issues });
    }
    Ok((value, issues))
}

/// Writes `value` as compact JSON bytes.
pub fn to_vec<T: ToJson + ?Sized>(value: &T) -> Vec<u8> {
    let mut w = Writer::with_capacity(1024);
    value.write_json(&mut w);
    w.into_bytes()
}

/// Writes `value` as a compact JSON string.
pub fn to_string<T: ToJson + ?Sized>(value: &T) -> String {
    String::from_utf8(to_vec(value)).unwrap_or_default()
}
