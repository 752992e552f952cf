//! When tokens are refreshed: ahead of expiry by at most half their lifetime, so a server issuing 20 s tokens
//! gets at most one refresh per page view's eight requests, not eight (the clock is injected: nothing sleeps);
//! and granted scopes that are not SMART grammar (Epic's `"openid Patient.read Patient.search "`) fall back to
//! the requested scopes, on the first token and on every refresh.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use smart_launch::{Clock, ScopeSet, SmartClient, TokenSource};

use crate::fault_server::FaultServer;

/// A clock the test moves by hand.
fn manual_clock(start: DateTime<Utc>) -> (Arc<Mutex<DateTime<Utc>>>, Clock) {
    let now = Arc::new(Mutex::new(start));
    let read = now.clone();
    (now, Arc::new(move || *read.lock().unwrap()))
}

#[tokio::test]
async fn twenty_second_tokens_are_refreshed_once_per_half_lifetime_not_per_request() {
    let server = FaultServer::start().await;
    server.behave(|b| b.expires_in = json!(20));
    let mut config = server.config("launch/patient offline_access patient/*.rs");
    config.refresh_ahead = std::time::Duration::from_secs(30); // the app's setting: longer than the token
    let client = SmartClient::new(config).unwrap();
    let (request, pending) = client.standalone_launch(&server.fhir_base).await.unwrap();
    let redirect = server.follow_authorize(&request).await;
    let launch = client.complete_from_url(pending, &redirect).await.unwrap();
    let issued = launch.tokens.issued_at;
    let (now, clock) = manual_clock(issued);
    let source = client.token_source_with_clock(launch.tokens, clock);

    let page_view = async |source: &dyn TokenSource| {
        for _ in 0..8 {
            source.access_token().await.unwrap();
        }
    };
    page_view(source.as_ref()).await;
    assert_eq!(server.hits("token:refresh_token"), 0, "a fresh token is used");
    *now.lock().unwrap() = issued + Duration::seconds(9);
    page_view(source.as_ref()).await;
    assert_eq!(server.hits("token:refresh_token"), 0, "still in its first half");
    *now.lock().unwrap() = issued + Duration::seconds(11);
    page_view(source.as_ref()).await;
    assert_eq!(
        server.hits("token:refresh_token"),
        1,
        "one refresh for eight requests"
    );
    *now.lock().unwrap() = issued + Duration::seconds(20);
    page_view(source.as_ref()).await;
    assert_eq!(
        server.hits("token:refresh_token"),
        1,
        "the new token is in its first half"
    );
    *now.lock().unwrap() = issued + Duration::seconds(22);
    page_view(source.as_ref()).await;
    assert_eq!(server.hits("token:refresh_token"), 2);
}

#[tokio::test]
async fn long_lived_tokens_are_refreshed_the_configured_time_ahead() {
    let server = FaultServer::start().await;
    server.behave(|b| b.expires_in = json!(3600));
    let client = SmartClient::new(server.config("launch/patient offline_access")).unwrap();
    let (request, pending) = client.standalone_launch(&server.fhir_base).await.unwrap();
    let redirect = server.follow_authorize(&request).await;
    let launch = client.complete_from_url(pending, &redirect).await.unwrap();
    let issued = launch.tokens.issued_at;
    let (now, clock) = manual_clock(issued + Duration::seconds(3600 - 61));
    let source = client.token_source_with_clock(launch.tokens, clock);
    source.access_token().await.unwrap();
    assert_eq!(server.hits("token:refresh_token"), 0);
    *now.lock().unwrap() = issued + Duration::seconds(3600 - 59);
    source.access_token().await.unwrap();
    assert_eq!(server.hits("token:refresh_token"), 1, "60 s ahead, the default");
}

/// fhir.epic.com, OAuth 2.0 specification: the token response's `scope` lists API names with a trailing
/// space.
const EPIC_SCOPE: &str = "openid Patient.read Patient.search ";

#[tokio::test]
async fn granted_scopes_that_are_not_smart_grammar_fall_back_to_the_requested_ones() {
    let server = FaultServer::start().await;
    server.behave(|b| {
        b.token_scope = Some(EPIC_SCOPE);
        b.refresh_scope = Some(EPIC_SCOPE);
    });
    let requested = "launch/patient openid fhirUser offline_access patient/Patient.rs patient/Observation.rs";
    let client = SmartClient::new(server.config(requested)).unwrap();
    let (request, pending) = client.standalone_launch(&server.fhir_base).await.unwrap();
    let redirect = server.follow_authorize(&request).await;
    let launch = client.complete_from_url(pending, &redirect).await.unwrap();
    let requested = ScopeSet::parse(requested).unwrap();
    assert_eq!(launch.tokens.scope, requested);
    assert!(launch.scope_comparison.all_granted());
    assert!(launch.id_token_claims.is_some(), "openid is still granted");

    let refreshed = client.refresh(&launch.tokens).await.unwrap();
    assert_eq!(refreshed.scope, requested, "the refresh falls back too");
}

#[tokio::test]
async fn smart_granted_scopes_are_taken_as_sent() {
    let server = FaultServer::start().await;
    server.behave(|b| b.token_scope = Some("launch/patient openid fhirUser patient/Patient.rs email"));
    let client = SmartClient::new(
        server.config("launch/patient openid fhirUser patient/Patient.rs patient/Observation.rs"),
    )
    .unwrap();
    let (request, pending) = client.standalone_launch(&server.fhir_base).await.unwrap();
    let redirect = server.follow_authorize(&request).await;
    let launch = client.complete_from_url(pending, &redirect).await.unwrap();
    assert!(
        !launch.scope_comparison.all_granted(),
        "Observation was not granted"
    );
    assert!(launch.tokens.scope.to_string().contains("email"));
}
