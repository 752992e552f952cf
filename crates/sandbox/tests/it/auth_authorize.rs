//! `/authorize`: every rejection, the pages, deny.

use crate::common::*;
use reqwest::StatusCode;
use sandbox::{ClientSpec, SimulatedFailure};
use url::Url;

async fn redirect_error(ts: &TestSandbox, request: &AuthRequest) -> (String, Option<String>) {
    let response = ts.http.get(request.url(ts)).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "{}",
        response.text().await.unwrap()
    );
    let to = Url::parse(&location(&response)).unwrap();
    assert!(to.as_str().starts_with(REDIRECT), "{to}");
    assert!(query(&to, "code").is_none());
    (query(&to, "error").unwrap(), query(&to, "state"))
}

async fn error_page(ts: &TestSandbox, request: &AuthRequest) -> String {
    let response = ts.http.get(request.url(ts)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none());
    response.text().await.unwrap()
}

#[tokio::test]
async fn unknown_client_gets_an_error_page_not_a_redirect() {
    let ts = start().await;
    let page = error_page(
        &ts,
        &AuthRequest::new(&ts, "patient/*.rs").set("client_id", "nobody"),
    )
    .await;
    assert!(page.contains("nobody"), "{page}");
}

#[tokio::test]
async fn unregistered_redirect_uri_gets_an_error_page() {
    let ts = start().await;
    let prefixed =
        AuthRequest::new(&ts, "patient/*.rs").set("redirect_uri", "http://127.0.0.1:9/callback/evil");
    let page = error_page(&ts, &prefixed).await;
    assert!(page.contains("not registered"), "{page}");
    let other_host =
        AuthRequest::new(&ts, "patient/*.rs").set("redirect_uri", "http://attacker.example/callback");
    error_page(&ts, &other_host).await;
}

#[tokio::test]
async fn missing_pkce_is_refused_with_invalid_request() {
    let ts = start().await;
    let request = AuthRequest::new(&ts, "patient/*.rs")
        .without("code_challenge")
        .without("code_challenge_method");
    let (error, state) = redirect_error(&ts, &request).await;
    assert_eq!(error, "invalid_request");
    assert_eq!(state.as_deref(), Some("state-123"));
    let plain = AuthRequest::new(&ts, "patient/*.rs").set("code_challenge_method", "plain");
    assert_eq!(redirect_error(&ts, &plain).await.0, "invalid_request");
}

#[tokio::test]
async fn legacy_client_with_optional_pkce_completes_without_it() {
    let ts = start().await;
    ts.register(ClientSpec::public(APP, Url::parse(REDIRECT).unwrap()).with_pkce_optional());
    let request = AuthRequest::new(&ts, "launch/patient patient/Patient.read")
        .without("code_challenge")
        .without("code_challenge_method");
    let back = authorize(&ts, &request, Decision::Approve).await;
    let code = query(&back, "code").unwrap();
    let (status, body) = ts
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", APP),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn wrong_aud_is_refused() {
    let ts = start().await;
    let request = AuthRequest::new(&ts, "patient/*.rs").set("aud", "https://fhir.example/r4");
    assert_eq!(redirect_error(&ts, &request).await.0, "invalid_request");
    let missing = AuthRequest::new(&ts, "patient/*.rs").without("aud");
    assert_eq!(redirect_error(&ts, &missing).await.0, "invalid_request");
}

#[tokio::test]
async fn malformed_scope_is_refused_with_invalid_scope() {
    let ts = start().await;
    let request = AuthRequest::new(&ts, "patient/Observation.read \"quoted\"");
    assert_eq!(redirect_error(&ts, &request).await.0, "invalid_scope");
    let nothing_grantable = AuthRequest::new(&ts, "made_up_scope");
    assert_eq!(redirect_error(&ts, &nothing_grantable).await.0, "invalid_scope");
}

#[tokio::test]
async fn missing_state_is_refused() {
    let ts = start().await;
    let (error, state) = redirect_error(&ts, &AuthRequest::new(&ts, "patient/*.rs").without("state")).await;
    assert_eq!(error, "invalid_request");
    assert_eq!(state, None);
}

#[tokio::test]
async fn wrong_response_type_is_refused() {
    let ts = start().await;
    let request = AuthRequest::new(&ts, "patient/*.rs").set("response_type", "token");
    assert_eq!(redirect_error(&ts, &request).await.0, "unsupported_response_type");
}

