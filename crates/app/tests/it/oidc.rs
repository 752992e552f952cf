//! The app's side of SMART 2.2's client SHALLs and of issue 16's points 1 and 4: authorize by POST when the EHR
//! offers `authorize-post`, the public JWKS of a `private_key_jwt` app, the signed-in user read from
//! `fhirUser`, refreshes at most half a token's lifetime ahead, one `warn` line per failed launch, the
//! token-error page's link to `error_uri`, and a 404 page for unknown URLs.

use std::time::Duration;

use smart_launch::{SigningAlgorithm, SigningKey};

use crate::common::{Browser, Options, TestEnv, captured_logs, standalone_launch, stored_access_token};
use crate::fake_ehr::{FakeEhr, IdTokenKind, TOKEN_ERROR_URI};

#[tokio::test]
async fn the_authorize_request_is_posted_when_the_ehr_offers_authorize_post() {
    let env = TestEnv::start().await;
    let browser = Browser::new();
    browser.get(env.url("/")).await;
    let page = browser.request("GET", env.url("/authorize"), None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let forms = page.forms();
    let form = forms.iter().find(|f| f.method == "POST").expect("a POST form");
    assert_eq!(form.action, env.sandbox_url("/auth/authorize").as_str());
    let mut names: Vec<&str> = form.fields.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "aud",
            "client_id",
            "code_challenge",
            "code_challenge_method",
            "nonce",
            "redirect_uri",
            "response_type",
            "scope",
            "state"
        ]
    );
    // No inline script (the CSP forbids it): the same-origin file submits the form; the button works without.
    assert!(
        page.body
            .contains("<script src=\"/static/authorize-post.js\"></script>")
    );
    assert!(page.body.contains("type=\"submit\""));
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    let sandbox_origin = env.sandbox_url("/").origin().ascii_serialization();
    assert!(
        csp.contains(&format!("form-action 'self' {sandbox_origin}")),
        "{csp}"
    );
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline'; form"),
        "{csp}"
    );
    let script = browser
        .request("GET", env.url("/static/authorize-post.js"), None)
        .await;
    assert_eq!(script.status, 200);
    assert!(script.body.contains("submit()"));

    // The whole launch, through the form.
    let browser = Browser::new();
    let home = standalone_launch(&env, &browser).await;
    assert!(home.body.contains("You are authorized"), "{}", home.body);
    assert!(
        browser
            .visited
            .lock()
            .unwrap()
            .iter()
            .all(|u| !(u.path() == "/auth/authorize" && u.query().is_some())),
        "the launch parameters never travelled in a URL"
    );
    env.stop().await;
}

#[tokio::test]
async fn with_authorize_post_off_the_authorize_request_is_a_redirect() {
    let env = TestEnv::start_with(Options {
        config: |c| c.authorize_post = false,
        ..Options::default()
    })
    .await;
    let browser = Browser::new();
    let page = browser.request("GET", env.url("/authorize"), None).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let to = crate::common::location(&page);
    assert_eq!(to.path(), "/auth/authorize");
    assert!(to.query_pairs().any(|(k, _)| k == "code_challenge"));
    env.stop().await;
}

#[tokio::test]
async fn an_app_with_a_private_key_publishes_its_public_jwks() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(SigningAlgorithm::RS384, "app-key").unwrap();
    let path = dir.path().join("app-key.pem");
    std::fs::write(&path, key.private_key_pem()).unwrap();
    let base = url::Url::parse("http://127.0.0.1:9/fhir").unwrap();
    let mut config = app::AppConfig::for_issuer(base.clone(), "jwt-app", dir.path().join("s.db"));
    config.private_key = Some(path);
    let app = app::start(config).await.unwrap();
    let jwks_url = app.state.jwks_url().expect("a JWKS URL to register");
    assert_eq!(jwks_url, app.url.join("/.well-known/jwks.json").unwrap());
    let browser = Browser::new();
    let page = browser.request("GET", jwks_url, None).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["cache-control"], "public, max-age=3600");
    let doc: serde_json::Value = serde_json::from_str(&page.body).unwrap();
    let keys = doc["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], "app-key");
    assert_eq!(keys[0]["kty"], "RSA");
    assert!(keys[0].get("d").is_none(), "only the public key is published");
    app.shutdown().await;

    // Without a private key there is nothing to publish.
    let plain = app::start(app::AppConfig::for_issuer(
        base,
        "public-app",
        dir.path().join("t.db"),
    ))
    .await
    .unwrap();
    assert!(plain.state.jwks_url().is_none());
    let page = browser
        .request("GET", plain.url.join("/.well-known/jwks.json").unwrap(), None)
        .await;
    assert_eq!(page.status, 404);
    plain.shutdown().await;
}

