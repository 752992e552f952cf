//! The table: one entry per resource type the sandbox knows ([`KINDS`]), and the search parameters of each.

use super::Compartment::{Member, Patient as PatientItself, Shared};
use super::Generated::{Cohorts, Never, PatientRecord, SharedResources};
use super::{PATIENT_LINKS, ParamKind, ResourceKind, SearchParam};

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

/// `patient` and `subject`: the generic parameters of a compartment member without parameters of its own.
pub(super) const PATIENT_SUBJECT: [SearchParam; 2] = [
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

/// A type the CapabilityStatement describes.
const fn described(
    name: &'static str,
    params: &'static [SearchParam],
    compartment: super::Compartment,
    care_dates: &'static [&'static str],
    generated: super::Generated,
) -> ResourceKind {
    ResourceKind {
        name,
        search: Some(params),
        compartment,
        care_dates,
        generated,
    }
}

/// A type with rules of its own that the CapabilityStatement lists only once resources of it are stored.
const fn undescribed(
    name: &'static str,
    compartment: super::Compartment,
    generated: super::Generated,
) -> ResourceKind {
    ResourceKind {
        name,
        search: None,
        compartment,
        care_dates: &[],
        generated,
    }
}

const MEMBER: super::Compartment = Member(PATIENT_LINKS);

/// Every resource type with rules of its own: first those the CapabilityStatement describes (in its order), then
/// those it lists only when stored. Other types can still be stored, read and searched by `_id`, `patient` and
/// `_lastUpdated`, as members of the patient compartment.
pub const KINDS: &[ResourceKind] = &[
    described("Patient", PATIENT, PatientItself, &[], PatientRecord),
    described("Practitioner", PRACTITIONER, Shared, &[], SharedResources),
    described("Organization", ORGANIZATION, Shared, &[], SharedResources),
    described("Location", LOCATION, Shared, &[], Never),
    described("Encounter", ENCOUNTER, MEMBER, &["date"], PatientRecord),
    described("Observation", OBSERVATION, MEMBER, &["date"], PatientRecord),
    described(
        "Condition",
        CONDITION,
        MEMBER,
        &["onset-date", "recorded-date", "abatement-date"],
        PatientRecord,
    ),
    described(
        "MedicationRequest",
        MEDICATION_REQUEST,
        MEMBER,
        &["authoredon"],
        PatientRecord,
    ),
    described("Medication", MEDICATION, Shared, &[], Never),
    described(
        "AllergyIntolerance",
        ALLERGY_INTOLERANCE,
        MEMBER,
        &["onset", "date"],
        PatientRecord,
    ),
    described("Immunization", IMMUNIZATION, MEMBER, &["date"], PatientRecord),
    described("Procedure", PROCEDURE, MEMBER, &["date"], PatientRecord),
    described(
        "DiagnosticReport",
        DIAGNOSTIC_REPORT,
        MEMBER,
        &["date", "issued"],
        PatientRecord,
    ),
    described("DocumentReference", DOCUMENT_REFERENCE, MEMBER, &["date"], Never),
    described("CarePlan", CARE_PLAN, MEMBER, &["date"], Never),
    undescribed("MedicationStatement", MEMBER, PatientRecord),
    undescribed("Group", MEMBER, Cohorts),
    undescribed("PractitionerRole", Shared, Never),
    undescribed("Substance", Shared, Never),
    undescribed("HealthcareService", Shared, Never),
    undescribed("Endpoint", Shared, Never),
    undescribed("ValueSet", Shared, Never),
    undescribed("CodeSystem", Shared, Never),
    undescribed("StructureDefinition", Shared, Never),
    undescribed("Questionnaire", Shared, Never),
];
