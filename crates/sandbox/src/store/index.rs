//! The search parameters the server supports, and how a resource's values are pulled out into the index tables.
//!
//! Each parameter names the JSON paths it reads (choice types listed by their concrete names, e.g.
//! `effectiveDateTime` and `effectivePeriod`). The patient compartment is not an index row: it is the `patient`
//! column of the resource row, which every patient-confined query filters on.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
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

const fn p(name: &'static str, kind: ParamKind, paths: &'static [&'static str]) -> SearchParam {
    SearchParam {
        name,
        kind,
        paths,
        target: None,
    }
}

const fn r(name: &'static str, target: &'static str, paths: &'static [&'static str]) -> SearchParam {
    SearchParam {
        name,
        kind: ParamKind::Reference,
        paths,
        target: Some(target),
    }
}

use ParamKind::{Compartment as C, Date as D, String as S, Token as T};

const PATIENT_SUBJECT: [SearchParam; 2] = [
    SearchParam {
        name: "patient",
        kind: C,
        paths: &[],
        target: Some("Patient"),
    },
    SearchParam {
        name: "subject",
        kind: C,
        paths: &[],
        target: Some("Patient"),
    },
];

const PATIENT: &[SearchParam] = &[
    p("name", S, &["name"]),
    p("family", S, &["name.family"]),
    p("given", S, &["name.given"]),
    p("gender", T, &["gender"]),
    p("birthdate", D, &["birthDate"]),
    p("identifier", T, &["identifier"]),
    p("telecom", T, &["telecom"]),
    p("address", S, &["address"]),
    p("address-city", S, &["address.city"]),
    p("address-postalcode", S, &["address.postalCode"]),
    p("active", T, &["active"]),
    r("general-practitioner", "Practitioner", &["generalPractitioner"]),
    r("organization", "Organization", &["managingOrganization"]),
];

const PRACTITIONER: &[SearchParam] = &[
    p("name", S, &["name"]),
    p("family", S, &["name.family"]),
    p("given", S, &["name.given"]),
    p("gender", T, &["gender"]),
    p("identifier", T, &["identifier"]),
    p("telecom", T, &["telecom"]),
    p("address", S, &["address"]),
    p("active", T, &["active"]),
];

const ORGANIZATION: &[SearchParam] = &[
    p("name", S, &["name", "alias"]),
    p("identifier", T, &["identifier"]),
    p("type", T, &["type"]),
    p("address", S, &["address"]),
    p("active", T, &["active"]),
];

const LOCATION: &[SearchParam] = &[
    p("name", S, &["name", "alias"]),
    p("identifier", T, &["identifier"]),
    p("status", T, &["status"]),
    p("address", S, &["address"]),
];

const ENCOUNTER: &[SearchParam] = &[
    PATIENT_SUBJECT[0],
    PATIENT_SUBJECT[1],
    p("date", D, &["period"]),
    p("status", T, &["status"]),
    p("class", T, &["class"]),
    p("type", T, &["type"]),
    p("identifier", T, &["identifier"]),
    p("reason-code", T, &["reasonCode"]),
    r("participant", "Practitioner", &["participant.individual"]),
    r("practitioner", "Practitioner", &["participant.individual"]),
    r("service-provider", "Organization", &["serviceProvider"]),
];

const OBSERVATION: &[SearchParam] = &[
    PATIENT_SUBJECT[0],
    PATIENT_SUBJECT[1],
    p("code", T, &["code"]),
    p("category", T, &["category"]),
    p(
        "date",
        D,
        &["effectiveDateTime", "effectivePeriod", "effectiveInstant"],
    ),
    p("status", T, &["status"]),
    p("identifier", T, &["identifier"]),
    p("component-code", T, &["component.code"]),
    r("encounter", "Encounter", &["encounter"]),
    r("performer", "Practitioner", &["performer"]),
];

const CONDITION: &[SearchParam] = &[
    PATIENT_SUBJECT[0],
    PATIENT_SUBJECT[1],
    p("code", T, &["code"]),
    p("category", T, &["category"]),
    p("clinical-status", T, &["clinicalStatus"]),
    p("verification-status", T, &["verificationStatus"]),
    p("onset-date", D, &["onsetDateTime", "onsetPeriod"]),
    p("recorded-date", D, &["recordedDate"]),
    p("abatement-date", D, &["abatementDateTime", "abatementPeriod"]),
    p("identifier", T, &["identifier"]),
    r("encounter", "Encounter", &["encounter"]),
];

