//! Strict and tolerant reading: coercions, unknown members kept in place, issues by FHIR path.

use fhir_r4::{Bundle, Error, IssueKind, Mode, Observation, Patient, Resource};

/// Oracle Health's documented Patient sends `telecom[].rank` as a string.
const CERNER_PATIENT: &str = r#"{"resourceType":"Patient","id":"12724066","active":"true",
  "telecom":[{"system":"phone","value":"8168229999","use":"home","rank":"1"}]}"#;

#[test]
fn tolerant_reading_coerces_a_string_rank_and_says_where() {
    let (patient, issues) = fhir_r4::from_str::<Patient>(CERNER_PATIENT, Mode::Tolerant).expect("reads");
    assert_eq!(patient.telecom[0].rank.as_ref().and_then(|r| r.value), Some(1));
    assert_eq!(patient.active.as_ref().and_then(|a| a.value), Some(true));
    let paths: Vec<_> = issues.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(paths, ["Patient.active", "Patient.telecom[0].rank"]);
    assert!(matches!(
        issues[1].kind,
        IssueKind::Coerced {
            expected: "a non-negative integer",
            found: "a string"
        }
    ));
}

#[test]
fn strict_reading_fails_on_the_same_patient_listing_every_issue() {
    let err = fhir_r4::from_str::<Patient>(CERNER_PATIENT, Mode::Strict).expect_err("strict refuses");
    let Error::Invalid { issues } = &err else {
        panic!("{err}")
    };
    assert_eq!(issues.len(), 2);
    assert!(
        err.to_string()
            .contains("Patient.telecom[0].rank: expected a non-negative integer, found a string")
    );
}

