//! Every way a launch can fail ends on a page that says what happened, with a fitting status.

use sandbox::config::SimulatedFailure;
use url::Url;

use crate::common::{Browser, Options, TestEnv, click_through_ehr, location, standalone_launch};
use crate::fake_ehr::{FakeEhr, IdTokenKind};

/// Starts a standalone launch and clicks through the EHR, stopping before the app's callback.
async fn launch_until_callback(env: &TestEnv, browser: &Browser, decision: &str) -> Url {
    let app_origin = env.app.url.origin();
    let ehr = browser
        .navigate_until("GET", env.url("/authorize"), None, |u| u.origin() != app_origin)
        .await;
    let first = browser.get(location(&ehr)).await;
    let back = click_through_ehr(browser, first, decision, &|u: &Url| u.origin() == app_origin).await;
    location(&back)
}

fn assert_error_page(page: &crate::common::Page, status: u16, words: &str) {
    assert_eq!(page.status, status, "{}", page.body);
    assert!(
        page.body.contains("Authorization Error") || page.body.contains("could not be reached"),
        "{}",
        page.body
    );
    assert!(page.body.contains(words), "expected {words:?} in {}", page.body);
    assert!(page.body.contains("Start over"));
}

#[tokio::test]
async fn access_denied_shows_an_authorization_error() {
    let env = TestEnv::start().await;
    let browser = Browser::new();
    let callback = launch_until_callback(&env, &browser, "deny").await;
    assert!(
        callback
            .query_pairs()
            .any(|(k, v)| k == "error" && v == "access_denied")
    );
    let page = browser.get(callback).await;
    assert_error_page(&page, 401, "access_denied");
    env.stop().await;
}

#[tokio::test]
async fn unknown_state_is_rejected() {
    let env = TestEnv::start().await;
    let browser = Browser::new();
    browser.get(env.url("/")).await;
    let page = browser
        .get(env.url("/fhir-app/?code=abc&state=never-issued"))
        .await;
    assert_error_page(&page, 400, "No launch is waiting");
    let page = browser.get(env.url("/fhir-app/?code=abc")).await;
    assert_error_page(&page, 400, "state");
    env.stop().await;
}

#[tokio::test]
async fn replayed_callback_is_rejected() {
    let env = TestEnv::start().await;
    let browser = Browser::new();
    let callback = launch_until_callback(&env, &browser, "approve").await;
    let first = browser.get(callback.clone()).await;
    assert!(first.body.contains("You are authorized"), "{}", first.body);
    let replay = browser.get(callback).await;
    assert_error_page(&replay, 400, "No launch is waiting");
    env.stop().await;
}

#[tokio::test]
async fn a_callback_from_another_browser_is_rejected() {
    let env = TestEnv::start().await;
    let victim = Browser::new();
    let attacker = Browser::new();
    let callback = launch_until_callback(&env, &attacker, "approve").await;
    // The attacker's code, delivered to the victim's browser (login CSRF): the state is bound to the
    // attacker's session, so the victim's session completes nothing.
    victim.get(env.url("/")).await;
    let page = victim.get(callback.clone()).await;
    assert_error_page(&page, 400, "No launch is waiting");
    let victim_home = victim.get(env.url("/")).await;
    assert!(!victim_home.body.contains("You are authorized"));
    env.stop().await;
}

#[tokio::test]
async fn token_endpoint_error_is_explained() {
    let env = TestEnv::start_with(Options {
        client: |c| c.with_failure(SimulatedFailure::TokenError),
        ..Options::default()
    })
    .await;
    let browser = Browser::new();
    let callback = launch_until_callback(&env, &browser, "approve").await;
    let page = browser.get(callback).await;
    assert_error_page(&page, 401, "token endpoint refused");
    assert!(page.body.contains("invalid_grant"), "{}", page.body);
    env.stop().await;
}

#[tokio::test]
async fn a_bad_id_token_is_refused() {
    for kind in [IdTokenKind::Malformed, IdTokenKind::WrongKey] {
        let ehr = FakeEhr::start(kind).await;
        let dir = tempfile::tempdir().unwrap();
        let config = app::AppConfig::for_issuer(ehr.fhir_base(), "fake-client", dir.path().join("s.db"));
        let app = app::start(config).await.unwrap();
        let browser = Browser::new();
        let home = browser.get(app.url.join("/").unwrap()).await;
        assert!(home.body.contains("href=\"/authorize\""), "{}", home.body);
        // The fake EHR approves at once and redirects back with a code.
        let page = browser.get(app.url.join("/authorize").unwrap()).await;
        assert_eq!(page.url.path(), "/fhir-app/");
        assert_error_page(&page, 401, "id_token could not be trusted");
        let home = browser.get(app.url.join("/").unwrap()).await;
        assert!(!home.body.contains("You are authorized"));
        app.shutdown().await;
        ehr.stop().await;
    }
}

#[tokio::test]
async fn an_ehr_launch_from_an_issuer_not_allowed_is_refused() {
    let env = TestEnv::start().await;
    let browser = Browser::new();
    let page = browser
        .get(env.url("/launch?iss=https%3A%2F%2Fevil.example%2Ffhir&launch=abc"))
        .await;
    assert_error_page(&page, 400, "not in this app's list of allowed issuers");
    let page = browser.get(env.url("/launch?launch=abc")).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("iss"));
    env.stop().await;
}

#[tokio::test]
async fn an_ehr_that_is_down_gets_a_clear_page() {
    // Nothing listens on this port once the listener is dropped.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let base = Url::parse(&format!("http://127.0.0.1:{port}/fhir")).unwrap();
    let app = app::start(app::AppConfig::for_issuer(base, "x", dir.path().join("s.db")))
        .await
        .unwrap();
    let browser = Browser::new();
    let page = browser.get(app.url.join("/").unwrap()).await;
    assert_eq!(page.status, 502, "{}", page.body);
    assert!(
        page.body.contains("The EHR could not be reached"),
        "{}",
        page.body
    );
    let page = browser.get(app.url.join("/authorize").unwrap()).await;
    assert_eq!(page.status, 502);
    app.shutdown().await;
}

#[tokio::test]
async fn a_failing_fhir_server_after_launch_gets_a_clear_page() {
    let env = TestEnv::start_with(Options {
        config: |c| c.summary_cache = std::time::Duration::ZERO,
        ..Options::default()
    })
    .await;
    let browser = Browser::new();
    let page = standalone_launch(&env, &browser).await;
    assert!(page.body.contains("You are authorized"));
    // The EHR goes away mid-session.
    let TestEnv {
        sandbox,
        app,
        dir: _dir,
        ..
    } = env;
    sandbox.shutdown().await;
    let page = browser.get(app.url.join("/").unwrap()).await;
    assert_eq!(page.status, 502, "{}", page.body);
    assert!(
        page.body.contains("The EHR could not be reached"),
        "{}",
        page.body
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_server_without_oauth_is_reported_as_such() {
    let ehr = FakeEhr::start(IdTokenKind::NoOAuth).await;
    let dir = tempfile::tempdir().unwrap();
    let app = app::start(app::AppConfig::for_issuer(
        ehr.fhir_base(),
        "x",
        dir.path().join("s.db"),
    ))
    .await
    .unwrap();
    let page = Browser::new().get(app.url.join("/").unwrap()).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Running against a no-auth server"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("href=\"/authorize\""));
    app.shutdown().await;
    ehr.stop().await;
}
