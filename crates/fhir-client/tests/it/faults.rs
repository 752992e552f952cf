//! Server faults: rate limits, outages, broken bodies, OperationOutcomes, foreign links, 401, 403.
//!
//! What the real sandbox can be made to do runs against it (a stale or refused token, a missing
//! scope, a client whose every request is throttled); the rest uses the scripted fault server.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use fhir_client::r4::{Mode, Observation, Patient};
use fhir_client::search::SearchParams;
use fhir_client::{FhirClient, FhirError, RetryPolicy};
use futures::TryStreamExt;
use sandbox::SimulatedFailure;
use serde_json::json;
use smart_launch::{AccessToken, BackendToken, BoxFuture, TokenSource};

use crate::common::{ALL, TestSandbox, fast_retries, observation, outcome, patient};
use crate::fault_server::{Fault, TestServer};

#[tokio::test]
async fn rate_limit_with_retry_after_is_waited_out_and_retried() {
    let server = TestServer::start().await;
    server.put(patient("p1", "Lovelace"));
    server.fault(Fault::new("/Patient/p1", 429, "slow down").header("Retry-After", "1"));
    let p: Patient = server.client().read("p1").await.unwrap();
    assert_eq!(p.id.as_deref(), Some("p1"));
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn persistent_rate_limit_ends_in_a_typed_error_with_the_servers_wait() {
    // The sandbox throttles every request of a client registered to simulate it (Retry-After: 1).
    let sandbox = TestSandbox::start().await;
    sandbox.register("throttled", Some(SimulatedFailure::Fhir429));
    let client = sandbox.client_with(sandbox.tokens_of("throttled", ALL).await);
    let err = client.read::<Patient>("p1").await.unwrap_err();
    assert!(
        matches!(err, FhirError::RateLimited { retry_after: Some(d), .. } if d.as_secs() == 1),
        "{err:?}"
    );
    assert_eq!(err.status(), Some(429));
    assert_eq!(sandbox.seen().len(), 4, "max_attempts requests in total");
}

#[tokio::test]
async fn persistent_rate_limit_keeps_the_servers_operation_outcome() {
    // The sandbox answers its simulated 429 with an OperationOutcome (code `throttled`).
    let sandbox = TestSandbox::start().await;
    sandbox.register("throttled", Some(SimulatedFailure::Fhir429));
    let client = sandbox.client_with(sandbox.tokens_of("throttled", ALL).await);
    let err = client.read::<Patient>("p1").await.unwrap_err();
    let FhirError::RateLimited {
        outcome: Some(outcome),
        ..
    } = &err
    else {
        panic!("expected RateLimited with an outcome, got {err:?}")
    };
    assert_eq!(outcome.issue.len(), 1);
    assert_eq!(err.outcome().map(|o| o.issue.len()), Some(1));
    let issues = err.issues();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].severity, "error");
    assert_eq!(issues[0].code, "throttled");
    let diagnostics = issues[0].diagnostics.as_deref().unwrap();
    assert!(diagnostics.contains("simulated"), "{diagnostics}");
    let message = err.to_string();
    assert!(message.contains("(429) and asks to wait 1 s"), "{message}");
    assert!(
        message.contains("The server says: error (throttled): "),
        "{message}"
    );
    assert!(!message.contains(".."), "{message}");
}

