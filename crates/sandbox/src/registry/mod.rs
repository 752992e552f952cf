//! The resource types the sandbox knows, one declarative entry each ([`ResourceKind`] in [`KINDS`]): its search
//! parameters, its place in the patient compartment, its `$everything` care dates and which part of the generator
//! makes it. Adding a type or a search parameter is one edit here; the CapabilityStatement, search, the index (which
//! is rebuilt at start when these parameters change, see [`crate::store::index_version`]), access control and
//! `$everything` all read this table.
//!
//! This is the bottom layer of the crate: it depends on nothing above it. The names and ids of FHIR itself
//! (every R4 type, what a valid id is, how a reference reads) are in [`names`].

mod kinds;
pub mod names;

pub use kinds::KINDS;
pub use names::{is_known_type, is_valid_id, is_valid_type, reference_target};

use serde_json::Value;

/// The kind of a search parameter, which decides how its values are indexed and matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// Case- and accent-insensitive prefix match (`:exact`, `:contains` modifiers).
    String,
    /// `[system]|[code]` match against codings, identifiers, codes and booleans.
    Token,
    /// Date ranges with the prefixes `eq ne lt gt le ge sa eb ap`.
    Date,
    /// A reference to another resource (`Type/id`).
    Reference,
    /// `patient` / `subject`: the resource's patient compartment.
    Compartment,
}

impl ParamKind {
    /// The FHIR `SearchParamType` code.
    pub fn fhir_type(self) -> &'static str {
        match self {
            ParamKind::String => "string",
            ParamKind::Token => "token",
            ParamKind::Date => "date",
            ParamKind::Reference | ParamKind::Compartment => "reference",
        }
    }
}

/// One search parameter of one resource type.
///
/// Each parameter names the JSON paths it reads (choice types listed by their concrete names, e.g.
/// `effectiveDateTime` and `effectivePeriod`). The patient compartment is not an index row: it is the `patient`
/// column of the resource row, which every patient-confined query filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchParam {
    /// The parameter's name in the query string.
    pub name: &'static str,
    /// How it is indexed and matched.
    pub kind: ParamKind,
    /// Dotted JSON paths whose values it indexes.
    pub paths: &'static [&'static str],
    /// For references: the type a bare id refers to.
    pub target: Option<&'static str>,
}

/// The elements that put a resource in a patient's compartment: the first of them that refers to a Patient.
/// The sandbox reads the same three for every type (a type has the one of them R4 gives it).
pub const PATIENT_LINKS: &[&str] = &["patient", "subject", "beneficiary"];

/// A resource type's place in the patient compartment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compartment {
    /// The Patient itself, whose compartment is its own id.
    Patient,
    /// In the compartment of the patient one of these elements refers to (the first that refers to a Patient);
    /// without one, in nobody's — and so readable only by tokens that are not patient-confined.
    Member(&'static [&'static str]),
    /// Outside every patient's compartment (practitioners, organizations, medications, terminology): readable by
    /// patient-scoped tokens, writable only by tokens that are not patient-confined.
    Shared,
}

impl Compartment {
    /// The search parameters a type has when it declares none of its own: `patient` and `subject` for members.
    fn generic_params(self) -> &'static [SearchParam] {
        match self {
            Compartment::Member(_) => &kinds::PATIENT_SUBJECT,
            Compartment::Patient | Compartment::Shared => &[],
        }
    }
}

/// Which part of the synthetic-patient generator makes a type's resources.
///
/// The registry names the part rather than pointing at it (a function pointer would make this bottom layer depend
/// on `generate`). The generator does not dispatch on it either: it draws every record from a seeded stream in a
/// fixed order, which is what makes its output the same byte for byte, so the order stays in `generate`. A test
/// there checks that the types it makes are exactly those this table says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generated {
    /// Not generated: such resources come from imported Bundles or from clients.
    Never,
    /// Once per population, shared by every patient (`Generator::shared_resources`).
    SharedResources,
    /// In every patient's record (`Generator::patient_record`).
    PatientRecord,
    /// The condition cohorts for Group-level `$export` (`generate::cohort`).
    Cohorts,
}

/// Everything the sandbox knows about one resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceKind {
    /// The type's name (`Observation`).
    pub name: &'static str,
    /// Its search parameters (besides `_id` and `_lastUpdated`, which every type has), or `None` when the type is
    /// not described in the CapabilityStatement (until resources of it are stored) and is searched by the generic
    /// parameters of its compartment.
    pub search: Option<&'static [SearchParam]>,
    /// Its place in the patient compartment.
    pub compartment: Compartment,
    /// The date parameters that hold its care dates — when the care happened, not when the record was written —
    /// for `$everything`'s `start` / `end`. A resource is in the range when any of these dates overlaps it; with
    /// none (or without these dates) it has no care date and is always in.
    pub care_dates: &'static [&'static str],
    /// Which part of the generator makes it.
    pub generated: Generated,
}

impl ResourceKind {
    /// Its search parameters: its own, or the generic ones of its compartment.
    pub fn params(&self) -> &'static [SearchParam] {
        self.search.unwrap_or_else(|| self.compartment.generic_params())
    }

    /// True when the CapabilityStatement always describes it.
    pub fn is_described(&self) -> bool {
        self.search.is_some()
    }
}

