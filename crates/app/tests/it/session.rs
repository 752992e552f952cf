//! Sessions: cookie flags, id rotation at login, CSRF on POSTs, logout and reset, restart, refresh.

use std::time::Duration;

use crate::common::{Browser, Options, TestEnv, standalone_launch, stored_access_token};

fn session_cookie(page: &crate::common::Page) -> Option<String> {
    page.set_cookies()
        .into_iter()
        .find(|c| c.starts_with("smart_fhir_session="))
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("smart_fhir_session=")
        .to_owned()
}

fn csrf_of(page: &crate::common::Page) -> String {
    let forms = page.forms();
    forms
        .iter()
        .flat_map(|f| f.fields.iter())
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.clone())
        .expect("no csrf field")
}

#[tokio::test]
async fn the_cookie_is_http_only_lax_and_holds_only_an_id_rotated_at_login() {
    let env = TestEnv::start().await;
    let browser = Browser::new();
    // A page view stores nothing, so it sets no cookie; starting a launch does (the launch waits in it).
    let start = browser.request("GET", env.url("/"), None).await;
    assert!(session_cookie(&start).is_none(), "no cookie for a page view");
    let ehr = browser.request("GET", env.url("/authorize"), None).await;
    let before = session_cookie(&ehr).expect("a session cookie once a launch is started");
    assert!(
        before.contains("HttpOnly") && before.contains("SameSite=Lax"),
        "{before}"
    );
    assert!(
        !before.contains("Secure"),
        "plain http: no Secure flag ({before})"
    );
    let before = cookie_value(&before);
    assert_eq!(before.len(), 43, "256 random bits, base64url");

    // Complete the launch, watching the callback's answer for the rotated cookie.
    let app_origin = env.app.url.origin();
    let entry = crate::common::ehr_entry(&browser, &ehr).await;
    assert_ne!(entry.origin(), app_origin, "{ehr:?}");
    let first_ehr = browser.get(entry).await;
    let back = crate::common::click_through_ehr(&browser, first_ehr, "approve", &|u: &url::Url| {
        u.origin() == app_origin
    })
    .await;
    let callback = browser.request("GET", crate::common::location(&back), None).await;
    assert_eq!(callback.status, 303);
    let after = cookie_value(&session_cookie(&callback).expect("a new session cookie after login"));
    assert_ne!(before, after, "the session id is rotated at login");
    // The old id is worthless now.
    let stale = Browser::new();
    let stale_page = stale
        .client
        .get(env.url("/"))
        .header("cookie", format!("smart_fhir_session={before}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!stale_page.contains("You are authorized"));
    // The token lives in the database, never in the cookie.
    let token = stored_access_token(&env).expect("tokens stored server-side");
    assert!(!after.contains(&token));
    env.stop().await;
}

#[tokio::test]
async fn secure_cookies_when_the_public_url_is_https() {
    let env = TestEnv::start_with(Options {
        config: |c| c.public_url = Some(url::Url::parse("https://app.example.org/").unwrap()),
        ..Options::default()
    })
    .await;
    let browser = Browser::new();
    assert_eq!(env.app.url.as_str(), "https://app.example.org/");
    // The app itself listens on plain http behind the (imagined) TLS proxy; ask it directly.
    let direct = url::Url::parse(&format!("http://{}/authorize", env.app.addr)).unwrap();
    let page = browser.request("GET", direct, None).await;
    let cookie = session_cookie(&page).unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    env.stop().await;
}

#[tokio::test]
async fn logout_and_reset_need_a_post_with_the_csrf_token() {
    let env = TestEnv::start().await;
    let browser = Browser::new();
    let page = standalone_launch(&env, &browser).await;
    let csrf = csrf_of(&page);

    // GET shows a confirm page and changes nothing.
    let confirm = browser.get(env.url("/logout")).await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("method=\"post\""));
    assert!(
        browser
            .get(env.url("/"))
            .await
            .body
            .contains("You are authorized")
    );

    // A POST without (or with a wrong) token is refused.
    let refused = browser.request("POST", env.url("/logout"), Some(vec![])).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let refused = browser
        .request(
            "POST",
            env.url("/logout"),
            Some(vec![("csrf".into(), "forged".into())]),
        )
        .await;
    assert_eq!(refused.status, 403);
    assert!(
        browser
            .get(env.url("/"))
            .await
            .body
            .contains("You are authorized")
    );

    // With the token: logged out, back at the authorize link.
    let done = browser
        .navigate("POST", env.url("/logout"), Some(vec![("csrf".into(), csrf)]))
        .await;
    assert_eq!(done.status, 200);
    assert!(done.body.contains("href=\"/authorize\""), "{}", done.body);
    assert!(!done.body.contains("You are authorized"));

    // Reset deletes the session and its cookie.
    let csrf = csrf_of(&done);
    let reset = browser
        .request("POST", env.url("/reset"), Some(vec![("csrf".into(), csrf)]))
        .await;
    assert_eq!(reset.status, 303);
    let cleared = session_cookie(&reset).unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    env.stop().await;
}

#[tokio::test]
async fn a_restarted_app_keeps_the_session() {
    let mut env = TestEnv::start().await;
    let browser = Browser::new();
    let page = standalone_launch(&env, &browser).await;
    assert!(page.body.contains("You are authorized"));
    env.restart_app().await;
    // New process state, same SQLite file; cookies do not care about the port.
    let page = browser.get(env.url("/")).await;
    assert!(page.body.contains("You are authorized"), "{}", page.body);
    env.stop().await;
}

#[tokio::test]
async fn an_expired_token_is_refreshed() {
    let env = TestEnv::start_with(Options {
        token_ttl: Duration::from_secs(2),
        config: |c| c.summary_cache = Duration::ZERO,
        ..Options::default()
    })
    .await;
    let browser = Browser::new();
    let page = standalone_launch(&env, &browser).await;
    assert!(page.body.contains("You are authorized"));
    let first = stored_access_token(&env).unwrap();
    // Past the token's lifetime by the app's clock.
    env.clock.advance(Duration::from_secs(3));
    let page = browser.get(env.url("/")).await;
    assert!(page.body.contains("You are authorized"), "{}", page.body);
    let second = stored_access_token(&env).unwrap();
    assert_ne!(first, second, "the refreshed token set is stored in the session");
    env.stop().await;
}

#[tokio::test]
async fn an_expired_token_without_refresh_starts_the_launch_again() {
    let env = TestEnv::start_with(Options {
        token_ttl: Duration::from_secs(5),
        config: |c| {
            c.summary_cache = Duration::ZERO;
            // No offline_access / online_access: no refresh token.
            c.scope = "launch/patient openid fhirUser patient/*.rs".parse().unwrap();
        },
        ..Options::default()
    })
    .await;
    let browser = Browser::new();
    let page = standalone_launch(&env, &browser).await;
    assert!(page.body.contains("You are authorized"), "{}", page.body);
    env.clock.advance(Duration::from_secs(6));
    let page = browser.request("GET", env.url("/"), None).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(crate::common::location(&page).path(), "/authorize");
    env.stop().await;
}

/// The session cookie the browser holds for the app.
fn jar_session(jar: &reqwest::cookie::Jar, env: &TestEnv) -> String {
    use reqwest::cookie::CookieStore as _;
    let header = jar.cookies(&env.url("/")).expect("a cookie for the app");
    header
        .to_str()
        .unwrap()
        .split(';')
        .map(str::trim)
        .find(|c| c.starts_with("smart_fhir_session="))
        .expect("the session cookie")
        .to_owned()
}

/// `GET /` with exactly this cookie, from a client without a jar (as someone holding a copied cookie).
async fn get_with_cookie(env: &TestEnv, cookie: &str) -> crate::common::Page {
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(env.url("/"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    crate::common::Page {
        url: env.url("/"),
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

/// A launch in `browser`, then the browser's session cookie, checked to show the patient on its own
/// (after which the app holds the session in memory).
async fn launch_and_copy_cookie(
    env: &TestEnv,
    browser: &Browser,
    jar: &reqwest::cookie::Jar,
) -> (crate::common::Page, String) {
    let page = standalone_launch(env, browser).await;
    let cookie = jar_session(jar, env);
    let copied = get_with_cookie(env, &cookie).await;
    assert!(copied.body.contains("You are authorized"), "{}", copied.body);
    (page, cookie)
}

/// A POST of the page's CSRF token to `path` (`/logout`, `/reset`).
async fn post_csrf(env: &TestEnv, browser: &Browser, page: &crate::common::Page, path: &str) -> u16 {
    browser
        .request("POST", env.url(path), Some(vec![("csrf".into(), csrf_of(page))]))
        .await
        .status
}

#[tokio::test]
async fn a_logged_out_or_reset_session_is_not_served_again() {
    let env = TestEnv::start().await;
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let browser = Browser::with_jar(jar.clone());

    // Log out: the same cookie, from anywhere, no longer shows the patient; the session itself stays.
    let (page, cookie) = launch_and_copy_cookie(&env, &browser, &jar).await;
    assert_eq!(post_csrf(&env, &browser, &page, "/logout").await, 303);
    let after_logout = get_with_cookie(&env, &cookie).await;
    assert!(
        !after_logout.body.contains("You are authorized"),
        "{}",
        after_logout.body
    );
    assert!(
        session_cookie(&after_logout).is_none(),
        "the logged-out session still exists (no new cookie)"
    );

    // Reset: the session is gone, so the old cookie starts a new one.
    let (page, cookie) = launch_and_copy_cookie(&env, &browser, &jar).await;
    assert_eq!(post_csrf(&env, &browser, &page, "/reset").await, 303);
    let after_reset = get_with_cookie(&env, &cookie).await;
    assert!(
        !after_reset.body.contains("You are authorized"),
        "{}",
        after_reset.body
    );
    assert!(
        session_cookie(&after_reset).is_none(),
        "an unknown id is a stranger: nothing is stored for it, no cookie is set"
    );
    env.stop().await;
}
