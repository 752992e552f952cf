use smart_launch::{Error, IdTokenError, SmartClient};

use crate::common::{IdTokenFault, TestAuthServer};

async fn launch_with_fault(fault: IdTokenFault) -> Result<smart_launch::CompletedLaunch, Error> {
    let server = TestAuthServer::start().await;
    server.behave(|b| b.id_token_fault = fault);
    let client = SmartClient::new(server.config("launch/patient openid fhirUser")).unwrap();
    let (request, pending) = client.standalone_launch(&server.fhir_base).await.unwrap();
    let redirect = server.follow_authorize(&request).await;
    client.complete_from_url(pending, &redirect).await
}

#[tokio::test]
async fn id_token_with_bad_signature_is_rejected() {
    let err = launch_with_fault(IdTokenFault::BadSignature).await.unwrap_err();
    assert!(matches!(err, Error::IdToken(IdTokenError::BadSignature)), "{err}");
}

#[tokio::test]
async fn id_token_for_another_audience_is_rejected() {
    let err = launch_with_fault(IdTokenFault::WrongAudience).await.unwrap_err();
    assert!(
        matches!(err, Error::IdToken(IdTokenError::WrongAudience)),
        "{err}"
    );
}

#[tokio::test]
async fn expired_id_token_is_rejected() {
    let err = launch_with_fault(IdTokenFault::Expired).await.unwrap_err();
    assert!(matches!(err, Error::IdToken(IdTokenError::Expired)), "{err}");
}

#[tokio::test]
async fn id_token_with_wrong_nonce_is_rejected() {
    let err = launch_with_fault(IdTokenFault::WrongNonce).await.unwrap_err();
    assert!(matches!(err, Error::IdToken(IdTokenError::WrongNonce)), "{err}");
}

#[tokio::test]
async fn keys_are_cached_and_refetched_once_on_an_unknown_kid() {
    let server = TestAuthServer::start().await;
    let client = SmartClient::new(server.config("launch/patient openid")).unwrap();
    for _ in 0..2 {
        let (request, pending) = client.standalone_launch(&server.fhir_base).await.unwrap();
        let redirect = server.follow_authorize(&request).await;
        client.complete_from_url(pending, &redirect).await.unwrap();
    }
    assert_eq!(
        server.hits("/oauth/jwks"),
        1,
        "the second launch uses the cached key"
    );

    server.behave(|b| b.id_key = "id-2"); // the issuer rotates its key
    let (request, pending) = client.standalone_launch(&server.fhir_base).await.unwrap();
    let redirect = server.follow_authorize(&request).await;
    client.complete_from_url(pending, &redirect).await.unwrap();
    assert_eq!(
        server.hits("/oauth/jwks"),
        2,
        "an unknown kid refetches the keys once"
    );
}

#[tokio::test]
async fn es384_signed_id_tokens_are_verified() {
    let server = TestAuthServer::start().await;
    server.behave(|b| b.id_key = "client-es384"); // any ES384 key will do as the issuer's key
    let client = SmartClient::new(server.config("launch/patient openid fhirUser")).unwrap();
    let (request, pending) = client.standalone_launch(&server.fhir_base).await.unwrap();
    let redirect = server.follow_authorize(&request).await;
    let launch = client.complete_from_url(pending, &redirect).await.unwrap();
    assert_eq!(launch.id_token_claims.unwrap().sub, "user-1");
}
