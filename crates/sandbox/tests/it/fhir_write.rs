//! Writes: create, update with `If-Match`, delete (410 after), transactions with `urn:uuid:` references, batch,
//! and the checks on bodies.

use crate::fhir_support::{launch, patient_ids};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A heart-rate Observation of `patient` (no id: the server gives one).
pub fn heart_rate(patient: &str, bpm: i64) -> Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "category": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs" }] }],
        "code": { "coding": [{ "system": "http://loinc.org", "code": "8867-4", "display": "Heart rate" }] },
        "subject": { "reference": format!("Patient/{patient}") },
        "effectiveDateTime": "2025-07-01T10:00:00Z",
        "valueQuantity": { "value": bpm, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min" }
    })
}

#[tokio::test]
async fn create_update_with_if_match_and_delete_keep_versions() {
    let (_ts, fhir) = launch("launch/patient user/*.cruds").await;
    let patient = fhir.patient.clone().unwrap();
    let created = fhir
        .send(Method::POST, "Observation", Some(&heart_rate(&patient, 70)), &[])
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let location = created.header("location").unwrap();
    assert_eq!(location, format!("{}/Observation/{id}/_history/1", fhir.base));
    assert_eq!(created.header("etag"), Some("W/\"1\""));
    assert!(
        fhir.ok(&format!("Observation?patient={patient}&_id={id}"))
            .await
            .total()
            == 1,
        "indexed on create"
    );

    let mut changed = created.body.clone();
    changed["valueQuantity"]["value"] = json!(75);
    let updated = fhir
        .send(
            Method::PUT,
            &format!("Observation/{id}"),
            Some(&changed),
            &[("if-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["meta"]["versionId"], "2");
    assert_eq!(updated.header("etag"), Some("W/\"2\""));

    let stale = fhir
        .send(
            Method::PUT,
            &format!("Observation/{id}"),
            Some(&changed),
            &[("if-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert!(stale.outcome().contains("version 2"));

    let v1 = fhir.ok(&format!("Observation/{id}/_history/1")).await;
    assert_eq!(v1.body["valueQuantity"]["value"], 70);

    let deleted = fhir
        .send(Method::DELETE, &format!("Observation/{id}"), None, &[])
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = fhir.get(&format!("Observation/{id}")).await;
    assert_eq!(gone.status, StatusCode::GONE);
    assert!(gone.outcome().contains("deleted"));
    assert_eq!(
        fhir.ok(&format!("Observation?_id={id}")).await.total(),
        0,
        "deleted resources leave the index"
    );
    let history = fhir.ok(&format!("Observation/{id}/_history")).await;
    assert_eq!(history.total(), 3);
    assert_eq!(history.body["entry"][0]["request"]["method"], "DELETE");
    let missing = fhir
        .send(Method::DELETE, "Observation/never-was", None, &[])
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    missing.outcome();
}

#[tokio::test]
async fn invalid_bodies_get_400_415_or_422() {
    let (_ts, fhir) = launch("launch/patient user/*.cruds").await;
    let patient = fhir.patient.clone().unwrap();
    let mut no_status = heart_rate(&patient, 60);
    no_status.as_object_mut().unwrap().remove("status");
    let answer = fhir
        .send(Method::POST, "Observation", Some(&no_status), &[])
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer.outcome().contains("Observation.status"));

    let answer = fhir
        .send(Method::POST, "Condition", Some(&heart_rate(&patient, 60)), &[])
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    answer.outcome();

    let answer = fhir
        .send(
            Method::PUT,
            "Observation/abc",
            Some(&json!({"resourceType": "Observation", "id": "xyz", "status": "final", "code": {}})),
            &[],
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.outcome().contains("differs"));

    let response = fhir
        .http
        .post(fhir.url("Observation"))
        .bearer_auth(fhir.token.as_deref().unwrap())
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let response = fhir
        .http
        .post(fhir.url("Observation"))
        .bearer_auth(fhir.token.as_deref().unwrap())
        .header("content-type", "application/fhir+json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn transaction_rewrites_urn_uuid_references_and_is_all_or_nothing() {
    let (_ts, fhir) = launch("launch/patient user/*.cruds").await;
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0b5e4c2a-1111-4e2b-9a1e-000000000002",
                "resource": heart_rate("ignored", 88),
                "request": { "method": "POST", "url": "Observation" }
            },
            {
                "fullUrl": "urn:uuid:0b5e4c2a-1111-4e2b-9a1e-000000000001",
                "resource": { "resourceType": "Patient", "name": [{ "family": "Transactional", "given": ["Tess"] }] },
                "request": { "method": "POST", "url": "Patient" }
            }
        ]
    });
    let mut bundle = bundle;
    bundle["entry"][0]["resource"]["subject"]["reference"] =
        json!("urn:uuid:0b5e4c2a-1111-4e2b-9a1e-000000000001");
    let answer = fhir.send(Method::POST, "", Some(&bundle), &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["type"], "transaction-response");
    let entries = answer.body["entry"].as_array().unwrap();
    assert_eq!(entries[0]["response"]["status"], "201 Created");
    let patient_location = entries[1]["response"]["location"].as_str().unwrap();
    let patient_id = patient_location.split('/').nth(1).unwrap();
    assert_eq!(
        entries[0]["resource"]["subject"]["reference"],
        format!("Patient/{patient_id}")
    );
    let found = fhir.ok(&format!("Observation?patient={patient_id}")).await;
    assert_eq!(found.total(), 1);
    assert_eq!(fhir.ok("Patient?family=transactional").await.total(), 1);

    // A failing entry undoes the whole transaction.
    let mut broken = heart_rate(patient_id, 90);
    broken.as_object_mut().unwrap().remove("code");
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            { "resource": heart_rate(patient_id, 91), "request": { "method": "POST", "url": "Observation" } },
            { "resource": broken, "request": { "method": "POST", "url": "Observation" } }
        ]
    });
    let answer = fhir.send(Method::POST, "", Some(&bundle), &[]).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.body);
    assert!(answer.outcome().contains("entry 1"));
    assert_eq!(
        fhir.ok(&format!("Observation?patient={patient_id}"))
            .await
            .total(),
        1,
        "nothing was applied"
    );
}

