//! JSON Patch (`PATCH [base]/[type]/[id]`, RFC 6902): every operation, versions and `If-Match`, the token's
//! write scope and compartment, and what is refused (422, 415, 400, 404, 410).

use crate::fhir_support::{Fhir, launch, patient_ids};
use crate::fhir_write::heart_rate;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Creates a heart-rate Observation of the session's patient; returns its id.
async fn observation(fhir: &Fhir) -> String {
    let patient = fhir.patient.clone().unwrap();
    let created = fhir
        .send(Method::POST, "Observation", Some(&heart_rate(&patient, 70)), &[])
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    created.body["id"].as_str().unwrap().to_owned()
}

async fn version_of(fhir: &Fhir, path: &str) -> Value {
    fhir.ok(path).await.body["meta"]["versionId"].clone()
}

#[tokio::test]
async fn patch_applies_every_operation_as_a_new_version() {
    let (_ts, fhir) = launch("launch/patient user/*.cruds").await;
    let id = observation(&fhir).await;
    let path = format!("Observation/{id}");
    let ops = json!([
        { "op": "test", "path": "/status", "value": "final" },
        { "op": "replace", "path": "/status", "value": "amended" },
        { "op": "add", "path": "/note", "value": [{ "text": "taken after exercise" }] },
        { "op": "add", "path": "/note/-", "value": { "text": "repeat tomorrow" } },
        { "op": "copy", "from": "/effectiveDateTime", "path": "/issued" },
        { "op": "move", "from": "/valueQuantity/unit", "path": "/valueQuantity/comparator" },
        { "op": "remove", "path": "/valueQuantity/system" }
    ]);
    let patched = fhir.patch(&path, &ops, &[("if-match", "W/\"1\"")]).await;

    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    let body = &patched.body;
    assert_eq!(body["status"], "amended");
    assert_eq!(body["note"][1]["text"], "repeat tomorrow");
    assert_eq!(body["issued"], "2025-07-01T10:00:00Z");
    assert_eq!(body["valueQuantity"]["comparator"], "beats/minute");
    assert!(body["valueQuantity"].get("unit").is_none());
    assert!(body["valueQuantity"].get("system").is_none());
    assert_eq!(body["meta"]["versionId"], "2");
    assert_ne!(body["meta"]["lastUpdated"], Value::Null);
    assert_eq!(patched.header("etag"), Some("W/\"2\""));
    assert!(patched.header("last-modified").is_some());
    assert_eq!(
        patched.header("location"),
        Some(format!("{}/Observation/{id}/_history/2", fhir.base).as_str())
    );

    // Stored as it was answered, the old version kept, the search index updated.
    assert_eq!(fhir.ok(&path).await.body, *body);
    let history = fhir.ok(&format!("{path}/_history")).await;
    assert_eq!(history.total(), 2);
    let v1 = fhir.ok(&format!("{path}/_history/1")).await;
    assert_eq!(v1.body["status"], "final");
    assert_eq!(
        fhir.ok(&format!("Observation?_id={id}&status=amended"))
            .await
            .total(),
        1
    );
    assert_eq!(
        fhir.ok(&format!("Observation?_id={id}&status=final"))
            .await
            .total(),
        0
    );

    // If-Match naming the old version is refused, and nothing changes.
    let stale = fhir
        .patch(
            &path,
            &json!([{ "op": "replace", "path": "/status", "value": "final" }]),
            &[("if-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert!(stale.outcome().contains("version 2"));
    assert_eq!(version_of(&fhir, &path).await, "2");
}

#[tokio::test]
async fn patches_that_fail_or_change_what_the_resource_is_get_422_and_store_nothing() {
    let (_ts, fhir) = launch("launch/patient user/*.cruds").await;
    let id = observation(&fhir).await;
    let path = format!("Observation/{id}");
    let refused = [
        (
            json!([{ "op": "test", "path": "/status", "value": "preliminary" },
                { "op": "replace", "path": "/status", "value": "cancelled" }]),
            "test",
        ),
        (
            json!([{ "op": "replace", "path": "/id", "value": "another" }]),
            "`id`",
        ),
        (json!([{ "op": "remove", "path": "/id" }]), "`id`"),
        (
            json!([{ "op": "replace", "path": "/resourceType", "value": "Condition" }]),
            "`resourceType`",
        ),
        (
            json!([{ "op": "remove", "path": "/status" }]),
            "Observation.status",
        ),
        (
            json!([{ "op": "replace", "path": "", "value": ["not", "a", "resource"] }]),
            "JSON object",
        ),
        (
            json!([{ "op": "remove", "path": "/interpretation" }]),
            "/interpretation",
        ),
        (
            json!([{ "op": "move", "from": "/code", "path": "/code/coding" }]),
            "operation 0",
        ),
        // `-` names no element: removing it is an error (RFC 6902 §4.2), even from an empty array.
        (
            json!([{ "op": "add", "path": "/note", "value": [] }, { "op": "remove", "path": "/note/-" }]),
            "`-`",
        ),
        (
            json!([{ "op": "move", "from": "/category/-", "path": "/note" }]),
            "`-`",
        ),
    ];
    for (ops, says) in refused {
        let answer = fhir.patch(&path, &ops, &[]).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{ops}: {}",
            answer.body
        );
        let outcome = answer.outcome();
        assert!(outcome.contains(says), "{ops}: {outcome}");
    }
    let stored = fhir.ok(&path).await.body;
    assert_eq!(stored["meta"]["versionId"], "1");
    assert_eq!(stored["status"], "final");
    assert_eq!(fhir.ok(&format!("{path}/_history")).await.total(), 1);
}

#[tokio::test]
async fn patch_needs_a_json_patch_body_and_an_existing_resource() {
    let (_ts, fhir) = launch("launch/patient user/*.cruds").await;
    let id = observation(&fhir).await;
    let path = format!("Observation/{id}");
    let ops = json!([{ "op": "replace", "path": "/status", "value": "amended" }]);

    let as_fhir_json = fhir
        .send_text(
            Method::PATCH,
            &path,
            Some(("application/fhir+json", ops.to_string())),
            &[],
        )
        .await;
    assert_eq!(as_fhir_json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(as_fhir_json.outcome().contains("application/json-patch+json"));

    let with_charset = fhir
        .send_text(
            Method::PATCH,
            &path,
            Some(("Application/JSON-Patch+JSON; charset=utf-8", ops.to_string())),
            &[],
        )
        .await;
    assert_eq!(with_charset.status, StatusCode::OK, "{}", with_charset.body);

    for malformed in [
        json!({ "op": "replace", "path": "/status", "value": "final" }),
        json!([{ "op": "frobnicate", "path": "/status" }]),
        json!([{ "op": "replace", "path": "status", "value": "final" }]),
    ] {
        let answer = fhir.patch(&path, &malformed, &[]).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{malformed}: {}",
            answer.body
        );
        assert!(answer.outcome().contains("JSON Patch"));
    }
    assert_eq!(version_of(&fhir, &path).await, "2");

    let missing = fhir.patch("Observation/never-was", &ops, &[]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.outcome().contains("never-was"));
    let no_type = fhir.patch("Observaton/abc", &ops, &[]).await;
    assert_eq!(no_type.status, StatusCode::NOT_FOUND);
    no_type.outcome();

    let deleted = fhir.send(Method::DELETE, &path, None, &[]).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = fhir.patch(&path, &ops, &[]).await;
    assert_eq!(gone.status, StatusCode::GONE);
    gone.outcome();
}

#[tokio::test]
async fn patch_needs_the_write_scope_and_stays_in_the_patients_compartment() {
    let (ts, fhir) = launch("launch/patient patient/*.cruds").await;
    let mine = fhir.patient.clone().unwrap();
    let other = patient_ids(&ts).into_iter().find(|p| *p != mine).unwrap();
    let id = observation(&fhir).await;
    let path = format!("Observation/{id}");

    // Moving my observation to another patient is refused, and nothing changes.
    let moved = fhir
        .patch(
            &path,
            &json!([{ "op": "replace", "path": "/subject/reference", "value": format!("Patient/{other}") }]),
            &[],
        )
        .await;
    assert_eq!(moved.status, StatusCode::FORBIDDEN);
    assert!(moved.outcome().contains("compartment"));
    assert_eq!(version_of(&fhir, &path).await, "1");

    // Another patient's resources cannot be patched, not even probed with `test`.
    let others = ts
        .running
        .state
        .store()
        .encounters_for_patient(&other, 1)
        .unwrap();
    let encounter = others[0]["id"].as_str().unwrap();
    let probe = fhir
        .patch(
            &format!("Encounter/{encounter}"),
            &json!([{ "op": "test", "path": "/status", "value": "finished" }]),
            &[],
        )
        .await;
    assert_eq!(probe.status, StatusCode::FORBIDDEN);
    assert!(probe.outcome().contains("compartment"));

    // A read-only token is told which scope it lacks.
    let read_only = crate::fhir_support::session(&ts, "launch/patient patient/*.rs").await;
    let refused = read_only
        .patch(
            &path,
            &json!([{ "op": "replace", "path": "/status", "value": "amended" }]),
            &[],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.outcome().contains("update"));
    let challenge = refused.header("www-authenticate").unwrap();
    assert!(challenge.contains(r#"error="insufficient_scope""#), "{challenge}");
    assert!(
        challenge.contains(r#"scope="patient/Observation.u""#),
        "{challenge}"
    );
    assert_eq!(version_of(&fhir, &path).await, "1");
}
