//! Response bodies read into the workspace's own R4 models ([`fhir_r4`]): tolerant by default, so a
//! resource with an element that does not fit (Cerner's documented `telecom[].rank` of `"1"`, a
//! vendor extension member) is still read; every problem is kept on the result with its FHIR path
//! and logged once at `warn`, one line per resource and problem path.
//!
//! A body is read once per answer, after the transport's retries, so a retried request logs its
//! problems once, not once per attempt.

use std::collections::HashSet;

use fhir_r4::rt::Object;
use fhir_r4::{FromJson, Issue, Mode, ResourceType};
use url::Url;

use crate::error::FhirError;
use crate::request::body_excerpt;

/// A resource read from the server, with the problems found in it.
#[derive(Debug, Clone)]
pub struct Read<T> {
    /// The resource; in [`Mode::Tolerant`] an element that did not fit is kept as an unknown member
    /// (written back as received) instead of failing the read.
    pub resource: T,
    /// What did not fit the model, each with its FHIR path (`Patient.telecom[0].rank`).
    pub issues: Vec<Issue>,
}

/// Reads `body` as a `T` in `mode`, logging the issues found (see the module's documentation).
pub fn read<T: FromJson>(body: &[u8], source: &Url, mode: Mode) -> Result<Read<T>, FhirError> {
    let (resource, issues) =
        fhir_r4::from_slice::<T>(body, mode).map_err(|e| failed(e, T::TYPE_NAME, body, source))?;
    log_issues(source, T::TYPE_NAME, &issues);
    Ok(Read { resource, issues })
}

/// The FHIR type name of `R` (`"Observation"`).
pub(crate) fn type_name<R: ResourceType>() -> &'static str {
    <R as Object>::NAME
}

/// One `warn` line per distinct problem path of a body.
fn log_issues(source: &Url, type_name: &str, issues: &[Issue]) {
    let mut seen = HashSet::new();
    for issue in issues {
        if seen.insert(issue.path.as_str()) {
            tracing::warn!(
                url = %source,
                resource_type = type_name,
                fhir_path = %issue.path,
                problem = %issue,
                "a FHIR element did not fit the R4 model; read without it"
            );
        }
    }
}

/// The client's error for a body fhir-r4 could not read.
fn failed(error: fhir_r4::Error, expected: &str, body: &[u8], source: &Url) -> FhirError {
    let path = match &error {
        fhir_r4::Error::Syntax { path, .. } | fhir_r4::Error::TooDeep { path } => path.clone(),
        fhir_r4::Error::Invalid { issues } => issues.first().map(|i| i.path.clone()).unwrap_or_default(),
        _ => String::from("."),
    };
    if let fhir_r4::Error::NotThisType { found, .. } = &error {
        return FhirError::UnexpectedResourceType {
            url: source.to_string(),
            expected: expected.to_owned(),
            found: found.clone(),
        };
    }
    FhirError::InvalidBody {
        url: source.to_string(),
        expected: expected.to_owned(),
        path,
        message: error.to_string(),
        body: body_excerpt(body),
    }
}

#[cfg(test)]
mod tests {
    use fhir_r4::Patient;

    use super::*;

    fn source() -> Url {
        Url::parse("http://ehr.example/fhir/Observation?patient=p").unwrap()
    }

    #[test]
    fn a_wrong_typed_element_is_set_aside_with_its_path_and_the_rest_is_read() {
        let body = br#"{"resourceType":"Patient","id":"p","name":[{"family":"Chalmers","given":["Peter"]}],
            "birthDate":19740604,"telecom":[{"system":"phone","value":"555","rank":"1"}]}"#;
        let read = read::<Patient>(body, &source(), Mode::Tolerant).unwrap();
        let family = read.resource.name[0].family.as_ref().and_then(|f| f.as_str());
        assert_eq!(family, Some("Chalmers"));
        assert!(read.resource.birth_date.is_none());
        let paths: Vec<&str> = read.issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            ["Patient.birthDate", "Patient.telecom[0].rank"],
            "{:?}",
            read.issues
        );
        // Strict reading refuses the same body, naming the first path.
        match read_strict(body) {
            FhirError::InvalidBody { path, .. } => assert_eq!(path, "Patient.birthDate"),
            other => panic!("expected InvalidBody, got {other:?}"),
        }
    }

    fn read_strict(body: &[u8]) -> FhirError {
        read::<Patient>(body, &source(), Mode::Strict).unwrap_err()
    }

    #[test]
    fn malformed_json_and_another_type_are_errors() {
        assert!(matches!(
            read::<Patient>(br#"{"resourceType":"Patient","#, &source(), Mode::Tolerant),
            Err(FhirError::InvalidBody { .. })
        ));
        assert!(matches!(
            read::<Patient>(br#"{"resourceType":"Observation"}"#, &source(), Mode::Tolerant),
            Err(FhirError::UnexpectedResourceType { .. })
        ));
    }
}