#[tokio::test]
async fn batch_reports_each_entry_on_its_own() {
    let (ts, fhir) = launch("launch/patient user/*.cruds").await;
    let patient = patient_ids(&ts)[0].clone();
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            { "resource": heart_rate(&patient, 77), "request": { "method": "POST", "url": "Observation" } },
            { "request": { "method": "GET", "url": "Observation/does-not-exist" } },
            { "request": { "method": "GET", "url": format!("Patient/{patient}") } },
            { "request": { "method": "GET", "url": format!("Observation?patient={patient}&code=8867-4&_count=1") } }
        ]
    });
    let answer = fhir.send(Method::POST, "", Some(&bundle), &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["type"], "batch-response");
    let entries = answer.body["entry"].as_array().unwrap();
    assert_eq!(entries[0]["response"]["status"], "201 Created");
    assert_eq!(entries[1]["response"]["status"], "404 Not Found");
    assert_eq!(
        entries[1]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    assert_eq!(entries[2]["resource"]["id"], patient.as_str());
    assert_eq!(entries[3]["resource"]["type"], "searchset");
}

#[tokio::test]
async fn patient_scoped_writes_stay_in_the_patients_compartment() {
    let (ts, fhir) = launch("launch/patient patient/*.cruds").await;
    let mine = fhir.patient.clone().unwrap();
    let other = patient_ids(&ts).into_iter().find(|p| *p != mine).unwrap();
    let ok = fhir
        .send(Method::POST, "Observation", Some(&heart_rate(&mine, 64)), &[])
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    let refused = fhir
        .send(Method::POST, "Observation", Some(&heart_rate(&other, 64)), &[])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.outcome().contains("compartment"));

    // Moving my observation to another patient is refused too, and nothing changes.
    let id = ok.body["id"].as_str().unwrap();
    let mut moved = ok.body.clone();
    moved["subject"]["reference"] = json!(format!("Patient/{other}"));
    let refused = fhir
        .send(Method::PUT, &format!("Observation/{id}"), Some(&moved), &[])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        fhir.ok(&format!("Observation/{id}")).await.body["meta"]["versionId"],
        "1"
    );

    let others = ts
        .running
        .state
        .store()
        .encounters_for_patient(&other, 1)
        .unwrap();
    let encounter = others[0]["id"].as_str().unwrap();
    let refused = fhir
        .send(Method::DELETE, &format!("Encounter/{encounter}"), None, &[])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    refused.outcome();

    let read_only = crate::fhir_support::session(&ts, "launch/patient patient/*.rs").await;
    let refused = read_only
        .send(Method::POST, "Observation", Some(&heart_rate(&mine, 64)), &[])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.outcome().contains("create"));
}