const MEDICATION_REQUEST: &[SearchParam] = &[
    PATIENT_SUBJECT[0],
    PATIENT_SUBJECT[1],
    p("code", T, &["medicationCodeableConcept"]),
    p("status", T, &["status"]),
    p("intent", T, &["intent"]),
    p("category", T, &["category"]),
    p("authoredon", D, &["authoredOn"]),
    p("identifier", T, &["identifier"]),
    r("encounter", "Encounter", &["encounter"]),
    r("requester", "Practitioner", &["requester"]),
    r("medication", "Medication", &["medicationReference"]),
];

const ALLERGY_INTOLERANCE: &[SearchParam] = &[
    PATIENT_SUBJECT[0],
    p("code", T, &["code"]),
    p("clinical-status", T, &["clinicalStatus"]),
    p("verification-status", T, &["verificationStatus"]),
    p("criticality", T, &["criticality"]),
    p("category", T, &["category"]),
    p("type", T, &["type"]),
    p("date", D, &["recordedDate"]),
    p("onset", D, &["onsetDateTime", "onsetPeriod"]),
    p("identifier", T, &["identifier"]),
];

const IMMUNIZATION: &[SearchParam] = &[
    PATIENT_SUBJECT[0],
    p("vaccine-code", T, &["vaccineCode"]),
    p("status", T, &["status"]),
    p("date", D, &["occurrenceDateTime"]),
    p("identifier", T, &["identifier"]),
    p("lot-number", S, &["lotNumber"]),
];

const PROCEDURE: &[SearchParam] = &[
    PATIENT_SUBJECT[0],
    PATIENT_SUBJECT[1],
    p("code", T, &["code"]),
    p("category", T, &["category"]),
    p("status", T, &["status"]),
    p("date", D, &["performedDateTime", "performedPeriod"]),
    p("identifier", T, &["identifier"]),
    r("encounter", "Encounter", &["encounter"]),
];

const DIAGNOSTIC_REPORT: &[SearchParam] = &[
    PATIENT_SUBJECT[0],
    PATIENT_SUBJECT[1],
    p("code", T, &["code"]),
    p("category", T, &["category"]),
    p("status", T, &["status"]),
    p("date", D, &["effectiveDateTime", "effectivePeriod"]),
    p("issued", D, &["issued"]),
    p("identifier", T, &["identifier"]),
    r("encounter", "Encounter", &["encounter"]),
    r("result", "Observation", &["result"]),
];

const DOCUMENT_REFERENCE: &[SearchParam] = &[
    PATIENT_SUBJECT[0],
    PATIENT_SUBJECT[1],
    p("type", T, &["type"]),
    p("category", T, &["category"]),
    p("status", T, &["status"]),
    p("date", D, &["date"]),
    p("identifier", T, &["identifier"]),
    r("encounter", "Encounter", &["context.encounter"]),
];

const CARE_PLAN: &[SearchParam] = &[
    PATIENT_SUBJECT[0],
    PATIENT_SUBJECT[1],
    p("category", T, &["category"]),
    p("status", T, &["status"]),
    p("intent", T, &["intent"]),
    p("date", D, &["period"]),
    p("identifier", T, &["identifier"]),
    r("encounter", "Encounter", &["encounter"]),
];

const MEDICATION: &[SearchParam] = &[
    p("code", T, &["code"]),
    p("identifier", T, &["identifier"]),
    p("status", T, &["status"]),
];

/// The resource types the CapabilityStatement describes, with their search parameters (besides `_id` and
/// `_lastUpdated`, which every type has). Other types can still be stored, read and searched by `_id`, `patient`
/// and `_lastUpdated`.
pub const RESOURCE_TYPES: &[(&str, &[SearchParam])] = &[
    ("Patient", PATIENT),
    ("Practitioner", PRACTITIONER),
    ("Organization", ORGANIZATION),
    ("Location", LOCATION),
    ("Encounter", ENCOUNTER),
    ("Observation", OBSERVATION),
    ("Condition", CONDITION),
    ("MedicationRequest", MEDICATION_REQUEST),
    ("Medication", MEDICATION),
    ("AllergyIntolerance", ALLERGY_INTOLERANCE),
    ("Immunization", IMMUNIZATION),
    ("Procedure", PROCEDURE),
    ("DiagnosticReport", DIAGNOSTIC_REPORT),
    ("DocumentReference", DOCUMENT_REFERENCE),
    ("CarePlan", CARE_PLAN),
];

