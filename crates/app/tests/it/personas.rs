//! The app against each persona of the sandbox (`smart`, `cerner`, `epic`): full standalone and EHR launches,
//! through to the patient page — the EHRs' documented quirks (Cerner's separate authorization host and OIDC
//! issuer, string ranks and data-absent lab categories; Epic's lower-case `bearer`, API-name scopes, string
//! booleans and OperationOutcome entries in searches) must not stop it.

use sandbox::Persona;
use url::Url;

use crate::common::{
    Browser, Options, TestEnv, captured_logs, click_through_ehr, launcher_url, location, param,
    standalone_launch, start_sandbox,
};

async fn start(persona: Persona) -> TestEnv {
    let sandbox = start_sandbox(|config| *config = config.clone().with_persona(persona)).await;
    TestEnv::start_on(sandbox, Options::default()).await
}

async fn standalone_shows_the_patient_page(persona: Persona) {
    {
        let env = start(persona).await;
        let browser = Browser::new();
        let page = standalone_launch(&env, &browser).await;
        assert_eq!(page.status, 200, "{persona}: {}", page.body);
        assert!(
            page.body.contains("You are authorized"),
            "{persona}: {}",
            page.body
        );
        assert!(
            page.body.contains("aria-label=\"Patient\""),
            "{persona}: no banner"
        );
        assert!(page.body.contains("Recent labs"), "{persona}");
        // Step F of the timeline says what was read and what did not fit R4 as sent.
        let timeline = browser.get(env.url("/inspect/timeline")).await;
        assert!(timeline.body.contains("Resources read: Patient"), "{persona}");
        assert!(timeline.body.contains("Resources read: Observation"), "{persona}");
        if persona == Persona::Cerner {
            // fhir.cerner.com's Patient example sends `telecom[].rank` as the string "1": read converted, and said.
            assert!(
                timeline.body.contains("Reading problem")
                    && timeline.body.contains("Patient read: Patient.telecom[0].rank"),
                "the string rank is reported in F: {}",
                timeline.body
            );
        }
        env.stop().await;
    }
}

async fn ehr_launch_shows_the_patient_page(persona: Persona) {
    {
        let env = start(persona).await;
        let browser = Browser::new();
        let launcher = launcher_url(&browser, &env.sandbox_url("/")).await;
        let app_origin = env.app.url.origin();
        let to_app = browser
            .navigate_until("GET", launcher, None, |u| u.origin() == app_origin)
            .await;
        let launch_url = location(&to_app);
        let iss = param(&launch_url, "iss").unwrap();
        assert_eq!(
            iss,
            env.sandbox.fhir_base.as_str().trim_end_matches('/'),
            "{persona}"
        );
        let to_ehr = browser
            .navigate_until("GET", launch_url, None, |u| u.origin() != app_origin)
            .await;
        let first = browser.get(location(&to_ehr)).await;
        let back = click_through_ehr(&browser, first, "approve", &|u: &Url| u.origin() == app_origin).await;
        let page = browser.get(location(&back)).await;
        assert_eq!(page.status, 200, "{persona}: {}", page.body);
        assert!(
            page.body.contains("You are authorized"),
            "{persona}: {}",
            page.body
        );
        env.stop().await;
    }
}

#[tokio::test]
async fn a_standalone_launch_against_the_smart_persona_shows_the_patient_page() {
    standalone_shows_the_patient_page(Persona::Smart).await;
}

#[tokio::test]
async fn a_standalone_launch_against_the_cerner_persona_shows_the_patient_page() {
    standalone_shows_the_patient_page(Persona::Cerner).await;
}

#[tokio::test]
async fn a_standalone_launch_against_the_epic_persona_shows_the_patient_page() {
    standalone_shows_the_patient_page(Persona::Epic).await;
}

#[tokio::test]
async fn an_ehr_launch_against_the_smart_persona_shows_the_patient_page() {
    ehr_launch_shows_the_patient_page(Persona::Smart).await;
}

#[tokio::test]
async fn an_ehr_launch_against_the_cerner_persona_shows_the_patient_page() {
    ehr_launch_shows_the_patient_page(Persona::Cerner).await;
}

#[tokio::test]
async fn an_ehr_launch_against_the_epic_persona_shows_the_patient_page() {
    ehr_launch_shows_the_patient_page(Persona::Epic).await;
}

#[tokio::test]
async fn epic_api_name_scopes_fall_back_to_the_requested_scopes_with_a_warning() {
    // The Epic persona grants with API names ("openid Patient.read Patient.search …", as fhir.epic.com's
    // OAuth 2.0 specification shows): the app must not read that as "nothing granted".
    let env = start(Persona::Epic).await;
    let browser = Browser::new();
    let page = standalone_launch(&env, &browser).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        !page.body.contains("not shared with this app"),
        "every section is asked for and shown: {}",
        page.body
    );
    assert!(page.body.contains("Recent labs"));
    let logs = captured_logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("WARN") && l.contains("not SMART scope syntax")),
        "one warn line says the granted scopes were not understood"
    );
    env.stop().await;
}
