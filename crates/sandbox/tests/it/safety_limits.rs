//! Requests that used to take the process down are answered with a 4xx OperationOutcome naming the limit.

use crate::common;
use crate::fhir_support::{launch, session};
use reqwest::{Method, StatusCode};
use sandbox::fhir::limits;
use serde_json::{Value, json};

#[tokio::test]
async fn patch_that_grows_past_the_limit_is_refused() {
    let (_ts, fhir) = launch("launch/patient user/*.cruds").await;
    let patient = fhir.patient.clone().unwrap();
    let created = fhir
        .send(
            Method::POST,
            "Observation",
            Some(&crate::fhir_write::heart_rate(&patient, 70)),
            &[],
        )
        .await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    // Each `copy` puts the whole `code` object into its own child: the resource doubles 35 times (2^35 copies).
    let ops: Vec<Value> = (0..35)
        .map(|_| json!({ "op": "copy", "from": "/code", "path": "/code/coding/-" }))
        .collect();
    let answer = fhir.patch(&format!("Observation/{id}"), &json!(ops), &[]).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", answer.body);
    assert!(answer.outcome().contains(&limits::MAX_RESOURCE_BYTES.to_string()));
    // Nothing was stored and the server is still up.
    let read = fhir.ok(&format!("Observation/{id}")).await;
    assert_eq!(read.body["meta"]["versionId"], "1");

    let too_many: Vec<Value> = (0..=limits::MAX_PATCH_OPERATIONS)
        .map(|_| json!({ "op": "test", "path": "/status", "value": "final" }))
        .collect();
    let answer = fhir
        .patch(&format!("Observation/{id}"), &json!(too_many), &[])
        .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", answer.body);
    assert!(answer.outcome().contains("operations"));
}

#[tokio::test]
async fn a_resource_larger_than_the_limit_is_refused() {
    let (_ts, fhir) = launch("launch/patient user/*.cruds").await;
    let patient = fhir.patient.clone().unwrap();
    let mut observation = crate::fhir_write::heart_rate(&patient, 70);
    observation["note"] = json!([{ "text": "x".repeat(limits::MAX_RESOURCE_BYTES) }]);
    let answer = fhir
        .send(Method::POST, "Observation", Some(&observation), &[])
        .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", answer.body);
}

fn batch_of_searches(n: usize, search: &str) -> Value {
    let entries: Vec<Value> = (0..n)
        .map(|_| json!({ "request": { "method": "GET", "url": search } }))
        .collect();
    json!({ "resourceType": "Bundle", "type": "batch", "entry": entries })
}

#[tokio::test]
async fn a_bundle_with_more_entries_than_the_limit_is_refused_before_it_runs() {
    let (_ts, fhir) = launch("launch/patient patient/*.rs").await;
    let bundle = batch_of_searches(limits::MAX_BUNDLE_ENTRIES + 1, "Observation?_count=1000");
    let answer = fhir.send(Method::POST, "", Some(&bundle), &[]).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", answer.body);
    assert!(answer.outcome().contains(&limits::MAX_BUNDLE_ENTRIES.to_string()));
}

#[tokio::test]
async fn a_batch_answer_stops_growing_at_the_response_limit() {
    let ts = common::start_with(|c| c.patients = 20).await;
    let fhir = session(&ts, "launch/patient user/*.rs").await;
    let page = fhir.ok("Observation?_count=1000").await;
    let page_bytes = page.body.to_string().len();
    assert!(
        page_bytes > 100_000,
        "the test needs large pages ({page_bytes} bytes)"
    );
    let n = (limits::MAX_RESPONSE_BYTES / page_bytes + 5).min(limits::MAX_BUNDLE_ENTRIES);
    let bundle = batch_of_searches(n, "Observation?_count=1000");
    let response = fhir
        .http
        .post(&fhir.base)
        .bearer_auth(fhir.token.as_deref().unwrap())
        .header("content-type", "application/fhir+json")
        .body(bundle.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(
        text.len() <= limits::MAX_RESPONSE_BYTES + 4096 * n,
        "{} bytes",
        text.len()
    );
    let answer: Value = serde_json::from_str(&text).unwrap();
    let entries = answer["entry"].as_array().unwrap();
    assert_eq!(entries.len(), n, "every entry is answered");
    assert_eq!(entries[0]["response"]["status"], "200 OK");
    let last = &entries[n - 1]["response"];
    assert_eq!(last["status"], "413 Payload Too Large", "{last}");
    assert!(last["outcome"].to_string().contains("not run"));
}

#[tokio::test]
async fn a_search_with_too_many_or_values_or_parameters_gets_400() {
    let (_ts, fhir) = launch("launch/patient patient/*.rs").await;
    let codes: Vec<String> = (0..1000).map(|i| format!("http://loinc.org|{i}-0")).collect();
    let answer = fhir.get(&format!("Observation?code={}", codes.join(","))).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert!(answer.outcome().contains(&limits::MAX_SEARCH_VALUES.to_string()));
    let within: Vec<String> = codes.iter().take(limits::MAX_SEARCH_VALUES).cloned().collect();
    fhir.ok(&format!("Observation?code={}", within.join(","))).await;

    let many = vec!["status=final"; limits::MAX_SEARCH_PARAMETERS + 1].join("&");
    let answer = fhir.get(&format!("Observation?{many}")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert!(
        answer
            .outcome()
            .contains(&limits::MAX_SEARCH_PARAMETERS.to_string())
    );
    // The same through POST _search.
    let answer = fhir
        .send_text(
            Method::POST,
            "Observation/_search",
            Some(("application/x-www-form-urlencoded", many)),
            &[],
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);

    // `_count` beyond the largest page is served as the largest page.
    let page = fhir.ok("Observation?_count=1000000").await;
    assert!(page.resources("match").len() <= limits::MAX_COUNT);
}
