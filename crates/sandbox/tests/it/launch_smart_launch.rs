//! The `smart-launch` client library against the sandbox: standalone and EHR launches end to end, a refresh,
//! and a backend service, each reading FHIR data with the tokens it got.

use std::sync::Arc;

use crate::common::*;
use reqwest::StatusCode;
use sandbox::{ClientKeys, ClientSpec};
use smart_launch::{BackendToken, SigningAlgorithm, SigningKey, SmartClient, SmartClientConfig, TokenSource};
use url::Url;

async fn read_patient(ts: &TestSandbox, patient: &str, token: &str) -> StatusCode {
    ts.http
        .get(format!("{}/Patient/{patient}", ts.aud()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn smart_launch_completes_a_standalone_launch_refreshes_and_reads_the_patient() {
    let ts = start().await;
    let scope = "launch/patient openid fhirUser patient/*.rs offline_access"
        .parse()
        .unwrap();
    let client = SmartClient::new(SmartClientConfig::new(APP, Url::parse(REDIRECT).unwrap(), scope)).unwrap();
    let (request, pending) = client.standalone_launch(&ts.fhir_base).await.unwrap();
    let browser = Browser::new(&ts);
    let first = browser.get(request.url.as_str()).await;
    let back = drive(&browser, first, REDIRECT, Decision::Approve).await;
    let launch = client.complete_from_url(pending, &back).await.unwrap();

    let patient = launch.context.patient.clone().unwrap();
    assert!(launch.scope_comparison.all_granted());
    let user = launch.fhir_user.clone().unwrap();
    assert_eq!(
        (user.resource_type.as_str(), user.id.as_str()),
        ("Patient", patient.as_str())
    );
    assert_eq!(
        read_patient(&ts, &patient, launch.tokens.access_token.secret()).await,
        StatusCode::OK
    );

    let refreshed = client.refresh(&launch.tokens).await.unwrap();
    assert_ne!(
        refreshed.access_token.secret(),
        launch.tokens.access_token.secret()
    );
    assert_eq!(
        read_patient(&ts, &patient, refreshed.access_token.secret()).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn smart_launch_completes_an_ehr_launch_from_the_launcher() {
    let ts = start().await;
    let launch_url = Url::parse("http://127.0.0.1:9/launch").unwrap();
    ts.register(ClientSpec::public(APP, Url::parse(REDIRECT).unwrap()).with_launch_uri(launch_url));
    let patient = ts.running.state.store().find_patients("", 1).unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = ts
        .http
        .get(ts.url(&format!("/launcher?client_id={APP}&patient={patient}")))
        .send()
        .await
        .unwrap();
    let to = Url::parse(&location(&response)).unwrap();

    let scope = "launch openid fhirUser user/*.rs".parse().unwrap();
    let config =
        SmartClientConfig::new(APP, Url::parse(REDIRECT).unwrap(), scope).allow_issuer(ts.fhir_base.clone());
    let client = SmartClient::new(config).unwrap();
    let (request, pending) = client
        .ehr_launch(&query(&to, "iss").unwrap(), &query(&to, "launch").unwrap())
        .await
        .unwrap();
    let browser = Browser::new(&ts);
    let first = browser.get(request.url.as_str()).await;
    let back = drive(&browser, first, REDIRECT, Decision::Approve).await;
    let launch = client.complete_from_url(pending, &back).await.unwrap();

    assert_eq!(launch.context.patient.as_deref(), Some(patient.as_str()));
    assert_eq!(launch.fhir_user.unwrap().resource_type, "Practitioner");
    assert_eq!(
        read_patient(&ts, &patient, launch.tokens.access_token.secret()).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn smart_launch_backend_service_gets_a_system_token() {
    let ts = start().await;
    let key = Arc::new(SigningKey::generate(SigningAlgorithm::ES384, "backend-key").unwrap());
    let spec =
        ClientSpec::public("backend", Url::parse(REDIRECT).unwrap()).with_keys(ClientKeys::Set(key.jwks()));
    ts.register(spec);
    let scope = "system/Patient.rs".parse().unwrap();
    let source = BackendToken::discover(&ts.fhir_base, "backend".into(), key, scope)
        .await
        .unwrap();
    let token = source.access_token().await.unwrap();
    let patient = ts.running.state.store().find_patients("", 1).unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(read_patient(&ts, &patient, token.secret()).await, StatusCode::OK);
}
