//! Finding codes in `CodeableConcept`s by code system, and the well-known system URIs.

use crate::r4::{CodeableConcept, Coding, TextValue};

/// Code system URIs that come up in almost every app.
pub mod system {
    /// LOINC (observations, lab tests).
    pub const LOINC: &str = "http://loinc.org";
    /// SNOMED CT (conditions, procedures, findings).
    pub const SNOMED: &str = "http://snomed.info/sct";
    /// RxNorm (medications).
    pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
    /// UCUM (units of measure).
    pub const UCUM: &str = "http://unitsofmeasure.org";
    /// The Observation category code system (`vital-signs`, `laboratory`, …).
    pub const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
    /// The Condition clinical status code system.
    pub const CONDITION_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
}

/// The codings of `concept` whose system is `system`.
pub fn codings_with_system<'a>(
    concept: &'a CodeableConcept,
    system: &'a str,
) -> impl Iterator<Item = &'a Coding> + use<'a> {
    concept
        .coding
        .iter()
        .filter(move |c| c.system.text() == Some(system))
}

/// The first code of `concept` in `system`.
pub fn code_in_system<'a>(concept: &'a CodeableConcept, system: &str) -> Option<&'a str> {
    concept
        .coding
        .iter()
        .filter(|c| c.system.text() == Some(system))
        .find_map(|c| c.code.text())
}

/// Whether `concept` holds the code `code` of `system`.
pub fn has_code(concept: &CodeableConcept, system: &str, code: &str) -> bool {
    codings_with_system(concept, system).any(|c| c.code.text() == Some(code))
}

/// Text to show for a concept: its `text`, else the first coding's `display`, else its first code.
pub fn concept_display(concept: &CodeableConcept) -> Option<&str> {
    concept
        .text
        .text()
        .or_else(|| concept.coding.iter().find_map(|c| c.display.text()))
        .or_else(|| concept.coding.iter().find_map(|c| c.code.text()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::r4::Mode;

    #[test]
    fn codes_are_found_by_system() {
        let json = r#"{"coding": [
            {"system": "http://snomed.info/sct", "code": "27113001", "display": "Body weight"},
            {"system": "http://loinc.org", "code": "29463-7", "display": "Body Weight"},
            {"system": "http://loinc.org", "code": "3141-9"}
        ]}"#;
        let (concept, _) = crate::r4::from_str::<CodeableConcept>(json, Mode::Strict).unwrap();
        assert_eq!(codings_with_system(&concept, system::LOINC).count(), 2);
        assert_eq!(code_in_system(&concept, system::LOINC), Some("29463-7"));
        assert_eq!(code_in_system(&concept, system::RXNORM), None);
        assert!(has_code(&concept, system::LOINC, "3141-9"));
        assert!(!has_code(&concept, system::SNOMED, "3141-9"));
        assert_eq!(concept_display(&concept), Some("Body weight"));
    }
}
