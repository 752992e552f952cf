//! The generated population (same seed, same data) and `--import` of Bundles.

use crate::common;
use crate::fhir_support::session;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn without_meta(mut v: Value) -> Value {
    if let Some(map) = v.as_object_mut() {
        map.remove("meta");
    }
    v
}

#[tokio::test]
async fn the_same_seed_generates_the_same_patients_and_another_seed_does_not() {
    let a = common::start_with(|c| c.seed = 7).await;
    let b = common::start_with(|c| c.seed = 7).await;
    let c = common::start_with(|c| c.seed = 8).await;
    let patients = |ts: &common::TestSandbox| {
        let mut all: Vec<Value> = ts
            .running
            .state
            .store()
            .find_patients("", 100)
            .unwrap()
            .into_iter()
            .map(without_meta)
            .collect();
        all.sort_by_key(|p| p["id"].as_str().unwrap().to_owned());
        all
    };
    assert_eq!(patients(&a), patients(&b));
    assert_ne!(patients(&a), patients(&c));
    let fa = session(&a, "launch/patient user/*.rs").await;
    let fb = session(&b, "launch/patient user/*.rs").await;
    let id = patients(&a)[0]["id"].as_str().unwrap().to_owned();
    let path = format!("Observation?patient={id}&_count=1000");
    let from_a: Vec<Value> = fa
        .ok(&path)
        .await
        .resources("match")
        .into_iter()
        .map(without_meta)
        .collect();
    let from_b: Vec<Value> = fb
        .ok(&path)
        .await
        .resources("match")
        .into_iter()
        .map(without_meta)
        .collect();
    assert!(!from_a.is_empty());
    assert_eq!(from_a, from_b);
}

#[tokio::test]
async fn a_restart_reuses_the_database_instead_of_generating_again() {
    let ts = common::start().await;
    let before = ts.running.state.store().count("Observation").unwrap();
    let dir = ts.dir;
    ts.running.shutdown().await;
    let again = common::start_in(dir, |c| c.seed = 999).await;
    assert_eq!(again.running.state.store().count("Observation").unwrap(), before);
    assert_eq!(again.running.state.store().count("Patient").unwrap(), 5);
}

#[tokio::test]
async fn import_loads_synthea_style_bundles_and_rewrites_references() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fhir");
    std::fs::create_dir_all(&data).unwrap();
    let practitioners = json!({
        "resourceType": "Bundle", "type": "transaction",
        "entry": [{
            "fullUrl": "urn:uuid:aaaaaaaa-0000-4000-8000-000000000001",
            "resource": { "resourceType": "Practitioner", "id": "aaaaaaaa-0000-4000-8000-000000000001",
                          "identifier": [{ "system": "http://hl7.org/fhir/sid/us-npi", "value": "9999999999" }],
                          "name": [{ "family": "Imported", "given": ["Ivy"], "prefix": ["Dr."] }] },
            "request": { "method": "POST", "url": "Practitioner", "ifNoneExist": "identifier=http://hl7.org/fhir/sid/us-npi|9999999999" }
        }]
    });
    let patient = json!({
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:bbbbbbbb-0000-4000-8000-000000000001",
                "resource": { "resourceType": "Patient", "name": [{ "family": "Synthea", "given": ["Sam"] }], "gender": "male",
                              "birthDate": "1980-02-03" },
                "request": { "method": "POST", "url": "Patient" }
            },
            {
                "fullUrl": "urn:uuid:cccccccc-0000-4000-8000-000000000001",
                "resource": { "resourceType": "Encounter", "status": "finished",
                              "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB" },
                              "subject": { "reference": "urn:uuid:bbbbbbbb-0000-4000-8000-000000000001" },
                              "participant": [{ "individual": {
                                  "reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999999999" } }],
                              "period": { "start": "2020-01-01T10:00:00Z", "end": "2020-01-01T10:30:00Z" } },
                "request": { "method": "POST", "url": "Encounter" }
            }
        ]
    });
    std::fs::write(
        data.join("practitionerInformation1.json"),
        practitioners.to_string(),
    )
    .unwrap();
    std::fs::write(data.join("Sam_Synthea.json"), patient.to_string()).unwrap();

    let ts = common::start_with(|c| c.imports = vec![data.clone()]).await;
    let fhir = session(&ts, "launch/patient user/*.rs").await;
    let found = fhir.ok("Patient?family=synthea").await.resources("match");
    assert_eq!(found.len(), 1);
    let id = found[0]["id"].as_str().unwrap();
    assert_eq!(
        id, "bbbbbbbb-0000-4000-8000-000000000001",
        "the urn:uuid becomes the id"
    );
    let encounters = fhir
        .ok(&format!("Encounter?patient={id}&_include=Encounter:participant"))
        .await;
    assert_eq!(encounters.total(), 1);
    let encounter = &encounters.resources("match")[0];
    assert_eq!(encounter["subject"]["reference"], format!("Patient/{id}"));
    assert_eq!(
        encounter["participant"][0]["individual"]["reference"],
        "Practitioner/aaaaaaaa-0000-4000-8000-000000000001",
        "the conditional reference is resolved"
    );
    assert_eq!(
        encounters.resources("include")[0]["name"][0]["family"],
        "Imported"
    );

    // Importing the same files again changes nothing.
    let report = ts.running.state.store().import_dir(&data).unwrap();
    assert_eq!((report.files, report.skipped), (0, 2));
    assert_eq!(
        fhir.ok(&format!("Patient/{id}")).await.body["meta"]["versionId"],
        "1"
    );

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{ not json").unwrap();
    let report = ts.running.state.store().import_dir(&bad).unwrap();
    assert_eq!(report.files, 0);
    assert!(report.to_string().contains("bad.json"), "{report}");
    assert_eq!(fhir.get("Patient?family=synthea").await.status, StatusCode::OK);
}