#[tokio::test]
async fn the_signed_in_user_is_read_from_fhir_user_and_shown() {
    let env = TestEnv::start_with(Options {
        config: |c| {
            let scope = format!("{} user/Practitioner.rs", c.scope);
            c.scope = scope.parse().unwrap();
        },
        ..Options::default()
    })
    .await;
    let browser = Browser::new();
    let home = standalone_launch(&env, &browser).await;
    assert!(home.body.contains("You are authorized"), "{}", home.body);
    let data = crate::common::session_rows(&env.session_db())
        .into_iter()
        .find(|d| !d["launch"]["signed_in_user"].is_null())
        .unwrap();
    let user = &data["launch"]["signed_in_user"];
    let reference = user["reference"].as_str().unwrap();
    let (kind, id) = reference.split_once('/').unwrap();
    assert_eq!(kind, "Practitioner");
    let practitioner = env.sandbox.running.state.store().read(kind, id).unwrap().unwrap();
    let family = practitioner["name"][0]["family"].as_str().unwrap();
    let name = user["name"]
        .as_str()
        .expect("the Practitioner was read for its name");
    assert!(name.contains(family), "{name} / {practitioner}");
    assert!(home.body.contains("Signed in as"), "{}", home.body);
    assert!(
        home.body.contains(&maud::html! { (name) }.into_string()),
        "{}",
        home.body
    );
    env.stop().await;
}

#[tokio::test]
async fn a_page_view_with_twenty_second_tokens_refreshes_nothing() {
    let env = TestEnv::start_with(Options {
        token_ttl: Duration::from_secs(20),
        config: |c| c.summary_cache = Duration::ZERO,
        ..Options::default()
    })
    .await;
    let browser = Browser::new();
    let home = standalone_launch(&env, &browser).await;
    assert!(home.body.contains("You are authorized"), "{}", home.body);
    let token = stored_access_token(&env).unwrap();
    // A second page view: eight FHIR reads with a token in the first half of its 20 s life.
    let again = browser.get(env.url("/")).await;
    assert!(again.body.contains("You are authorized"), "{}", again.body);
    assert_eq!(
        stored_access_token(&env).unwrap(),
        token,
        "no refresh: the app refreshes at most half a lifetime ahead"
    );
    env.stop().await;
}

#[tokio::test]
async fn a_failed_launch_logs_one_warn_line_naming_the_reason() {
    let env = TestEnv::start().await;
    let browser = Browser::new();
    browser.get(env.url("/")).await;
    let state = "forged-state-7f3a9c21e4b8";
    let code = "stolen-code-5d2e8b71a9c4";
    let page = browser
        .get(env.url(&format!("/fhir-app/?code={code}&state={state}")))
        .await;
    assert_eq!(page.status, 400);
    let logs = captured_logs();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("launch failed") && l.contains("no pending launch for this state"))
        .collect();
    assert!(!lines.is_empty(), "{logs}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("WARN") && l.contains("stage=\"callback\"")),
        "{lines:?}"
    );
    assert!(
        !logs.contains(state) && !logs.contains(code),
        "a state or code reached the logs"
    );
    env.stop().await;
}

#[tokio::test]
async fn the_token_error_page_links_the_servers_error_uri() {
    crate::common::init_logs();
    let ehr = FakeEhr::start(IdTokenKind::TokenError).await;
    let dir = tempfile::tempdir().unwrap();
    let config = app::AppConfig::for_issuer(ehr.fhir_base(), "fake-client", dir.path().join("s.db"));
    let app = app::start(config).await.unwrap();
    let browser = Browser::new();
    browser.get(app.url.join("/").unwrap()).await;
    let page = browser.get(app.url.join("/authorize").unwrap()).await;
    assert_eq!(page.status, 401, "{}", page.body);
    assert!(page.body.contains("invalid_grant"), "{}", page.body);
    assert!(
        page.body.contains(&format!("href=\"{TOKEN_ERROR_URI}\"")),
        "{}",
        page.body
    );
    assert!(captured_logs().contains("token endpoint refused (HTTP 400, invalid_grant)"));
    app.shutdown().await;
    ehr.stop().await;
}

#[tokio::test]
async fn unknown_urls_get_a_404_page() {
    let env = TestEnv::start().await;
    let browser = Browser::new();
    for path in ["/no-such-page", "/fhir-app/extra", "/static/missing.css"] {
        let page = browser.get(env.url(path)).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(page.body.contains("Page not found"), "{}", page.body);
        assert!(page.body.contains("Start over"));
        assert!(
            page.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
    env.stop().await;
}
