use serde_json::json;
use smart_launch::{AccessToken, BackendToken, ClientId, Error, ScopeSet, TokenSource};

use crate::common::{Registered, TestAuthServer, key};

async fn backend(server: &TestAuthServer) -> BackendToken {
    let signing = key("client-rs384");
    server.register("bulk-client", Registered::Jwks(signing.jwks()));
    BackendToken::discover(
        &server.fhir_base,
        ClientId::new("bulk-client"),
        signing,
        ScopeSet::parse("system/Patient.rs system/Observation.read").unwrap(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn client_credentials_with_a_jwt_assertion_gets_a_token_and_reuses_it() {
    let server = TestAuthServer::start().await;
    let source = backend(&server).await;
    let first = source.access_token().await.unwrap();
    let second = source.access_token().await.unwrap();
    assert_eq!(first, second);
    assert_eq!(server.hits("token:client_credentials"), 1);
}

#[tokio::test]
async fn a_token_near_expiry_is_replaced() {
    let server = TestAuthServer::start().await;
    server.behave(|b| b.expires_in = json!(30));
    let source = backend(&server).await; // renews 60 s ahead, so a 30 s token is always "near expiry"
    let first = source.access_token().await.unwrap();
    let second = source.access_token().await.unwrap();
    assert_ne!(first, second);
    assert_eq!(server.hits("token:client_credentials"), 2);
}

#[tokio::test]
async fn a_rejected_backend_token_is_replaced_once() {
    let server = TestAuthServer::start().await;
    let source = backend(&server).await;
    let first = source.access_token().await.unwrap();
    let replaced = source.refresh_after_unauthorized(&first).await.unwrap();
    assert_ne!(first, replaced);
    // A caller holding an older token gets the current one without another request.
    let again = source
        .refresh_after_unauthorized(&AccessToken::new("stale"))
        .await
        .unwrap();
    assert_eq!(again, replaced);
    assert_eq!(server.hits("token:client_credentials"), 2);
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
