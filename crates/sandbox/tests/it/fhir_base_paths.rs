//! The FHIR base itself: `POST [base]/` (trailing slash) is `POST [base]`, and every other path under the base
//! that is not an endpoint gets a 404 OperationOutcome naming it.

use crate::fhir_support::launch;
use crate::fhir_write::heart_rate;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn bundles_posted_to_the_base_with_a_trailing_slash_are_processed() {
    let (_ts, fhir) = launch("launch/patient user/*.cruds").await;
    let patient = fhir.patient.clone().unwrap();
    let slash = format!("{}/", fhir.base);
    for (kind, status) in [("batch", "201 Created"), ("transaction", "201 Created")] {
        let bundle = json!({
            "resourceType": "Bundle",
            "type": kind,
            "entry": [
                { "resource": heart_rate(&patient, 61), "request": { "method": "POST", "url": "Observation" } },
                { "request": { "method": "GET", "url": format!("Patient/{patient}") } }
            ]
        });
        let answer = fhir.send(Method::POST, &slash, Some(&bundle), &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{kind}: {}", answer.body);
        assert_eq!(answer.body["type"], format!("{kind}-response"));
        assert_eq!(answer.body["entry"][0]["response"]["status"], status);
        assert_eq!(answer.body["entry"][1]["resource"]["id"], patient.as_str());
        let created = answer.body["entry"][0]["response"]["location"].as_str().unwrap();
        let id = created.split('/').nth(1).unwrap();
        fhir.ok(&format!("Observation/{id}")).await;
    }

    // The same answers as without the slash: a bad body is a 400, no token a 401, another method a 405.
    for path in [fhir.base.clone(), slash.clone()] {
        let not_a_bundle = fhir
            .send(Method::POST, &path, Some(&heart_rate(&patient, 62)), &[])
            .await;
        assert_eq!(not_a_bundle.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(not_a_bundle.outcome().contains("transaction"), "{path}");
        let anonymous = fhir
            .anonymous()
            .send(
                Method::POST,
                &path,
                Some(&json!({"resourceType": "Bundle", "type": "batch"})),
                &[],
            )
            .await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{path}");
        anonymous.outcome();
        let get = fhir.get(&path).await;
        assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        get.outcome();
    }
}

#[tokio::test]
async fn unknown_paths_under_the_base_get_a_404_outcome_naming_them() {
    let (_ts, fhir) = launch("launch/patient user/*.rs").await;
    let patient = fhir.patient.clone().unwrap();
    for path in [
        format!("Patient/{patient}/_history/1/extra"),
        "a/b/c/d/e".to_owned(),
        "Patient/".to_owned(),
        "metadata/".to_owned(),
        "/".to_owned(),
    ] {
        for method in [Method::GET, Method::POST] {
            let answer = fhir
                .send(method.clone(), &format!("{}/{path}", fhir.base), None, &[])
                .await;
            assert_eq!(
                answer.status,
                StatusCode::NOT_FOUND,
                "{method} {path}: {}",
                answer.body
            );
            let message = answer.outcome();
            assert!(
                message.contains(&format!("/fhir/{path}")),
                "{method} {path}: {message}"
            );
            assert_eq!(answer.body["issue"][0]["code"], "not-found");
        }
    }
}
