//! Bulk Data `$export` (IG 2.0.0): kick-off, polling, manifest, files, cancel, limits, restarts, authorization.

use crate::common::*;
use reqwest::StatusCode;
use sandbox::{ClientKeys, ClientSpec};
use serde_json::{Value, json};
use smart_launch::{ClientId, SigningAlgorithm, SigningKey};
use std::collections::BTreeMap;
use url::Url;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Registers a backend-service client `id` with a fresh ES384 key and returns a token for `scope`.
async fn backend_token(ts: &TestSandbox, id: &str, scope: &str) -> String {
    let key = SigningKey::generate(SigningAlgorithm::ES384, format!("{id}-key")).unwrap();
    ts.register(ClientSpec::public(id, Url::parse(REDIRECT).unwrap()).with_keys(ClientKeys::Set(key.jwks())));
    let token_url = Url::parse(&ts.url("/auth/token")).unwrap();
    let assertion = key.client_assertion(&ClientId::new(id), &token_url).unwrap();
    let (status, body) = ts
        .token(&[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &assertion),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// GET `path` (relative to the FHIR base) with `Prefer: respond-async` and more headers.
async fn kick_off(ts: &TestSandbox, token: &str, path: &str, prefer: &str) -> reqwest::Response {
    ts.http
        .get(format!("{}{path}", ts.aud()))
        .bearer_auth(token)
        .header("accept", "application/fhir+json")
        .header("prefer", prefer)
        .send()
        .await
        .unwrap()
}

fn content_location(response: &reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    response.headers()["content-location"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// Polls a status URL until it stops answering 202; checks every 202 carries `X-Progress` and `Retry-After`.
async fn poll(ts: &TestSandbox, token: &str, status_url: &str) -> reqwest::Response {
    loop {
        let response = ts.http.get(status_url).bearer_auth(token).send().await.unwrap();
        if response.status() != StatusCode::ACCEPTED {
            return response;
        }
        assert!(response.headers().contains_key("x-progress"));
        assert!(response.headers().contains_key("retry-after"));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// DELETE a job's status URL (cancel it); the IG's answer is 202.
async fn cancel(ts: &TestSandbox, token: &str, status_url: &str) {
    let deleted = ts
        .http
        .delete(status_url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::ACCEPTED);
}

async fn finished(ts: &TestSandbox, token: &str, status_url: &str) -> Value {
    let response = poll(ts, token, status_url).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("expires"));
    response.json().await.unwrap()
}

/// The lines of a file, checked against the manifest entry's `count` and `type`.
async fn lines(ts: &TestSandbox, token: &str, entry: &Value) -> Vec<Value> {
    let response = ts
        .http
        .get(entry["url"].as_str().unwrap())
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/fhir+ndjson");
    let text = response.text().await.unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len() as u64, entry["count"].as_u64().unwrap(), "{entry}");
    for line in &lines {
        assert_eq!(line["resourceType"], entry["type"]);
    }
    lines
}

/// Every resource of an export, by type.
async fn exported(ts: &TestSandbox, token: &str, manifest: &Value) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for entry in manifest["output"].as_array().unwrap() {
        let resources = lines(ts, token, entry).await;
        out.entry(entry["type"].as_str().unwrap().to_owned())
            .or_default()
            .extend(resources);
    }
    out
}

fn store_count(ts: &TestSandbox, resource_type: &str) -> usize {
    ts.running.state.store().count(resource_type).unwrap()
}

#[tokio::test]
async fn system_export_writes_every_resource_once_and_the_manifest_counts_them() {
    let ts = start().await;
    let token = backend_token(&ts, "bulk", "system/*.rs").await;
    let response = kick_off(&ts, &token, "/$export?_outputFormat=ndjson", "respond-async").await;
    let status_url = content_location(&response);
    let manifest = finished(&ts, &token, &status_url).await;
    assert_eq!(manifest["requiresAccessToken"], true);
    assert_eq!(
        manifest["request"],
        format!("{}/$export?_outputFormat=ndjson", ts.aud())
    );
    assert!(manifest["transactionTime"].as_str().unwrap().ends_with('Z'));
    assert_eq!(manifest["error"], json!([]));
    let by_type = exported(&ts, &token, &manifest).await;
    for t in [
        "Patient",
        "Observation",
        "Condition",
        "Practitioner",
        "Organization",
        "Group",
    ] {
        let ids: std::collections::BTreeSet<&str> =
            by_type[t].iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), store_count(&ts, t), "{t}: every resource exactly once");
        assert_eq!(by_type[t].len(), ids.len(), "{t}: no duplicates");
    }
}

#[tokio::test]
async fn kick_off_needs_prefer_respond_async_and_a_token() {
    let ts = start().await;
    let token = backend_token(&ts, "bulk", "system/*.rs").await;
    let response = kick_off(&ts, &token, "/$export", "return=representation").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let outcome: Value = response.json().await.unwrap();
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("respond-async")
    );
    let response = kick_off(&ts, "not-a-token", "/$export", "respond-async").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unsupported_parameters_are_a_400_unless_lenient_then_a_warning_in_the_error_file() {
    let ts = start().await;
    let token = backend_token(&ts, "bulk", "system/*.rs").await;
    let strict = kick_off(
        &ts,
        &token,
        "/$export?_type=Patient&_elements=id",
        "respond-async",
    )
    .await;
    assert_eq!(strict.status(), StatusCode::BAD_REQUEST);
    let outcome: Value = strict.json().await.unwrap();
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("_elements")
    );

    let lenient = kick_off(
        &ts,
        &token,
        "/$export?_type=Patient&_elements=id",
        "respond-async, handling=lenient",
    )
    .await;
    let status_url = content_location(&lenient);
    let body: Value = lenient.json().await.unwrap();
    assert!(
        body["issue"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["severity"] == "warning")
    );
    let manifest = finished(&ts, &token, &status_url).await;
    let errors = manifest["error"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    let warnings = lines(&ts, &token, &errors[0]).await;
    assert!(
        warnings[0]["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("_elements")
    );
    let by_type = exported(&ts, &token, &manifest).await;
    assert_eq!(by_type.keys().collect::<Vec<_>>(), ["Patient"]);
}

#[tokio::test]
async fn files_hold_at_most_the_configured_number_of_resources() {
    let ts = start_with(|c| {
        c.bulk.max_resources_per_file = 2;
        c.bulk.batch = 3;
    })
    .await;
    let token = backend_token(&ts, "bulk", "system/*.rs").await;
    let response = kick_off(&ts, &token, "/$export?_type=Patient", "respond-async").await;
    let manifest = finished(&ts, &token, &content_location(&response)).await;
    let counts: Vec<u64> = manifest["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [2, 2, 1], "5 patients in files of 2");
    assert_eq!(exported(&ts, &token, &manifest).await["Patient"].len(), 5);
}

#[tokio::test]
async fn group_export_holds_the_members_compartments_only() {
    let ts = start_with(|c| c.patients = 12).await;
    let token = backend_token(&ts, "bulk", "system/*.rs").await;
    let group = ts
        .running
        .state
        .store()
        .read("Group", "cohort-diabetes")
        .unwrap()
        .unwrap();
    let members: std::collections::BTreeSet<String> = group["member"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["entity"]["reference"]
                .as_str()
                .unwrap()
                .trim_start_matches("Patient/")
                .to_owned()
        })
        .collect();
    assert!(!members.is_empty() && members.len() < 12, "{members:?}");
    let response = kick_off(&ts, &token, "/Group/cohort-diabetes/$export", "respond-async").await;
    let manifest = finished(&ts, &token, &content_location(&response)).await;
    let by_type = exported(&ts, &token, &manifest).await;
    let patients: std::collections::BTreeSet<String> = by_type["Patient"]
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(patients, members);
    for condition in &by_type["Condition"] {
        let subject = condition["subject"]["reference"].as_str().unwrap();
        assert!(
            members.contains(subject.trim_start_matches("Patient/")),
            "{subject}"
        );
    }
    assert!(!by_type.contains_key("Practitioner") && !by_type.contains_key("Group"));

    let missing = kick_off(&ts, &token, "/Group/no-such-group/$export", "respond-async").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn posted_parameters_narrow_by_patient_type_filter_and_since() {
    let ts = start().await;
    let token = backend_token(&ts, "bulk", "system/*.rs").await;
    let patient = ts.running.state.store().find_patients("", 1).unwrap().remove(0);
    let id = patient["id"].as_str().unwrap();
    let body = json!({ "resourceType": "Parameters", "parameter": [
        { "name": "_outputFormat", "valueString": "application/fhir+ndjson" },
        { "name": "_type", "valueString": "Observation" },
        { "name": "_typeFilter", "valueString": "Observation?category=laboratory" },
        { "name": "_since", "valueInstant": "2000-01-01T00:00:00Z" },
        { "name": "patient", "valueReference": { "reference": format!("Patient/{id}") } }
    ]});
    let response = ts
        .http
        .post(format!("{}/Patient/$export", ts.aud()))
        .bearer_auth(&token)
        .header("prefer", "respond-async")
        .header("content-type", "application/fhir+json")
        .json(&body)
        .send()
        .await
        .unwrap();
    let manifest = finished(&ts, &token, &content_location(&response)).await;
    let by_type = exported(&ts, &token, &manifest).await;
    let observations = &by_type["Observation"];
    assert!(!observations.is_empty());
    for o in observations {
        assert_eq!(o["subject"]["reference"], format!("Patient/{id}"));
        assert_eq!(o["category"][0]["coding"][0]["code"], "laboratory", "{o}");
    }

    // Nothing changed after the future instant.
    let response = kick_off(
        &ts,
        &token,
        "/$export?_type=Patient&_since=2999-01-01T00:00:00Z",
        "respond-async",
    )
    .await;
    let manifest = finished(&ts, &token, &content_location(&response)).await;
    assert_eq!(manifest["output"], json!([]));
}

#[tokio::test]
async fn files_and_status_need_a_token_of_the_client_that_started_the_job() {
    let ts = start().await;
    let token = backend_token(&ts, "bulk", "system/*.rs").await;
    let other = backend_token(&ts, "other", "system/*.rs").await;
    let response = kick_off(&ts, &token, "/$export?_type=Patient", "respond-async").await;
    let status_url = content_location(&response);
    let manifest = finished(&ts, &token, &status_url).await;
    let url = manifest["output"][0]["url"].as_str().unwrap();
    let anonymous = ts.http.get(url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let foreign = ts.http.get(url).bearer_auth(&other).send().await.unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let foreign = ts.http.get(&status_url).bearer_auth(&other).send().await.unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let own = ts.http.get(url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(own.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_client_runs_at_most_the_configured_jobs_and_delete_cancels_one() {
    // One row per chunk keeps the first job running while the second kick-off arrives.
    let ts = start_with(|c| {
        c.bulk.max_jobs_per_client = 1;
        c.bulk.batch = 1;
    })
    .await;
    let token = backend_token(&ts, "bulk", "system/*.rs").await;
    let first = kick_off(&ts, &token, "/$export", "respond-async").await;
    let status_url = content_location(&first);
    let second = kick_off(&ts, &token, "/$export", "respond-async").await;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(second.headers().contains_key("retry-after"));
    let outcome: Value = second.json().await.unwrap();
    assert_eq!(outcome["issue"][0]["code"], "throttled");

    cancel(&ts, &token, &status_url).await;
    let gone = ts.http.get(&status_url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let third = kick_off(&ts, &token, "/$export?_type=Patient", "respond-async").await;
    assert_eq!(third.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_job_that_is_running_and_paced_makes_the_next_kick_off_a_429() {
    // Two rows a second: the job is seen running (its X-Progress counts rows written) and is still running when
    // the second kick-off arrives, so the 429 is for a job at work, not one waiting in a queue.
    let ts = start_with(|c| {
        c.bulk.max_jobs_per_client = 1;
        c.bulk.batch = 1;
        c.bulk.max_rows_per_second = 2;
    })
    .await;
    let token = backend_token(&ts, "bulk", "system/*.rs").await;
    let first = kick_off(&ts, &token, "/$export", "respond-async").await;
    let status_url = content_location(&first);
    let progress = loop {
        let response = ts.http.get(&status_url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::ACCEPTED,
            "a paced job is still running"
        );
        let progress = response.headers()["x-progress"].to_str().unwrap().to_owned();
        if progress.contains("written so far") {
            break progress;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let second = kick_off(&ts, &token, "/$export?_type=Patient", "respond-async").await;
    assert_eq!(
        second.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "while: {progress}"
    );
    assert!(second.headers().contains_key("retry-after"));
    let still = ts.http.get(&status_url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(still.status(), StatusCode::ACCEPTED, "the first job goes on");
    cancel(&ts, &token, &status_url).await;
}

#[tokio::test]
async fn finished_jobs_and_their_files_survive_a_restart() {
    let ts = start().await;
    let token = backend_token(&ts, "bulk", "system/*.rs").await;
    let response = kick_off(&ts, &token, "/$export?_type=Patient,Condition", "respond-async").await;
    let job = content_location(&response).rsplit('/').next().unwrap().to_owned();
    let before = finished(&ts, &token, &content_location(&response)).await;
    let before_data = exported(&ts, &token, &before).await;
    let TestSandbox { running, dir, .. } = ts;
    running.shutdown().await;

    let ts = start_in(dir, |_| {}).await;
    let token = backend_token(&ts, "bulk", "system/*.rs").await;
    let after = finished(&ts, &token, &format!("{}/$export-status/{job}", ts.aud())).await;
    assert_eq!(after["transactionTime"], before["transactionTime"]);
    assert_eq!(exported(&ts, &token, &after).await, before_data);
}

#[tokio::test]
async fn a_finished_job_expires_after_the_retention_time() {
    let ts = start_with(|c| c.bulk.retention = std::time::Duration::ZERO).await;
    let token = backend_token(&ts, "bulk", "system/*.rs").await;
    let response = kick_off(&ts, &token, "/$export?_type=Patient", "respond-async").await;
    let status_url = content_location(&response);
    let job = status_url.rsplit('/').next().unwrap().to_owned();
    let last = poll(&ts, &token, &status_url).await;
    assert_eq!(last.status(), StatusCode::NOT_FOUND);
    let files_dir = ts.running.state.bulk().files_dir().join(job);
    assert!(!files_dir.exists(), "{} should be deleted", files_dir.display());
}

#[tokio::test]
async fn scopes_narrow_the_export_by_type_and_patient() {
    let ts = start().await;
    let observations = backend_token(&ts, "obs-only", "system/Observation.rs").await;
    let response = kick_off(&ts, &observations, "/$export", "respond-async").await;
    let manifest = finished(&ts, &observations, &content_location(&response)).await;
    let by_type = exported(&ts, &observations, &manifest).await;
    assert_eq!(by_type.keys().collect::<Vec<_>>(), ["Observation"]);
    let refused = kick_off(&ts, &observations, "/$export?_type=Patient", "respond-async").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    // A patient-context token exports that patient's compartment only.
    let tokens = launch_and_exchange(&ts, "launch/patient patient/*.rs").await;
    let token = tokens["access_token"].as_str().unwrap();
    let patient = tokens["patient"].as_str().unwrap();
    let response = kick_off(&ts, token, "/Patient/$export", "respond-async").await;
    let manifest = finished(&ts, token, &content_location(&response)).await;
    let by_type = exported(&ts, token, &manifest).await;
    assert_eq!(by_type["Patient"].len(), 1);
    assert_eq!(by_type["Patient"][0]["id"], patient);
    for o in &by_type["Observation"] {
        assert_eq!(o["subject"]["reference"], format!("Patient/{patient}"));
    }
}

#[tokio::test]
async fn the_capability_statement_advertises_export() {
    let ts = start().await;
    let statement: Value = ts
        .http
        .get(format!("{}/metadata", ts.aud()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let operations = statement["rest"][0]["operation"].as_array().unwrap();
    assert!(operations.iter().any(|o| o["name"] == "export"), "{operations:?}");
    assert!(
        statement["instantiates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data")
    );
}
