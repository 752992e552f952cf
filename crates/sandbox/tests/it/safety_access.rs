//! Reads across patients closed: old versions judged by their own compartment, deleted ids of another patient not
//! writable, shared records read-only to patient-confined tokens, Bundles authorized before they run, the token
//! checked before the body is read.

use crate::common;
use crate::fhir_support::{Fhir, patient_ids, session};
use crate::fhir_write::heart_rate;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A clinician (user/*.cruds, no compartment), a patient-A token with `scope`, A's id and another patient B.
async fn clinician_and_patient(ts: &common::TestSandbox, scope: &str) -> (Fhir, Fhir, String, String) {
    let clinician = session(ts, "launch/patient user/*.cruds").await;
    let patient = session(ts, scope).await;
    let a = patient.patient.clone().unwrap();
    let b = patient_ids(ts).into_iter().find(|p| *p != a).unwrap();
    (clinician, patient, a, b)
}

fn subject(resource: &mut Value, patient: &str) {
    resource["subject"] = json!({ "reference": format!("Patient/{patient}") });
}

#[tokio::test]
async fn history_of_a_refiled_resource_hides_the_other_patients_versions() {
    let ts = common::start().await;
    let (clinician, patient_a, a, b) = clinician_and_patient(&ts, "launch/patient patient/*.rs").await;
    let mut observation = heart_rate(&b, 71);
    observation["note"] = json!([{ "text": "written in B's chart" }]);
    let created = clinician
        .send(Method::POST, "Observation", Some(&observation), &[])
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    // Re-filed to A, without B's note.
    let mut refiled = created.body.clone();
    subject(&mut refiled, &a);
    refiled.as_object_mut().unwrap().remove("note");
    let moved = clinician
        .send(Method::PUT, &format!("Observation/{id}"), Some(&refiled), &[])
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);

    assert_eq!(
        patient_a.get(&format!("Observation/{id}")).await.status,
        StatusCode::OK
    );
    let history = patient_a.ok(&format!("Observation/{id}/_history")).await;
    let versions: Vec<&str> = history.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["meta"]["versionId"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["2"], "{}", history.body);
    assert!(!history.body.to_string().contains("B's chart"));
    let old = patient_a.get(&format!("Observation/{id}/_history/1")).await;
    assert_eq!(old.status, StatusCode::FORBIDDEN, "{}", old.body);
    assert!(old.outcome().contains("compartment"));
    assert!(!old.body.to_string().contains("B's chart"));
    // The clinician still sees both versions.
    let full = clinician.ok(&format!("Observation/{id}/_history")).await;
    assert_eq!(full.body["total"], 2);
}

#[tokio::test]
async fn put_over_another_patients_deleted_resource_is_refused() {
    let ts = common::start().await;
    let (clinician, patient_a, a, b) = clinician_and_patient(&ts, "launch/patient patient/*.cruds").await;
    let condition = json!({
        "resourceType": "Condition",
        "subject": { "reference": format!("Patient/{b}") },
        "code": { "text": "B's private diagnosis" }
    });
    let created = clinician
        .send(Method::POST, "Condition", Some(&condition), &[])
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let deleted = clinician
        .send(Method::DELETE, &format!("Condition/{id}"), None, &[])
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);

    let mine = json!({
        "resourceType": "Condition", "id": id,
        "subject": { "reference": format!("Patient/{a}") },
        "code": { "text": "mine now" }
    });
    let taken = patient_a
        .send(Method::PUT, &format!("Condition/{id}"), Some(&mine), &[])
        .await;
    assert_eq!(taken.status, StatusCode::FORBIDDEN, "{}", taken.body);
    let history = patient_a.get(&format!("Condition/{id}/_history")).await;
    assert_eq!(history.status, StatusCode::FORBIDDEN);
    assert!(!history.body.to_string().contains("private diagnosis"));
    let version = patient_a.get(&format!("Condition/{id}/_history/1")).await;
    assert_eq!(version.status, StatusCode::FORBIDDEN);
    assert!(!version.body.to_string().contains("private diagnosis"));
    // A deleted id of A's own stays writable by A.
    let own = json!({
        "resourceType": "Condition",
        "subject": { "reference": format!("Patient/{a}") },
        "code": { "text": "A's" }
    });
    let created = patient_a.send(Method::POST, "Condition", Some(&own), &[]).await;
    let own_id = created.body["id"].as_str().unwrap().to_owned();
    patient_a
        .send(Method::DELETE, &format!("Condition/{own_id}"), None, &[])
        .await;
    let mut again = own.clone();
    again["id"] = json!(own_id);
    let restored = patient_a
        .send(Method::PUT, &format!("Condition/{own_id}"), Some(&again), &[])
        .await;
    assert_eq!(restored.status, StatusCode::CREATED, "{}", restored.body);
}

#[tokio::test]
async fn patient_scopes_cannot_change_shared_records() {
    let ts = common::start().await;
    let (clinician, patient_a, _, _) = clinician_and_patient(&ts, "launch/patient patient/*.cruds").await;
    let practitioners = patient_a.ok("Practitioner?_count=1").await;
    let practitioner = practitioners.resources("match").remove(0);
    let id = practitioner["id"].as_str().unwrap().to_owned();
    let mut renamed = practitioner.clone();
    renamed["name"] = json!([{ "family": "Impostor" }]);

    let update = patient_a
        .send(Method::PUT, &format!("Practitioner/{id}"), Some(&renamed), &[])
        .await;
    assert_eq!(update.status, StatusCode::FORBIDDEN, "{}", update.body);
    assert!(update.outcome().contains("shared"));
    let organization = json!({ "resourceType": "Organization", "name": "Fake Clinic" });
    let create = patient_a
        .send(Method::POST, "Organization", Some(&organization), &[])
        .await;
    assert_eq!(create.status, StatusCode::FORBIDDEN, "{}", create.body);
    let delete = patient_a
        .send(Method::DELETE, &format!("Practitioner/{id}"), None, &[])
        .await;
    assert_eq!(delete.status, StatusCode::FORBIDDEN, "{}", delete.body);
    let patch = patient_a
        .patch(
            &format!("Practitioner/{id}"),
            &json!([{ "op": "replace", "path": "/name", "value": [{ "family": "Impostor" }] }]),
            &[],
        )
        .await;
    assert_eq!(patch.status, StatusCode::FORBIDDEN, "{}", patch.body);
    let medication = json!({ "resourceType": "Medication", "code": { "text": "placebo" } });
    let bundle = json!({ "resourceType": "Bundle", "type": "batch", "entry": [
        { "request": { "method": "POST", "url": "Medication" }, "resource": medication }
    ]});
    let batch = patient_a.send(Method::POST, "", Some(&bundle), &[]).await;
    assert_eq!(
        batch.body["entry"][0]["response"]["status"], "403 Forbidden",
        "{}",
        batch.body
    );

    let unchanged = patient_a.ok(&format!("Practitioner/{id}")).await;
    assert_eq!(unchanged.body["name"], practitioner["name"]);
    assert_eq!(clinician.ok("Organization?name=Fake&_count=0").await.total(), 0);
    // A clinician may still change them.
    let by_clinician = clinician
        .send(Method::PUT, &format!("Practitioner/{id}"), Some(&renamed), &[])
        .await;
    assert_eq!(by_clinician.status, StatusCode::OK, "{}", by_clinician.body);
}

#[tokio::test]
async fn a_transaction_with_one_entry_the_token_may_not_perform_does_no_work() {
    let ts = common::start().await;
    let (clinician, patient_a, a, b) = clinician_and_patient(&ts, "launch/patient patient/*.cruds").await;
    let before = clinician
        .ok(&format!("Observation?patient={a}&_count=0"))
        .await
        .total();
    let bundle = json!({ "resourceType": "Bundle", "type": "transaction", "entry": [
        { "request": { "method": "POST", "url": "Observation" }, "resource": heart_rate(&a, 60) },
        { "request": { "method": "POST", "url": "Observation" }, "resource": heart_rate(&b, 61) },
        { "request": { "method": "POST", "url": "Observation" }, "resource": heart_rate(&a, 62) }
    ]});
    let answer = patient_a.send(Method::POST, "", Some(&bundle), &[]).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    assert!(answer.outcome().contains("entry 1"), "{}", answer.body);
    let after = clinician
        .ok(&format!("Observation?patient={a}&_count=0"))
        .await
        .total();
    assert_eq!(before, after);
}

/// Sends a request's head (announcing a body) without the body, and reads the answer.
async fn head_without_body(ts: &common::TestSandbox, head: &str) -> String {
    let mut socket = tokio::net::TcpStream::connect(ts.running.addr).await.unwrap();
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // The answer comes without the body ever being sent; the server then closes (or we stop at the headers).
    loop {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), socket.read(&mut buf))
            .await
            .expect("the server answered without waiting for the body")
            .unwrap();
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_request_without_a_valid_token_is_refused_before_its_body_is_read() {
    let ts = common::start().await;
    let head = format!(
        "POST /fhir/Observation HTTP/1.1\r\nhost: {}\r\ncontent-type: application/fhir+json\r\n\
         content-length: 30000000\r\n\r\n",
        ts.running.addr
    );
    let answer = head_without_body(&ts, &head).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let head = format!(
        "POST /fhir HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer not-a-token\r\n\
         content-type: application/fhir+json\r\ncontent-length: 30000000\r\n\r\n",
        ts.running.addr
    );
    let answer = head_without_body(&ts, &head).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}
