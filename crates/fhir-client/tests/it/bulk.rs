//! The Bulk Data client against the sandbox's `$export`: kick-off by GET and POST, polling, resume, cancel,
//! streamed downloads to files and as typed NDJSON, token renewal during a job, typed errors, `error[]` files.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fhir_client::bulk::{BulkEvent, ExportJob, ExportLevel, ExportRequest, JobStatus, KickOffMethod};
use fhir_client::{FhirClient, FhirError, RetryPolicy};
use futures::TryStreamExt;
use serde_json::{Value, json};
use smart_launch::{BackendToken, ClientId, ScopeSet};

use crate::common::*;

/// Polls close together: the sandbox runs these small jobs in a moment.
fn fast_polls() -> RetryPolicy {
    RetryPolicy {
        max_attempts: u32::MAX,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_millis(50),
    }
}

/// A sandbox whose export files hold at most 2 resources, with 5 patients and 4 observations (3 vital signs).
async fn sandbox() -> TestSandbox {
    let ts = TestSandbox::start_with(|config| {
        config.bulk.max_resources_per_file = 2;
        config.bulk.retry_after = Duration::from_secs(1);
    })
    .await;
    for n in 1..=5 {
        ts.put(patient(&format!("p{n}"), &format!("Family{n}"))).await;
    }
    for (n, category) in ["vital-signs", "vital-signs", "laboratory", "vital-signs"]
        .iter()
        .enumerate()
    {
        ts.put(observation(&format!("o{n}"), "p1", category, "72.50"))
            .await;
    }
    ts
}

fn bulk(client: &FhirClient) -> fhir_client::BulkClient {
    client.bulk().poll_policy(fast_polls()).concurrency(2)
}

fn request(types: &[&str]) -> ExportRequest {
    let mut request = ExportRequest::new(ExportLevel::System);
    request.types = types.iter().map(|t| (*t).to_owned()).collect();
    request
}