#[tokio::test]
async fn launch_scope_without_launch_parameter_is_refused() {
    let ts = start().await;
    let request = AuthRequest::new(&ts, "launch patient/*.rs");
    assert_eq!(redirect_error(&ts, &request).await.0, "invalid_request");
    let unknown = AuthRequest::new(&ts, "launch patient/*.rs").set("launch", "no-such-launch");
    assert_eq!(redirect_error(&ts, &unknown).await.0, "invalid_request");
}

#[tokio::test]
async fn deny_redirects_with_access_denied_and_the_state() {
    let ts = start().await;
    let back = authorize(
        &ts,
        &AuthRequest::new(&ts, "launch/patient patient/*.rs"),
        Decision::Deny,
    )
    .await;
    assert_eq!(query(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(query(&back, "state").as_deref(), Some("state-123"));
    assert!(query(&back, "code").is_none());
}

#[tokio::test]
async fn authorize_accepts_post() {
    let ts = start().await;
    let request = AuthRequest::new(&ts, "launch/patient patient/*.rs");
    let browser = Browser::new(&ts);
    let first = browser.post("/auth/authorize", &request.params).await;
    let back = drive(&browser, first, REDIRECT, Decision::Approve).await;
    assert!(query(&back, "code").is_some());
}

#[tokio::test]
async fn forms_need_the_csrf_token_and_the_browser_cookie() {
    let ts = start().await;
    let request = AuthRequest::new(&ts, "launch/patient patient/*.rs");
    let browser = Browser::new(&ts);
    let first = browser.get(&request.url(&ts)).await;
    let page = browser.get(&location(&first)).await.text().await.unwrap();
    let txn = field(&page, "txn").unwrap();
    let user = field(&page, "user").unwrap();
    let forged = vec![
        ("txn".to_owned(), txn.clone()),
        ("csrf".to_owned(), "guess".to_owned()),
        ("user".to_owned(), user.clone()),
    ];
    let response = browser.post("/auth/authorize/login", &forged).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // The right token from another browser (no cookie) is refused too.
    let stranger = Browser::new(&ts);
    let stolen = vec![
        ("txn".to_owned(), txn),
        ("csrf".to_owned(), field(&page, "csrf").unwrap()),
        ("user".to_owned(), user),
    ];
    let response = stranger.post("/auth/authorize/login", &stolen).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn simulated_failures_of_a_client_apply_at_authorize() {
    let ts = start().await;
    ts.register(
        ClientSpec::public(APP, Url::parse(REDIRECT).unwrap()).with_failure(SimulatedFailure::InvalidScope),
    );
    assert_eq!(
        redirect_error(&ts, &AuthRequest::new(&ts, "patient/*.rs"))
            .await
            .0,
        "invalid_scope"
    );
    ts.register(
        ClientSpec::public(APP, Url::parse(REDIRECT).unwrap())
            .with_failure(SimulatedFailure::InvalidRedirect),
    );
    error_page(&ts, &AuthRequest::new(&ts, "patient/*.rs")).await;
    ts.register(
        ClientSpec::public(APP, Url::parse(REDIRECT).unwrap()).with_failure(SimulatedFailure::InvalidClient),
    );
    error_page(&ts, &AuthRequest::new(&ts, "patient/*.rs")).await;
}

#[tokio::test]
async fn open_registration_accepts_only_loopback_redirects() {
    let ts = start_with(|c| c.open_registration = true).await;
    let request = AuthRequest::new(&ts, "launch/patient patient/*.rs")
        .set("client_id", "walk-in")
        .set("redirect_uri", REDIRECT);
    let back = authorize(&ts, &request, Decision::Approve).await;
    assert!(query(&back, "code").is_some());
    // The same walk-in app restarted on another port.
    let moved = "http://localhost:7777/callback";
    let request = AuthRequest::new(&ts, "launch/patient patient/*.rs")
        .set("client_id", "walk-in")
        .set("redirect_uri", moved);
    let browser = Browser::new(&ts);
    let first = browser.get(&request.url(&ts)).await;
    let back = drive(&browser, first, moved, Decision::Approve).await;
    let code = query(&back, "code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", moved),
        ("code_verifier", request.verifier.as_str()),
        ("client_id", "walk-in"),
    ];
    assert_eq!(ts.token(&form).await.0, StatusCode::OK);
    let remote = AuthRequest::new(&ts, "patient/*.rs")
        .set("client_id", "remote")
        .set("redirect_uri", "https://app.example/cb");
    error_page(&ts, &remote).await;

    let closed = start().await;
    error_page(
        &closed,
        &AuthRequest::new(&closed, "patient/*.rs").set("client_id", "walk-in"),
    )
    .await;
}

#[tokio::test]
async fn consent_page_words_the_scopes() {
    let ts = start().await;
    let request = AuthRequest::new(&ts, "launch/patient patient/Observation.rs offline_access");
    let browser = Browser::new(&ts);
    let mut response = browser.get(&request.url(&ts)).await;
    let mut html = String::new();
    for _ in 0..6 {
        if response.status() == StatusCode::SEE_OTHER {
            response = browser.get(&location(&response)).await;
            continue;
        }
        html = response.text().await.unwrap();
        if post_action(&html).as_deref() == Some("/auth/authorize/consent") {
            break;
        }
        let action = post_action(&html).unwrap();
        let name = if action.ends_with("login") {
            "user"
        } else if action.ends_with("patient") {
            "patient"
        } else {
            "encounter"
        };
        let form = vec![
            ("txn".to_owned(), field(&html, "txn").unwrap()),
            ("csrf".to_owned(), field(&html, "csrf").unwrap()),
            (name.to_owned(), field(&html, name).unwrap()),
        ];
        response = browser.post(&action, &form).await;
    }
    assert!(
        html.contains("Read and search Observation records of the selected patient"),
        "{html}"
    );
    assert!(html.contains("offline access"), "{html}");
}

#[tokio::test]
async fn a_clinician_picks_the_patient_by_name() {
    let ts = start().await;
    let patients = ts.running.state.store().find_patients("", 10).unwrap();
    let wanted = patients
        .iter()
        .find(|p| p["name"][0]["family"].is_string())
        .expect("a patient with a family name");
    let (id, family) = (
        wanted["id"].as_str().unwrap(),
        wanted["name"][0]["family"].as_str().unwrap(),
    );

    let request = AuthRequest::new(&ts, "launch/patient user/*.rs");
    let browser = Browser::new(&ts);
    let first = browser.get(&request.url(&ts)).await;
    let step = location(&first);
    let login = browser.get(&step).await.text().await.unwrap();
    assert!(
        field(&login, "user").unwrap().starts_with("Practitioner/"),
        "user/ scopes sign in a clinician"
    );
    let form = vec![
        ("txn".to_owned(), field(&login, "txn").unwrap()),
        ("csrf".to_owned(), field(&login, "csrf").unwrap()),
        ("user".to_owned(), field(&login, "user").unwrap()),
    ];
    let picker = browser.post("/auth/authorize/login", &form).await;
    let search = format!("{}&name={family}", location(&picker));
    let html = browser.get(&search).await.text().await.unwrap();
    assert_eq!(post_action(&html).as_deref(), Some("/auth/authorize/patient"));
    assert!(html.contains(&format!("value=\"{id}\"")), "{html}");
    let nobody = browser
        .get(&format!("{}&name=zzzz-no-such-name", location(&picker)))
        .await
        .text()
        .await
        .unwrap();
    assert!(post_action(&nobody).is_none(), "no patient to choose: {nobody}");

    let form = vec![
        ("txn".to_owned(), field(&html, "txn").unwrap()),
        ("csrf".to_owned(), field(&html, "csrf").unwrap()),
        ("patient".to_owned(), id.to_owned()),
    ];
    let next = browser.post("/auth/authorize/patient", &form).await;
    let back = drive(&browser, next, REDIRECT, Decision::Approve).await;
    let (_, body) = ts
        .exchange(&query(&back, "code").unwrap(), &request.verifier)
        .await;
    assert_eq!(body["patient"], id);
    assert!(
        ts.check(body["access_token"].as_str().unwrap())
            .unwrap()
            .fhir_user
            .unwrap()
            .starts_with("Practitioner/")
    );
}

#[tokio::test]
async fn a_standalone_launch_with_launch_encounter_offers_the_patients_encounters() {
    let ts = start().await;
    let request = AuthRequest::new(&ts, "launch/patient launch/encounter patient/*.rs");
    let back = authorize(&ts, &request, Decision::Approve).await;
    let (_, body) = ts
        .exchange(&query(&back, "code").unwrap(), &request.verifier)
        .await;
    let encounter = body["encounter"]
        .as_str()
        .expect("the first encounter was chosen");
    let resource = ts
        .running
        .state
        .store()
        .read("Encounter", encounter)
        .unwrap()
        .unwrap();
    assert_eq!(
        resource["subject"]["reference"],
        format!("Patient/{}", body["patient"].as_str().unwrap())
    );
}

#[tokio::test]
async fn pages_are_not_cached_or_framed() {
    let ts = start().await;
    let browser = Browser::new(&ts);
    let first = browser
        .get(&AuthRequest::new(&ts, "launch/patient patient/*.rs").url(&ts))
        .await;
    let page = browser.get(&location(&first)).await;
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
}

/// A redirect back to the app: 303 to `prefix`.
async fn redirects_to(ts: &TestSandbox, request: &AuthRequest, prefix: &str) -> bool {
    let browser = Browser::new(ts);
    let first = browser.get(&request.url(ts)).await;
    if first.status() == StatusCode::BAD_REQUEST {
        return false;
    }
    drive(&browser, first, prefix, Decision::Approve)
        .await
        .as_str()
        .starts_with(prefix)
}

#[tokio::test]
async fn a_native_clients_loopback_ip_redirect_is_accepted_on_any_port() {
    let ts = start().await;
    ts.register(ClientSpec::public(
        "native",
        Url::parse("http://127.0.0.1/callback").unwrap(),
    ));
    ts.register(ClientSpec::public(
        "native6",
        Url::parse("http://[::1]:8765/callback").unwrap(),
    ));
    for (client, redirect) in [
        ("native", "http://127.0.0.1:54321/callback"),
        ("native", "http://127.0.0.1/callback"),
        ("native6", "http://[::1]:61023/callback"),
    ] {
        let request = AuthRequest::new(&ts, "openid patient/*.rs")
            .set("client_id", client)
            .set("redirect_uri", redirect);
        assert!(redirects_to(&ts, &request, redirect).await, "{client} {redirect}");
    }
    // The code goes with the exact redirect URI of its request (RFC 6749 §4.1.3), port included.
    let redirect = "http://127.0.0.1:40001/callback";
    let request = AuthRequest::new(&ts, "patient/*.rs")
        .set("client_id", "native")
        .set("redirect_uri", redirect);
    let browser = Browser::new(&ts);
    let first = browser.get(&request.url(&ts)).await;
    let back = drive(&browser, first, redirect, Decision::Approve).await;
    let code = query(&back, "code").unwrap();
    let exchange = |redirect: &str| {
        [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
            ("client_id", "native"),
            ("code_verifier", request.verifier.as_str()),
        ]
        .map(|(k, v)| (k, v.to_owned()))
    };
    let form = exchange("http://127.0.0.1:40002/callback");
    let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = ts.token(&refs).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
}

#[tokio::test]
async fn redirects_other_than_a_native_clients_loopback_ip_port_still_match_exactly() {
    let ts = start().await;
    ts.register(ClientSpec::public(
        "native",
        Url::parse("http://127.0.0.1:8765/callback").unwrap(),
    ));
    ts.register(ClientSpec::public(
        "named",
        Url::parse("http://localhost:8765/callback").unwrap(),
    ));
    ts.register(
        ClientSpec::public(
            "confidential",
            Url::parse("http://127.0.0.1:8765/callback").unwrap(),
        )
        .with_secret("s3cret-s3cret-s3cret"),
    );
    for (client, redirect) in [
        // another path, query or scheme on the loopback IP
        ("native", "http://127.0.0.1:1234/callback/evil"),
        ("native", "http://127.0.0.1:1234/callback?next=x"),
        ("native", "https://127.0.0.1:1234/callback"),
        // another loopback address than the registered literal
        ("native", "http://127.0.0.2:1234/callback"),
        ("native", "http://[::1]:8765/callback"),
        // a host name is not an IP literal (RFC 8252 §8.3)
        ("named", "http://localhost:1234/callback"),
        // a confidential client is not a native app
        ("confidential", "http://127.0.0.1:1234/callback"),
    ] {
        let request = AuthRequest::new(&ts, "patient/*.rs")
            .set("client_id", client)
            .set("redirect_uri", redirect);
        let page = error_page(&ts, &request).await;
        assert!(page.contains("not registered"), "{client} {redirect}: {page}");
    }
}
