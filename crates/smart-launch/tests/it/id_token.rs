//! OpenID Connect: the id_token is verified against the issuer's JWKS and `fhirUser` is typed.
//!
//! The sandbox signs good RS256 id_tokens with one key, so it plays the happy path and the key cache. These
//! stay on the in-test fault server, because the sandbox never signs a wrong id_token nor changes its key:
//! `id_token_with_bad_signature_is_rejected`, `id_token_for_another_audience_is_rejected`,
//! `expired_id_token_is_rejected`, `id_token_with_wrong_nonce_is_rejected` (spoiled tokens),
//! `an_unknown_kid_refetches_the_keys_once` (key rotation) and `es384_signed_id_tokens_are_verified` (the
//! sandbox signs only RS256).

use smart_launch::{Error, IdTokenError, SmartClient};

use crate::common::{TestSandbox, param};
use crate::fault_server::{FaultServer, IdTokenFault};

#[tokio::test]
async fn id_tokens_are_verified_against_the_sandbox_jwks_and_the_keys_are_cached() {
    let ts = TestSandbox::start().await;
    let client = SmartClient::new(ts.config("launch/patient openid fhirUser user/*.rs")).unwrap();
    for _ in 0..2 {
        let (request, pending) = client.standalone_launch(&ts.fhir_base).await.unwrap();
        let nonce = param(&request.url, "nonce").unwrap();
        let redirect = ts.approve(&request).await;
        let launch = client.complete_from_url(pending, &redirect).await.unwrap();
        let claims = launch.id_token_claims.unwrap();
        assert_eq!(claims.iss, ts.fhir_base.as_str());
        assert_eq!(claims.aud, vec![crate::common::APP.to_owned()]);
        assert_eq!(claims.nonce.as_deref(), Some(nonce.as_str()));
        let user = launch.fhir_user.unwrap();
        assert_eq!(user.resource_type, "Practitioner");
        assert_eq!(claims.sub, user.reference());
        assert_eq!(
            user.url.as_str(),
            format!("{}/{}", ts.fhir_base, user.reference())
        );
        assert!(
            ts.running
                .state
                .store()
                .read("Practitioner", &user.id)
                .unwrap()
                .is_some()
        );
    }
    assert_eq!(ts.hits("/auth/jwks"), 1, "the second launch uses the cached key");
}

#[tokio::test]
async fn without_openid_there_is_no_id_token_and_no_key_fetch() {
    let ts = TestSandbox::start().await;
    let client = SmartClient::new(ts.config("launch/patient patient/Patient.read")).unwrap();
    let (request, pending) = client.standalone_launch(&ts.fhir_base).await.unwrap();
    let redirect = ts.approve(&request).await;
    let launch = client.complete_from_url(pending, &redirect).await.unwrap();
    assert!(
        launch.tokens.id_token.is_none() && launch.id_token_claims.is_none() && launch.fhir_user.is_none()
    );
    assert_eq!(ts.hits("/auth/jwks"), 0);
}

async fn launch_with_fault(fault: IdTokenFault) -> Result<smart_launch::CompletedLaunch, Error> {
    let server = FaultServer::start().await;
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
async fn an_unknown_kid_refetches_the_keys_once() {
    let server = FaultServer::start().await;
    let client = SmartClient::new(server.config("launch/patient openid")).unwrap();
    let launch = async || {
        let (request, pending) = client.standalone_launch(&server.fhir_base).await.unwrap();
        let redirect = server.follow_authorize(&request).await;
        client.complete_from_url(pending, &redirect).await.unwrap();
    };
    launch().await;
    assert_eq!(server.hits("/oauth/jwks"), 1);

    server.behave(|b| b.id_key = "id-2"); // the issuer rotates its key
    launch().await;
    assert_eq!(
        server.hits("/oauth/jwks"),
        2,
        "an unknown kid refetches the keys once"
    );
    launch().await;
    assert_eq!(server.hits("/oauth/jwks"), 2, "the refetched keys are cached");
}

#[tokio::test]
async fn es384_signed_id_tokens_are_verified() {
    let server = FaultServer::start().await;
    server.behave(|b| b.id_key = "client-es384"); // any ES384 key will do as the issuer's key
    let client = SmartClient::new(server.config("launch/patient openid fhirUser")).unwrap();
    let (request, pending) = client.standalone_launch(&server.fhir_base).await.unwrap();
    let redirect = server.follow_authorize(&request).await;
    let launch = client.complete_from_url(pending, &redirect).await.unwrap();
    assert_eq!(launch.id_token_claims.unwrap().sub, "user-1");
}
