//! A standalone launch end to end: the pages, the code exchange, then the FHIR server answering with the token.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn standalone_launch_token_reads_the_patient_from_the_fhir_server() {
    let ts = start().await;
    let tokens = launch_and_exchange(&ts, "launch/patient patient/*.rs openid fhirUser").await;
    let patient = tokens["patient"].as_str().unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let response = ts
        .http
        .get(format!("{}/Patient/{patient}", ts.aud()))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let resource: Value = response.json().await.unwrap();
    assert_eq!(resource["resourceType"], "Patient");
    assert_eq!(resource["id"], patient);
}

#[tokio::test]
async fn fhir_server_refuses_missing_revoked_and_expired_tokens_with_401() {
    let ts = start().await;
    let tokens = launch_and_exchange(&ts, "launch/patient patient/*.rs").await;
    let url = format!("{}/Patient/{}", ts.aud(), tokens["patient"].as_str().unwrap());
    let response = ts.http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response
            .headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );

    let access = tokens["access_token"].as_str().unwrap();
    let (status, _) = ts
        .post_form("/auth/revoke", &[("token", access), ("client_id", APP)], None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let response = ts.http.get(&url).bearer_auth(access).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("invalid_token"), "{challenge}");
}

#[tokio::test]
async fn capability_statement_points_at_the_authorization_server() {
    let ts = start().await;
    let metadata: Value = ts
        .http
        .get(format!("{}/metadata", ts.aud()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = metadata.to_string();
    assert!(
        text.contains(&ts.url("/auth/token")) && text.contains(&ts.url("/auth/authorize")),
        "{text}"
    );
}
