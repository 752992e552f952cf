//! The `epic` persona: what Epic documents, on the wire; and `--latency`.

use base64::{Engine, engine::general_purpose::STANDARD};
use reqwest::StatusCode;
use sandbox::Persona;

use crate::common::{AuthRequest, Browser};
use crate::persona_support::{entries, fhir, get_json, header, smart_configuration, standalone, start};

const SCOPE: &str = "launch/patient openid fhirUser offline_access patient/Patient.rs patient/Observation.rs";

#[tokio::test]
async fn epic_token_responses_have_lowercase_bearer_api_names_string_booleans_and_epic_context() {
    let ts = start(Persona::Epic).await;
    assert_eq!(ts.fhir_base.path(), "/interconnect-fhir-oauth/api/FHIR/R4");
    // The synthetic patients come without departments: one, for Epic's `loginDepartment`.
    let department =
        serde_json::json!({ "resourceType": "Location", "id": "dept-1", "name": "Cardiology Clinic" });
    ts.running.state.store().import_value(department).unwrap();
    let tokens = standalone(&ts, SCOPE).await;
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["expires_in"], 3600);
    let scope = tokens["scope"].as_str().unwrap();
    assert!(scope.ends_with(' '), "{scope:?}");
    let names: Vec<&str> = scope.split_whitespace().collect();
    for name in [
        "openid",
        "Patient.read",
        "Patient.search",
        "Observation.read",
        "Observation.search",
    ] {
        assert!(names.contains(&name), "{scope:?}");
    }
    assert!(
        !scope.contains("patient/"),
        "API names, not SMART scopes: {scope:?}"
    );
    assert!(tokens["need_patient_banner"].is_string(), "{tokens}");
    assert!(
        tokens["__epic.dstu2.patient"]
            .as_str()
            .is_some_and(|id| id != tokens["patient"])
    );
    assert_eq!(tokens["loginDepartment"], "dept-1", "{tokens}");
    assert_eq!(tokens["location"], "dept-1", "{tokens}");
    // The grant itself is still the SMART scopes: the token reads the patient, and only that patient.
    let access = tokens["access_token"].as_str().unwrap();
    let patient = tokens["patient"].as_str().unwrap();
    assert_eq!(
        fhir(&ts, access, &format!("Patient/{patient}")).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn epic_key_ids_are_the_base64_sha256_of_the_key_and_sign_the_id_token() {
    let ts = start(Persona::Epic).await;
    let config = smart_configuration(&ts).await;
    assert!(
        config["issuer"]
            .as_str()
            .unwrap()
            .ends_with("/interconnect-fhir-oauth/oauth2")
    );
    let (_, keys) = get_json(&ts, config["jwks_uri"].as_str().unwrap()).await;
    let kid = keys["keys"][0]["kid"].as_str().unwrap().to_owned();
    assert_eq!(STANDARD.decode(&kid).unwrap().len(), 32, "{kid}");
    let tokens = standalone(&ts, SCOPE).await;
    assert_eq!(header(tokens["id_token"].as_str().unwrap())["kid"], kid.as_str());
}

#[tokio::test]
async fn epic_empty_searches_answer_a_4101_outcome_and_results_carry_a_suppressed_warning() {
    let ts = start(Persona::Epic).await;
    let tokens = standalone(&ts, SCOPE).await;
    let access = tokens["access_token"].as_str().unwrap();
    let patient = tokens["patient"].as_str().unwrap();
    let (status, empty) = fhir(
        &ts,
        access,
        &format!("Observation?patient={patient}&code=http://loinc.org|0000-0"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(empty["total"], 0);
    let outcomes = entries(&empty, "outcome");
    assert_eq!(
        outcomes[0]["issue"][0]["details"]["coding"][0]["code"], "4101",
        "{empty}"
    );
    assert!(entries(&empty, "match").is_empty());

    let (_, found) = fhir(&ts, access, &format!("Observation?patient={patient}")).await;
    assert!(!entries(&found, "match").is_empty());
    assert_eq!(entries(&found, "outcome")[0]["issue"][0]["code"], "suppressed");
}

#[tokio::test]
async fn epic_takes_standalone_authorize_requests_by_get_only_and_does_not_advertise_post() {
    let ts = start(Persona::Epic).await;
    let config = smart_configuration(&ts).await;
    let capabilities: Vec<&str> = config["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert!(!capabilities.contains(&"authorize-post"), "{capabilities:?}");
    let request = AuthRequest::new(&ts, SCOPE);
    let response = ts
        .http
        .post(config["authorization_endpoint"].as_str().unwrap())
        .form(&request.params)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("GET"));
    // The same request by GET goes on to the sign-in page.
    let browser = Browser::new(&ts);
    let mut url = url::Url::parse(config["authorization_endpoint"].as_str().unwrap()).unwrap();
    url.query_pairs_mut()
        .extend_pairs(request.params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    assert_eq!(browser.get(url.as_str()).await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn latency_holds_every_answer_back() {
    use tower::ServiceExt;
    // A minute of latency: the answer cannot come within a second, however fast or slow the machine is.
    let ts = crate::common::start_with(|c| c.latency = std::time::Duration::from_secs(60)).await;
    let router = sandbox::router(ts.running.state.clone());
    let request = http::Request::get("/fhir/metadata")
        .body(axum::body::Body::empty())
        .unwrap();
    let waited = tokio::time::timeout(std::time::Duration::from_secs(1), router.oneshot(request)).await;
    assert!(waited.is_err(), "the answer was not delayed");
    // Without latency the same request is answered.
    let ts = crate::common::start().await;
    let request = http::Request::get("/fhir/metadata")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = sandbox::router(ts.running.state.clone())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