/// Resource types outside any patient's compartment, which patient-scoped tokens may read (practitioners,
/// organizations, medications, terminology). Every other type is visible to a patient-scoped token only when it
/// belongs to that patient.
pub const SHARED_TYPES: &[&str] = &[
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "Medication",
    "Substance",
    "HealthcareService",
    "Endpoint",
    "ValueSet",
    "CodeSystem",
    "StructureDefinition",
    "Questionnaire",
];

/// The search parameters of `resource_type` (the generic `patient`/`subject` pair for types not in
/// [`RESOURCE_TYPES`] that may belong to a patient).
pub fn params_for(resource_type: &str) -> &'static [SearchParam] {
    match RESOURCE_TYPES.iter().find(|(t, _)| *t == resource_type) {
        Some((_, params)) => params,
        None if is_shared(resource_type) || resource_type == "Patient" => &[],
        None => &PATIENT_SUBJECT,
    }
}

/// One search parameter by name.
pub fn param(resource_type: &str, name: &str) -> Option<&'static SearchParam> {
    params_for(resource_type).iter().find(|p| p.name == name)
}

/// True when the type is outside the patient compartment (see [`SHARED_TYPES`]).
pub fn is_shared(resource_type: &str) -> bool {
    SHARED_TYPES.contains(&resource_type)
}

/// True when `resource_type` looks like a FHIR resource type name (`Observation`), which keeps odd path segments
/// out of the database and the error messages.
pub fn is_valid_type(resource_type: &str) -> bool {
    let mut chars = resource_type.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase())
        && resource_type.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric())
}

/// Every resource type of FHIR R4 (4.0.1).
const R4_TYPES: &[&str] = &[
    "Account",
    "ActivityDefinition",
    "AdverseEvent",
    "AllergyIntolerance",
    "Appointment",
    "AppointmentResponse",
    "AuditEvent",
    "Basic",
    "Binary",
    "BiologicallyDerivedProduct",
    "BodyStructure",
    "Bundle",
    "CapabilityStatement",
    "CarePlan",
    "CareTeam",
    "CatalogEntry",
    "ChargeItem",
    "ChargeItemDefinition",
    "Claim",
    "ClaimResponse",
    "ClinicalImpression",
    "CodeSystem",
    "Communication",
    "CommunicationRequest",
    "CompartmentDefinition",
    "Composition",
    "ConceptMap",
    "Condition",
    "Consent",
    "Contract",
    "Coverage",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "DetectedIssue",
    "Device",
    "DeviceDefinition",
    "DeviceMetric",
    "DeviceRequest",
    "DeviceUseStatement",
    "DiagnosticReport",
    "DocumentManifest",
    "DocumentReference",
    "EffectEvidenceSynthesis",
    "Encounter",
    "Endpoint",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "EpisodeOfCare",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "ExplanationOfBenefit",
    "FamilyMemberHistory",
    "Flag",
    "Goal",
    "GraphDefinition",
    "Group",
    "GuidanceResponse",
    "HealthcareService",
    "ImagingStudy",
    "Immunization",
    "ImmunizationEvaluation",
    "ImmunizationRecommendation",
    "ImplementationGuide",
    "InsurancePlan",
    "Invoice",
    "Library",
    "Linkage",
    "List",
    "Location",
    "Measure",
    "MeasureReport",
    "Media",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationKnowledge",
    "MedicationRequest",
    "MedicationStatement",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "MessageDefinition",
    "MessageHeader",
    "MolecularSequence",
    "NamingSystem",
    "NutritionOrder",
    "Observation",
    "ObservationDefinition",
    "OperationDefinition",
    "OperationOutcome",
    "Organization",
    "OrganizationAffiliation",
    "Parameters",
    "Patient",
    "PaymentNotice",
    "PaymentReconciliation",
    "Person",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "RelatedPerson",
    "RequestGroup",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "ResearchStudy",
    "ResearchSubject",
    "RiskAssessment",
    "RiskEvidenceSynthesis",
    "Schedule",
    "SearchParameter",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Subscription",
    "Substance",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
    "SupplyDelivery",
    "SupplyRequest",
    "Task",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
    "ValueSet",
    "VerificationResult",
    "VisionPrescription",
];

