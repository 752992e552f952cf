//! [`Lossless`]: a typed resource that also keeps what the typed model cannot hold.
//!
//! The R4 models drop JSON members they do not know (non-standard elements, R5 elements sent by
//! an R4 server, vendor keys) and refuse resources that lack a required element (some real
//! servers, and even one official R4 example, send those). `Lossless<T>` parses the typed model
//! for you to read and edit, and remembers the rest: unknown members are written back where they
//! were, and the placeholders it had to put in for missing required elements are taken out again.
//! A server's resource therefore survives read → edit → update unchanged apart from your edits.

use std::ops::{Deref, DerefMut};

use fhir::meta::{ElementMeta, JsonKind};
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

/// A typed value `T` plus the JSON members `T` could not hold (see the module doc).
///
/// Missing required elements are found from the FHIR R4 element definitions (`fhir::r4::meta`),
/// so they are tolerated through the polymorphic `Lossless<Resource>` as well as through a
/// concrete `Lossless<Questionnaire>`; the search only runs when the plain typed parse fails.
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

impl<T: DeserializeOwned + Serialize> Lossless<T> {
    /// Parse `original` into `T`, remembering what `T` cannot hold.
    pub fn from_value(original: Value) -> Result<Self, serde_json::Error> {
        let (value, placeholders) = match T::deserialize(&original) {
            Ok(value) => (value, Vec::new()),
            Err(error) => {
                // Only now pay for the schema walk: most resources parse as they are.
                let mut work = original.clone();
                let mut placeholders = Vec::new();
                if let Some(root) = root_context::<T>(&original) {
                    fill_required(&mut work, root, &mut placeholders);
                }
                if placeholders.is_empty() {
                    return Err(error);
                }
                (T::deserialize(&work)?, placeholders)
            }
        };
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
        // Innermost first, so a placeholder object that had placeholders put into it is empty
        // again (and equal to what was put in) by the time its own turn comes.
        for (parent, key, placeholder) in self.placeholders.iter().rev() {
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

/// How deep the schema walk goes before it stops (real resources nest far less; a document
/// nested deeper is left to the typed parse to refuse).
const MAX_DEPTH: usize = 64;

/// Where the walk starts: the document's own `resourceType`, else the FHIR path of `T` itself
/// (`Lossless<HumanName>`, or a resource sent without `resourceType`).
fn root_context<T>(original: &Value) -> Option<&'static str> {
    if let Some(declared) = original.as_object().and_then(declared_type) {
        return Some(declared);
    }
    let full = std::any::type_name::<T>();
    let name = full.split('<').next().unwrap_or(full).rsplit("::").next()?;
    crate::r4::meta::struct_prefix(name)
}

/// The resource type an object declares in `resourceType`, if R4 defines it.
fn declared_type(object: &Map<String, Value>) -> Option<&'static str> {
    let name = object.get("resourceType")?.as_str()?;
    if name.contains('.') {
        return None;
    }
    children(name).first()?.path.split('.').next()
}

/// Put a placeholder into `work` for every required element the FHIR R4 definitions say is
/// missing, starting at `root` (a resource type or datatype name), and record each one.
fn fill_required(work: &mut Value, root: &str, placeholders: &mut Vec<Placeholder>) {
    if let Value::Object(object) = work {
        fill_object(object, root, &mut Vec::new(), placeholders, 0);
    }
}

/// Walk one object that sits at `context` (a FHIR path such as `Questionnaire.item`, or a
/// datatype name such as `Quantity`): first its members, then its missing required elements.
fn fill_object(
    object: &mut Map<String, Value>,
    context: &str,
    path: &mut Vec<Step>,
    placeholders: &mut Vec<Placeholder>,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let context = resolve_recursion(context);
    for (key, value) in object.iter_mut() {
        let Some(inner) = member_context(context, key) else {
            continue;
        };
        path.push(Step::Key(key.clone()));
        match value {
            Value::Array(items) => {
                for (index, item) in items.iter_mut().enumerate() {
                    path.push(Step::Index(index));
                    fill_member(item, inner, path, placeholders, depth);
                    path.pop();
                }
            }
            item => fill_member(item, inner, path, placeholders, depth),
        }
        path.pop();
    }
    for element in direct_children(context) {
        let name = element_name(element);
        // A required choice (`effective[x]`) is optional in the typed model (a choice enum has
        // no default), so it needs no placeholder.
        if element.min == 0 || element.max != "1" || element.is_choice() || object.contains_key(name) {
            continue;
        }
        let type_code = element.types.first().map(|t| t.code);
        let placeholder = placeholder_for(type_code);
        object.insert(name.to_owned(), placeholder.clone());
        placeholders.push((path.clone(), name.to_owned(), placeholder));
        if let Some(Value::Object(inner)) = object.get_mut(name) {
            path.push(Step::Key(name.to_owned()));
            fill_object(
                inner,
                child_context(element, type_code),
                path,
                placeholders,
                depth + 1,
            );
            path.pop();
        }
    }
}

/// What a member's value is walked as.
#[derive(Clone, Copy)]
enum Inner {
    /// An element at this FHIR path or of this datatype.
    Element(&'static str),
    /// A `contained` resource, walked from its own `resourceType`.
    Resource,
}

/// Walk one value of a member (an item, when the member is an array).
fn fill_member(
    value: &mut Value,
    inner: Inner,
    path: &mut Vec<Step>,
    placeholders: &mut Vec<Placeholder>,
    depth: usize,
) {
    let Value::Object(object) = value else {
        return;
    };
    let context = match inner {
        Inner::Element(context) => Some(context),
        Inner::Resource => declared_type(object),
    };
    if let Some(context) = context {
        fill_object(object, context, path, placeholders, depth + 1);
    }
}

/// How the member `key` of an object at `context` is walked, or `None` when the definitions do
/// not know it (it is kept as it is) or the typed model holds it as plain JSON.
fn member_context(context: &str, key: &str) -> Option<Inner> {
    if key == "resourceType" {
        return None;
    }
    // `_field` holds the primitive's id and extensions, whatever type the field is.
    if key.starts_with('_') {
        return Some(Inner::Element("Element"));
    }
    let (element, type_code) = match crate::r4::meta::element(&format!("{context}.{key}")) {
        Some(element) => (element, element.types.first().map(|t| t.code)),
        // A choice (`valueQuantity`): the direct child `value[x]` whose type the suffix names.
        None => direct_children(context).find_map(|element| {
            let suffix = fhir::meta::choice_suffix(element, key)?;
            let code = element.type_codes().find(|c| c.eq_ignore_ascii_case(suffix))?;
            Some((element, Some(code)))
        })?,
    };
    if type_code == Some("Resource") {
        // Only `contained` is typed; Bundle and Parameters keep their resources as JSON.
        return element.path.ends_with(".contained").then_some(Inner::Resource);
    }
    Some(Inner::Element(child_context(element, type_code)))
}

/// The context an element's own members sit in: its datatype's name for a complex datatype,
/// else its own path (a backbone element, or a `contentReference` resolved on entry).
fn child_context(element: &'static ElementMeta, type_code: Option<&'static str>) -> &'static str {
    match type_code {
        Some(code) if fhir::meta::is_datatype(code) => code,
        _ => element.path,
    }
}

/// Follow `contentReference`s (`Questionnaire.item.item` → `Questionnaire.item`) until the
/// path has elements of its own; bounded in case of a cycle.
fn resolve_recursion(context: &str) -> &str {
    let mut at = context;
    for _ in 0..8 {
        if !children(at).is_empty() {
            return at;
        }
        match crate::r4::meta::element(at).and_then(|e| e.content_reference) {
            Some(target) => at = target.trim_start_matches('#'),
            None => return at,
        }
    }
    at
}

/// Every element below `context` (children and deeper), found by binary search in the table,
/// which is sorted by path.
fn children(context: &str) -> &'static [ElementMeta] {
    let table = crate::r4::meta::elements();
    let prefix = format!("{context}.");
    let start = table.partition_point(|e| e.path < prefix.as_str());
    let len = table[start..].partition_point(|e| e.path.starts_with(&prefix));
    &table[start..start + len]
}

