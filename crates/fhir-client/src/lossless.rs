//! [`Lossless`]: a typed resource that also keeps what the typed model cannot hold.
//!
//! The R4 models drop JSON members they do not know (non-standard elements, R5 elements sent by
//! an R4 server, vendor keys) and refuse resources that lack a required element (some real
//! servers, and even one official R4 example, send those). `Lossless<T>` parses the typed model
//! for you to read and edit, and remembers the rest: unknown members are written back where they
//! were, and the placeholders it had to put in for missing required elements are taken out again.
//! A server's resource therefore survives read → edit → update unchanged apart from your edits.

use std::ops::{Deref, DerefMut};

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// A member of the original JSON that the typed model did not keep.
#[derive(Debug, Clone, PartialEq)]
struct Kept {
    parent: Vec<Step>,
    key: String,
    value: Value,
}

/// The values tried, in order, for a required element that is missing.
fn placeholder_candidates() -> [Value; 4] {
    [
        Value::String(String::new()),
        Value::Object(Map::new()),
        Value::Array(Vec::new()),
        Value::Bool(false),
    ]
}

/// At most this many missing required elements are filled in before giving up.
const MAX_REPAIRS: usize = 256;

/// A typed value `T` plus the JSON members `T` could not hold (see the module doc).
///
/// Missing required elements are repaired only for a concrete resource type (`Lossless<Patient>`):
/// through the polymorphic `Lossless<Resource>` serde cannot say where the element is missing,
/// so such a resource is an error there (unknown members are kept either way).
///
/// ```
/// use fhir_client::lossless::Lossless;
/// use fhir_client::r4::resources::Patient;
///
/// let text = r#"{"resourceType":"Patient","id":"p","gender":"female","x-vendor":{"tier":"gold"}}"#;
/// let mut patient: Lossless<Patient> = serde_json::from_str(text)?;
/// patient.active = Some(fhir_client::r4::types::Boolean(true)); // edit through Deref
/// let back = serde_json::to_value(&patient)?;
/// assert_eq!(back["x-vendor"]["tier"], "gold");
/// assert_eq!(back["resourceType"], "Patient");
/// assert_eq!(back["active"], true);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Lossless<T> {
    value: T,
    kept: Vec<Kept>,
    placeholders: Vec<Placeholder>,
}

/// A required element that was missing: (parent path, member name, the value put in).
type Placeholder = (Vec<Step>, String, Value);

/// Parse `work` as `T`, putting placeholders in for missing required elements (recorded in
/// `placeholders`) until it parses or the problem is something else.
fn repair<T: DeserializeOwned>(
    work: &mut Value,
    placeholders: &mut Vec<Placeholder>,
) -> Result<T, serde_json::Error> {
    loop {
        let error = match serde_path_to_error::deserialize::<_, T>(&*work) {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let steps = steps_of(error.path());
        let message = error.inner().to_string();
        let fail = || serde_json::Error::custom(format!("{message} at {}", error.path()));
        if placeholders.len() >= MAX_REPAIRS {
            return Err(fail());
        }
        // A placeholder of the wrong type: try the next kind of value there.
        if let Some(slot) = placeholders.iter_mut().find(|(parent, key, _)| {
            steps.len() == parent.len() + 1
                && steps.starts_with(parent)
                && steps.last() == Some(&Step::Key(key.clone()))
        }) {
            let candidates = placeholder_candidates();
            let next = candidates.iter().position(|c| *c == slot.2).map(|i| i + 1);
            let Some(candidate) = next.and_then(|i| candidates.get(i)) else {
                return Err(fail());
            };
            slot.2 = candidate.clone();
            if let Some(Value::Object(parent)) = navigate_mut(work, &slot.0) {
                parent.insert(slot.1.clone(), candidate.clone());
            }
            continue;
        }
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        // A required element is missing: put a placeholder in and try again.
        match (missing, navigate_mut(work, &steps)) {
            (Some(field), Some(Value::Object(parent))) if !parent.contains_key(field) => {
                let placeholder = Value::String(String::new());
                parent.insert(field.to_owned(), placeholder.clone());
                placeholders.push((steps, field.to_owned(), placeholder));
            }
            _ => return Err(fail()),
        }
    }
}

impl<T: DeserializeOwned + Serialize> Lossless<T> {
    /// Parse `original` into `T`, remembering what `T` cannot hold.
    pub fn from_value(original: Value) -> Result<Self, serde_json::Error> {
        let mut work = original.clone();
        let mut placeholders: Vec<Placeholder> = Vec::new();
        let value = repair::<T>(&mut work, &mut placeholders)?;
        let typed_json = serde_json::to_value(&value)?;
        let mut kept = Vec::new();
        collect_missing(&original, &typed_json, &mut Vec::new(), &mut kept);
        Ok(Lossless {
            value,
            kept,
            placeholders,
        })
    }

    /// The JSON of the typed value with the kept members put back and placeholders removed.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        let mut out = serde_json::to_value(&self.value)?;
        for (parent, key, placeholder) in &self.placeholders {
            if let Some(Value::Object(object)) = navigate_mut(&mut out, parent)
                && object.get(key) == Some(placeholder)
            {
                object.remove(key);
            }
        }
        for kept in &self.kept {
            if let Some(Value::Object(object)) = navigate_mut(&mut out, &kept.parent)
                && !object.contains_key(&kept.key)
            {
                object.insert(kept.key.clone(), kept.value.clone());
            }
        }
        Ok(out)
    }
}

impl<T> Lossless<T> {
    /// The typed value, without what it could not hold.
    pub fn into_inner(self) -> T {
        self.value
    }

