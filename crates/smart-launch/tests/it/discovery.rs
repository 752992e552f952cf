//! Discovery against the sandbox: its well-known document, and its CapabilityStatement when the well-known
//! document is missing (the observing layer in `common.rs` answers 404 for it). Nothing here needs the fault
//! server.

use smart_launch::discovery::DiscoverySource;
use smart_launch::{Error, SmartClient, SmartClientConfig, Url};

use crate::common::TestSandbox;

#[tokio::test]
async fn well_known_endpoints_are_resolved_and_cached() {
    let ts = TestSandbox::start().await;
    let client = SmartClient::new(ts.config("launch/patient")).unwrap();
    let config = client.discover(&ts.fhir_base).await.unwrap();
    assert_eq!(config.source, DiscoverySource::WellKnown);
    let at = |path: &str| format!("http://{}{path}", ts.addr);
    assert_eq!(config.authorization_endpoint.as_str(), at("/auth/authorize"));
    assert_eq!(config.token_endpoint.as_str(), at("/auth/token"));
    assert_eq!(config.jwks_uri.as_ref().unwrap().as_str(), at("/auth/jwks"));
    assert_eq!(
        config.revocation_endpoint.as_ref().unwrap().as_str(),
        at("/auth/revoke")
    );
    assert_eq!(
        config.introspection_endpoint.as_ref().unwrap().as_str(),
        at("/auth/introspect")
    );
    assert_eq!(config.expected_id_token_issuer(), ts.fhir_base.as_str());
    for capability in [
        "launch-ehr",
        "launch-standalone",
        "client-confidential-asymmetric",
        "sso-openid-connect",
    ] {
        assert!(config.supports(capability), "{capability}");
    }
    assert!(config.supports_authorize_post());
    assert!(
        config
            .code_challenge_methods_supported
            .contains(&"S256".to_owned())
    );

    let again = client
        .discover(&Url::parse(&format!("{}/", ts.fhir_base)).unwrap())
        .await
        .unwrap();
    assert_eq!(again, config);
    assert_eq!(
        ts.hits("/fhir/.well-known/smart-configuration"),
        1,
        "the second discovery is served from the cache"
    );
}

#[tokio::test]
async fn capability_statement_is_the_fallback_and_a_launch_completes_with_it() {
    let ts = TestSandbox::start().await;
    ts.hide_well_known();
    let client = SmartClient::new(ts.config("launch/patient patient/Patient.read")).unwrap();
    let config = client.discover(&ts.fhir_base).await.unwrap();
    assert_eq!(config.source, DiscoverySource::CapabilityStatement);
    assert_eq!(
        config.token_endpoint.as_str(),
        format!("http://{}/auth/token", ts.addr)
    );
    assert!(config.revocation_endpoint.is_some());
    assert!(config.introspection_endpoint.is_some());
    assert_eq!(ts.hits("/fhir/metadata"), 1);

    let (request, pending) = client.standalone_launch(&ts.fhir_base).await.unwrap();
    let redirect = ts.approve(&request).await;
    let launch = client.complete_from_url(pending, &redirect).await.unwrap();
    assert!(launch.context.patient.is_some());
}

#[tokio::test]
async fn a_server_without_smart_gives_a_discovery_error() {
    let ts = TestSandbox::start().await;
    let client = SmartClient::new(ts.config("launch/patient")).unwrap();
    let base = Url::parse(&format!("http://{}/not-fhir", ts.addr)).unwrap();
    let err = client.discover(&base).await.unwrap_err();
    assert!(matches!(err, Error::Discovery { .. }), "{err}");
    assert!(err.to_string().contains("HTTP 404"), "{err}");
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_not_a_panic() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = Url::parse(&format!("http://{}/fhir", listener.local_addr().unwrap())).unwrap();
    drop(listener);
    let config = SmartClientConfig::new(
        "app",
        Url::parse("http://127.0.0.1:9/cb").unwrap(),
        "launch/patient".parse().unwrap(),
    );
    let client = SmartClient::new(config).unwrap();
    let err = client.discover(&base).await.unwrap_err();
    assert!(matches!(err, Error::Discovery { .. }), "{err}");
}
