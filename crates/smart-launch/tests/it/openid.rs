//! OpenID Connect as real EHRs do it: the id_token's issuer and keys come from the SMART configuration, and
//! where it lacks `issuer` or `jwks_uri`, from `.well-known/openid-configuration` (OIDC Discovery 1.0) at the
//! SMART issuer, at the FHIR base, or at the id_token's own `iss`, which is trusted only when the EHR vouches
//! for it. Also: `iss` compared exactly, `azp` with several audiences, and no silent success without an
//! id_token. All against the scripted server (`fault_server.rs`): the sandbox plays only one shape.

use serde_json::json;
use smart_launch::{CompletedLaunch, Error, IdTokenError, SmartClient};

use crate::fault_server::{FaultServer, IdTokenFault};

const SCOPE: &str = "launch/patient openid fhirUser patient/Patient.read";

async fn launch(server: &FaultServer) -> Result<CompletedLaunch, Error> {
    let client = SmartClient::new(server.config(SCOPE)).unwrap();
    let (request, pending) = client.standalone_launch(&server.fhir_base).await.unwrap();
    let redirect = server.follow_authorize(&request).await;
    client.complete_from_url(pending, &redirect).await
}

/// Cerner's documented shapes (cerner/fhir.cerner.com `content/authorization/openid-connect.md`): the
/// smart-configuration names `jwks_uri` but no `issuer`; the id_token's `iss` is
/// `…/tenants/<tenant>/oidc/idsps/<tenant>/` (trailing slash included), whose openid-configuration names that
/// issuer and the same `jwks_uri`.
fn cerner_shaped(server: &FaultServer, their_keys: &str) -> String {
    let origin = server.origin();
    let tenant = "ec2458f2-1e24-41c8-b71b-0e701af7583d";
    let idsp = format!("/tenants/{tenant}/oidc/idsps/{tenant}/");
    let iss = format!("{origin}{idsp}");
    server.serve(
        &format!("{idsp}.well-known/openid-configuration"),
        json!({
            "response_types_supported": ["code"],
            "request_parameter_supported": false,
            "require_request_uri_registration": false,
            "request_uri_parameter_supported": true,
            "claims_parameter_supported": false,
            "jwks_uri": format!("{origin}{their_keys}"),
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "issuer": iss,
            "authorization_endpoint": iss,
            "token_endpoint": iss,
        }),
    );
    let id_iss = iss.clone();
    server.behave(|b| {
        b.smart_issuer = None;
        b.id_iss = Some(id_iss);
    });
    iss
}

#[tokio::test]
async fn cerner_idsps_issuer_is_trusted_when_its_openid_configuration_names_the_ehrs_keys() {
    let server = FaultServer::start().await;
    let iss = cerner_shaped(&server, "/oauth/jwks");
    let launch = launch(&server).await.unwrap();
    let claims = launch.id_token_claims.unwrap();
    assert_eq!(claims.iss, iss);
    assert_eq!(launch.fhir_user.unwrap().reference(), "Practitioner/prac-7");
    assert_eq!(
        server.hits(&format!(
            "{}.well-known/openid-configuration",
            iss.trim_start_matches(&server.origin())
        )),
        1
    );
}

