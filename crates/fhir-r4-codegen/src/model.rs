//! The extract read back, and the Rust shapes the generator emits: structs (one per type and per nested
//! BackboneElement), their fields, and the enums of choice elements (`value[x]`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// One line of the extract describing a type.
#[derive(Debug)]
pub struct TypeDef {
    pub name: String,
    pub kind: String,
    pub abstract_: bool,
    pub definition: String,
    pub elements: Vec<ElementDef>,
}

/// One snapshot element of a type.
#[derive(Debug)]
pub struct ElementDef {
    pub path: String,
    pub min: u64,
    pub max: String,
    pub types: Vec<String>,
    pub reference: Option<String>,
    pub short: String,
}

/// Reads the extract's JSON lines.
pub fn read_extract(text: &str) -> Result<Vec<TypeDef>, String> {
    let mut types: Vec<TypeDef> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("extract line {}: {e}", n + 1))?;
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        if v.get("type").is_some_and(Value::is_string) {
            types.push(TypeDef {
                name: s("type"),
                kind: s("kind"),
                abstract_: v["abstract"].as_bool().unwrap_or(false),
                definition: s("definition"),
                elements: Vec::new(),
            });
        } else {
            let t = types
                .last_mut()
                .ok_or_else(|| format!("extract line {}: element before a type", n + 1))?;
            t.elements.push(ElementDef {
                path: s("path"),
                min: v["min"].as_u64().unwrap_or(0),
                max: s("max"),
                types: v["types"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
                    .unwrap_or_default(),
                reference: v["ref"].as_str().map(str::to_string),
                short: s("short"),
            });
        }
    }
    Ok(types)
}

/// A primitive type: its Rust alias in `fhir_r4` and the FHIR name.
pub fn primitive_alias(code: &str) -> Option<&'static str> {
    Some(match code {
        "boolean" => "Boolean",
        "integer" => "Integer",
        "positiveInt" => "PositiveInt",
        "unsignedInt" => "UnsignedInt",
        "decimal" => "FhirDecimal",
        "string" => "FhirString",
        "code" => "Code",
        "id" => "Id",
        "markdown" => "Markdown",
        "uri" => "Uri",
        "url" => "Url",
        "canonical" => "Canonical",
        "oid" => "Oid",
        "uuid" => "Uuid",
        "base64Binary" => "Base64Binary",
        "instant" => "Instant",
        "date" => "Date",
        "dateTime" => "DateTime",
        "time" => "Time",
        "xhtml" => "Xhtml",
        _ => return None,
    })
}

