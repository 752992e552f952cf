//! The authorization server's smaller holes closed: the picker cannot swap in another patient, a launch neither
//! signs anyone in nor works twice, the launcher redirects only to registered launch URLs, a bearer token
//! introspects only its own client's tokens, every answer says `nosniff`, and request spans carry no query values.

use crate::common::*;
use reqwest::StatusCode;
use sandbox::ClientSpec;
use std::sync::{Arc, Mutex, OnceLock};
use url::Url;

const LAUNCH_URL: &str = "http://127.0.0.1:9/launch";

fn app_with_launch(ts: &TestSandbox) {
    ts.register(
        ClientSpec::public(APP, Url::parse(REDIRECT).unwrap())
            .with_launch_uri(Url::parse(LAUNCH_URL).unwrap()),
    );
}

fn ids(values: Vec<serde_json::Value>) -> Vec<String> {
    values
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `/launcher?…` as the EHR's browser would; returns the `launch` id.
async fn launcher(ts: &TestSandbox, query_string: &str) -> String {
    let response = ts
        .http
        .get(ts.url(&format!("/launcher?{query_string}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    query(&Url::parse(&location(&response)).unwrap(), "launch").unwrap()
}

#[tokio::test]
async fn a_patient_signed_in_cannot_pick_another_patient() {
    let ts = start().await;
    let patients = ids(ts.running.state.store().find_patients("", 2).unwrap());
    let (a, b) = (&patients[0], &patients[1]);
    let request = AuthRequest::new(&ts, "launch/patient patient/*.rs openid fhirUser");
    let browser = Browser::new(&ts);
    let step = location(&browser.get(&request.url(&ts)).await);
    let login = browser.get(&step).await.text().await.unwrap();
    let keys = |html: &str| {
        vec![
            ("txn".to_owned(), field(html, "txn").unwrap()),
            ("csrf".to_owned(), field(html, "csrf").unwrap()),
        ]
    };
    let mut form = keys(&login);
    form.push(("user".into(), format!("Patient/{a}")));
    let after = browser.post("/auth/authorize/login", &form).await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    let consent = browser.get(&location(&after)).await.text().await.unwrap();
    // The form a picker would post, by hand, naming B.
    let mut swap = keys(&consent);
    swap.push(("patient".into(), b.clone()));
    let refused = browser.post("/auth/authorize/patient", &swap).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    // The authorization goes on for A only.
    let first = browser.get(&step).await;
    let back = drive(&browser, first, REDIRECT, Decision::Approve).await;
    let (status, body) = ts
        .exchange(&query(&back, "code").unwrap(), &request.verifier)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["patient"], a.as_str());
}

#[tokio::test]
async fn a_patient_cannot_sign_in_to_an_ehr_launch_for_another_patient() {
    let ts = start().await;
    app_with_launch(&ts);
    let patients = ids(ts.running.state.store().find_patients("", 2).unwrap());
    let launch = launcher(&ts, &format!("client_id={APP}&patient={}", patients[0])).await;
    let request = AuthRequest::new(&ts, "launch patient/*.rs").set("launch", &launch);
    let browser = Browser::new(&ts);
    let step = location(&browser.get(&request.url(&ts)).await);
    let login = browser.get(&step).await.text().await.unwrap();
    let form = vec![
        ("txn".to_owned(), field(&login, "txn").unwrap()),
        ("csrf".to_owned(), field(&login, "csrf").unwrap()),
        ("user".to_owned(), format!("Patient/{}", patients[1])),
    ];
    let refused = browser.post("/auth/authorize/login", &form).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_launch_that_presets_a_clinician_still_asks_who_signs_in() {
    let ts = start().await;
    app_with_launch(&ts);
    let store = ts.running.state.store();
    let patient = ids(store.find_patients("", 1).unwrap()).remove(0);
    let second = ids(store.list_practitioners(2).unwrap()).remove(1);
    let launch = launcher(
        &ts,
        &format!("client_id={APP}&patient={patient}&practitioner={second}"),
    )
    .await;
    let request = AuthRequest::new(&ts, "launch openid fhirUser user/*.rs").set("launch", &launch);
    let browser = Browser::new(&ts);
    let step = location(&browser.get(&request.url(&ts)).await);
    let page = browser.get(&step).await.text().await.unwrap();
    // The sign-in page, not the consent page, with the launch's clinician offered first.
    assert_eq!(
        post_action(&page).as_deref(),
        Some("/auth/authorize/login"),
        "{page}"
    );
    assert_eq!(field(&page, "user").unwrap(), format!("Practitioner/{second}"));
    let first = browser.get(&step).await;
    let back = drive(&browser, first, REDIRECT, Decision::Approve).await;
    let (_, body) = ts
        .exchange(&query(&back, "code").unwrap(), &request.verifier)
        .await;
    let grant = ts.check(body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(grant.fhir_user.unwrap(), format!("Practitioner/{second}"));
}

#[tokio::test]
async fn a_launch_id_is_good_for_one_authorization() {
    let ts = start().await;
    app_with_launch(&ts);
    let patient = ids(ts.running.state.store().find_patients("", 1).unwrap()).remove(0);
    let launch = launcher(&ts, &format!("client_id={APP}&patient={patient}")).await;
    let first = AuthRequest::new(&ts, "launch patient/*.rs").set("launch", &launch);
    let back = authorize(&ts, &first, Decision::Approve).await;
    assert!(query(&back, "code").is_some(), "{back}");
    let again = AuthRequest::new(&ts, "launch patient/*.rs").set("launch", &launch);
    let back = authorize(&ts, &again, Decision::Approve).await;
    assert_eq!(
        query(&back, "error").as_deref(),
        Some("invalid_request"),
        "{back}"
    );
    assert!(query(&back, "code").is_none());
}

#[tokio::test]
async fn the_launcher_redirects_only_to_registered_launch_urls() {
    let ts = start().await;
    app_with_launch(&ts);
    for unregistered in [
        "http://127.0.0.1:4444/steal",
        "http://localhost:9/launch",
        "http://[::1]/x",
    ] {
        let response = ts
            .http
            .get(ts.url(&format!("/launcher?launch_uri={unregistered}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{unregistered}");
        assert!(response.headers().get("location").is_none());
    }
    launcher(&ts, &format!("launch_uri={LAUNCH_URL}")).await;
}

#[tokio::test]
async fn a_bearer_token_introspects_only_its_own_clients_tokens() {
    let ts = start().await;
    let other = "other-app";
    ts.register(ClientSpec::public(other, Url::parse(REDIRECT).unwrap()));
    let mine = launch_and_exchange(&ts, "launch/patient patient/*.rs").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let request = AuthRequest::new(&ts, "launch/patient patient/*.rs").set("client_id", other);
    let back = authorize(&ts, &request, Decision::Approve).await;
    let (status, theirs) = ts
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &query(&back, "code").unwrap()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &request.verifier),
            ("client_id", other),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{theirs}");
    let theirs = theirs["access_token"].as_str().unwrap().to_owned();
    let introspect = |token: String| {
        let (ts, mine) = (&ts, mine.clone());
        async move {
            let response = ts
                .http
                .post(ts.url("/auth/introspect"))
                .bearer_auth(mine)
                .form(&[("token", token)])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<serde_json::Value>().await.unwrap()
        }
    };
    let own = introspect(mine.clone()).await;
    assert_eq!(own["active"], true);
    assert_eq!(own["client_id"], APP);
    let foreign = introspect(theirs).await;
    assert_eq!(foreign, serde_json::json!({ "active": false }));
}

#[tokio::test]
async fn every_answer_says_nosniff() {
    let ts = start().await;
    let token = launch_and_exchange(&ts, "launch/patient patient/*.rs").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = ts.aud();
    let answers = [
        ts.http.get(format!("{base}/metadata")).send().await.unwrap(),
        ts.http
            .get(format!("{base}/Patient"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
        ts.http.get(format!("{base}/Patient")).send().await.unwrap(),
        ts.http
            .get(format!("{base}/Nope/1"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
        ts.http.get(ts.url("/")).send().await.unwrap(),
        ts.http.get(ts.url("/auth/authorize")).send().await.unwrap(),
        ts.http
            .get(ts.url("/.well-known/smart-configuration"))
            .send()
            .await
            .unwrap(),
        ts.http.get(ts.url("/no/such/page")).send().await.unwrap(),
    ];
    for answer in answers {
        assert_eq!(
            answer
                .headers()
                .get("x-content-type-options")
                .map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{} {}",
            answer.url(),
            answer.status()
        );
    }
}

/// Everything the process logs at `debug`, spans included, from the first call on.
fn debug_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_ansi(false)
            .with_writer(move || Writer(writer.clone()))
            .try_init();
        buffer
    })
    .clone()
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn request_spans_at_debug_carry_the_path_not_the_query() {
    let logs = debug_logs();
    let ts = start().await;
    let request = AuthRequest::new(&ts, "launch/patient patient/*.rs").set("state", "state-SECRET-4711");
    let back = authorize(&ts, &request, Decision::Approve).await;
    let code = query(&back, "code").unwrap();
    // The code as a query value, as a careless client might send it.
    let _ = ts
        .http
        .get(ts.url(&format!("/auth/authorize?code={code}")))
        .send()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(text.contains("/auth/authorize"), "the spans name the path");
    assert!(!text.contains("state-SECRET-4711"), "a state value was logged");
    assert!(!text.contains(&code), "a code was logged");
    assert!(!text.contains("txn="), "a txn was logged");
}