#[tokio::test]
async fn a_spoofed_issuer_with_its_own_keys_is_refused() {
    let server = FaultServer::start().await;
    // The token names an issuer whose configuration publishes other keys than the EHR's, and is signed
    // with those keys: a valid signature from a party the EHR never named.
    let iss = cerner_shaped(&server, "/evil/jwks");
    server.serve(
        "/evil/jwks",
        serde_json::to_value(crate::common::key("id-evil").jwks()).unwrap(),
    );
    server.behave(|b| {
        b.id_key = "id-evil";
        b.published_key = Some("id-1");
    });
    let err = launch(&server).await.unwrap_err();
    match err {
        Error::IdToken(IdTokenError::IssuerNotTrusted { found, reason }) => {
            assert_eq!(found, iss);
            assert!(reason.contains("/evil/jwks"), "{reason}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        server.hits("/evil/jwks"),
        0,
        "the spoofed key set is never fetched"
    );
}

/// A generic OpenID provider (panva `oidc-provider` in front of a FHIR server): the SMART configuration
/// names the `issuer` but no `jwks_uri`; the issuer's openid-configuration names the keys.
#[tokio::test]
async fn keys_missing_from_the_smart_configuration_come_from_the_issuers_openid_configuration() {
    let server = FaultServer::start().await;
    let origin = server.origin();
    let issuer = format!("{origin}/op");
    server.serve(
        "/op/.well-known/openid-configuration",
        json!({"issuer": issuer, "jwks_uri": format!("{origin}/oauth/jwks"),
               "authorization_endpoint": format!("{origin}/oauth/authorize"),
               "token_endpoint": format!("{origin}/oauth/token")}),
    );
    let smart_issuer = issuer.clone();
    server.behave(|b| {
        b.smart_issuer = Some(smart_issuer);
        b.smart_jwks = false;
    });
    let launch = launch(&server).await.unwrap();
    assert_eq!(launch.id_token_claims.unwrap().iss, issuer);
    assert_eq!(server.hits("/op/.well-known/openid-configuration"), 1);
    assert_eq!(server.hits("/oauth/jwks"), 1);
}

#[tokio::test]
async fn without_issuer_or_keys_the_fhir_bases_openid_configuration_names_both() {
    let server = FaultServer::start().await;
    let origin = server.origin();
    server.serve(
        "/fhir/.well-known/openid-configuration",
        json!({"issuer": format!("{origin}/idp"), "jwks_uri": format!("{origin}/oauth/jwks")}),
    );
    let iss = format!("{origin}/idp");
    server.behave(|b| {
        b.smart_issuer = None;
        b.smart_jwks = false;
        b.id_iss = Some(iss);
    });
    let launch = launch(&server).await.unwrap();
    assert_eq!(launch.id_token_claims.unwrap().iss, format!("{origin}/idp"));

    // Another `iss` than the one the EHR's discovery points to is refused.
    let other = format!("{origin}/other-idp");
    server.behave(|b| b.id_iss = Some(other));
    let err = launch_again(&server).await;
    assert!(
        matches!(err, Error::IdToken(IdTokenError::IssuerNotTrusted { .. })),
        "{err}"
    );
}

async fn launch_again(server: &FaultServer) -> Error {
    launch(server).await.unwrap_err()
}

#[tokio::test]
async fn an_issuer_differing_by_a_trailing_slash_is_refused() {
    let server = FaultServer::start().await;
    let with_slash = format!("{}/", server.fhir_base);
    server.behave(|b| b.id_iss = Some(with_slash));
    let err = launch(&server).await.unwrap_err();
    assert!(
        matches!(err, Error::IdToken(IdTokenError::WrongIssuer { ref found, .. }) if found.ends_with("/fhir/")),
        "{err}"
    );
}

#[tokio::test]
async fn an_openid_configuration_naming_another_issuer_is_refused() {
    let server = FaultServer::start().await;
    let origin = server.origin();
    // OIDC Discovery §4.3: the document's `issuer` must be the URL it was found under.
    server.serve(
        "/op/.well-known/openid-configuration",
        json!({"issuer": format!("{origin}/somewhere-else"), "jwks_uri": format!("{origin}/oauth/jwks")}),
    );
    let issuer = format!("{origin}/op");
    server.behave(|b| {
        b.smart_issuer = Some(issuer);
        b.smart_jwks = false;
    });
    let err = launch(&server).await.unwrap_err();
    assert!(
        matches!(err, Error::IdToken(IdTokenError::OpenIdConfiguration { .. })),
        "{err}"
    );
}

#[tokio::test]
async fn several_audiences_without_azp_are_refused() {
    let server = FaultServer::start().await;
    server.behave(|b| b.id_token_fault = IdTokenFault::SeveralAudiences);
    let err = launch(&server).await.unwrap_err();
    assert!(
        matches!(err, Error::IdToken(IdTokenError::MissingAuthorizedParty)),
        "{err}"
    );
}

#[tokio::test]
async fn several_audiences_with_our_client_as_azp_are_accepted() {
    let server = FaultServer::start().await;
    server.behave(|b| b.id_token_fault = IdTokenFault::SeveralAudiencesWithOurAzp);
    let claims = launch(&server).await.unwrap().id_token_claims.unwrap();
    assert_eq!(claims.azp.as_deref(), Some("public-app"));
    assert_eq!(claims.aud.len(), 2);
}

#[tokio::test]
async fn openid_granted_without_an_id_token_is_an_error() {
    let server = FaultServer::start().await;
    server.behave(|b| b.omit_id_token = true);
    let err = launch(&server).await.unwrap_err();
    assert!(matches!(err, Error::MissingIdToken), "{err}");
}

#[tokio::test]
async fn openid_requested_but_not_granted_needs_no_id_token() {
    let server = FaultServer::start().await;
    server.behave(|b| {
        b.omit_id_token = true;
        b.token_scope = Some("launch/patient patient/Patient.read");
    });
    let launch = launch(&server).await.unwrap();
    assert!(launch.id_token_claims.is_none());
    assert!(!launch.scope_comparison.all_granted());
}