    /// The JSON paths (`a.b[0].c`) of the members the typed model did not keep (the top-level
    /// `resourceType`, which a typed resource implies, is kept but not listed).
    pub fn unknown_elements(&self) -> Vec<String> {
        self.kept
            .iter()
            .filter(|k| !(k.parent.is_empty() && k.key == "resourceType"))
            .map(|k| path_text(&k.parent, &k.key))
            .collect()
    }

    /// The JSON paths of required elements that were missing (and were not invented on output).
    pub fn missing_required_elements(&self) -> Vec<String> {
        self.placeholders
            .iter()
            .map(|(parent, key, _)| path_text(parent, key))
            .collect()
    }
}

impl<T> Deref for Lossless<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for Lossless<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: Serialize + DeserializeOwned> Serialize for Lossless<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value()
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de, T: Serialize + DeserializeOwned> Deserialize<'de> for Lossless<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Lossless::from_value(value).map_err(D::Error::custom)
    }
}

fn steps_of(path: &serde_path_to_error::Path) -> Vec<Step> {
    path.iter()
        .filter_map(|segment| match segment {
            serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
            serde_path_to_error::Segment::Map { key } => Some(Step::Key(key.clone())),
            _ => None,
        })
        .collect()
}

fn navigate_mut<'a>(mut value: &'a mut Value, steps: &[Step]) -> Option<&'a mut Value> {
    for step in steps {
        value = match step {
            Step::Key(key) => value.as_object_mut()?.get_mut(key)?,
            Step::Index(index) => value.as_array_mut()?.get_mut(*index)?,
        };
    }
    Some(value)
}

/// Record every member of `original` that `typed` lacks, at any depth.
fn collect_missing(original: &Value, typed: &Value, path: &mut Vec<Step>, kept: &mut Vec<Kept>) {
    match (original, typed) {
        (Value::Object(o), Value::Object(t)) => {
            for (key, value) in o {
                match t.get(key) {
                    None => kept.push(Kept {
                        parent: path.clone(),
                        key: key.clone(),
                        value: value.clone(),
                    }),
                    Some(typed_value) => {
                        path.push(Step::Key(key.clone()));
                        collect_missing(value, typed_value, path, kept);
                        path.pop();
                    }
                }
            }
        }
        (Value::Array(o), Value::Array(t)) => {
            for (index, (value, typed_value)) in o.iter().zip(t).enumerate() {
                path.push(Step::Index(index));
                collect_missing(value, typed_value, path, kept);
                path.pop();
            }
        }
        _ => {}
    }
}

fn path_text(parent: &[Step], key: &str) -> String {
    let mut text = String::new();
    for step in parent {
        match step {
            Step::Key(k) => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(k);
            }
            Step::Index(i) => text.push_str(&format!("[{i}]")),
        }
    }
    if !text.is_empty() {
        text.push('.');
    }
    text.push_str(key);
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::r4::resources::{Observation, Questionnaire, Resource};

    #[test]
    fn unknown_members_survive_at_every_depth() {
        let original = json!({"resourceType": "Observation", "id": "o", "status": "final",
            "code": {"text": "x", "vendorCode": 7},
            "valueQuantity": {"value": 1.50, "unit": "kg", "_precision": "two"},
            "component": [{"code": {"text": "c"}, "x-note": "kept"}],
            "__epic.internal": {"a": [1, 2]}});
        let parsed: Lossless<Resource> = serde_json::from_value(original.clone()).unwrap();
        let plain: Resource = serde_json::from_value(original.clone()).unwrap();
        assert_ne!(
            serde_json::to_value(&plain).unwrap(),
            original,
            "the typed model alone drops them"
        );
        assert_eq!(serde_json::to_value(&parsed).unwrap(), original);
        let mut unknown = parsed.unknown_elements();
        unknown.sort();
        assert_eq!(
            unknown,
            [
                "__epic.internal",
                "code.vendorCode",
                "component[0].x-note",
                "valueQuantity._precision"
            ]
        );
    }

    #[test]
    fn edits_are_kept_alongside_the_unknown_members() {
        let original = json!({"resourceType": "Observation", "status": "preliminary", "code": {"text": "x"}, "extra": true});
        let mut obs: Lossless<Observation> = serde_json::from_value(original).unwrap();
        obs.status = serde_json::from_value(json!("final")).unwrap();
        let out = serde_json::to_value(&obs).unwrap();
        assert_eq!(
            out,
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "extra": true})
        );
    }

    #[test]
    fn missing_required_elements_are_tolerated_and_not_invented() {
        let original = json!({"resourceType": "Questionnaire", "status": "active",
            "item": [{"type": "group", "text": "no linkId", "item": [{"type": "display", "text": "nor here"}]}]});
        assert!(serde_json::from_value::<Questionnaire>(original.clone()).is_err());
        let parsed: Lossless<Questionnaire> = serde_json::from_value(original.clone()).unwrap();
        let mut missing = parsed.missing_required_elements();
        missing.sort();
        assert_eq!(missing, ["item[0].item[0].linkId", "item[0].linkId"]);
        assert_eq!(serde_json::to_value(&parsed).unwrap(), original);
    }

    #[test]
    fn missing_complex_elements_get_a_placeholder_of_the_right_shape() {
        let original = json!({"resourceType": "Observation", "status": "final"});
        let parsed: Lossless<Observation> = serde_json::from_value(original.clone()).unwrap();
        assert_eq!(parsed.missing_required_elements(), ["code"]);
        assert_eq!(serde_json::to_value(&parsed).unwrap(), original);
    }

    #[test]
    fn json_of_the_wrong_shape_is_still_an_error() {
        assert!(serde_json::from_value::<Lossless<Observation>>(json!({"status": 5})).is_err());
        assert!(serde_json::from_value::<Lossless<Observation>>(json!([1])).is_err());
    }
}
