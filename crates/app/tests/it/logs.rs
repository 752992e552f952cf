//! The logs of a full launch hold no token, code, state or secret.

use crate::common::{
    Browser, Options, TestEnv, captured_logs, click_through_ehr, location, param, stored_tokens,
};

#[tokio::test]
async fn a_full_launch_logs_no_token_code_or_secret() {
    const SECRET: &str = "s3cret-client-secret-value";
    let env = TestEnv::start_with(Options {
        client: |c| c.with_secret(SECRET),
        config: |c| c.client_secret = Some(smart_launch::ClientSecret::new(SECRET)),
        ..Options::default()
    })
    .await;
    let browser = Browser::new();
    let app_origin = env.app.url.origin();
    let ehr = browser
        .navigate_until("GET", env.url("/authorize"), None, |u| u.origin() != app_origin)
        .await;
    let first = browser.get(location(&ehr)).await;
    let back = click_through_ehr(&browser, first, "approve", &|u: &url::Url| {
        u.origin() == app_origin
    })
    .await;
    let callback = location(&back);
    let code = param(&callback, "code").unwrap();
    let state = param(&callback, "state").unwrap();
    let page = browser.get(callback).await;
    assert!(page.body.contains("You are authorized"), "{}", page.body);
    browser.get(env.url("/inspect")).await;

    let logs = captured_logs();
    assert!(logs.contains("launch completed"), "the launch was logged");
    assert!(
        logs.contains("/fhir-app/"),
        "the callback request was logged (its path)"
    );
    let mut secrets = stored_tokens(&env);
    assert!(secrets.len() >= 2, "access and refresh tokens stored");
    secrets.extend([code, state, SECRET.to_owned()]);
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret value ({} chars) reached the logs",
            secret.len()
        );
    }
    env.stop().await;
}
