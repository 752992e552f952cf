//! The launch timeline (`/inspect/timeline`): every step of a real launch against the sandbox, and
//! not one of the launch's secrets on the page or in the stored session.

use url::Url;

use crate::common::{
    Browser, Options, TestEnv, click_through_ehr, location, opened_rows, param, stored_tokens,
};

const SECRET: &str = "timeline-client-s3cr3t";

/// The rows `sql` selects as (row key, sealed data), opened, as text.
fn rows(env: &TestEnv, sql: &str) -> Vec<String> {
    opened_rows(&env.session_db(), sql)
        .into_iter()
        .map(|plain| String::from_utf8(plain).unwrap())
        .collect()
}

/// The stored timelines of every session row, as JSON text.
fn stored_timelines(env: &TestEnv) -> Vec<String> {
    rows(env, "SELECT id_hash, data FROM sessions")
        .iter()
        .filter_map(|row| {
            let data: serde_json::Value = serde_json::from_str(row).unwrap();
            (!data["timeline"].is_null()).then(|| data["timeline"].to_string())
        })
        .collect()
}

#[tokio::test]
async fn a_launch_shows_every_step_and_no_secret_on_the_timeline_or_in_the_session() {
    let env = TestEnv::start_with(Options {
        client: |c| c.with_secret(SECRET),
        config: |c| {
            c.client_secret = Some(smart_launch::ClientSecret::new(SECRET));
            // The authorize request as a redirect, so the test reads its parameters from the URL.
            c.authorize_post = false;
        },
        ..Options::default()
    })
    .await;
    let browser = Browser::new();
    let app_origin = env.app.url.origin();
    let ehr = browser
        .navigate_until("GET", env.url("/authorize"), None, |u| u.origin() != app_origin)
        .await;
    let authorize = location(&ehr);
    let mut secrets = vec![SECRET.to_owned()];
    for name in ["state", "code_challenge", "nonce"] {
        secrets.push(param(&authorize, name).unwrap_or_else(|| panic!("no {name} in {authorize}")));
    }
    let pending = rows(&env, "SELECT state_hash, data FROM pending_launches");
    assert_eq!(pending.len(), 1);
    let pending: serde_json::Value = serde_json::from_str(&pending[0]).unwrap();
    secrets.push(pending["pending"]["pkce_verifier"].as_str().unwrap().to_owned());

    let first = browser.get(authorize).await;
    let back = click_through_ehr(&browser, first, "approve", &|u: &Url| u.origin() == app_origin).await;
    let callback = location(&back);
    secrets.push(param(&callback, "code").unwrap());
    let landed = browser.request("GET", callback, None).await;
    assert_eq!(landed.status, 303, "{}", landed.body);
    let summary = browser.get(env.url("/")).await;
    assert!(
        summary.body.contains("/inspect/timeline"),
        "the summary links to the timeline"
    );
    let tokens = stored_tokens(&env);
    assert!(tokens.len() >= 2, "access and id tokens are stored: {tokens:?}");
    for token in &tokens {
        secrets.extend(token.split('.').filter(|p| p.len() > 16).map(str::to_owned));
        secrets.push(token.clone());
    }

    let page = browser.get(env.url("/inspect/timeline")).await;
    assert_eq!(page.status, 200);
    for expected in [
        "Discovery",
        "A. Authorization request",
        "B. Authorization grant",
        "C. Token request",
        "D. Access token",
        "client_secret_basic",
        "code_challenge_method",
        "S256",
        "(fingerprint)",
        "[redacted]",
        "id_token: signature valid",
        "No step failed.",
        "E. Resource requests",
        "F. Protected resource",
        "Bearer [redacted]",
        "/fhir/Patient/",
        "Vital signs: charts",
        "Diagnostic reports: rows",
        "Resources read: Patient",
        "Resources read: Observation",
        "Reading problems",
        "none: everything read fit the FHIR R4 model",
        "https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-authorization-code",
        "https://www.rfc-editor.org/rfc/rfc7636",
    ] {
        assert!(
            page.body.contains(expected),
            "{expected} missing from the timeline"
        );
    }
    let order: Vec<usize> = ["A. ", "B. ", "C. ", "D. ", "E. ", "F. "]
        .iter()
        .map(|h| page.body.find(&format!(">{h}")).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "steps out of order");
    let timelines = stored_timelines(&env);
    assert_eq!(timelines.len(), 1, "the timeline is stored in the session");
    let all_rows = rows(&env, "SELECT id_hash, data FROM sessions").join("\n");
    for secret in &secrets {
        assert!(
            !page.body.contains(secret.as_str()),
            "a secret reached the timeline page"
        );
        assert!(
            !timelines[0].contains(secret.as_str()),
            "a secret is in the stored timeline"
        );
    }
    // Beside the tokens the session must keep, the row holds no code, verifier, state or secret. (The
    // nonce, index 3, is in the verified id_token claims the launch record keeps: spent, checked above
    // to be absent from the timeline.)
    for (i, secret) in secrets.iter().take(6).enumerate().filter(|(i, _)| *i != 3) {
        assert!(
            !all_rows.contains(secret.as_str()),
            "launch secret {i} is in the session row"
        );
    }
    let inspect = browser.get(env.url("/inspect")).await;
    assert!(inspect.body.contains("href=\"/inspect/timeline\""));
    env.stop().await;
}

#[tokio::test]
async fn a_wrong_state_ends_the_timeline_at_b_with_the_reason() {
    let env = TestEnv::start().await;
    let browser = Browser::new();
    let app_origin = env.app.url.origin();
    let ehr = browser
        .navigate_until("GET", env.url("/authorize"), None, |u| u.origin() != app_origin)
        .await;
    let first = browser.get(location(&ehr)).await;
    let back = click_through_ehr(&browser, first, "approve", &|u: &Url| u.origin() == app_origin).await;
    let mut callback = location(&back);
    let code = param(&callback, "code").unwrap();
    callback.set_query(Some(&format!("code={code}&state=forged-state")));
    let refused = browser.get(callback).await;
    assert!(refused.status >= 400);
    let page = browser.get(env.url("/inspect/timeline")).await;
    assert!(
        page.body.contains("A. Authorization request"),
        "the steps before are kept"
    );
    assert!(page.body.contains("The launch failed at"));
    assert!(page.body.contains("no pending launch for this state"));
    let failed_at = page.body.find("Failed: ").unwrap();
    assert!(page.body.find(">B. Authorization grant").unwrap() < failed_at);
    assert!(!page.body.contains(">C. "), "nothing after the failing step");
    assert!(!page.body.contains(&code) && !page.body.contains("forged-state"));
    env.stop().await;
}

#[tokio::test]
async fn a_server_without_discovery_ends_the_timeline_at_discovery() {
    let env = TestEnv::start_with(Options {
        config: |c| {
            let base = c.fhir_base.clone();
            c.fhir_base = base.join("/no-fhir-here/").unwrap();
        },
        ..Options::default()
    })
    .await;
    let browser = Browser::new();
    let refused = browser.get(env.url("/authorize")).await;
    assert!(refused.status >= 400, "{}", refused.status);
    let page = browser.get(env.url("/inspect/timeline")).await;
    assert!(
        page.body
            .contains("The launch failed at <strong>Discovery</strong>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("discovery failed at"));
    assert!(!page.body.contains(">A. "));
    env.stop().await;
}