/// True when `resource_type` is a FHIR R4 resource type.
pub fn is_known_type(resource_type: &str) -> bool {
    R4_TYPES.binary_search(&resource_type).is_ok()
}

/// True when `id` is a valid FHIR id (`[A-Za-z0-9\-\.]{1,64}`).
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// The patient whose compartment a resource belongs to: the Patient itself, or the first reference to a Patient
/// in `patient`, `subject` or `beneficiary`.
pub fn compartment_patient(resource_type: &str, resource: &Value) -> Option<String> {
    if resource_type == "Patient" {
        return resource.get("id").and_then(Value::as_str).map(str::to_owned);
    }
    if is_shared(resource_type) {
        return None;
    }
    ["patient", "subject", "beneficiary"].iter().find_map(|field| {
        let reference = resource.get(*field)?.get("reference")?.as_str()?;
        match reference_target(reference)? {
            ("Patient", id) => Some(id.to_owned()),
            _ => None,
        }
    })
}

/// `Type/id` out of a relative or absolute reference (`Patient/1`, `http://x/fhir/Patient/1/_history/2`).
pub fn reference_target(reference: &str) -> Option<(&str, &str)> {
    let path = reference.split(['?', '#']).next()?;
    let mut parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if parts.len() >= 4 && parts[parts.len() - 2] == "_history" {
        parts.truncate(parts.len() - 2);
    }
    let n = parts.len();
    if n < 2 {
        return None;
    }
    let (t, id) = (parts[n - 2], parts[n - 1]);
    (is_valid_type(t) && is_valid_id(id)).then_some((t, id))
}

/// The rows a resource contributes to the index tables.
#[derive(Debug, Default, PartialEq)]
pub struct IndexRows {
    /// `(param, normalized value, raw value)`.
    pub strings: Vec<(&'static str, String, String)>,
    /// `(param, system or "", code)`.
    pub tokens: Vec<(&'static str, String, String)>,
    /// `(param, first second, last second)` as Unix seconds.
    pub dates: Vec<(&'static str, i64, i64)>,
    /// `(param, "Type/id")`.
    pub refs: Vec<(&'static str, String)>,
}

/// Pulls every indexed value out of a resource.
pub fn extract(resource_type: &str, resource: &Value) -> IndexRows {
    let mut rows = IndexRows::default();
    for param in params_for(resource_type) {
        for path in param.paths {
            for value in values_at(resource, path) {
                index_value(param, value, &mut rows);
            }
        }
    }
    rows
}

fn index_value(param: &SearchParam, value: &Value, rows: &mut IndexRows) {
    match param.kind {
        ParamKind::String => {
            let mut texts = Vec::new();
            string_parts(value, &mut texts);
            for text in texts {
                rows.strings.push((param.name, normalize(&text), text));
            }
        }
        ParamKind::Token => token_parts(param.name, value, rows),
        ParamKind::Date => {
            if let Some(range) = value_range(value) {
                rows.dates.push((param.name, range.0, range.1));
            }
        }
        ParamKind::Reference => {
            if let Some((t, id)) = value
                .get("reference")
                .and_then(Value::as_str)
                .and_then(reference_target)
            {
                rows.refs.push((param.name, format!("{t}/{id}")));
            }
        }
        ParamKind::Compartment => {}
    }
}

/// The values at a dotted path, arrays flattened at every step.
pub fn values_at<'v>(resource: &'v Value, path: &str) -> Vec<&'v Value> {
    let mut current = vec![resource];
    for segment in path.split('.') {
        let mut next = Vec::new();
        for v in current {
            match v.get(segment) {
                Some(Value::Array(items)) => next.extend(items.iter()),
                Some(item) => next.push(item),
                None => {}
            }
        }
        current = next;
    }
    current
}

fn string_parts(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| string_parts(i, out)),
        Value::Object(map) => {
            // HumanName and Address: every textual part is searchable.
            for key in [
                "text",
                "family",
                "given",
                "prefix",
                "suffix",
                "line",
                "city",
                "district",
                "state",
                "postalCode",
                "country",
            ] {
                if let Some(v) = map.get(key) {
                    string_parts(v, out);
                }
            }
        }
        _ => {}
    }
}