#[tokio::test]
async fn rate_limit_without_an_operation_outcome_has_no_issues() {
    let server = TestServer::start().await;
    for _ in 0..4 {
        server.fault(Fault::new("/Patient/p1", 429, "slow down"));
    }
    let err = server.client().read::<Patient>("p1").await.unwrap_err();
    assert!(
        matches!(
            err,
            FhirError::RateLimited {
                outcome: None,
                retry_after: None,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.issues().is_empty());
    assert!(err.to_string().ends_with("(429). Wait and try again."), "{err}");
    assert_eq!(server.seen().len(), 4);
}

#[tokio::test]
async fn service_unavailable_then_success() {
    let server = TestServer::start().await;
    server.put(patient("p1", "Lovelace"));
    server.fault(Fault::new("/Patient/p1", 503, "maintenance"));
    server.fault(Fault::new("/Patient/p1", 502, "bad gateway"));
    let p: Patient = server.client().read("p1").await.unwrap();
    assert_eq!(p.id.as_deref(), Some("p1"));
    assert_eq!(server.seen().len(), 3);
}

#[tokio::test]
async fn bad_gateway_on_create_is_not_retried() {
    // The create may have happened: repeating it could create a duplicate.
    let server = TestServer::start().await;
    server.fault(Fault::new("/Patient", 502, "bad gateway"));
    let p: Patient = crate::common::typed(patient("x", "Hopper"));
    let err = server.client().create(&p).await.unwrap_err();
    assert!(matches!(err, FhirError::Status { status: 502, .. }), "{err:?}");
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn truncated_json_is_an_error_that_names_the_place() {
    let server = TestServer::start().await;
    server.fault(Fault::new(
        "/Patient/p1",
        200,
        r#"{"resourceType":"Patient","id":"p1","name":[{"family":"Love"#,
    ));
    let err = server.client().read::<Patient>("p1").await.unwrap_err();
    let FhirError::InvalidBody { path, message, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(path, "Patient.name[0].family", "{message}");
    assert!(err.to_string().contains("not a valid"), "{err}");
}

#[tokio::test]
async fn an_invalid_element_is_set_aside_with_its_fhir_path_or_refused_when_strict() {
    let server = TestServer::start().await;
    server.fault(Fault::new(
        "/Patient/p1",
        200,
        r#"{"resourceType":"Patient","id":"p1","active":"maybe"}"#,
    ));
    let client = server.client();
    let read = client.read_with::<Patient>("p1", Mode::Tolerant).await.unwrap();
    assert!(read.resource.active.is_none());
    assert_eq!(read.issues.len(), 1, "{:?}", read.issues);
    assert_eq!(read.issues[0].path, "Patient.active");
    server.fault(Fault::new(
        "/Patient/p1",
        200,
        r#"{"resourceType":"Patient","id":"p1","active":"maybe"}"#,
    ));
    let err = client.read_with::<Patient>("p1", Mode::Strict).await.unwrap_err();
    let FhirError::InvalidBody { path, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(path, "Patient.active");
}

#[tokio::test]
async fn unprocessable_entity_carries_the_operation_outcome_issues() {
    let server = TestServer::start().await;
    server.fault(Fault::new(
        "/Patient",
        422,
        &outcome("error", "required", "Patient.name is required by this server").to_string(),
    ));
    let p = Patient::default();
    let err = server.client().create(&p).await.unwrap_err();
    assert_eq!(err.status(), Some(422));
    let issues = err.issues();
    assert_eq!(issues.len(), 1);
    assert_eq!(
        (issues[0].severity.as_str(), issues[0].code.as_str()),
        ("error", "required")
    );
    assert_eq!(issues[0].expression, vec!["Patient.name".to_owned()]);
    let message = err.to_string();
    assert!(
        message.contains("422") && message.contains("Patient.name is required"),
        "{message}"
    );
}

#[tokio::test]
async fn next_link_to_another_host_is_refused() {
    let server = TestServer::start().await;
    let bundle = json!({"resourceType": "Bundle", "type": "searchset",
        "link": [{"relation": "next", "url": "http://evil.example/fhir/Observation?page=2"}],
        "entry": [{"resource": serde_json::from_str::<serde_json::Value>(&observation("o1", "p1", "vital-signs", "1")).unwrap(), "search": {"mode": "match"}}]});
    server.fault(Fault::new("/Observation", 200, &bundle.to_string()));
    let results: Vec<Result<Observation, FhirError>> =
        futures::StreamExt::collect(server.client().search_all::<Observation>(SearchParams::new())).await;
    assert_eq!(results.len(), 2);
    assert!(results[0].is_ok());
    assert!(
        matches!(&results[1], Err(FhirError::ForeignUrl { url, .. }) if url.contains("evil.example")),
        "{:?}",
        results[1]
    );
    assert_eq!(server.seen().len(), 1, "the foreign link was never requested");
}

#[tokio::test]
async fn next_link_outside_the_fhir_base_on_the_same_host_is_refused() {
    let server = TestServer::start().await;
    let bundle = json!({"resourceType": "Bundle", "type": "searchset",
        "link": [{"relation": "next", "url": format!("http://{}/admin/export", server.addr)}]});
    server.fault(Fault::new("/Observation", 200, &bundle.to_string()));
    let err = server
        .client()
        .search_pages::<Observation>(SearchParams::new())
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(matches!(err, FhirError::ForeignUrl { .. }), "{err:?}");
}

/// The sandbox's backend tokens, but the first one handed out is `first` (one the server never
/// issued); counts the refreshes the client asks for.
struct StaleFirst {
    first: Mutex<Option<AccessToken>>,
    backend: Arc<BackendToken>,
    refreshes: AtomicU32,
}

impl StaleFirst {
    fn new(first: Option<&str>, backend: Arc<BackendToken>) -> Arc<StaleFirst> {
        Arc::new(StaleFirst {
            first: Mutex::new(first.map(AccessToken::new)),
            backend,
            refreshes: AtomicU32::new(0),
        })
    }
}

impl TokenSource for StaleFirst {
    fn access_token(&self) -> BoxFuture<'_, Result<AccessToken, smart_launch::Error>> {
        let first = self.first.lock().unwrap().clone();
        Box::pin(async move {
            match first {
                Some(token) => Ok(token),
                None => self.backend.access_token().await,
            }
        })
    }

    fn refresh_after_unauthorized(
        &self,
        _rejected: &AccessToken,
    ) -> BoxFuture<'_, Result<AccessToken, smart_launch::Error>> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        *self.first.lock().unwrap() = None;
        Box::pin(self.backend.access_token())
    }
}

#[tokio::test]
async fn unauthorized_triggers_one_refresh_then_the_request_succeeds() {
    let sandbox = TestSandbox::start().await;
    sandbox.put(patient("p1", "Lovelace")).await;
    let backend = sandbox.tokens(ALL).await;
    let source = StaleFirst::new(Some("stale"), backend.clone());
    let client = sandbox.client_with(source.clone());

    let p: Patient = client.read("p1").await.unwrap();
    assert_eq!(p.id.as_deref(), Some("p1"));
    assert_eq!(source.refreshes.load(Ordering::SeqCst), 1);
    let fresh = format!("Bearer {}", backend.access_token().await.unwrap().secret());
    let seen = sandbox.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer stale"));
    assert_eq!(seen[1].authorization.as_deref(), Some(fresh.as_str()));

    // Deletes are authorized too (the seed's library forgot the header).
    client.delete::<Patient>("p1").await.unwrap();
    assert_eq!(
        sandbox.seen().last().unwrap().authorization.as_deref(),
        Some(fresh.as_str())
    );
    let err = client.read::<Patient>("p1").await.unwrap_err();
    assert!(
        matches!(err, FhirError::Gone { .. }),
        "the delete happened: {err:?}"
    );
}

#[tokio::test]
async fn a_second_401_is_not_refreshed_again() {
    // The sandbox reports every token of this client as expired.
    let sandbox = TestSandbox::start().await;
    sandbox.register("expired", Some(SimulatedFailure::ExpiredToken));
    let source = StaleFirst::new(None, sandbox.tokens_of("expired", ALL).await);
    let client = sandbox.client_with(source.clone());
    let err = client.read::<Patient>("p1").await.unwrap_err();
    assert!(matches!(err, FhirError::Unauthorized { .. }), "{err:?}");
    assert_eq!(source.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(sandbox.seen().len(), 2);
}

#[tokio::test]
async fn forbidden_with_insufficient_scope_names_the_servers_scope() {
    // A real 403: the token may read patients but neither search observations nor patch patients,
    // and the sandbox names the scope it lacks in WWW-Authenticate (RFC 6750 §3.1).
    let sandbox = TestSandbox::start().await;
    sandbox.put(patient("p1", "Lovelace")).await;
    let client = sandbox.client_with(sandbox.tokens("system/Patient.rs").await);
    let err = client
        .search::<Observation>(&SearchParams::new().patient("p1"))
        .await
        .unwrap_err();
    assert_eq!(missing_scope(&err), "system/Observation.s");
    assert_eq!(err.issues()[0].code, "forbidden");
    assert!(err.to_string().contains("system/Observation.s"), "{err}");

    let ops = json!([{"op": "add", "path": "/gender", "value": "female"}]);
    let err = client.patch::<Patient>("p1", &ops, None).await.unwrap_err();
    assert_eq!(missing_scope(&err), "system/Patient.u");
}

/// The scope a 403 says was likely missing.
fn missing_scope(err: &FhirError) -> &str {
    match err {
        FhirError::Forbidden {
            likely_missing_scope, ..
        } => likely_missing_scope,
        other => panic!("not a 403: {other:?}"),
    }
}

#[tokio::test]
async fn forbidden_without_a_challenge_names_the_scope_that_was_likely_missing() {
    // The sandbox names the scope in every scope refusal, so a server that does not is scripted.
    let server = TestServer::start().await;
    let refusal = outcome("error", "forbidden", "not allowed");
    server.fault(Fault::new("/Observation", 403, &refusal.to_string()));
    let err = server
        .client()
        .search::<Observation>(&SearchParams::new().patient("p1"))
        .await
        .unwrap_err();
    assert_eq!(
        missing_scope(&err),
        "patient/Observation.s (or user/Observation.s)"
    );
    assert_eq!(err.issues()[0].code, "forbidden");
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let policy = RetryPolicy {
        max_attempts: 3,
        ..fast_retries()
    };
    let client = FhirClient::builder(format!("http://{addr}/fhir"))
        .retry_policy(policy)
        .build()
        .unwrap();
    let err = client.read::<Patient>("p1").await.unwrap_err();
    assert!(matches!(err, FhirError::Connect { attempts: 3, .. }), "{err:?}");
}

#[tokio::test]
async fn slow_server_hits_the_request_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts connections but never answers.
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            held.push(socket);
        }
    });
    let client = FhirClient::builder(format!("http://{addr}/fhir"))
        .timeout(std::time::Duration::from_millis(100))
        .retry_policy(RetryPolicy {
            max_attempts: 2,
            ..fast_retries()
        })
        .build()
        .unwrap();
    let err = client.read::<Patient>("p1").await.unwrap_err();
    assert!(matches!(err, FhirError::Timeout { attempts: 2, .. }), "{err:?}");
    hold.abort();
}

#[tokio::test]
async fn reading_the_wrong_type_is_refused() {
    // The server (wrongly) answers Patient/x with an Observation.
    let server = TestServer::start().await;
    server.fault(Fault::new(
        "/Patient/x",
        200,
        &json!({"resourceType": "Observation", "id": "x", "status": "final", "code": {}}).to_string(),
    ));
    let err = server.client().read::<Patient>("x").await.unwrap_err();
    assert!(
        matches!(err, FhirError::UnexpectedResourceType { ref found, .. } if found.contains("\"Observation\"")),
        "{err:?}"
    );
}
