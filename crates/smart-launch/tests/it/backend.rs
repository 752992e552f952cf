//! Backend services (client_credentials with a signed assertion and system/ scopes) against the sandbox.
//! Nothing here needs the fault server.

use std::time::Duration;

use sandbox::{ClientKeys, ClientSpec};
use smart_launch::{AccessToken, BackendToken, ClientId, Error, ScopeSet, TokenSource};

use crate::common::{TestSandbox, key};

const SYSTEM: &str = "system/Patient.rs system/Observation.read";

async fn backend(ts: &TestSandbox, key_name: &'static str) -> BackendToken {
    let signing = key(key_name);
    let spec =
        ClientSpec::public("bulk-client", TestSandbox::redirect()).with_keys(ClientKeys::Set(signing.jwks()));
    ts.register(spec);
    BackendToken::discover(
        &ts.fhir_base,
        ClientId::new("bulk-client"),
        signing,
        ScopeSet::parse(SYSTEM).unwrap(),
    )
    .await
    .unwrap()
}

/// Reads a patient with a bearer token: the status the sandbox's FHIR server answers.
async fn read_a_patient(ts: &TestSandbox, token: &AccessToken) -> u16 {
    let url = format!("{}/Patient/{}", ts.fhir_base, ts.a_patient());
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(token.secret())
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

#[tokio::test]
async fn client_credentials_with_rs384_and_es384_assertions_get_a_system_token_and_reuse_it() {
    for name in ["client-rs384", "client-es384"] {
        let ts = TestSandbox::start().await;
        let source = backend(&ts, name).await;
        let first = source.access_token().await.unwrap();
        let second = source.access_token().await.unwrap();
        assert_eq!(first, second);
        assert_eq!(ts.hits("/auth/token"), 1);
        assert_eq!(
            read_a_patient(&ts, &first).await,
            200,
            "the system token reads FHIR data"
        );
    }
}

#[tokio::test]
async fn a_token_near_expiry_is_replaced() {
    // Tokens live 30 s and the client renews 60 s ahead, so every token is "near expiry".
    let ts = TestSandbox::start_with(|c| c.token_ttl = Duration::from_secs(30)).await;
    let source = backend(&ts, "client-es384").await;
    let first = source.access_token().await.unwrap();
    let second = source.access_token().await.unwrap();
    assert_ne!(first, second);
    assert_eq!(ts.hits("/auth/token"), 2);
}

#[tokio::test]
async fn a_rejected_backend_token_is_replaced_once() {
    let ts = TestSandbox::start().await;
    let source = backend(&ts, "client-es384").await;
    let first = source.access_token().await.unwrap();
    let replaced = source.refresh_after_unauthorized(&first).await.unwrap();
    assert_ne!(first, replaced);
    // A caller holding an older token gets the current one without another request.
    let again = source
        .refresh_after_unauthorized(&AccessToken::new("stale"))
        .await
        .unwrap();
    assert_eq!(again, replaced);
    assert_eq!(ts.hits("/auth/token"), 2);
}

#[tokio::test]
async fn a_backend_client_whose_key_is_not_registered_is_refused() {
    let ts = TestSandbox::start().await;
    let spec = ClientSpec::public("bulk-client", TestSandbox::redirect())
        .with_keys(ClientKeys::Set(key("client-es384").jwks()));
    ts.register(spec);
    let source = BackendToken::discover(
        &ts.fhir_base,
        ClientId::new("bulk-client"),
        key("other-es384"),
        ScopeSet::parse(SYSTEM).unwrap(),
    )
    .await
    .unwrap();
    let err = source.access_token().await.unwrap_err();
    assert!(
        matches!(err, Error::TokenEndpoint { status: 401, ref error, .. } if error.as_deref() == Some("invalid_client")),
        "{err}"
    );
}

#[tokio::test]
async fn backend_services_refuse_non_system_scopes() {
    let err = BackendToken::new(
        ClientId::new("c"),
        key("client-es384"),
        smart_launch::Url::parse("http://127.0.0.1:9/token").unwrap(),
        ScopeSet::parse("patient/Patient.read").unwrap(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidScope { .. }));
}