fn token_parts(name: &'static str, value: &Value, rows: &mut IndexRows) {
    match value {
        Value::String(code) => rows.tokens.push((name, String::new(), code.clone())),
        Value::Bool(b) => rows.tokens.push((name, String::new(), b.to_string())),
        Value::Object(map) => {
            if let Some(Value::Array(codings)) = map.get("coding") {
                // CodeableConcept.
                for coding in codings {
                    token_parts(name, coding, rows);
                }
            } else if let Some(code) = map.get("code").and_then(Value::as_str) {
                // Coding.
                let system = map.get("system").and_then(Value::as_str).unwrap_or_default();
                rows.tokens.push((name, system.to_owned(), code.to_owned()));
            } else if let Some(v) = map.get("value").and_then(Value::as_str) {
                // Identifier or ContactPoint.
                let system = map.get("system").and_then(Value::as_str).unwrap_or_default();
                rows.tokens.push((name, system.to_owned(), v.to_owned()));
            }
        }
        _ => {}
    }
}

fn value_range(value: &Value) -> Option<(i64, i64)> {
    match value {
        Value::String(s) => date_range(s),
        Value::Object(map) => {
            let start = map
                .get("start")
                .and_then(Value::as_str)
                .and_then(date_range)
                .map(|r| r.0);
            let end = map
                .get("end")
                .and_then(Value::as_str)
                .and_then(date_range)
                .map(|r| r.1);
            if start.is_none() && end.is_none() {
                return None;
            }
            Some((start.unwrap_or(i64::MIN), end.unwrap_or(i64::MAX)))
        }
        _ => None,
    }
}

/// Lowercase, with the common Latin accents folded, so `chloe` finds `Chloé`.
pub fn normalize(text: &str) -> String {
    text.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' => 'a',
            'ç' | 'ć' | 'č' => 'c',
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => 'e',
            'ì' | 'í' | 'î' | 'ï' | 'ī' => 'i',
            'ñ' | 'ń' | 'ň' => 'n',
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' => 'o',
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' => 'u',
            'ý' | 'ÿ' => 'y',
            'ś' | 'š' => 's',
            'ź' | 'ż' | 'ž' => 'z',
            'ł' => 'l',
            'ř' => 'r',
            other => other,
        })
        .collect()
}

/// The first and last second (Unix time) a FHIR date, dateTime or instant covers: `2020` is the whole year,
/// `2020-03-04T10:00` the whole minute. A dateTime without a zone is read as UTC. `None` when it is not a date.
pub fn date_range(text: &str) -> Option<(i64, i64)> {
    let text = text.trim();
    let year_only = |y: &str| y.len() == 4 && y.chars().all(|c| c.is_ascii_digit());
    match text.len() {
        4 if year_only(text) => {
            let y: i32 = text.parse().ok()?;
            span(
                NaiveDate::from_ymd_opt(y, 1, 1)?,
                NaiveDate::from_ymd_opt(y + 1, 1, 1)?,
            )
        }
        7 => {
            let (y, m) = text.split_once('-')?;
            if !year_only(y) || m.len() != 2 {
                return None;
            }
            let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
            let start = NaiveDate::from_ymd_opt(y, m, 1)?;
            let end = if m == 12 {
                NaiveDate::from_ymd_opt(y + 1, 1, 1)?
            } else {
                NaiveDate::from_ymd_opt(y, m + 1, 1)?
            };
            span(start, end)
        }
        10 => {
            let d = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
            span(d, d.succ_opt()?)
        }
        _ => {
            if let Ok(t) = DateTime::parse_from_rfc3339(text) {
                let s = t.timestamp();
                return Some((s, s));
            }
            // Minute precision, with or without a zone.
            let (local, zone) = split_zone(text);
            let offset = zone_offset(zone)?;
            for (format, width) in [
                ("%Y-%m-%dT%H:%M:%S%.f", 0),
                ("%Y-%m-%dT%H:%M:%S", 0),
                ("%Y-%m-%dT%H:%M", 59),
            ] {
                if let Ok(naive) = NaiveDateTime::parse_from_str(local, format) {
                    let s = Utc.from_utc_datetime(&naive).timestamp() - offset;
                    return Some((s, s + width));
                }
            }
            None
        }
    }
}