/// FHIR keeps a decimal's precision (R4 datatypes §2.24.0.1: `72.50` is not `72.5`), so the sandbox stores the
/// text sent, through a create, an update, a transaction and a patch that leaves the number alone; a number the
/// patch writes keeps the text it was sent with. (The sandbox reads JSON without `arbitrary_precision`.)
#[tokio::test]
async fn decimals_keep_the_text_they_were_sent_with_through_every_write() {
    let (_ts, fhir) = launch("launch/patient user/*.cruds").await;
    let patient = fhir.patient.clone().unwrap();
    let observation = |id: &str| {
        let id = if id.is_empty() {
            String::new()
        } else {
            format!(r#""id":"{id}","#)
        };
        format!(
            r#"{{"resourceType":"Observation",{id}"status":"final","code":{{"text":"Body weight"}},
               "subject":{{"reference":"Patient/{patient}"}},"effectiveDateTime":"2025-07-01T10:00:00Z",
               "valueQuantity":{{"value":72.50,"unit":"kg"}},
               "referenceRange":[{{"low":{{"value":5.0e1}},"high":{{"value":100.00}}}}]}}"#
        )
    };
    let keeps = |text: &str, what: &str| {
        for number in [r#""value":72.50"#, r#""value":5.0e1"#, r#""value":100.00"#] {
            assert!(text.contains(number), "{what}: {number} in {text}");
        }
    };
    let created = fhir
        .send_text(
            Method::POST,
            "Observation",
            Some(("application/fhir+json", observation(""))),
            &[],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    keeps(&created.text, "create");
    let id = created.body["id"].as_str().unwrap().to_owned();
    keeps(&fhir.ok(&format!("Observation/{id}")).await.text, "read");

    let updated = fhir
        .send_text(
            Method::PUT,
            &format!("Observation/{id}"),
            Some(("application/fhir+json", observation(&id))),
            &[],
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    keeps(&updated.text, "update");
    keeps(
        &fhir.ok(&format!("Observation/{id}/_history/1")).await.text,
        "vread",
    );

    let patch = r#"[{"op":"replace","path":"/status","value":"amended"},
                    {"op":"add","path":"/referenceRange/0/low/value","value":4.50}]"#;
    let patched = fhir
        .send_text(
            Method::PATCH,
            &format!("Observation/{id}"),
            Some(("application/json-patch+json", patch.to_owned())),
            &[],
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert!(patched.text.contains(r#""value":72.50"#), "{}", patched.text);
    assert!(patched.text.contains(r#""value":100.00"#), "{}", patched.text);
    assert!(
        patched.text.contains(r#""value":4.50"#),
        "the patch's own text: {}",
        patched.text
    );
    assert!(
        !patched.text.contains("5.0e1"),
        "the replaced number is gone: {}",
        patched.text
    );

    let bundle = format!(
        r#"{{"resourceType":"Bundle","type":"transaction","entry":[
            {{"fullUrl":"urn:uuid:0f4c9c1e-2a3b-4c5d-8e9f-000000000001","resource":{},"request":{{"method":"POST","url":"Observation"}}}},
            {{"resource":{},"request":{{"method":"PUT","url":"Observation/{id}"}}}}]}}"#,
        observation("").replace("72.50", "61.20"),
        observation(&id)
    );
    let done = fhir
        .send_text(Method::POST, "", Some(("application/fhir+json", bundle)), &[])
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    let created_in_bundle = done.body["entry"][0]["response"]["location"].as_str().unwrap();
    let created_id = created_in_bundle.split('/').nth(1).unwrap();
    let first = fhir.ok(&format!("Observation/{created_id}")).await;
    assert!(first.text.contains(r#""value":61.20"#), "{}", first.text);
    keeps(&fhir.ok(&format!("Observation/{id}")).await.text, "transaction");
}
