use smart_launch::{CallbackParams, Error, PendingLaunch, PendingLaunches, Scope, SmartClient, Url};

use crate::common::{TestAuthServer, refresh_token_is_live};

const SCOPE: &str =
    "launch/patient openid fhirUser offline_access patient/Patient.read patient/Observation.rs";

#[tokio::test]
async fn standalone_launch_completes_with_context_and_verified_id_token() {
    let server = TestAuthServer::start().await;
    let client = SmartClient::new(server.config(SCOPE)).unwrap();
    let (request, pending) = client.standalone_launch(&server.fhir_base).await.unwrap();
    let redirect = server.follow_authorize(&request).await;
    let launch = client.complete_from_url(pending, &redirect).await.unwrap();

    assert!(launch.tokens.access_token.secret().starts_with("at-"));
    assert!(launch.tokens.refresh_token.is_some());
    assert!(
        launch.tokens.expires_at.is_some(),
        "expires_in sent as a string is read"
    );
    assert_eq!(launch.context.patient.as_deref(), Some("p-123"));
    assert_eq!(launch.context.need_patient_banner, Some(true));
    assert_eq!(launch.context.tenant.as_deref(), Some("t1"));
    assert!(launch.context.extras.contains_key("__epic.dstu2.patient"));
    let claims = launch.id_token_claims.as_ref().unwrap();
    assert_eq!(claims.sub, "user-1");
    let user = launch.fhir_user.as_ref().unwrap();
    assert_eq!(user.reference(), "Practitioner/prac-7");
    assert_eq!(
        user.url.as_str(),
        format!("{}/Practitioner/prac-7", server.fhir_base)
    );
    assert!(launch.scope_comparison.all_granted());
    assert_eq!(launch.tokens.scope.to_string(), SCOPE);
}

#[tokio::test]
async fn authorize_post_is_used_when_advertised_and_preferred() {
    let server = TestAuthServer::start().await;
    let mut config = server.config("launch/patient patient/Patient.read");
    config.prefer_authorize_post = true;
    let client = SmartClient::new(config).unwrap();
    let (request, pending) = client.standalone_launch(&server.fhir_base).await.unwrap();
    assert!(request.post.is_some());
    let redirect = server.follow_authorize(&request).await;
    client.complete_from_url(pending, &redirect).await.unwrap();
    assert_eq!(server.hits("authorize:post"), 1);
}

#[tokio::test]
async fn ehr_launch_echoes_launch_and_receives_encounter_context() {
    let server = TestAuthServer::start().await;
    let client = SmartClient::new(server.config("openid fhirUser patient/Patient.read")).unwrap();
    let (request, pending) = client
        .ehr_launch(server.fhir_base.as_str(), "launch-abc")
        .await
        .unwrap();
    let query: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
    assert!(query.contains(&("launch".into(), "launch-abc".into())));
    assert!(query.contains(&("aud".into(), server.fhir_base.to_string())));
    assert!(pending.requested_scope().contains(&Scope::Launch));
    let redirect = server.follow_authorize(&request).await;
    let launch = client.complete_from_url(pending, &redirect).await.unwrap();
    assert_eq!(launch.context.encounter.as_deref(), Some("e-9"));
    assert_eq!(
        launch.context.fhir_context[0].reference.as_deref(),
        Some("Encounter/e-9")
    );
}

#[tokio::test]
async fn issuer_outside_the_allow_list_is_refused_before_any_request() {
    let server = TestAuthServer::start().await;
    let mut config = server.config("launch openid");
    config.allowed_issuers = vec![Url::parse("https://trusted.example/fhir").unwrap()];
    let client = SmartClient::new(config).unwrap();
    let err = client
        .ehr_launch(server.fhir_base.as_str(), "x")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::IssuerNotAllowed { ref issuer } if issuer == server.fhir_base.as_str()));
    assert_eq!(
        server.total_requests(),
        0,
        "nothing may be fetched from an untrusted issuer"
    );
    assert!(client.ehr_launch("not a url", "x").await.is_err());
}

#[tokio::test]
async fn wrong_state_is_rejected_and_no_code_is_exchanged() {
    let server = TestAuthServer::start().await;
    let client = SmartClient::new(server.config("launch/patient")).unwrap();
    let (request, pending) = client.standalone_launch(&server.fhir_base).await.unwrap();
    let mut redirect = server.follow_authorize(&request).await;
    let code = redirect
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    redirect
        .query_pairs_mut()
        .clear()
        .append_pair("code", &code)
        .append_pair("state", "attacker-state");
    let err = client.complete_from_url(pending, &redirect).await.unwrap_err();
    assert!(matches!(err, Error::StateMismatch));
    assert_eq!(server.hits("/oauth/token"), 0);
}