fn span(start: NaiveDate, end_exclusive: NaiveDate) -> Option<(i64, i64)> {
    let lo = start.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
    let hi = end_exclusive.and_hms_opt(0, 0, 0)?.and_utc().timestamp() - 1;
    Some((lo, hi))
}

fn split_zone(text: &str) -> (&str, &str) {
    if let Some(local) = text.strip_suffix('Z') {
        return (local, "Z");
    }
    // A zone is `+hh:mm` / `-hh:mm` after the time part.
    if let Some(t) = text.find('T')
        && let Some(pos) = text[t..].rfind(['+', '-'])
    {
        return (&text[..t + pos], &text[t + pos..]);
    }
    (text, "")
}

fn zone_offset(zone: &str) -> Option<i64> {
    if zone.is_empty() || zone == "Z" {
        return Some(0);
    }
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let (h, m) = zone.get(1..)?.split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    Some(sign * (h * 3600 + m * 60))
}

/// The `lastUpdated` text for an instant (fixed width, so text order is time order).
pub fn instant_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// [`instant_text`] of a Unix second (clamped to a representable time).
pub fn instant_text_from_secs(secs: i64) -> String {
    let secs = secs.clamp(-62_135_596_800, 253_402_300_799);
    instant_text(Utc.timestamp_opt(secs, 0).single().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn partial_dates_cover_their_whole_period() {
        let (lo, hi) = date_range("2020").unwrap();
        assert_eq!(hi - lo + 1, 366 * 86_400);
        let (lo, hi) = date_range("2021-02").unwrap();
        assert_eq!(hi - lo + 1, 28 * 86_400);
        let (lo, hi) = date_range("2021-02-03").unwrap();
        assert_eq!(hi - lo + 1, 86_400);
        assert_eq!(
            date_range("2021-02-03T10:00:00Z"),
            date_range("2021-02-03T11:00:00+01:00")
        );
        let (lo, hi) = date_range("2021-02-03T10:00").unwrap();
        assert_eq!(hi - lo, 59);
        assert!(date_range("yesterday").is_none());
        assert!(date_range("2021-13").is_none());
    }

    #[test]
    fn references_reduce_to_type_and_id() {
        assert_eq!(reference_target("Patient/1"), Some(("Patient", "1")));
        assert_eq!(
            reference_target("http://x/fhir/Patient/a-b/_history/3"),
            Some(("Patient", "a-b"))
        );
        assert_eq!(reference_target("urn:uuid:1234"), None);
        assert_eq!(reference_target("#contained"), None);
    }

    #[test]
    fn observation_rows_cover_code_category_date_and_encounter() {
        let obs = json!({
            "resourceType": "Observation", "id": "o1", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": "Patient/p1"},
            "encounter": {"reference": "Encounter/e1"},
            "effectiveDateTime": "2024-01-02T03:04:05Z"
        });
        let rows = extract("Observation", &obs);
        assert!(
            rows.tokens
                .contains(&("code", "http://loinc.org".into(), "8867-4".into()))
        );
        assert!(
            rows.tokens
                .iter()
                .any(|t| t.0 == "category" && t.2 == "vital-signs")
        );
        assert!(rows.tokens.contains(&("status", String::new(), "final".into())));
        assert_eq!(rows.refs, vec![("encounter", "Encounter/e1".to_owned())]);
        assert_eq!(rows.dates.len(), 1);
        assert_eq!(compartment_patient("Observation", &obs).as_deref(), Some("p1"));
    }

    #[test]
    fn names_are_indexed_by_every_part_without_accents() {
        let patient = json!({"resourceType": "Patient", "id": "p", "name": [{"family": "Müller", "given": ["Chloé", "Ann"]}]});
        let rows = extract("Patient", &patient);
        let names: Vec<&str> = rows
            .strings
            .iter()
            .filter(|s| s.0 == "name")
            .map(|s| s.1.as_str())
            .collect();
        assert_eq!(names, vec!["muller", "chloe", "ann"]);
        assert_eq!(compartment_patient("Patient", &patient).as_deref(), Some("p"));
    }

    #[test]
    fn practitioners_belong_to_no_compartment() {
        let pr = json!({"resourceType": "Practitioner", "id": "x", "subject": {"reference": "Patient/1"}});
        assert_eq!(compartment_patient("Practitioner", &pr), None);
    }
}
