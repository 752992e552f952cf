//! Full standalone and EHR launches against each persona of the sandbox (`smart`, `cerner`, `epic`): the
//! client must cope with what Oracle Health and Epic document — Cerner's separate authorization host, its
//! issuer found only through `openid-configuration`, refreshes without a new refresh token; Epic's lower-case
//! `bearer`, API-name scopes and string booleans.

use sandbox::Persona;
use smart_launch::{CompletedLaunch, ScopeSet, SmartClient, SmartClientConfig, Url};

use crate::common::{APP, TestSandbox};

const SCOPE: &str =
    "launch/patient openid fhirUser offline_access patient/Patient.read patient/Observation.rs";

/// The sandbox as `persona`, served by the test harness's listener at the persona's base path.
async fn start(persona: Persona) -> (TestSandbox, Url) {
    let ts = TestSandbox::start_with(|config| {
        let mut base = config.public_base_url.clone().expect("the harness names a base");
        base.set_path(&persona.fhir_path());
        *config = config.clone().with_persona(persona);
        config.public_base_url = Some(base);
    })
    .await;
    let base = ts.running.fhir_base.clone();
    (ts, base)
}

fn client(base: &Url, scope: &str) -> SmartClient {
    let config = SmartClientConfig::new(APP, TestSandbox::redirect(), ScopeSet::parse(scope).unwrap())
        .allow_issuer(base.clone());
    SmartClient::new(config).unwrap()
}

async fn standalone(persona: Persona) -> (TestSandbox, SmartClient, CompletedLaunch) {
    let (ts, base) = start(persona).await;
    let client = client(&base, SCOPE);
    let (request, pending) = client.standalone_launch(&base).await.unwrap();
    let redirect = ts.approve(&request).await;
    let launch = client
        .complete_from_url(pending, &redirect)
        .await
        .unwrap_or_else(|e| panic!("{persona}: the standalone launch failed: {e}"));
    (ts, client, launch)
}

#[tokio::test]
async fn a_standalone_launch_against_the_smart_persona_completes_with_a_verified_id_token() {
    let (_ts, _client, launch) = standalone(Persona::Smart).await;
    assert!(launch.context.patient.is_some());
    assert!(launch.id_token_claims.is_some());
}

#[tokio::test]
async fn a_standalone_launch_against_the_cerner_persona_verifies_the_id_token_of_its_oidc_issuer() {
    let (_ts, _client, launch) = standalone(Persona::Cerner).await;
    assert!(launch.context.patient.is_some());
    let claims = launch.id_token_claims.as_ref().expect("a verified id_token");
    assert!(claims.iss.contains("/oidc/idsps/"), "{}", claims.iss);
    assert_eq!(launch.fhir_user.as_ref().unwrap().resource_type, "Patient");
}

#[tokio::test]
async fn refreshing_against_the_cerner_persona_keeps_the_refresh_token_it_does_not_replace() {
    let (_ts, client, launch) = standalone(Persona::Cerner).await;
    let first = launch
        .tokens
        .refresh_token
        .clone()
        .expect("offline_access gives a refresh token");
    let refreshed = client.refresh(&launch.tokens).await.unwrap();
    assert_ne!(refreshed.access_token, launch.tokens.access_token);
    let kept = refreshed
        .refresh_token
        .clone()
        .expect("the old refresh token is kept");
    assert_eq!(kept.secret(), first.secret());
    // And it still works.
    client.refresh(&refreshed).await.unwrap();
}

#[tokio::test]
async fn a_standalone_launch_against_the_epic_persona_reads_its_token_response() {
    let (_ts, _client, launch) = standalone(Persona::Epic).await;
    assert!(launch.context.patient.is_some());
    assert!(launch.id_token_claims.is_some());
    assert!(launch.tokens.expires_at.is_some());
}

#[tokio::test]
async fn an_ehr_launch_completes_against_every_persona() {
    for persona in Persona::ALL {
        let (ts, base) = start(persona).await;
        let (patient, encounter) = ts.a_patient_with_an_encounter();
        let (iss, launch_id) = ts
            .ehr_launch(&[("patient", &patient), ("encounter", &encounter)])
            .await;
        assert_eq!(iss, base.as_str().trim_end_matches('/'), "{persona}");
        let client = client(&base, "launch openid fhirUser patient/Patient.read");
        let (request, pending) = client.ehr_launch(&iss, &launch_id).await.unwrap();
        let redirect = ts.approve(&request).await;
        let launch = client
            .complete_from_url(pending, &redirect)
            .await
            .unwrap_or_else(|e| panic!("{persona}: the EHR launch failed: {e}"));
        assert_eq!(
            launch.context.patient.as_deref(),
            Some(patient.as_str()),
            "{persona}"
        );
        assert_eq!(
            launch.context.encounter.as_deref(),
            Some(encounter.as_str()),
            "{persona}"
        );
    }
}
