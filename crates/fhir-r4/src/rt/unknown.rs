//! `Unknown`: the members of an object the model does not know, kept as raw JSON with the place they stood.

use super::Writer;

/// Members the model does not know (or whose value it could not hold), each kept as its JSON text and written
/// back after the same known field it followed when read. Empty in conformant data; one pointer when empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
// Boxed on purpose: every generated struct has one, almost always empty; 8 bytes instead of a `Vec`'s 24.
#[allow(clippy::box_collection)]
pub struct Unknown(Option<Box<Vec<UnknownMember>>>);

/// One unknown member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownMember {
    /// The member name.
    pub name: String,
    /// The value's JSON text (whitespace outside strings removed).
    pub json: String,
    /// How many of the object's known fields (in model order) are written before it.
    pub(crate) position: u16,
}

impl Unknown {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |v| v.len())
    }

    /// The members, in the order they were read.
    pub fn iter(&self) -> impl Iterator<Item = &UnknownMember> {
        self.0.iter().flat_map(|v| v.iter())
    }

    /// The JSON text of the member `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|m| m.name == name).map(|m| m.json.as_str())
    }

    /// Adds a member written first in its object; `json` must be one valid JSON value.
    pub fn push(&mut self, name: impl Into<String>, json: impl Into<String>) {
        self.push_at(name.into(), json.into(), 0);
    }

    pub(crate) fn push_at(&mut self, name: String, json: String, position: u16) {
        self.0
            .get_or_insert_with(Default::default)
            .push(UnknownMember { name, json, position });
    }

    /// Writes the members that stood after `position` known fields.
    pub(crate) fn write_at(&self, position: u16, w: &mut Writer) {
        for m in self.iter().filter(|m| m.position == position) {
            w.raw_member(&m.name, &m.json);
        }
    }
}
