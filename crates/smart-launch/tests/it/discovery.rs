use smart_launch::discovery::DiscoverySource;
use smart_launch::{Error, SmartClient, Url};

use crate::common::TestAuthServer;

#[tokio::test]
async fn well_known_endpoints_are_resolved_and_cached() {
    let server = TestAuthServer::start().await;
    let client = SmartClient::new(server.config("launch/patient")).unwrap();
    let config = client.discover(&server.fhir_base).await.unwrap();
    assert_eq!(config.source, DiscoverySource::WellKnown);
    assert_eq!(
        config.token_endpoint.as_str(),
        format!("http://{}/oauth/token", server.addr)
    );
    assert_eq!(
        config.jwks_uri.as_ref().unwrap().as_str(),
        format!("http://{}/oauth/jwks", server.addr)
    );
    assert!(config.supports("launch-ehr"));
    let again = client
        .discover(&Url::parse(&format!("{}/", server.fhir_base)).unwrap())
        .await
        .unwrap();
    assert_eq!(again, config);
    assert_eq!(
        server.hits("/fhir/.well-known/smart-configuration"),
        1,
        "the second discovery is served from the cache"
    );
}

#[tokio::test]
async fn capability_statement_is_the_fallback() {
    let server = TestAuthServer::start().await;
    server.behave(|b| b.well_known = false);
    let client = SmartClient::new(server.config("launch/patient")).unwrap();
    let config = client.discover(&server.fhir_base).await.unwrap();
    assert_eq!(config.source, DiscoverySource::CapabilityStatement);
    assert_eq!(
        config.token_endpoint.as_str(),
        format!("http://{}/oauth/token", server.addr)
    );
    assert!(config.revocation_endpoint.is_some());
    assert_eq!(server.hits("/fhir/metadata"), 1);
}

#[tokio::test]
async fn a_server_without_smart_gives_a_discovery_error() {
    let server = TestAuthServer::start().await;
    server.behave(|b| b.well_known = false);
    let client = SmartClient::new(server.config("launch/patient")).unwrap();
    let base = Url::parse(&format!("http://{}/not-fhir", server.addr)).unwrap();
    let err = client.discover(&base).await.unwrap_err();
    assert!(matches!(err, Error::Discovery { .. }), "{err}");
    assert!(err.to_string().contains("HTTP 404"));
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_not_a_panic() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let server = TestAuthServer::start().await;
    let client = SmartClient::new(server.config("launch/patient")).unwrap();
    let err = client
        .discover(&Url::parse(&format!("http://{addr}/fhir")).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Discovery { .. }));
}