/// What a field holds.
#[derive(Debug, Clone)]
pub enum FieldKind {
    /// A plain string with no primitive extension (`Element.id`, `Extension.url`).
    Plain,
    /// A FHIR primitive; the alias name.
    Primitive(&'static str),
    /// A complex type or a nested struct; its Rust name.
    Complex(String),
    /// Any resource (`Bundle.entry.resource`, `DomainResource.contained`).
    Resource,
    /// A choice element: the enum's name and its variants.
    Choice(String, Vec<Variant>),
}

/// A variant of a choice enum.
#[derive(Debug, Clone)]
pub struct Variant {
    /// The variant name and the JSON key suffix (`Quantity` in `valueQuantity`).
    pub name: String,
    /// `Primitive(alias)` or `Complex(type)`.
    pub kind: FieldKind,
}

/// A field of a generated struct.
#[derive(Debug, Clone)]
pub struct Field {
    /// The JSON member name (without `[x]`).
    pub json: String,
    /// The Rust field name.
    pub rust: String,
    /// The element's FHIR path, e.g. `Observation.value[x]`.
    pub path: String,
    pub min: u64,
    pub max: String,
    pub many: bool,
    pub kind: FieldKind,
    pub short: String,
    /// The FHIR type codes, for the doc comment.
    pub type_codes: Vec<String>,
}

/// A generated struct.
#[derive(Debug)]
pub struct StructDef {
    pub rust: String,
    /// The FHIR path of the type or element (`Observation`, `Observation.component`).
    pub path: String,
    pub is_resource: bool,
    pub short: String,
    pub definition: String,
    pub fields: Vec<Field>,
}

/// Everything one top-level type produces.
#[derive(Debug)]
pub struct TypeOutput {
    pub name: String,
    pub is_resource: bool,
    pub structs: Vec<StructDef>,
}

/// Builds the structs of every non-abstract complex type and resource.
pub fn build(types: &[TypeDef]) -> Result<Vec<TypeOutput>, String> {
    let complex: BTreeSet<&str> = types
        .iter()
        .filter(|t| t.kind == "complex-type" && !t.abstract_)
        .map(|t| t.name.as_str())
        .collect();
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    for t in types {
        if t.abstract_ || t.kind == "primitive-type" {
            continue;
        }
        let is_resource = t.kind == "resource";
        let mut by_parent: BTreeMap<&str, Vec<&ElementDef>> = BTreeMap::new();
        for e in &t.elements {
            if let Some((parent, _)) = e.path.rsplit_once('.') {
                by_parent.entry(parent).or_default().push(e);
            }
        }
        let root = t
            .elements
            .first()
            .ok_or_else(|| format!("{}: no elements", t.name))?;
        let mut structs = Vec::new();
        build_struct(
            &t.name,
            root,
            &by_parent,
            &complex,
            is_resource,
            &t.definition,
            &mut structs,
        )?;
        for s in &structs {
            if !names.insert(s.rust.clone()) {
                return Err(format!("two structs named {}", s.rust));
            }
            for f in &s.fields {
                if let FieldKind::Choice(name, _) = &f.kind
                    && !names.insert(name.clone())
                {
                    return Err(format!("two types named {name}"));
                }
            }
        }
        out.push(TypeOutput {
            name: t.name.clone(),
            is_resource,
            structs,
        });
    }
    Ok(out)
}

fn build_struct(
    path: &str,
    element: &ElementDef,
    by_parent: &BTreeMap<&str, Vec<&ElementDef>>,
    complex: &BTreeSet<&str>,
    is_resource: bool,
    definition: &str,
    structs: &mut Vec<StructDef>,
) -> Result<(), String> {
    let rust = type_name(path);
    let children = by_parent.get(path).cloned().unwrap_or_default();
    let mut fields = Vec::new();
    let mut nested = Vec::new();
    for e in children {
        let name = e.path.rsplit_once('.').map(|(_, n)| n).unwrap_or(&e.path);
        let many = e.max != "0" && e.max != "1";
        if e.max == "0" {
            continue;
        }
        let (json, kind) = if let Some(base) = name.strip_suffix("[x]") {
            let enum_name = format!("{rust}{}", upper_first(base));
            (
                base.to_string(),
                FieldKind::Choice(enum_name, choice_variants(e, complex)?),
            )
        } else if let Some(reference) = &e.reference {
            let target = reference.trim_start_matches('#');
            (name.to_string(), FieldKind::Complex(type_name(target)))
        } else {
            let kind = single_kind(e, by_parent, complex)?;
            if matches!(e.types.as_slice(), [code] if code == "BackboneElement" || code == "Element") {
                nested.push(e);
            }
            (name.to_string(), kind)
        };
        let rust_field = field_name(&json);
        if rust_field == "unknown" {
            return Err(format!(
                "{}: a FHIR element named like the unknown-member field",
                e.path
            ));
        }
        fields.push(Field {
            json,
            rust: rust_field,
            path: e.path.clone(),
            min: e.min,
            max: e.max.clone(),
            many,
            kind,
            short: e.short.clone(),
            type_codes: e.types.clone(),
        });
    }
    structs.push(StructDef {
        rust,
        path: path.to_string(),
        is_resource,
        short: element.short.clone(),
        definition: definition.to_string(),
        fields,
    });
    for e in nested {
        build_struct(&e.path, e, by_parent, complex, false, "", structs)?;
    }
    Ok(())
}

/// The variants of a choice element (`value[x]`): one per allowed type, primitive or complex.
fn choice_variants(e: &ElementDef, complex: &BTreeSet<&str>) -> Result<Vec<Variant>, String> {
    let mut variants = Vec::new();
    for code in &e.types {
        let kind = if let Some(alias) = primitive_alias(code) {
            FieldKind::Primitive(alias)
        } else if complex.contains(code.as_str()) {
            FieldKind::Complex(code.clone())
        } else {
            return Err(format!("{}: choice of unknown type {code}", e.path));
        };
        variants.push(Variant {
            name: upper_first(code),
            kind,
        });
    }
    Ok(variants)
}

/// The kind of an element of one type: a plain string, a primitive, any resource, a nested BackboneElement (its
/// struct built by the caller) or a complex data type.
fn single_kind(
    e: &ElementDef,
    by_parent: &BTreeMap<&str, Vec<&ElementDef>>,
    complex: &BTreeSet<&str>,
) -> Result<FieldKind, String> {
    let code = match e.types.as_slice() {
        [one] => one.as_str(),
        other => return Err(format!("{}: {} types outside a choice", e.path, other.len())),
    };
    Ok(if code == "http://hl7.org/fhirpath/System.String" {
        FieldKind::Plain
    } else if let Some(alias) = primitive_alias(code) {
        FieldKind::Primitive(alias)
    } else if code == "Resource" {
        FieldKind::Resource
    } else if code == "BackboneElement" || code == "Element" {
        if !by_parent.contains_key(e.path.as_str()) {
            return Err(format!("{}: {code} without children", e.path));
        }
        FieldKind::Complex(type_name(&e.path))
    } else if complex.contains(code) {
        FieldKind::Complex(code.to_string())
    } else {
        return Err(format!("{}: unknown type {code}", e.path));
    })
}

/// `Observation.referenceRange` → `ObservationReferenceRange`.
pub fn type_name(path: &str) -> String {
    path.split('.').map(upper_first).collect()
}

/// The first letter in upper case.
pub fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `referenceRange` → `reference_range`; Rust keywords get a trailing `_`.
pub fn field_name(json: &str) -> String {
    let mut out = String::new();
    for (i, ch) in json.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    const KEYWORDS: &[&str] = &[
        "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate", "do",
        "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let",
        "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref", "return", "self",
        "static", "struct", "super", "trait", "true", "try", "type", "typeof", "unsafe", "unsized", "use",
        "virtual", "where", "while", "yield",
    ];
    if KEYWORDS.contains(&out.as_str()) {
        out.push('_');
    }
    out
}

/// `Observation` → `observation`, `MedicationRequest` → `medication_request` (module names).
pub fn module_name(type_name: &str) -> String {
    field_name(type_name).trim_end_matches('_').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_rust_conventions_and_avoid_keywords() {
        assert_eq!(
            type_name("Observation.referenceRange"),
            "ObservationReferenceRange"
        );
        assert_eq!(field_name("referenceRange"), "reference_range");
        assert_eq!(field_name("type"), "type_");
        assert_eq!(field_name("use"), "use_");
        assert_eq!(module_name("MedicationRequest"), "medication_request");
    }

    #[test]
    fn the_committed_extract_builds_every_resource_and_data_type() {
        let text = include_str!("../input/r4-core-4.0.1.jsonl");
        let outputs = build(&read_extract(text).expect("the extract reads")).expect("it builds");
        assert_eq!(outputs.iter().filter(|t| t.is_resource).count(), 146);
        assert_eq!(outputs.iter().filter(|t| !t.is_resource).count(), 39);
        let item = outputs.iter().find(|t| t.name == "Questionnaire").and_then(|t| {
            t.structs
                .iter()
                .find(|s| s.rust == "QuestionnaireItem")?
                .fields
                .iter()
                .find(|f| f.json == "item")
                .cloned()
        });
        assert!(matches!(item.map(|f| f.kind), Some(FieldKind::Complex(t)) if t == "QuestionnaireItem"));
    }
}
