//! The happy paths: standalone and EHR launch, the patient page, the inspector.

use url::Url;

use crate::common::{
    Browser, Options, TestEnv, click_through_ehr, launcher_url, location, standalone_launch,
};

#[tokio::test]
async fn standalone_launch_shows_the_patient_summary() {
    let env = TestEnv::start().await;
    let browser = Browser::new();
    let page = standalone_launch(&env, &browser).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.url.path(), "/");
    assert!(
        page.body
            .contains("You are authorized and ready to make API requests for <em>"),
        "{}",
        page.body
    );
    // The seed's "Change patient" is a POST to /logout with a CSRF token.
    assert!(page.body.contains("action=\"/logout\""));
    assert!(page.body.contains("name=\"csrf\""));
    // The summary: banner, charts, each section.
    assert!(page.body.contains("aria-label=\"Patient\""), "banner missing");
    assert!(page.body.contains("<svg"), "no chart drawn");
    for section in [
        "Vital signs",
        "Recent labs",
        "Active conditions",
        "Active medications",
        "Allergies",
        "Immunizations",
        "Recent encounters",
    ] {
        assert!(page.body.contains(section), "section {section} missing");
    }
    assert!(
        !page.body.contains("not shared with this app"),
        "every scope was granted"
    );
    // The same page at /index.html, as in the seed.
    let again = browser.get(env.url("/index.html")).await;
    assert!(again.body.contains("You are authorized"));
    env.stop().await;
}

#[tokio::test]
async fn ehr_launch_through_the_sandbox_launcher() {
    let env = TestEnv::start().await;
    let browser = Browser::new();
    // The sandbox's launch page lists patients and clinicians; launch our client with the first ones.
    let mut launcher = launcher_url(&browser, &env.sandbox_url("/")).await;
    launcher
        .query_pairs_mut()
        .append_pair("need_patient_banner", "false");
    let app_origin = env.app.url.origin();
    // The launcher sends the browser to the app's /launch?iss=…&launch=…
    let to_app = browser
        .navigate_until("GET", launcher, None, |u| u.origin() == app_origin)
        .await;
    let launch_url = location(&to_app);
    assert_eq!(launch_url.path(), "/launch");
    // The sandbox offers authorize-post: the app answers with the form its script submits.
    let form_page = browser.request("GET", launch_url, None).await;
    assert_eq!(form_page.status, 200, "{}", form_page.body);
    let form = form_page
        .forms()
        .into_iter()
        .find(|f| f.method == "POST")
        .expect("the authorize-post form");
    let field = |name: &str| {
        form.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let scope = field("scope").unwrap();
    assert!(
        scope.split(' ').any(|s| s == "launch"),
        "EHR launch asks for `launch`: {scope}"
    );
    assert!(field("launch").is_some());
    let action = form_page.url.join(&form.action).unwrap();
    let first = browser.navigate("POST", action, Some(form.fields.clone())).await;
    let back = click_through_ehr(&browser, first, "approve", &|u: &Url| u.origin() == app_origin).await;
    let page = browser.get(location(&back)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("You are authorized"), "{}", page.body);
    // need_patient_banner=false: the EHR shows its own banner, so the app does not.
    assert!(!page.body.contains("aria-label=\"Patient\""));
    let inspect = browser.get(env.url("/inspect")).await;
    assert!(inspect.body.contains("EHR launch"));
    env.stop().await;
}

#[tokio::test]
async fn the_inspector_shows_the_launch_but_never_a_token() {
    let env = TestEnv::start().await;
    let browser = Browser::new();
    standalone_launch(&env, &browser).await;
    let page = browser.get(env.url("/inspect")).await;
    assert_eq!(page.status, 200);
    for expected in [
        "Server endpoints",
        "Requested",
        "Granted",
        "Launch context",
        "id_token claims",
        "expires in",
        "fhirUser",
    ] {
        assert!(
            page.body.contains(expected),
            "{expected} missing from the inspector"
        );
    }
    let tokens = crate::common::stored_tokens(&env);
    assert!(!tokens.is_empty());
    for token in tokens {
        assert!(!page.body.contains(&token), "a token value reached the inspector");
    }
    env.stop().await;
}

#[tokio::test]
async fn sections_whose_scope_was_not_granted_say_so() {
    let env = TestEnv::start_with(Options {
        config: |c| {
            c.scope = "launch/patient openid fhirUser patient/Patient.rs patient/Observation.rs"
                .parse()
                .unwrap();
        },
        ..Options::default()
    })
    .await;
    let browser = Browser::new();
    let page = standalone_launch(&env, &browser).await;
    assert!(page.body.contains("You are authorized"), "{}", page.body);
    assert!(
        page.body.contains("Allergies not shared with this app."),
        "{}",
        page.body
    );
    assert!(page.body.contains("Immunizations not shared with this app."));
    assert!(page.body.contains("<svg"), "vital signs were shared");
    env.stop().await;
}

#[tokio::test]
async fn the_session_files_show_no_token_and_only_their_owner_reads_them() {
    let env = TestEnv::start().await;
    let browser = Browser::new();
    standalone_launch(&env, &browser).await;
    let tokens = crate::common::stored_tokens(&env);
    assert!(tokens.len() >= 2, "access and refresh tokens stored");
    // The raw bytes of the database and its write-ahead log, as a copy of the disk would have them.
    let db = env.session_db();
    let mut dump = Vec::new();
    for suffix in ["", "-wal"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        if let Ok(bytes) = std::fs::read(&path) {
            dump.extend(bytes);
        }
    }
    let dump = String::from_utf8_lossy(&dump);
    assert!(dump.contains("v1."), "sealed rows are there");
    for token in &tokens {
        assert!(
            !dump.contains(token.as_str()),
            "a token is readable in the session files"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the database is readable by its owner alone");
        let key = app::session::key_file_beside(&db);
        assert_eq!(
            std::fs::metadata(key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    env.stop().await;
}