#[tokio::test]
async fn a_system_export_is_downloaded_file_by_file_with_the_manifest_and_progress() {
    let ts = sandbox().await;
    let bulk = bulk(&ts.client().await);
    let job = bulk
        .kick_off(&request(&["Patient", "Observation"]))
        .await
        .unwrap();
    let mut events = Vec::new();
    let manifest = bulk.wait(&job, &mut |e| events.push(e.clone())).await.unwrap();
    assert!(manifest.requires_access_token);
    assert!(
        manifest.request.contains("_type=Patient%2CObservation")
            || manifest.request.contains("_type=Patient,Observation"),
        "{}",
        manifest.request
    );
    // 5 patients and 4 observations in files of at most 2: 3 + 2 files.
    assert_eq!(manifest.output.len(), 5, "{:?}", manifest.output);

    let dir = tempfile::tempdir().unwrap();
    let download = bulk
        .download(&manifest, dir.path(), &mut |e| events.push(e.clone()))
        .await
        .unwrap();
    assert_eq!(download.files.len(), 5);
    assert!(download.issues.is_empty());
    let mut names: Vec<String> = download
        .files
        .iter()
        .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "Observation.000.ndjson",
            "Observation.001.ndjson",
            "Patient.000.ndjson",
            "Patient.001.ndjson",
            "Patient.002.ndjson"
        ],
        "each type's files numbered from 000"
    );
    let done = events
        .iter()
        .filter(|e| matches!(e, BulkEvent::FileDone(_)))
        .count();
    assert_eq!(done, 5, "one event per file");
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, entry) in download.files.iter().zip(&manifest.output) {
        let text = std::fs::read_to_string(&file.path).unwrap();
        assert_eq!(file.bytes, text.len() as u64);
        assert_eq!(Some(file.lines), entry.count);
        for line in text.lines() {
            let resource: Value = serde_json::from_str(line).unwrap();
            assert_eq!(resource["resourceType"], file.resource_type.as_str());
            ids.entry(file.resource_type.clone())
                .or_default()
                .insert(resource["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(ids["Patient"].len(), 5);
    assert_eq!(ids["Observation"].len(), 4);
    let written: Value = serde_json::from_slice(&std::fs::read(&download.manifest_path).unwrap()).unwrap();
    assert_eq!(written["output"].as_array().unwrap().len(), 5);
    assert_eq!(written["transactionTime"], manifest.transaction_time.as_str());
}

#[tokio::test]
async fn a_post_kick_off_with_type_filter_streams_only_the_matching_resources_as_typed_lines() {
    let ts = sandbox().await;
    let bulk = bulk(&ts.client().await);
    let mut request = request(&["Observation"]);
    request.method = KickOffMethod::Post;
    request.type_filters = vec!["Observation?category=vital-signs".into()];
    request.since = Some("2000-01-01T00:00:00Z".into());
    let job = bulk.kick_off(&request).await.unwrap();
    let manifest = bulk.wait(&job, &mut |_| {}).await.unwrap();
    let kick_off = ts
        .seen()
        .into_iter()
        .find(|s| s.path_and_query.ends_with("$export"))
        .unwrap();
    assert_eq!(kick_off.method, "POST");
    let body: Value = serde_json::from_str(&kick_off.body).unwrap();
    assert_eq!(body["resourceType"], "Parameters");
    assert!(
        body["parameter"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "_since", "valueInstant": "2000-01-01T00:00:00Z"}))
    );
    let mut ids = BTreeSet::new();
    for file in &manifest.output {
        let lines: Vec<(fhir_r4::Observation, _)> = bulk.ndjson(&manifest, file).try_collect().await.unwrap();
        for (observation, issues) in lines {
            assert!(issues.is_empty(), "{issues:?}");
            let category = observation.category[0].coding[0]
                .code
                .as_ref()
                .and_then(|c| c.as_str());
            assert_eq!(category, Some("vital-signs"));
            ids.insert(observation.id.unwrap());
        }
    }
    assert_eq!(ids, BTreeSet::from(["o0".into(), "o1".into(), "o3".into()]));
}

#[tokio::test]
async fn a_job_is_resumed_from_its_status_url_and_cancelled() {
    let ts = sandbox().await;
    let client = ts.client().await;
    let job = bulk(&client).kick_off(&request(&["Patient"])).await.unwrap();
    // A second client (a restarted program) picks the job up by its URL alone.
    let resumed = ExportJob::resume(job.status_url().clone());
    let other = bulk(&ts.client().await);
    let manifest = other.wait(&resumed, &mut |_| {}).await.unwrap();
    assert_eq!(manifest.output.iter().map(|f| f.count.unwrap()).sum::<u64>(), 5);
    other.cancel(&resumed).await.unwrap();
    match other.status(&resumed).await {
        Err(FhirError::NotFound { .. }) => {}
        other => panic!("a cancelled job is gone: {other:?}"),
    }
    // A running job can be polled once without waiting.
    let job = bulk(&client).kick_off(&request(&["Patient"])).await.unwrap();
    assert!(matches!(
        bulk(&client).status(&job).await.unwrap(),
        JobStatus::Running { .. } | JobStatus::Complete(_)
    ));
}

#[tokio::test]
async fn every_request_of_a_long_job_asks_the_token_source_so_tokens_are_renewed_near_expiry() {
    let ts = sandbox().await;
    // A source that renews whenever the token expires within a day: every request gets a fresh token.
    let source = BackendToken::discover(
        &ts.fhir_base,
        ClientId::new("renewing"),
        key(),
        ScopeSet::parse("system/*.rs").unwrap(),
    )
    .await
    .unwrap()
    .with_renew_ahead(Duration::from_secs(86_400));
    ts.register("renewing", None);
    let client = ts.client_with(std::sync::Arc::new(source));
    let bulk = bulk(&client);
    let job = bulk.kick_off(&request(&["Patient"])).await.unwrap();
    let manifest = bulk.wait(&job, &mut |_| {}).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    bulk.download(&manifest, dir.path(), &mut |_| {}).await.unwrap();
    let seen = ts.seen();
    let tokens: BTreeSet<_> = seen.iter().filter_map(|s| s.authorization.clone()).collect();
    assert!(seen.len() >= 3, "kick-off, poll(s), downloads");
    assert_eq!(tokens.len(), seen.len(), "each request carried a renewed token");
}

#[tokio::test]
async fn failures_are_typed_and_error_files_are_surfaced() {
    let ts = sandbox().await;
    let narrow = bulk(&ts.client_with(ts.tokens("system/Patient.rs").await));
    match narrow.kick_off(&request(&["Observation"])).await {
        Err(e @ FhirError::Forbidden { .. }) => assert_eq!(e.status(), Some(403)),
        other => panic!("no Observation scope: {other:?}"),
    }
    let bulk = bulk(&ts.client().await);
    match bulk
        .kick_off(&ExportRequest::new(ExportLevel::Group("nope".into())))
        .await
    {
        Err(FhirError::NotFound { .. }) => {}
        other => panic!("no such group: {other:?}"),
    }
    let mut strict = request(&["Patient"]);
    strict.extra = vec![("_elements".into(), "id".into())];
    match bulk.kick_off(&strict).await {
        Err(e @ FhirError::Status { status: 400, .. }) => assert!(e.to_string().contains("_elements"), "{e}"),
        other => panic!("unsupported parameter: {other:?}"),
    }
    let mut lenient = strict.clone();
    lenient.lenient = true;
    let job = bulk.kick_off(&lenient).await.unwrap();
    let manifest = bulk.wait(&job, &mut |_| {}).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let download = bulk.download(&manifest, dir.path(), &mut |_| {}).await.unwrap();
    assert_eq!(download.files.iter().filter(|f| f.is_error).count(), 1);
    assert!(
        download
            .issues
            .iter()
            .any(|i| i.severity == "warning" && i.to_string().contains("_elements")),
        "{:?}",
        download.issues
    );
    // A status URL on another server is refused before any token is sent.
    let foreign = ExportJob::resume("http://127.0.0.1:9/elsewhere/status".parse().unwrap());
    assert!(matches!(
        bulk.status(&foreign).await,
        Err(FhirError::ForeignUrl { .. })
    ));
}

#[tokio::test]
async fn a_kick_off_beyond_the_clients_job_limit_is_rate_limited_with_the_servers_retry_after() {
    // A limit of 0 makes the refusal certain (a small job of the sandbox may end before a second kick-off).
    let ts = TestSandbox::start_with(|config| {
        config.bulk.max_jobs_per_client = 0;
        config.bulk.retry_after = Duration::from_secs(7);
    })
    .await;
    let client = FhirClient::builder(ts.fhir_base.as_str())
        .token_source(ts.tokens(ALL).await)
        .retry_policy(RetryPolicy::never())
        .build()
        .unwrap();
    match client.bulk().kick_off(&request(&["Patient"])).await {
        Err(e @ FhirError::RateLimited { .. }) => {
            let FhirError::RateLimited { retry_after, .. } = &e else {
                unreachable!()
            };
            assert_eq!(*retry_after, Some(Duration::from_secs(7)));
            assert!(e.to_string().contains("already has 0 exports running"), "{e}");
        }
        other => panic!("over the job limit: {other:?}"),
    }
}

#[tokio::test]
async fn another_clients_token_can_neither_poll_the_job_nor_download_its_files() {
    let ts = sandbox().await;
    let owner = bulk(&ts.client().await);
    let job = owner.kick_off(&request(&["Patient"])).await.unwrap();
    let manifest = owner.wait(&job, &mut |_| {}).await.unwrap();
    ts.register("intruder", None);
    let intruder = bulk(&ts.client_with(ts.tokens_of("intruder", ALL).await));
    assert!(
        matches!(intruder.status(&job).await, Err(FhirError::Forbidden { .. })),
        "status with another client's token"
    );
    let dir = tempfile::tempdir().unwrap();
    match intruder.download(&manifest, dir.path(), &mut |_| {}).await {
        Err(e @ FhirError::Forbidden { .. }) => assert_eq!(e.status(), Some(403)),
        other => panic!("a file with another client's token: {other:?}"),
    }
    let written: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".ndjson"))
        .collect();
    assert!(
        written.is_empty(),
        "nothing of the refused files was written: {written:?}"
    );
    // The owner still gets them.
    let download = owner.download(&manifest, dir.path(), &mut |_| {}).await.unwrap();
    assert_eq!(download.files.iter().map(|f| f.lines).sum::<u64>(), 5);
}