/// The elements directly below `context`.
fn direct_children(context: &str) -> impl Iterator<Item = &'static ElementMeta> + use<> {
    let depth = context.matches('.').count() + 1;
    children(context)
        .iter()
        .filter(move |element| element.path.matches('.').count() == depth)
}

/// The last segment of an element's path (`linkId` of `Questionnaire.item.linkId`).
fn element_name(element: &ElementMeta) -> &'static str {
    element.path.rsplit('.').next().unwrap_or(element.path)
}

/// A value of the JSON shape the type takes: the typed model accepts it, and it is taken out
/// again on output.
fn placeholder_for(type_code: Option<&str>) -> Value {
    let Some(code) = type_code else {
        // A `contentReference` element: a backbone.
        return Value::Object(Map::new());
    };
    // FHIRPath system types (the type of `id` and `Extension.url`) are named in upper case.
    if let Some(system) = code.strip_prefix("http://hl7.org/fhirpath/System.") {
        return match system {
            "Boolean" => Value::Bool(false),
            "Integer" | "Decimal" => Value::from(0),
            _ => Value::String(String::new()),
        };
    }
    match code {
        "BackboneElement" | "Element" => Value::Object(Map::new()),
        _ => match fhir::meta::json_kind(code) {
            JsonKind::Complex => Value::Object(Map::new()),
            JsonKind::Number => Value::from(0),
            JsonKind::Boolean => Value::Bool(false),
            JsonKind::String => Value::String(String::new()),
        },
    }
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

    /// Parse through the polymorphic `Lossless<Resource>`, check the output equals the input,
    /// and return the sorted paths of the placeholders.
    fn missing_through_resource(original: &Value) -> Vec<String> {
        assert!(serde_json::from_value::<Resource>(original.clone()).is_err());
        let parsed: Lossless<Resource> = serde_json::from_value(original.clone()).unwrap();
        assert_eq!(&serde_json::to_value(&parsed).unwrap(), original);
        let mut missing = parsed.missing_required_elements();
        missing.sort();
        missing
    }

    #[test]
    fn required_elements_of_nested_backbones_are_found_through_resource() {
        let original = json!({"resourceType": "Questionnaire", "status": "draft", "item": [
            {"linkId": "1", "type": "boolean"},
            {"linkId": "2", "type": "string", "enableWhen": [{"answerBoolean": true}]}]});
        assert_eq!(
            missing_through_resource(&original),
            ["item[1].enableWhen[0].operator", "item[1].enableWhen[0].question"]
        );
    }

    #[test]
    fn content_references_are_followed_to_the_element_they_repeat() {
        // `Questionnaire.item.item` is defined as "the same as Questionnaire.item".
        let original = json!({"resourceType": "Questionnaire", "status": "draft", "item": [
            {"linkId": "g", "type": "group", "item": [{"type": "group", "item": [{"type": "display"}]}]}]});
        assert_eq!(
            missing_through_resource(&original),
            ["item[0].item[0].item[0].linkId", "item[0].item[0].linkId"]
        );
        // A required element defined only by reference gets an object, walked as its target:
        // TestScript.teardown.action.operation → TestScript.setup.action.operation.
        let original = json!({"resourceType": "TestScript", "url": "u", "name": "n", "status": "draft",
            "teardown": {"action": [{}]}});
        assert_eq!(
            missing_through_resource(&original),
            [
                "teardown.action[0].operation",
                "teardown.action[0].operation.encodeRequestUrl"
            ]
        );
    }

    #[test]
    fn choice_values_are_walked_as_their_type_and_a_missing_required_choice_is_left_absent() {
        // SampledData requires origin (Quantity), period (decimal) and dimensions (positiveInt).
        let original = json!({"resourceType": "Observation", "status": "final", "code": {"text": "ecg"},
            "valueSampledData": {"data": "1 2 3"}});
        assert_eq!(
            missing_through_resource(&original),
            [
                "valueSampledData.dimensions",
                "valueSampledData.origin",
                "valueSampledData.period"
            ]
        );
        // MedicationAdministration.effective[x] is 1..1, but the typed model takes it as optional:
        // only the missing `status` and `subject` needed placeholders.
        let original = json!({"resourceType": "MedicationAdministration",
            "medicationCodeableConcept": {"text": "aspirin"}});
        assert_eq!(missing_through_resource(&original), ["status", "subject"]);
    }

    #[test]
    fn contained_resources_are_walked_as_their_own_type() {
        let original = json!({"resourceType": "Patient", "id": "p",
            "contained": [{"resourceType": "Questionnaire", "id": "q", "status": "active",
                "item": [{"type": "display", "_linkId": {"extension": [{"valueString": "no url"}]}}]}]});
        assert_eq!(
            missing_through_resource(&original),
            [
                "contained[0].item[0]._linkId.extension[0].url",
                "contained[0].item[0].linkId"
            ]
        );
    }

    #[test]
    fn a_resource_that_parses_gets_no_placeholders() {
        let original = json!({"resourceType": "MedicationAdministration", "status": "completed",
            "medicationCodeableConcept": {"text": "aspirin"}, "subject": {"reference": "Patient/p"}});
        let parsed: Lossless<Resource> = serde_json::from_value(original.clone()).unwrap();
        assert!(parsed.missing_required_elements().is_empty());
        assert_eq!(serde_json::to_value(&parsed).unwrap(), original);
    }

    #[test]
    fn an_edited_placeholder_is_written_out() {
        let original =
            json!({"resourceType": "Questionnaire", "status": "active", "item": [{"type": "display"}]});
        let mut parsed: Lossless<Questionnaire> = serde_json::from_value(original).unwrap();
        parsed.item[0].link_id = crate::r4::types::String("intro".into());
        assert_eq!(
            serde_json::to_value(&parsed).unwrap()["item"][0]["linkId"],
            "intro"
        );
    }

    #[test]
    fn a_datatype_or_a_resource_without_resource_type_is_walked_from_its_rust_type() {
        let original = json!({"valueString": "no url"});
        let parsed: Lossless<crate::r4::types::Extension> = serde_json::from_value(original.clone()).unwrap();
        assert_eq!(parsed.missing_required_elements(), ["url"]);
        assert_eq!(serde_json::to_value(&parsed).unwrap(), original);
        let original = json!({"status": "final"});
        let parsed: Lossless<Observation> = serde_json::from_value(original).unwrap();
        assert_eq!(parsed.missing_required_elements(), ["code"]);
    }

    #[test]
    fn json_of_the_wrong_shape_is_still_an_error() {
        assert!(serde_json::from_value::<Lossless<Observation>>(json!({"status": 5})).is_err());
        assert!(serde_json::from_value::<Lossless<Observation>>(json!([1])).is_err());
    }
}