/// The compartment of a type without an entry: a member, by [`PATIENT_LINKS`].
const UNREGISTERED: Compartment = Compartment::Member(PATIENT_LINKS);

/// The entry of `resource_type`, if it has one.
pub fn kind(resource_type: &str) -> Option<&'static ResourceKind> {
    KINDS.iter().find(|k| k.name == resource_type)
}

/// The types the CapabilityStatement always describes, in the table's order.
pub fn described() -> impl Iterator<Item = &'static ResourceKind> {
    KINDS.iter().filter(|k| k.is_described())
}

/// The search parameters of `resource_type` (the generic `patient`/`subject` pair for types without an entry,
/// which may belong to a patient).
pub fn params_for(resource_type: &str) -> &'static [SearchParam] {
    match kind(resource_type) {
        Some(kind) => kind.params(),
        None => UNREGISTERED.generic_params(),
    }
}

/// The search parameters of every type without an entry (part of what the index is extracted with).
pub fn unregistered_params() -> &'static [SearchParam] {
    UNREGISTERED.generic_params()
}

/// One search parameter by name.
pub fn param(resource_type: &str, name: &str) -> Option<&'static SearchParam> {
    params_for(resource_type).iter().find(|p| p.name == name)
}

/// `resource_type`'s place in the patient compartment.
pub fn compartment(resource_type: &str) -> Compartment {
    kind(resource_type).map_or(UNREGISTERED, |k| k.compartment)
}

/// True when the type is outside the patient compartment ([`Compartment::Shared`]). Every other type is visible to
/// a patient-scoped token only when it belongs to that patient.
pub fn is_shared(resource_type: &str) -> bool {
    compartment(resource_type) == Compartment::Shared
}

/// The care-date parameters of `resource_type` (see [`ResourceKind::care_dates`]).
pub fn care_date_params(resource_type: &str) -> &'static [&'static str] {
    kind(resource_type).map_or(&[], |k| k.care_dates)
}

/// The patient whose compartment a resource belongs to: the Patient itself, or the first reference to a Patient
/// in its type's compartment elements.
pub fn compartment_patient(resource_type: &str, resource: &Value) -> Option<String> {
    match compartment(resource_type) {
        Compartment::Patient => resource.get("id").and_then(Value::as_str).map(str::to_owned),
        Compartment::Shared => None,
        Compartment::Member(links) => links.iter().find_map(|field| {
            let reference = resource.get(*field)?.get("reference")?.as_str()?;
            match reference_target(reference)? {
                ("Patient", id) => Some(id.to_owned()),
                _ => None,
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn practitioners_belong_to_no_compartment() {
        let pr = json!({"resourceType": "Practitioner", "id": "x", "subject": {"reference": "Patient/1"}});
        assert_eq!(compartment_patient("Practitioner", &pr), None);
    }

    #[test]
    fn members_belong_to_the_patient_they_refer_to_and_patients_to_themselves() {
        let obs = json!({"resourceType": "Observation", "subject": {"reference": "Patient/p1"}});
        assert_eq!(compartment_patient("Observation", &obs).as_deref(), Some("p1"));
        let coverage = json!({"resourceType": "Coverage", "beneficiary": {"reference": "Patient/p2"}});
        assert_eq!(compartment_patient("Coverage", &coverage).as_deref(), Some("p2"));
        let group = json!({"resourceType": "Observation", "subject": {"reference": "Group/g"}});
        assert_eq!(compartment_patient("Observation", &group), None);
        let patient = json!({"resourceType": "Patient", "id": "p"});
        assert_eq!(compartment_patient("Patient", &patient).as_deref(), Some("p"));
    }

    #[test]
    fn every_entry_is_an_r4_type_listed_once_with_unique_parameters() {
        for (i, kind) in KINDS.iter().enumerate() {
            assert!(is_known_type(kind.name), "{}", kind.name);
            assert!(
                KINDS[..i].iter().all(|k| k.name != kind.name),
                "{} is listed twice",
                kind.name
            );
            let params = kind.params();
            for (j, p) in params.iter().enumerate() {
                assert!(
                    params[..j].iter().all(|q| q.name != p.name),
                    "{}.{} is listed twice",
                    kind.name,
                    p.name
                );
                assert_eq!(
                    p.target.is_some(),
                    matches!(p.kind, ParamKind::Reference | ParamKind::Compartment),
                    "{}.{}: references and only they name a target",
                    kind.name,
                    p.name
                );
            }
        }
    }

    #[test]
    fn care_dates_are_date_parameters_of_their_type() {
        for kind in KINDS {
            for name in kind.care_dates {
                let param =
                    param(kind.name, name).unwrap_or_else(|| panic!("{} has no parameter {name}", kind.name));
                assert_eq!(param.kind, ParamKind::Date, "{}.{name}", kind.name);
            }
        }
    }

    #[test]
    fn types_without_an_entry_are_members_searched_by_patient_and_subject() {
        assert!(kind("Coverage").is_none());
        assert!(!is_shared("Coverage"));
        let names: Vec<&str> = params_for("Coverage").iter().map(|p| p.name).collect();
        assert_eq!(names, ["patient", "subject"]);
        assert!(params_for("PractitionerRole").is_empty());
        assert!(care_date_params("Coverage").is_empty());
    }
}
