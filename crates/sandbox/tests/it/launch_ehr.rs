//! EHR launch: the launch page, `/launcher`, and an authorization that continues the launch's context.

use crate::common::*;
use reqwest::StatusCode;
use sandbox::{ClientSpec, auth::FhirFailure};
use url::Url;

const LAUNCH_URL: &str = "http://127.0.0.1:9/launch";

fn first_patient(ts: &TestSandbox) -> String {
    let patients = ts.running.state.store().find_patients("", 1).unwrap();
    patients[0]["id"].as_str().unwrap().to_owned()
}

/// Starts an EHR launch and returns the app's launch URL with `iss` and `launch`.
async fn launch(ts: &TestSandbox, query_string: &str) -> Url {
    let response = ts
        .http
        .get(ts.url(&format!("/launcher?{query_string}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "{}",
        response.text().await.unwrap()
    );
    Url::parse(&location(&response)).unwrap()
}

fn app_with_launch(ts: &TestSandbox) {
    ts.register(
        ClientSpec::public(APP, Url::parse(REDIRECT).unwrap())
            .with_launch_uri(Url::parse(LAUNCH_URL).unwrap()),
    );
}

#[tokio::test]
async fn launcher_sends_the_browser_to_the_app_with_iss_and_an_opaque_launch() {
    let ts = start().await;
    app_with_launch(&ts);
    let patient = first_patient(&ts);
    let to = launch(&ts, &format!("client_id={APP}&patient={patient}")).await;
    assert!(to.as_str().starts_with(LAUNCH_URL));
    assert_eq!(query(&to, "iss").unwrap(), ts.aud());
    let launch_id = query(&to, "launch").unwrap();
    assert!(launch_id.len() >= 32 && !launch_id.contains(&patient));
}

#[tokio::test]
async fn ehr_launch_carries_the_patient_and_the_clinician() {
    let ts = start().await;
    app_with_launch(&ts);
    let patient = first_patient(&ts);
    let to = launch(
        &ts,
        &format!(
            "launch_uri={LAUNCH_URL}&patient={patient}&need_patient_banner=false&fhir_context=Observation/abc"
        ),
    )
    .await;
    let request = AuthRequest::new(&ts, "launch openid fhirUser user/*.rs")
        .set("launch", &query(&to, "launch").unwrap());
    let back = authorize(&ts, &request, Decision::Approve).await;
    let (status, body) = ts
        .exchange(&query(&back, "code").unwrap(), &request.verifier)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["patient"], patient.as_str());
    assert_eq!(body["need_patient_banner"], false);
    assert_eq!(body["fhirContext"][0]["reference"], "Observation/abc");
    let grant = ts.check(body["access_token"].as_str().unwrap()).unwrap();
    assert!(grant.fhir_user.unwrap().starts_with("Practitioner/"));
}

#[tokio::test]
async fn ehr_launch_with_an_encounter_returns_it() {
    let ts = start().await;
    app_with_launch(&ts);
    let store = ts.running.state.store();
    let patient = first_patient(&ts);
    let encounters = store.encounters_for_patient(&patient, 1).unwrap();
    let Some(encounter) = encounters
        .first()
        .and_then(|e| e["id"].as_str())
        .map(str::to_owned)
    else {
        panic!("the generator gives every patient encounters");
    };
    let to = launch(
        &ts,
        &format!("client_id={APP}&patient={patient}&encounter={encounter}"),
    )
    .await;
    let request = AuthRequest::new(&ts, "launch launch/encounter patient/*.rs")
        .set("launch", &query(&to, "launch").unwrap());
    let back = authorize(&ts, &request, Decision::Approve).await;
    let (_, body) = ts
        .exchange(&query(&back, "code").unwrap(), &request.verifier)
        .await;
    assert_eq!(body["encounter"], encounter.as_str());
}

#[tokio::test]
async fn a_launch_option_simulates_fhir_failures() {
    let ts = start().await;
    app_with_launch(&ts);
    let patient = first_patient(&ts);
    let to = launch(&ts, &format!("client_id={APP}&patient={patient}&fail=fhir_503")).await;
    let request = AuthRequest::new(&ts, "launch patient/*.rs").set("launch", &query(&to, "launch").unwrap());
    let back = authorize(&ts, &request, Decision::Approve).await;
    let (_, body) = ts
        .exchange(&query(&back, "code").unwrap(), &request.verifier)
        .await;
    let grant = ts.check(body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(grant.simulated_failure, Some(FhirFailure::ServiceUnavailable));
}

#[tokio::test]
async fn launcher_refuses_unregistered_remote_launch_urls_and_unknown_patients() {
    let ts = start().await;
    let response = ts
        .http
        .get(ts.url("/launcher?launch_uri=https://evil.example/launch"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = ts
        .http
        .get(ts.url(&format!("/launcher?launch_uri={LAUNCH_URL}&patient=nope")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = ts
        .http
        .get(ts.url("/launcher?launch_uri=http://localhost:1/launch&fail=bogus"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_launch_made_for_one_app_cannot_be_used_by_another() {
    let ts = start().await;
    app_with_launch(&ts);
    ts.register(ClientSpec::public(
        "other-app",
        Url::parse("http://127.0.0.1:9/other").unwrap(),
    ));
    let to = launch(&ts, &format!("client_id={APP}")).await;
    let request = AuthRequest::new(&ts, "launch patient/*.rs")
        .set("client_id", "other-app")
        .set("redirect_uri", "http://127.0.0.1:9/other")
        .set("launch", &query(&to, "launch").unwrap());
    let response = ts.http.get(request.url(&ts)).send().await.unwrap();
    let to = Url::parse(&location(&response)).unwrap();
    assert_eq!(query(&to, "error").as_deref(), Some("invalid_request"));
}

#[tokio::test]
async fn launch_page_lists_clients_patients_and_a_launch_form() {
    let ts = start().await;
    app_with_launch(&ts);
    let html = ts
        .http
        .get(ts.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("smart-fhir-demo") && html.contains(APP));
    assert!(html.contains("action=\"/launcher\""));
    assert!(html.contains(&first_patient(&ts)));
}