#[tokio::test]
async fn replayed_state_is_rejected() {
    let server = TestAuthServer::start().await;
    let client = SmartClient::new(server.config("launch/patient")).unwrap();
    let store = PendingLaunches::new();
    let (request, pending) = client.standalone_launch(&server.fhir_base).await.unwrap();
    store.insert(pending);
    let redirect = server.follow_authorize(&request).await;

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
async fn a_copied_pending_launch_cannot_redeem_the_code_twice() {
    let server = TestAuthServer::start().await;
    let client = SmartClient::new(server.config("launch/patient")).unwrap();
    let (request, pending) = client.standalone_launch(&server.fhir_base).await.unwrap();
    let copy: PendingLaunch = serde_json::from_str(&serde_json::to_string(&pending).unwrap()).unwrap();
    let redirect = server.follow_authorize(&request).await;
    client.complete_from_url(pending, &redirect).await.unwrap();
    let err = client.complete_from_url(copy, &redirect).await.unwrap_err();
    assert!(
        matches!(err, Error::TokenEndpoint { status: 400, ref error, .. } if error.as_deref() == Some("invalid_grant"))
    );
}

#[tokio::test]
async fn expired_pending_launch_is_rejected() {
    let server = TestAuthServer::start().await;
    let mut config = server.config("launch/patient");
    config.pending_launch_ttl = std::time::Duration::ZERO;
    let client = SmartClient::new(config).unwrap();
    let (request, pending) = client.standalone_launch(&server.fhir_base).await.unwrap();
    let redirect = server.follow_authorize(&request).await;
    let err = client.complete_from_url(pending, &redirect).await.unwrap_err();
    assert!(matches!(err, Error::LaunchExpired { .. }), "{err}");
    assert_eq!(server.hits("/oauth/token"), 0);
}

#[tokio::test]
async fn access_denied_becomes_a_typed_error() {
    let server = TestAuthServer::start().await;
    server.behave(|b| b.deny = true);
    let client = SmartClient::new(server.config("launch/patient")).unwrap();
    let (request, pending) = client.standalone_launch(&server.fhir_base).await.unwrap();
    let redirect = server.follow_authorize(&request).await;
    let err = client.complete_from_url(pending, &redirect).await.unwrap_err();
    match err {
        Error::Authorization {
            error, description, ..
        } => {
            assert_eq!(error, "access_denied");
            assert_eq!(description.as_deref(), Some("The user denied access"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn narrower_grant_is_reported() {
    let server = TestAuthServer::start().await;
    server.behave(|b| b.grant_scope = Some("launch/patient patient/Patient.read".into()));
    let client =
        SmartClient::new(server.config("launch/patient patient/Patient.read patient/Observation.read"))
            .unwrap();
    let (request, pending) = client.standalone_launch(&server.fhir_base).await.unwrap();
    let redirect = server.follow_authorize(&request).await;
    let launch = client.complete_from_url(pending, &redirect).await.unwrap();
    assert!(!launch.scope_comparison.all_granted());
    let missing: Vec<String> = launch
        .scope_comparison
        .missing_access()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(missing, vec!["patient/Observation.read"]);
}

#[tokio::test]
async fn revocation_ends_the_grant_and_introspection_reports_tokens() {
    let server = TestAuthServer::start().await;
    let client = SmartClient::new(server.config("launch/patient offline_access")).unwrap();
    let (request, pending) = client.standalone_launch(&server.fhir_base).await.unwrap();
    let redirect = server.follow_authorize(&request).await;
    let launch = client.complete_from_url(pending, &redirect).await.unwrap();

    let info = client
        .introspect(&server.fhir_base, &launch.tokens.access_token)
        .await
        .unwrap();
    assert!(info.is_active());
    assert_eq!(info.patient.as_deref(), Some("p-123"));

    let refresh = launch.tokens.refresh_token.clone().unwrap();
    assert!(refresh_token_is_live(&server, refresh.secret()));
    client.revoke(&launch.tokens).await.unwrap();
    assert!(!refresh_token_is_live(&server, refresh.secret()));
    let err = client.refresh(&launch.tokens).await.unwrap_err();
    assert!(matches!(err, Error::TokenEndpoint { status: 400, .. }));
}
