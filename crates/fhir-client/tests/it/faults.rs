//! Server faults: rate limits, outages, broken bodies, OperationOutcomes, foreign links, 401.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use fhir_client::r4::resources::{Observation, Patient};
use fhir_client::search::SearchParams;
use fhir_client::{FhirClient, FhirError, RetryPolicy};
use futures::TryStreamExt;
use serde_json::json;
use smart_launch::{AccessToken, BoxFuture, TokenSource};

use crate::common::{Fault, TestServer, fast_retries, observation, outcome, patient};

#[tokio::test]
async fn rate_limit_with_retry_after_is_waited_out_and_retried() {
    let server = TestServer::start().await;
    server.put(patient("p1", "Lovelace"));
    server.fault(Fault::new("/Patient/p1", 429, "slow down").header("Retry-After", "1"));
    let p: Patient = server.client().read("p1").await.unwrap();
    assert_eq!(p.id.unwrap().0, "p1");
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn persistent_rate_limit_ends_in_a_typed_error_with_the_servers_wait() {
    let server = TestServer::start().await;
    for _ in 0..4 {
        server.fault(Fault::new("/Patient/p1", 429, "").header("Retry-After", "7"));
    }
    let err = server.client().read::<Patient>("p1").await.unwrap_err();
    assert!(
        matches!(err, FhirError::RateLimited { retry_after: Some(d), .. } if d.as_secs() == 7),
        "{err:?}"
    );
    assert_eq!(server.seen().len(), 4, "max_attempts requests in total");
}

#[tokio::test]
async fn service_unavailable_then_success() {
    let server = TestServer::start().await;
    server.put(patient("p1", "Lovelace"));
    server.fault(Fault::new("/Patient/p1", 503, "maintenance"));
    server.fault(Fault::new("/Patient/p1", 502, "bad gateway"));
    let p: Patient = server.client().read("p1").await.unwrap();
    assert_eq!(p.id.unwrap().0, "p1");
    assert_eq!(server.seen().len(), 3);
}

#[tokio::test]
async fn bad_gateway_on_create_is_not_retried() {
    // The create may have happened: repeating it could create a duplicate.
    let server = TestServer::start().await;
    server.fault(Fault::new("/Patient", 502, "bad gateway"));
    let p: Patient = serde_json::from_value(patient("x", "Hopper")).unwrap();
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
    let FhirError::InvalidBody { message, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(message.contains("EOF"), "{message}");
    assert!(err.to_string().contains("not a valid"), "{err}");
}

#[tokio::test]
async fn invalid_element_is_reported_with_its_json_path() {
    let server = TestServer::start().await;
    server.fault(Fault::new(
        "/Patient/p1",
        200,
        r#"{"resourceType":"Patient","id":"p1","active":"maybe"}"#,
    ));
    let err = server.client().read::<Patient>("p1").await.unwrap_err();
    let FhirError::InvalidBody { path, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(path, "active");
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
        "entry": [{"resource": observation("o1", "p1", "vital-signs", "1"), "search": {"mode": "match"}}]});
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

/// A token source whose first token is stale; a refresh gives the fresh one.
struct RotatingToken {
    current: Mutex<String>,
    refreshes: AtomicU32,
}

impl TokenSource for RotatingToken {
    fn access_token(&self) -> BoxFuture<'_, Result<AccessToken, smart_launch::Error>> {
        let token = AccessToken::new(self.current.lock().unwrap().clone());
        Box::pin(async move { Ok(token) })
    }

    fn refresh_after_unauthorized(
        &self,
        _rejected: &AccessToken,
    ) -> BoxFuture<'_, Result<AccessToken, smart_launch::Error>> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        *self.current.lock().unwrap() = String::from("fresh");
        Box::pin(async { Ok(AccessToken::new("fresh")) })
    }
}

#[tokio::test]
async fn unauthorized_triggers_one_refresh_then_the_request_succeeds() {
    let server = TestServer::start().await;
    server.put(patient("p1", "Lovelace"));
    server.require_token("fresh");
    let source = Arc::new(RotatingToken {
        current: Mutex::new("stale".into()),
        refreshes: AtomicU32::new(0),
    });
    let client = FhirClient::builder(&server.base)
        .token_source(source.clone())
        .retry_policy(fast_retries())
        .build()
        .unwrap();

    let p: Patient = client.read("p1").await.unwrap();
    assert_eq!(p.id.unwrap().0, "p1");
    assert_eq!(source.refreshes.load(Ordering::SeqCst), 1);
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer stale"));
    assert_eq!(seen[1].authorization.as_deref(), Some("Bearer fresh"));

    // Deletes are authorized too (the seed's library forgot the header).
    client.delete::<Patient>("p1").await.unwrap();
    assert_eq!(
        server.seen().last().unwrap().authorization.as_deref(),
        Some("Bearer fresh")
    );
}

#[tokio::test]
async fn a_second_401_is_not_refreshed_again() {
    let server = TestServer::start().await;
    server.require_token("never-issued");
    let source = Arc::new(RotatingToken {
        current: Mutex::new("stale".into()),
        refreshes: AtomicU32::new(0),
    });
    let client = FhirClient::builder(&server.base)
        .token_source(source.clone())
        .retry_policy(fast_retries())
        .build()
        .unwrap();
    let err = client.read::<Patient>("p1").await.unwrap_err();
    assert!(matches!(err, FhirError::Unauthorized { .. }), "{err:?}");
    assert_eq!(source.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn forbidden_names_the_scope_that_was_likely_missing() {
    let server = TestServer::start().await;
    server.fault(Fault::new("/Observation", 403, ""));
    let err = server
        .client()
        .search::<Observation>(&SearchParams::new().patient("p1"))
        .await
        .unwrap_err();
    let FhirError::Forbidden {
        likely_missing_scope, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        likely_missing_scope,
        "patient/Observation.s (or user/Observation.s)"
    );

    server.fault(Fault::new("/Patient/p1", 403, "").header(
        "WWW-Authenticate",
        r#"Bearer error="insufficient_scope", scope="patient/Patient.r""#,
    ));
    let err = server.client().read::<Patient>("p1").await.unwrap_err();
    assert!(err.to_string().contains("patient/Patient.r"), "{err}");
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
