//! Log-out and reset revoke the launch's tokens at the EHR (RFC 7009), and still log out when the
//! EHR's revocation endpoint fails.

use crate::common::{
    Browser, Page, TestEnv, captured_logs, standalone_launch, stored_access_token, stored_refresh_token,
    tokens_in,
};

/// The CSRF token of the page's forms.
fn csrf_of(page: &Page) -> String {
    page.forms()
        .iter()
        .flat_map(|f| f.fields.iter())
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.clone())
        .expect("no csrf field")
}

/// The sandbox token endpoint's answer (status, `error`) to a refresh with `refresh_token`.
async fn refresh_at_the_ehr(env: &TestEnv, refresh_token: &str) -> (u16, Option<String>) {
    let response = reqwest::Client::new()
        .post(env.sandbox_url("/auth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", crate::common::CLIENT_ID),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (status, body["error"].as_str().map(str::to_owned))
}

/// The sandbox FHIR server's status for a read of the Patient list with `access_token`.
async fn fhir_status_with(env: &TestEnv, access_token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!(
            "{}/Patient",
            env.sandbox.fhir_base.as_str().trim_end_matches('/')
        ))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A launch, then a POST of its CSRF token to `path`; the tokens the session held are returned.
async fn launch_then_post(env: &TestEnv, path: &str) -> (String, String) {
    let browser = Browser::new();
    let page = standalone_launch(env, &browser).await;
    assert!(page.body.contains("You are authorized"), "{}", page.body);
    let refresh = stored_refresh_token(env).expect("the launch has a refresh token");
    let access = stored_access_token(env).unwrap();
    assert_eq!(
        fhir_status_with(env, &access).await,
        200,
        "the access token works"
    );
    let done = browser
        .request("POST", env.url(path), Some(vec![("csrf".into(), csrf_of(&page))]))
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    (refresh, access)
}

#[tokio::test]
async fn logout_revokes_the_tokens_at_the_ehr() {
    let env = TestEnv::start().await;
    let (refresh, access) = launch_then_post(&env, "/logout").await;
    let (status, error) = refresh_at_the_ehr(&env, &refresh).await;
    assert_eq!(status, 400);
    assert_eq!(error.as_deref(), Some("invalid_grant"));
    assert_eq!(
        fhir_status_with(&env, &access).await,
        401,
        "the access token is revoked too"
    );
    env.stop().await;
}

#[tokio::test]
async fn reset_revokes_the_tokens_at_the_ehr() {
    let env = TestEnv::start().await;
    let (refresh, access) = launch_then_post(&env, "/reset").await;
    let (status, error) = refresh_at_the_ehr(&env, &refresh).await;
    assert_eq!(status, 400);
    assert_eq!(error.as_deref(), Some("invalid_grant"));
    assert_eq!(fhir_status_with(&env, &access).await, 401);
    env.stop().await;
}

#[tokio::test]
async fn logout_completes_when_the_revocation_endpoint_does_not_answer() {
    let env = TestEnv::start().await;
    let browser = Browser::new();
    let page = standalone_launch(&env, &browser).await;
    assert!(page.body.contains("You are authorized"), "{}", page.body);
    let secrets = tokens_in(&env.session_db());
    assert!(secrets.len() >= 2, "access and refresh tokens stored");
    let logout = env.url("/logout");
    let session_db = env.session_db();

    // The EHR goes away; in its place a listener that takes connections and never answers.
    let TestEnv {
        sandbox, app, dir, ..
    } = env;
    let addr = sandbox.addr;
    sandbox.shutdown().await;
    let _silent = tokio::net::TcpListener::bind(addr).await.unwrap();

    let done = browser
        .request("POST", logout, Some(vec![("csrf".into(), csrf_of(&page))]))
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(crate::common::location(&done).path(), "/");
    assert!(
        tokens_in(&session_db).is_empty(),
        "the session no longer holds the launch"
    );
    let logs = captured_logs();
    assert!(
        logs.contains("logging out anyway"),
        "the failed revocation was logged"
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a token ({} chars) reached the logs",
            secret.len()
        );
    }
    app.shutdown().await;
    drop(dir);
}