#[test]
fn a_value_that_does_not_convert_is_kept_as_an_unknown_member_and_written_back() {
    let json =
        r#"{"resourceType":"Patient","id":"p","telecom":[{"value":"1","rank":"first"}],"gender":"male"}"#;
    let (patient, issues) = fhir_r4::from_str::<Patient>(json, Mode::Tolerant).expect("reads");
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].path, "Patient.telecom[0].rank");
    assert!(matches!(issues[0].kind, IssueKind::WrongType { .. }));
    assert_eq!(patient.telecom[0].rank, None);
    assert_eq!(patient.telecom[0].unknown.get("rank"), Some(r#""first""#));
    assert_eq!(fhir_r4::to_string(&patient), json);
}

#[test]
fn unknown_members_are_written_back_where_they_stood() {
    let json = r#"{"resourceType":"Patient","id":"p","x-vendor":{"a":[1,2.50]},"active":true,"x-last":null}"#;
    let (patient, issues) = fhir_r4::from_str::<Patient>(json, Mode::Tolerant).expect("reads");
    assert_eq!(
        issues.iter().map(|i| i.path.as_str()).collect::<Vec<_>>(),
        ["Patient.x-vendor", "Patient.x-last"]
    );
    assert_eq!(fhir_r4::to_string(&patient), json);
    assert!(fhir_r4::from_str::<Patient>(json, Mode::Strict).is_err());
}

#[test]
fn a_missing_required_element_is_an_issue_not_a_failure() {
    let json = r#"{"resourceType":"Observation","id":"o"}"#;
    for mode in [Mode::Tolerant, Mode::Strict] {
        let (obs, issues) = fhir_r4::from_str::<Observation>(json, mode).expect("reads");
        assert_eq!(obs.id.as_deref(), Some("o"));
        let paths: Vec<_> = issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(paths, ["Observation.status", "Observation.code"]);
        assert!(issues.iter().all(|i| i.kind == IssueKind::MissingRequired));
    }
}

#[test]
fn decimals_keep_the_text_they_were_written_with() {
    let json = r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":0.50},"component":[{"code":{"text":"y"},"valueQuantity":{"value":1e3}},{"code":{"text":"z"},"valueQuantity":{"value":-0.000000000000000000012345678901234567890}}]}"#;
    let (obs, _) = fhir_r4::from_str::<Observation>(json, Mode::Strict).expect("reads");
    assert_eq!(fhir_r4::to_string(&obs), json);
}

#[test]
fn primitive_extensions_survive_in_arrays_with_nulls_in_either_order() {
    let given = r#""given":["Ann",null,"Lee"],"_given":[null,{"extension":[{"url":"http://x","valueCode":"masked"}]},{"id":"g3"}]"#;
    let json = format!(
        r#"{{"resourceType":"Patient","name":[{{{given}}}],"birthDate":"1970","_birthDate":{{"id":"b"}}}}"#
    );
    let (patient, issues) = fhir_r4::from_str::<Patient>(&json, Mode::Strict).expect("reads");
    assert!(issues.is_empty());
    assert_eq!(patient.name[0].given.len(), 3);
    assert_eq!(patient.name[0].given[1].value, None);
    assert_eq!(
        patient.name[0].given[1].extension()[0].url.as_deref(),
        Some("http://x")
    );
    assert_eq!(fhir_r4::to_string(&patient), json);

    let reversed =
        r#"{"resourceType":"Patient","name":[{"_given":[null,{"id":"g2"}],"given":["Ann",null]}]}"#;
    let (patient, _) = fhir_r4::from_str::<Patient>(reversed, Mode::Strict).expect("reads");
    assert_eq!(
        fhir_r4::to_string(&patient),
        r#"{"resourceType":"Patient","name":[{"given":["Ann",null],"_given":[null,{"id":"g2"}]}]}"#
    );
}

#[test]
fn resource_dispatches_on_a_resource_type_written_last() {
    let json = r#"{"id":"o1","status":"final","code":{"text":"x"},"resourceType":"Observation"}"#;
    let (resource, _) = fhir_r4::from_str::<Resource>(json, Mode::Strict).expect("reads");
    let Resource::Observation(obs) = &resource else {
        panic!("{resource:?}")
    };
    assert_eq!(obs.id.as_deref(), Some("o1"));
    assert_eq!(resource.id(), Some("o1"));
}

#[test]
fn another_resource_type_is_an_error_naming_both() {
    let err =
        fhir_r4::from_str::<Patient>(r#"{"resourceType":"Observation"}"#, Mode::Tolerant).expect_err("no");
    assert_eq!(
        err.to_string(),
        r#"expected a FHIR Patient, found resourceType "Observation""#
    );
}

#[test]
fn an_unknown_resource_in_a_bundle_is_kept_and_reported_when_tolerant() {
    let json = r#"{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"Patient","id":"a"}},{"resource":{"resourceType":"FutureThing","id":"b"}}]}"#;
    let (bundle, issues) = fhir_r4::from_str::<Bundle>(json, Mode::Tolerant).expect("reads");
    assert!(matches!(bundle.entry[0].resource, Some(Resource::Patient(_))));
    assert_eq!(
        bundle.entry[1].unknown.get("resource"),
        Some(r#"{"resourceType":"FutureThing","id":"b"}"#)
    );
    assert_eq!(issues[0].path, "Bundle.entry[1].resource");
    assert_eq!(fhir_r4::to_string(&bundle), json);
    assert!(fhir_r4::from_str::<Bundle>(json, Mode::Strict).is_err());
}

#[test]
fn malformed_json_is_an_error_with_line_and_column() {
    let err = fhir_r4::from_str::<Patient>("{\"resourceType\":\"Patient\",\n\"id\" \"x\"}", Mode::Tolerant)
        .expect_err("malformed");
    assert!(
        matches!(
            err,
            Error::Syntax {
                line: 2,
                column: 6,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn deep_nesting_is_refused_without_exhausting_the_stack() {
    let json = format!(
        r#"{{"resourceType":"Patient","x":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let err = fhir_r4::from_str::<Patient>(&json, Mode::Tolerant).expect_err("too deep");
    assert!(matches!(err, Error::TooDeep { .. }), "{err:?}");
}
