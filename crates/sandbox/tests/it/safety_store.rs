//! The database file deleted under a running sandbox: writes are refused with 503 instead of vanishing into an
//! unlinked file, and the sign-in and token endpoints answer 503 as well.

use crate::common::{self, AuthRequest, Browser, Decision, SandboxCalls};
use crate::fhir_support::{patient_ids, session};
use crate::fhir_write::heart_rate;
use reqwest::{Method, StatusCode};
use sandbox::ClientSpec;
use url::Url;

#[tokio::test]
async fn a_database_file_deleted_while_running_refuses_writes_with_503() {
    let ts = common::start().await;
    let clinician = session(&ts, "launch/patient user/*.cruds").await;
    let patient = patient_ids(&ts).remove(0);
    let before = clinician
        .send(Method::POST, "Observation", Some(&heart_rate(&patient, 70)), &[])
        .await;
    assert_eq!(before.status, StatusCode::CREATED, "{}", before.body);
    let db = ts.dir.path().join("sandbox.db");
    std::fs::remove_file(&db).unwrap();
    let after = clinician
        .send(Method::POST, "Observation", Some(&heart_rate(&patient, 71)), &[])
        .await;
    assert_eq!(after.status, StatusCode::SERVICE_UNAVAILABLE, "{}", after.body);
    assert_eq!(after.body["resourceType"], "OperationOutcome");
    assert_eq!(after.body["issue"][0]["code"], "transient");
    assert!(after.headers.get("retry-after").is_some());
}

#[tokio::test]
async fn sign_in_and_token_endpoints_answer_503_when_the_database_file_is_gone() {
    let ts = common::start().await;
    ts.register(
        ClientSpec::public(common::APP, Url::parse(common::REDIRECT).unwrap())
            .with_launch_uri(Url::parse("http://127.0.0.1:9/launch").unwrap()),
    );
    // Before: a code waiting to be exchanged, and a browser on the sign-in page.
    let issued = AuthRequest::new(&ts, "launch/patient patient/*.rs");
    let back = common::authorize(&ts, &issued, Decision::Approve).await;
    let code = common::query(&back, "code").unwrap();
    let browser = Browser::new(&ts);
    let first = browser
        .get(&AuthRequest::new(&ts, "launch/patient patient/*.rs").url(&ts))
        .await;
    let sign_in = browser.get(&common::location(&first)).await;
    let html = sign_in.text().await.unwrap();
    let form = vec![
        ("txn".to_owned(), common::field(&html, "txn").unwrap()),
        ("csrf".to_owned(), common::field(&html, "csrf").unwrap()),
        ("user".to_owned(), common::field(&html, "user").unwrap()),
    ];

    std::fs::remove_file(ts.dir.path().join("sandbox.db")).unwrap();

    let pages = [
        browser
            .get(&AuthRequest::new(&ts, "launch/patient patient/*.rs").url(&ts))
            .await,
        browser.post("/auth/authorize/login", &form).await,
        browser
            .get("/launcher?launch_uri=http://127.0.0.1:9/launch")
            .await,
    ];
    for page in pages {
        let url = page.url().path().to_owned();
        assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE, "{url}");
        assert_eq!(page.headers()["retry-after"], "1", "{url}");
        let body = page.text().await.unwrap();
        assert!(body.contains("database file is gone"), "{url}: {body}");
    }
    let (status, body) = ts.exchange(&code, &issued.verifier).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("database file is gone")
    );
}
