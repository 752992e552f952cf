//! Reading into the fhir-r4 models against the real sandbox: what vendors really send (Cerner's
//! documented `telecom[].rank` of `"1"`, an Observation with a value that is not a number) is read
//! with the offending element set aside, each problem logged once at `warn` with its FHIR path.

use std::io::Write;
use std::sync::{Arc, Mutex};

use fhir_client::FhirError;
use fhir_client::r4::{Mode, Observation, Patient};
use fhir_client::search::SearchParams;
use serde_json::json;

use crate::common::{RAW, TestSandbox, with_raw};

/// Log lines written while the guard lives (this test's thread only).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

fn cerner_patient() -> serde_json::Value {
    // https://fhir.cerner.com/millennium/r4/base/individuals/patient/ — the documented example
    // sends `telecom[].rank` as the string "1".
    json!({"resourceType": "Patient", "id": "cerner-1",
        "name": [{"use": "official", "family": "Smart", "given": ["Nancy"]}],
        "telecom": [{"system": "phone", "value": "8168229121", "use": "home", "rank": "1"}],
        "birthDate": "1990-09-15"})
}

#[tokio::test]
async fn a_patient_with_a_string_rank_is_read_and_its_problem_logged_once() {
    let sandbox = TestSandbox::start().await;
    sandbox.put(cerner_patient()).await;
    let client = sandbox.client().await;
    let (logs, _guard) = capture();

    let read = client
        .read_with::<Patient>("cerner-1", Mode::Tolerant)
        .await
        .unwrap();
    let family = read.resource.name[0].family.as_ref().and_then(|f| f.as_str());
    assert_eq!(family, Some("Smart"));
    // "1" converts to the integer without doubt: read converted, and still reported.
    let rank = read.resource.telecom[0]
        .rank
        .as_ref()
        .and_then(|r| r.value())
        .copied();
    assert_eq!(rank, Some(1));
    let paths: Vec<&str> = read.issues.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(paths, ["Patient.telecom[0].rank"]);

    let warned: Vec<String> = logs.lines().into_iter().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warned.len(), 1, "{warned:#?}");
    assert!(
        warned[0].contains("fhir_path=Patient.telecom[0].rank"),
        "{}",
        warned[0]
    );
    assert!(!warned[0].contains("Bearer"), "{}", warned[0]);

    // Strict reading refuses the same resource, naming the path.
    match client.read_with::<Patient>("cerner-1", Mode::Strict).await {
        Err(FhirError::InvalidBody { path, .. }) => assert_eq!(path, "Patient.telecom[0].rank"),
        other => panic!("expected InvalidBody, got {other:?}"),
    }
}

#[tokio::test]
async fn one_broken_observation_does_not_fail_the_search() {
    let sandbox = TestSandbox::start().await;
    sandbox.put(cerner_patient()).await;
    // Sent as text: a `json!` number is an f64 and would lose the trailing zero of `80.50`.
    for (id, value) in [
        ("pulse-1", "72"),
        ("pulse-2", r#""seventy""#),
        ("pulse-3", "80.50"),
    ] {
        sandbox
            .put(with_raw(json!({"resourceType": "Observation", "id": id, "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": "Heart rate"},
                "subject": {"reference": "Patient/cerner-1"},
                "effectiveDateTime": "2026-11-01T10:00:00Z",
                "valueQuantity": {"value": RAW, "unit": "/min"}}), value))
            .await;
    }
    let client = sandbox.client().await;
    let (logs, _guard) = capture();

    let page = client
        .search::<Observation>(&SearchParams::new().patient("cerner-1"))
        .await
        .unwrap();
    let mut ids: Vec<String> = page.matches.iter().filter_map(|o| o.id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["pulse-1", "pulse-2", "pulse-3"]);
    assert_eq!(page.issues.len(), 1, "{:?}", page.issues);
    assert!(
        page.issues[0].path.ends_with(".resource.valueQuantity.value"),
        "{}",
        page.issues[0].path
    );
    // The decimal keeps its text.
    let written: Vec<String> = page.matches.iter().map(fhir_client::r4::to_string).collect();
    assert!(
        written.iter().any(|w| w.contains(r#""value":80.50"#)),
        "{written:#?}"
    );
    let warned: Vec<String> = logs.lines().into_iter().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warned.len(), 1, "{warned:#?}");
    assert!(warned[0].contains("valueQuantity.value"), "{}", warned[0]);
}
