//! Standalone and EHR launches, the callback's checks, and the launch context, against the sandbox.
//!
//! One test stays on the in-test fault server: `a_token_response_with_strings_and_vendor_keys_is_read`, because
//! the sandbox writes strictly typed token responses (numbers as numbers, `Bearer`) and no vendor keys, so it
//! cannot show that the client tolerates what real EHRs send.

use sandbox::{ClientSpec, SimulatedFailure};
use smart_launch::{
    CallbackParams, ClientAuth, Error, PendingLaunch, PendingLaunches, Scope, SmartClient, Url,
};

use crate::common::{APP, Decision, TestSandbox, param, secret_auth};
use crate::fault_server::FaultServer;

const SCOPE: &str =
    "launch/patient openid fhirUser offline_access patient/Patient.read patient/Observation.rs";

#[tokio::test]
async fn standalone_launch_completes_with_pkce_state_context_and_a_verified_id_token() {
    let ts = TestSandbox::start().await;
    let client = SmartClient::new(ts.config(SCOPE)).unwrap();
    let (request, pending) = client.standalone_launch(&ts.fhir_base).await.unwrap();
    let query: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
    let sent = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(sent("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(sent("aud").as_deref(), Some(ts.fhir_base.as_str()));
    assert!(
        sent("state").is_some_and(|s| s.len() >= 22),
        "state carries at least 128 bits"
    );
    assert!(sent("nonce").is_some(), "openid asks for a nonce");

    let redirect = ts.approve(&request).await;
    let launch = client.complete_from_url(pending, &redirect).await.unwrap();

    // Signed in as a patient (no user/ scopes), so that patient is the context and the fhirUser.
    let patient = launch.context.patient.clone().expect("a patient in context");
    assert!(
        ts.running
            .state
            .store()
            .read("Patient", &patient)
            .unwrap()
            .is_some()
    );
    assert_eq!(launch.context.need_patient_banner, Some(true));
    assert!(launch.context.smart_style_url.is_some());
    assert!(
        launch.tokens.refresh_token.is_some(),
        "offline_access gives a refresh token"
    );
    assert!(launch.tokens.expires_at.is_some());
    let claims = launch.id_token_claims.as_ref().unwrap();
    assert_eq!(claims.sub, format!("Patient/{patient}"));
    assert_eq!(claims.iss, ts.fhir_base.as_str());
    let user = launch.fhir_user.as_ref().unwrap();
    assert_eq!(
        (user.resource_type.as_str(), user.id.as_str()),
        ("Patient", patient.as_str())
    );
    assert!(!user.was_relative, "the sandbox sends an absolute fhirUser");
    assert!(launch.scope_comparison.all_granted());
    assert_eq!(launch.tokens.scope.to_string(), SCOPE);
}

#[tokio::test]
async fn a_clinician_standalone_launch_picks_a_patient_and_an_encounter() {
    let ts = TestSandbox::start().await;
    let client =
        SmartClient::new(ts.config("launch/patient launch/encounter openid fhirUser user/*.rs")).unwrap();
    let (request, pending) = client.standalone_launch(&ts.fhir_base).await.unwrap();
    let redirect = ts.approve(&request).await;
    let launch = client.complete_from_url(pending, &redirect).await.unwrap();
    assert_eq!(launch.fhir_user.unwrap().resource_type, "Practitioner");
    let patient = launch.context.patient.expect("the picked patient");
    let store = ts.running.state.store();
    let has_encounters = !store.encounters_for_patient(&patient, 1).unwrap().is_empty();
    // The browser picks the first encounter offered; the picker is skipped for a patient without any.
    assert_eq!(launch.context.encounter.is_some(), has_encounters);
    if let Some(encounter) = launch.context.encounter {
        let resource = store.read("Encounter", &encounter).unwrap().unwrap();
        let subject = resource["subject"]["reference"].as_str().unwrap();
        assert!(subject.ends_with(&format!("Patient/{patient}")), "{subject}");
    }
}

#[tokio::test]
async fn authorize_post_is_used_when_advertised_and_preferred() {
    let ts = TestSandbox::start().await;
    let mut config = ts.config("launch/patient patient/Patient.read");
    config.prefer_authorize_post = true;
    let client = SmartClient::new(config).unwrap();
    let (request, pending) = client.standalone_launch(&ts.fhir_base).await.unwrap();
    assert!(request.post.is_some());
    let redirect = ts.approve(&request).await;
    client.complete_from_url(pending, &redirect).await.unwrap();
    assert_eq!(ts.hits("POST /auth/authorize"), 1);
    assert_eq!(ts.hits("GET /auth/authorize"), 0);
}

#[tokio::test]
async fn ehr_launch_from_the_launcher_echoes_launch_and_receives_its_context() {
    let ts = TestSandbox::start().await;
    let (patient, encounter) = ts.a_patient_with_an_encounter();
    let (iss, launch_id) = ts
        .ehr_launch(&[
            ("patient", &patient),
            ("encounter", &encounter),
            ("need_patient_banner", "false"),
            ("intent", "reconcile-medications"),
            ("fhir_context", &format!("Encounter/{encounter}")),
        ])
        .await;
    assert_eq!(iss, ts.fhir_base.as_str());

    let client = SmartClient::new(ts.config("launch openid fhirUser user/*.rs")).unwrap();
    let (request, pending) = client.ehr_launch(&iss, &launch_id).await.unwrap();
    let query: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
    assert!(query.contains(&("launch".into(), launch_id.clone())));
    assert!(query.contains(&("aud".into(), iss.clone())));
    assert!(pending.requested_scope().contains(&Scope::Launch));
    let redirect = ts.approve(&request).await;
    let launch = client.complete_from_url(pending, &redirect).await.unwrap();

    assert_eq!(launch.context.patient.as_deref(), Some(patient.as_str()));
    assert_eq!(launch.context.encounter.as_deref(), Some(encounter.as_str()));
    assert_eq!(
        launch.context.fhir_context[0].reference.as_deref(),
        Some(format!("Encounter/{encounter}").as_str())
    );
    assert_eq!(launch.context.need_patient_banner, Some(false));
    assert_eq!(launch.context.intent.as_deref(), Some("reconcile-medications"));
    assert_eq!(launch.fhir_user.unwrap().resource_type, "Practitioner");
}

#[tokio::test]
async fn issuer_outside_the_allow_list_is_refused_before_any_request() {
    let ts = TestSandbox::start().await;
    let (iss, launch_id) = ts.ehr_launch(&[]).await;
    let before = ts.total_requests();
    let mut config = ts.config("launch openid");
    config.allowed_issuers = vec![Url::parse("https://trusted.example/fhir").unwrap()];
    let client = SmartClient::new(config).unwrap();
    let err = client.ehr_launch(&iss, &launch_id).await.unwrap_err();
    assert!(matches!(err, Error::IssuerNotAllowed { ref issuer } if *issuer == iss));
    assert_eq!(
        ts.total_requests(),
        before,
        "nothing may be fetched from an untrusted issuer"
    );
    assert!(client.ehr_launch("not a url", "x").await.is_err());
}

#[tokio::test]
async fn wrong_state_is_rejected_and_no_code_is_exchanged() {
    let ts = TestSandbox::start().await;
    let client = SmartClient::new(ts.config("launch/patient")).unwrap();
    let (request, pending) = client.standalone_launch(&ts.fhir_base).await.unwrap();
    let mut redirect = ts.approve(&request).await;
    let code = param(&redirect, "code").unwrap();
    redirect
        .query_pairs_mut()
        .clear()
        .append_pair("code", &code)
        .append_pair("state", "attacker-state");
    let err = client.complete_from_url(pending, &redirect).await.unwrap_err();
    assert!(matches!(err, Error::StateMismatch));
    assert_eq!(ts.hits("/auth/token"), 0);
}

#[tokio::test]
async fn replayed_state_is_rejected() {
    let ts = TestSandbox::start().await;
    let client = SmartClient::new(ts.config("launch/patient")).unwrap();
    let store = PendingLaunches::new();
    let (request, pending) = client.standalone_launch(&ts.fhir_base).await.unwrap();
    store.insert(pending);
    let redirect = ts.approve(&request).await;

    let params = CallbackParams::from_url(&redirect);
    let pending = store.take(params.state().unwrap()).unwrap();
    client.complete(pending, params).await.unwrap();

    // The same redirect again: the pending launch is gone.
    let params = CallbackParams::from_url(&redirect);
    assert!(matches!(
        store.take(params.state().unwrap()),
        Err(Error::UnknownState)
    ));
}

#[tokio::test]
async fn a_copied_pending_launch_cannot_redeem_the_code_twice_and_the_first_grant_is_revoked() {
    let ts = TestSandbox::start().await;
    let client = SmartClient::new(ts.config("launch/patient offline_access")).unwrap();
    let (request, pending) = client.standalone_launch(&ts.fhir_base).await.unwrap();
    let copy: PendingLaunch = serde_json::from_str(&serde_json::to_string(&pending).unwrap()).unwrap();
    let redirect = ts.approve(&request).await;
    let first = client.complete_from_url(pending, &redirect).await.unwrap();
    let err = client.complete_from_url(copy, &redirect).await.unwrap_err();
    assert!(
        matches!(err, Error::TokenEndpoint { status: 400, ref error, .. } if error.as_deref() == Some("invalid_grant")),
        "{err}"
    );
    // The sandbox treats a replayed code as stolen and revokes what it issued for it.
    let err = client.refresh(&first.tokens).await.unwrap_err();
    assert!(matches!(err, Error::TokenEndpoint { status: 400, .. }), "{err}");
}

#[tokio::test]
async fn expired_pending_launch_is_rejected_and_no_code_is_exchanged() {
    let ts = TestSandbox::start().await;
    let mut config = ts.config("launch/patient");
    config.pending_launch_ttl = std::time::Duration::ZERO;
    let client = SmartClient::new(config).unwrap();
    let (request, pending) = client.standalone_launch(&ts.fhir_base).await.unwrap();
    let redirect = ts.approve(&request).await;
    let err = client.complete_from_url(pending, &redirect).await.unwrap_err();
    assert!(matches!(err, Error::LaunchExpired { .. }), "{err}");
    assert_eq!(ts.hits("/auth/token"), 0);
}

#[tokio::test]
async fn access_denied_becomes_a_typed_error() {
    let ts = TestSandbox::start().await;
    let client = SmartClient::new(ts.config("launch/patient")).unwrap();
    let (request, pending) = client.standalone_launch(&ts.fhir_base).await.unwrap();
    let redirect = ts.authorize(&request, Decision::Deny).await;
    match client.complete_from_url(pending, &redirect).await.unwrap_err() {
        Error::Authorization {
            error, description, ..
        } => {
            assert_eq!(error, "access_denied");
            assert_eq!(description.as_deref(), Some("The user denied access."));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(ts.hits("/auth/token"), 0);
}

#[tokio::test]
async fn simulated_invalid_scope_becomes_a_typed_error() {
    let ts = TestSandbox::start().await;
    ts.register(
        ClientSpec::public(APP, TestSandbox::redirect()).with_failure(SimulatedFailure::InvalidScope),
    );
    let client = SmartClient::new(ts.config("launch/patient patient/Patient.read")).unwrap();
    let (request, pending) = client.standalone_launch(&ts.fhir_base).await.unwrap();
    let redirect = ts.approve(&request).await;
    match client.complete_from_url(pending, &redirect).await.unwrap_err() {
        Error::Authorization {
            error, description, ..
        } => {
            assert_eq!(error, "invalid_scope");
            assert!(description.unwrap().contains("simulated failure invalid_scope"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn simulated_token_error_from_the_launcher_becomes_a_typed_error() {
    let ts = TestSandbox::start().await;
    let (iss, launch_id) = ts.ehr_launch(&[("fail", "token_error")]).await;
    let client = SmartClient::new(ts.config("launch user/*.rs")).unwrap();
    let (request, pending) = client.ehr_launch(&iss, &launch_id).await.unwrap();
    let redirect = ts.approve(&request).await;
    match client.complete_from_url(pending, &redirect).await.unwrap_err() {
        Error::TokenEndpoint {
            status,
            error,
            description,
            ..
        } => {
            assert_eq!(status, 400);
            assert_eq!(error.as_deref(), Some("invalid_grant"));
            assert!(description.unwrap().contains("simulated failure token_error"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_narrower_grant_is_reported_as_missing_access() {
    let ts = TestSandbox::start().await;
    // The sandbox never grants system/ scopes to an interactive launch.
    let client =
        SmartClient::new(ts.config("launch/patient patient/Patient.read system/Observation.read")).unwrap();
    let (request, pending) = client.standalone_launch(&ts.fhir_base).await.unwrap();
    let redirect = ts.approve(&request).await;
    let launch = client.complete_from_url(pending, &redirect).await.unwrap();
    assert_eq!(
        launch.tokens.scope.to_string(),
        "launch/patient patient/Patient.read"
    );
    assert!(!launch.scope_comparison.all_granted());
    let missing: Vec<String> = launch
        .scope_comparison
        .missing_access()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(missing, vec!["system/Observation.read"]);
}

#[tokio::test]
async fn revocation_ends_the_grant_and_introspection_reports_it() {
    let ts = TestSandbox::start().await;
    ts.register(ClientSpec::public(APP, TestSandbox::redirect()).with_secret("s3cr3t"));
    let config = ts
        .config("launch/patient offline_access")
        .with_client_auth(secret_auth(true, "s3cr3t"));
    let client = SmartClient::new(config).unwrap();
    let (request, pending) = client.standalone_launch(&ts.fhir_base).await.unwrap();
    let redirect = ts.approve(&request).await;
    let launch = client.complete_from_url(pending, &redirect).await.unwrap();

    let info = client
        .introspect(&ts.fhir_base, &launch.tokens.access_token)
        .await
        .unwrap();
    assert!(info.is_active());
    assert_eq!(info.patient, launch.context.patient);
    assert_eq!(info.client_id.as_deref(), Some(APP));

    client.revoke(&launch.tokens).await.unwrap();
    let info = client
        .introspect(&ts.fhir_base, &launch.tokens.access_token)
        .await
        .unwrap();
    assert!(
        !info.is_active(),
        "revoking the refresh token ends the whole grant"
    );
    let err = client.refresh(&launch.tokens).await.unwrap_err();
    assert!(matches!(err, Error::TokenEndpoint { status: 400, .. }), "{err}");
}

#[tokio::test]
async fn a_public_client_cannot_introspect() {
    let ts = TestSandbox::start().await;
    let client = SmartClient::new(ts.config("launch/patient")).unwrap();
    let (request, pending) = client.standalone_launch(&ts.fhir_base).await.unwrap();
    let redirect = ts.approve(&request).await;
    let launch = client.complete_from_url(pending, &redirect).await.unwrap();
    assert!(matches!(client.config().client_auth, ClientAuth::None));
    let err = client
        .introspect(&ts.fhir_base, &launch.tokens.access_token)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::EndpointRejected { endpoint: "introspection", status: 401, ref error, .. } if error.as_deref() == Some("invalid_client")),
        "{err}"
    );
}

#[tokio::test]
async fn a_token_response_with_strings_and_vendor_keys_is_read() {
    let server = FaultServer::start().await;
    let client = SmartClient::new(server.config("launch/patient openid fhirUser")).unwrap();
    let (request, pending) = client.standalone_launch(&server.fhir_base).await.unwrap();
    let redirect = server.follow_authorize(&request).await;
    let launch = client.complete_from_url(pending, &redirect).await.unwrap();
    assert!(
        launch.tokens.expires_at.is_some(),
        "expires_in sent as a string is read"
    );
    assert_eq!(
        launch.context.need_patient_banner,
        Some(true),
        "\"true\" is read as true"
    );
    assert_eq!(launch.context.tenant.as_deref(), Some("t1"));
    assert!(launch.context.extras.contains_key("__epic.dstu2.patient"));
    let user = launch.fhir_user.unwrap();
    assert!(user.was_relative);
    assert_eq!(
        user.url.as_str(),
        format!("{}/Practitioner/prac-7", server.fhir_base)
    );
}