mod scripted {
    //! What the sandbox does not do on cue: several 202s with `X-Progress`, a manifest that needs no token,
    //! an NDJSON file with a bad line.

    use std::sync::Arc;
    use std::time::Duration;

    use fhir_client::bulk::{BulkEvent, ExportRequest};
    use fhir_client::{FhirClient, FhirError, RetryPolicy};
    use futures::StreamExt;
    use serde_json::json;
    use smart_launch::{AccessToken, StaticToken};

    use super::request;
    use crate::fault_server::{Fault, TestServer};

    /// `Retry-After` is honoured up to 20 ms here; without it the backoff stays under 5 ms.
    fn polls() -> RetryPolicy {
        RetryPolicy {
            max_attempts: u32::MAX,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_retry_after: Duration::from_millis(20),
        }
    }

    fn client(server: &TestServer) -> FhirClient {
        FhirClient::builder(&server.base)
            .token_source(Arc::new(StaticToken::new(AccessToken::new("the-token"))))
            .retry_policy(RetryPolicy::never())
            .build()
            .unwrap()
    }

    /// A kick-off, two 202s (one with `Retry-After`) and a manifest of one data file and one error file.
    fn script(server: &TestServer, requires_access_token: bool, ndjson: &str) {
        let base = &server.base;
        server.fault(Fault::new("$export?", 202, "").header("content-location", &format!("{base}/status/1")));
        server.fault(
            Fault::new("/status/1", 202, "")
                .header("x-progress", "40% (2 of 5 types)")
                .header("retry-after", "1"),
        );
        server.fault(Fault::new("/status/1", 202, "").header("x-progress", "80%"));
        let manifest = json!({
            "transactionTime": "2026-12-02T18:00:00Z",
            "request": format!("{base}/$export?_type=Patient"),
            "requiresAccessToken": requires_access_token,
            "output": [{"type": "Patient", "url": format!("{base}/files/patients.ndjson"), "count": 2}],
            "error": [{"type": "OperationOutcome", "url": format!("{base}/files/errors.ndjson")}]
        });
        server.fault(Fault::new("/status/1", 200, &manifest.to_string()));
        server.fault(Fault::new("/files/patients.ndjson", 200, ndjson));
        let issue = json!({"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "processing", "diagnostics": "Patient/9 could not be exported"}]});
        server.fault(Fault::new("/files/errors.ndjson", 200, &format!("{issue}\n")));
    }

    #[tokio::test]
    async fn polling_reports_x_progress_and_waits_the_servers_retry_after_else_backs_off() {
        let server = TestServer::start().await;
        script(&server, true, "{\"resourceType\":\"Patient\",\"id\":\"a\"}\n");
        let bulk = client(&server).bulk().poll_policy(polls());
        let job = bulk.kick_off(&request(&["Patient"])).await.unwrap();
        let mut polled = Vec::new();
        bulk.wait(&job, &mut |event| {
            if let BulkEvent::Polled { progress, next_poll } = event {
                polled.push((progress.clone(), *next_poll));
            }
        })
        .await
        .unwrap();
        assert_eq!(polled.len(), 2, "{polled:?}");
        assert_eq!(
            polled[0],
            (Some("40% (2 of 5 types)".into()), Duration::from_millis(20))
        );
        assert_eq!(polled[1].0.as_deref(), Some("80%"));
        assert!(
            polled[1].1 <= Duration::from_millis(5),
            "backoff without Retry-After: {polled:?}"
        );
        let kick_off = &server.seen()[0];
        assert_eq!(kick_off.authorization.as_deref(), Some("Bearer the-token"));
    }

    #[tokio::test]
    async fn files_are_fetched_without_the_token_when_the_manifest_does_not_require_it_and_error_files_surface()
     {
        let server = TestServer::start().await;
        script(
            &server,
            false,
            "{\"resourceType\":\"Patient\",\"id\":\"a\"}\n\n{\"resourceType\":\"Patient\",\"id\":\"b\"}",
        );
        let bulk = client(&server).bulk().poll_policy(polls());
        let job = bulk
            .kick_off(&ExportRequest::new(fhir_client::bulk::ExportLevel::System))
            .await
            .unwrap();
        let manifest = bulk.wait(&job, &mut |_| {}).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let download = bulk.download(&manifest, dir.path(), &mut |_| {}).await.unwrap();
        assert_eq!(
            download.files[0].lines, 2,
            "a blank line and a last line without newline"
        );
        assert_eq!(download.issues.len(), 1);
        assert_eq!(
            download.issues[0].to_string(),
            "error (processing): Patient/9 could not be exported"
        );
        for seen in server
            .seen()
            .iter()
            .filter(|s| s.path_and_query.contains("/files/"))
        {
            assert_eq!(seen.authorization, None, "no token for {}", seen.path_and_query);
        }
    }

    #[tokio::test]
    async fn a_typed_ndjson_stream_reads_line_by_line_and_names_the_bad_line() {
        let server = TestServer::start().await;
        let ndjson = "{\"resourceType\":\"Patient\",\"id\":\"a\",\"x-vendor\":1}\n\n{\"resourceType\":\"Observation\"}\nnot json\n";
        script(&server, true, ndjson);
        let bulk = client(&server).bulk().poll_policy(polls());
        let job = bulk.kick_off(&request(&["Patient"])).await.unwrap();
        let manifest = bulk.wait(&job, &mut |_| {}).await.unwrap();
        let lines: Vec<Result<(fhir_r4::Patient, Vec<fhir_r4::Issue>), FhirError>> =
            bulk.ndjson(&manifest, &manifest.output[0]).collect().await;
        assert_eq!(lines.len(), 3, "the blank line is skipped");
        let (patient, issues) = lines[0].as_ref().unwrap();
        assert_eq!(patient.id.as_deref(), Some("a"));
        assert_eq!(
            issues.len(),
            1,
            "the unknown member is kept and reported: {issues:?}"
        );
        for (at, line) in [(1, 3), (2, 4)] {
            match &lines[at] {
                Err(FhirError::InvalidBody { path, .. }) => assert_eq!(path, &format!("line {line}")),
                other => panic!("line {line}: {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn patient_and_group_level_exports_cover_the_patients_and_the_members_compartments() {
    let ts = sandbox().await;
    ts.put(json!({"resourceType": "Group", "id": "g1", "type": "person", "actual": true,
                  "member": [{"entity": {"reference": "Patient/p2"}}, {"entity": {"reference": "Patient/p1"}}]}))
        .await;
    let bulk = bulk(&ts.client().await);
    let ids_of = |level: ExportLevel, types: &[&str]| {
        let bulk = bulk.clone();
        let mut request = request(types);
        request.level = level;
        async move {
            let job = bulk.kick_off(&request).await.unwrap();
            let manifest = bulk.wait(&job, &mut |_| {}).await.unwrap();
            let mut ids = BTreeSet::new();
            for file in &manifest.output {
                let lines: Vec<(fhir_r4::Resource, _)> =
                    bulk.ndjson(&manifest, file).try_collect().await.unwrap();
                for (resource, _) in lines {
                    let text = fhir_r4::to_string(&resource);
                    let value: Value = serde_json::from_str(&text).unwrap();
                    ids.insert(format!(
                        "{}/{}",
                        value["resourceType"].as_str().unwrap(),
                        value["id"].as_str().unwrap()
                    ));
                }
            }
            (job, ids)
        }
    };
    let (job, everyone) = ids_of(ExportLevel::Patient, &["Patient"]).await;
    assert!(
        job.status_url().as_str().contains("$export-status"),
        "{}",
        job.status_url()
    );
    assert_eq!(everyone.len(), 5, "{everyone:?}");
    let (_, members) = ids_of(ExportLevel::Group("g1".into()), &["Patient", "Observation"]).await;
    let expected: BTreeSet<String> = [
        "Patient/p1",
        "Patient/p2",
        "Observation/o0",
        "Observation/o1",
        "Observation/o2",
        "Observation/o3",
    ]
    .map(String::from)
    .into();
    assert_eq!(members, expected, "the members and their compartments only");
}
