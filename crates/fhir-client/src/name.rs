//! Display names for people: `HumanName` formatted like python-fhirclient's `human_name`, and a
//! patient's display name that never fails.

use crate::r4::{HumanName, Patient, TextValue};

/// Format a name as "prefix given family, suffix" (python-fhirclient's `human_name`), falling
/// back to the name's `text`. `None` when the name has no parts at all.
///
/// ```
/// use fhir_client::name::display_human_name;
/// use fhir_client::r4::{HumanName, Mode};
///
/// let json = r#"{"prefix": ["Dr."], "given": ["Jane", "Q"], "family": "Doe", "suffix": ["PhD", "MD"]}"#;
/// let (name, _) = fhir_client::r4::from_str::<HumanName>(json, Mode::Strict)?;
/// assert_eq!(display_human_name(&name).as_deref(), Some("Dr. Jane Q Doe, PhD MD"));
/// # Ok::<(), fhir_client::r4::Error>(())
/// ```
pub fn display_human_name(name: &HumanName) -> Option<String> {
    let mut parts: Vec<String> = name
        .prefix
        .iter()
        .chain(name.given.iter())
        .filter_map(|s| s.text())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(family) = name.family.text().map(str::trim).filter(|f| !f.is_empty()) {
        parts.push(family.to_owned());
    }
    let suffixes: Vec<&str> = name
        .suffix
        .iter()
        .filter_map(|s| s.text())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if !suffixes.is_empty() {
        if let Some(last) = parts.last_mut() {
            last.push(',');
        }
        parts.extend(suffixes.into_iter().map(str::to_owned));
    }
    if parts.is_empty() {
        return name
            .text
            .text()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
    }
    Some(parts.join(" "))
}

/// The name to show for a patient: the `official` name, else the `usual` one, else the first
/// name that is not `old`, else any name; formatted by [`display_human_name`]. A patient without
/// a usable name gets "Unnamed patient", with the first identifier (or the id) in brackets so
/// that two of them can still be told apart.
pub fn patient_display_name(patient: &Patient) -> String {
    let by_use = |wanted: &str| {
        patient
            .name
            .iter()
            .filter(|n| n.use_.text() == Some(wanted))
            .find_map(display_human_name)
    };
    let not_old = || {
        patient
            .name
            .iter()
            .filter(|n| n.use_.text() != Some("old"))
            .find_map(display_human_name)
    };
    if let Some(name) = by_use("official")
        .or_else(|| by_use("usual"))
        .or_else(not_old)
        .or_else(|| patient.name.iter().find_map(display_human_name))
    {
        return name;
    }
    let identifier = patient.identifier.iter().find_map(|identifier| {
        let value = identifier.value.text()?.trim();
        if value.is_empty() {
            return None;
        }
        let label = identifier.type_.as_ref().and_then(|t| {
            t.text
                .text()
                .or_else(|| t.coding.iter().find_map(|c| c.code.text()))
        });
        Some(match label {
            Some(label) => format!("{label} {value}"),
            None => value.to_owned(),
        })
    });
    match identifier.or_else(|| patient.id.as_ref().map(|id| format!("id {id}"))) {
        Some(tag) => format!("Unnamed patient ({tag})"),
        None => String::from("Unnamed patient"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patient(value: serde_json::Value) -> Patient {
        crate::from_json(value)
    }

    #[test]
    fn name_without_suffix_has_no_comma() {
        let name: HumanName = crate::from_json(json!({"given": ["Peter", "James"], "family": "Chalmers"}));
        assert_eq!(display_human_name(&name).as_deref(), Some("Peter James Chalmers"));
    }

    #[test]
    fn suffix_only_name_is_shown_without_a_dangling_comma() {
        let name: HumanName = crate::from_json(json!({"suffix": ["Jr."]}));
        assert_eq!(display_human_name(&name).as_deref(), Some("Jr."));
    }

    #[test]
    fn text_only_name_uses_the_text() {
        let name: HumanName = crate::from_json(json!({"text": "Mr. Bob Smith"}));
        assert_eq!(display_human_name(&name).as_deref(), Some("Mr. Bob Smith"));
        let empty: HumanName = crate::from_json(json!({"given": [" "]}));
        assert_eq!(display_human_name(&empty), None);
    }

    #[test]
    fn official_name_is_preferred_over_old_and_nickname() {
        let p = patient(json!({"resourceType": "Patient", "name": [
            {"use": "old", "family": "Maiden", "given": ["Jane"]},
            {"use": "nickname", "given": ["Janie"]},
            {"use": "official", "family": "Doe", "given": ["Jane"]}
        ]}));
        assert_eq!(patient_display_name(&p), "Jane Doe");
        let no_official = patient(json!({"resourceType": "Patient", "name": [
            {"use": "old", "family": "Maiden", "given": ["Jane"]},
            {"given": ["Janie"]}
        ]}));
        assert_eq!(patient_display_name(&no_official), "Janie");
    }

    #[test]
    fn patient_without_a_name_gets_a_fallback_with_the_identifier() {
        let p = patient(json!({"resourceType": "Patient", "id": "p1", "identifier": [
            {"type": {"coding": [{"code": "MR"}]}, "value": "12345"}
        ]}));
        assert_eq!(patient_display_name(&p), "Unnamed patient (MR 12345)");
        let bare = patient(json!({"resourceType": "Patient", "id": "p1"}));
        assert_eq!(patient_display_name(&bare), "Unnamed patient (id p1)");
        assert_eq!(patient_display_name(&Patient::default()), "Unnamed patient");
    }
}
