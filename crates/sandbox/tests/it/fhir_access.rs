//! Scopes on FHIR requests: the patient compartment, v2 category constraints, types not granted, simulated
//! failures.

use crate::common;
use crate::fhir_support::{CATEGORY, Fhir, launch, patient_ids, patient_of, session};
use reqwest::StatusCode;

#[tokio::test]
async fn patient_scopes_never_reveal_another_patients_data() {
    let (ts, fhir) = launch("launch/patient patient/*.rs").await;
    let mine = fhir.patient.clone().unwrap();
    let other = patient_ids(&ts).into_iter().find(|p| *p != mine).unwrap();

    let answer = fhir.get(&format!("Patient/{other}")).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.outcome().contains("compartment"));

    // Searching for the other patient's data finds nothing; searching without a patient finds only mine.
    assert_eq!(fhir.ok(&format!("Observation?patient={other}")).await.total(), 0);
    assert_eq!(fhir.ok(&format!("Patient?_id={other}")).await.total(), 0);
    let (total, all) = fhir.all_pages("Observation?_count=100").await;
    assert!(total > 0);
    assert!(
        all.iter()
            .all(|o| patient_of(o).as_deref() == Some(mine.as_str()))
    );
    let patients = fhir.ok("Patient").await;
    assert_eq!(patients.total(), 1);

    // A direct read of another patient's observation is refused, not served.
    let store = ts.running.state.store();
    let encounter = &store.encounters_for_patient(&other, 1).unwrap()[0];
    let id = encounter["id"].as_str().unwrap();
    let answer = fhir.get(&format!("Encounter/{id}")).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.body.get("period").is_none());
    let answer = fhir.get(&format!("Encounter/{id}/_history/1")).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    // Shared resources (practitioners) remain readable.
    assert!(fhir.ok("Practitioner").await.total() >= 5);
}

#[tokio::test]
async fn category_constraints_filter_searches_and_refuse_reads() {
    let ts = common::start().await;
    let scope =
        format!("launch/patient patient/Patient.rs patient/Observation.rs?category={CATEGORY}|vital-signs");
    let fhir = session(&ts, &scope).await;
    let mine = fhir.patient.clone().unwrap();
    let full = session(&ts, "launch/patient user/*.rs").await;
    let all = full
        .ok(&format!("Observation?patient={mine}&_count=0"))
        .await
        .total();
    let vitals = full
        .ok(&format!(
            "Observation?patient={mine}&category=vital-signs&_count=0"
        ))
        .await
        .total();
    assert!(vitals < all);

    let (total, seen) = fhir
        .all_pages(&format!("Observation?patient={mine}&_count=100"))
        .await;
    assert_eq!(total, vitals);
    assert!(
        seen.iter()
            .all(|o| o["category"][0]["coding"][0]["code"] == "vital-signs")
    );
    assert_eq!(
        fhir.ok(&format!("Observation?patient={mine}&category=laboratory"))
            .await
            .total(),
        0
    );

    let lab = full
        .ok(&format!(
            "Observation?patient={mine}&category=laboratory&_count=1"
        ))
        .await
        .resources("match");
    let lab_id = lab[0]["id"].as_str().unwrap();
    let answer = fhir.get(&format!("Observation/{lab_id}")).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.outcome().contains("constraints"));
    let vital_id = seen[0]["id"].as_str().unwrap();
    fhir.ok(&format!("Observation/{vital_id}")).await;

    // Types the token was not granted are refused.
    let answer = fhir.get(&format!("Condition?patient={mine}")).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.outcome().contains("Condition"));
    // $everything leaves out what the scopes do not allow.
    let (_, everything) = fhir
        .all_pages(&format!("Patient/{mine}/$everything?_count=200"))
        .await;
    assert!(everything.iter().all(|r| r["resourceType"] != "Condition"));
    assert_eq!(
        everything
            .iter()
            .filter(|r| r["resourceType"] == "Observation")
            .count() as u64,
        vitals
    );
}

#[tokio::test]
async fn a_missing_scope_is_named_in_the_www_authenticate_challenge() {
    let (ts, fhir) = launch("launch/patient patient/Patient.rs").await;
    let mine = fhir.patient.clone().unwrap();
    let other = patient_ids(&ts).into_iter().find(|p| *p != mine).unwrap();

    let search = fhir.get(&format!("Observation?patient={mine}")).await;
    assert_eq!(search.status, StatusCode::FORBIDDEN);
    assert_eq!(
        search.header("www-authenticate"),
        Some(
            r#"Bearer realm="smart-fhir-sandbox", error="insufficient_scope", error_description="The access token does not have the scope this request needs", scope="patient/Observation.s""#
        )
    );
    assert!(
        search.outcome().contains("patient/Observation.s"),
        "the body is kept"
    );

    let full = session(&ts, "launch/patient user/*.rs").await;
    let observation = full
        .ok(&format!(
            "Observation?patient={}&_count=1",
            full.patient.as_deref().unwrap()
        ))
        .await;
    let id = observation.resources("match")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let read = fhir.get(&format!("Observation/{id}")).await;
    assert_eq!(read.status, StatusCode::FORBIDDEN);
    let challenge = read.header("www-authenticate").unwrap();
    assert!(
        challenge.contains(r#"scope="patient/Observation.r""#),
        "{challenge}"
    );

    // A refusal no scope of this context would lift (another patient's record) carries no challenge.
    let outside = fhir.get(&format!("Patient/{other}")).await;
    assert_eq!(outside.status, StatusCode::FORBIDDEN);
    assert!(outside.outcome().contains("compartment"));
    assert_eq!(outside.header("www-authenticate"), None);
}

#[tokio::test]
async fn simulated_failures_answer_with_the_requested_status() {
    let ts = common::start_with(|config| {
        config.clients = vec![
            format!("id={},redirect={},fail=fhir_429", common::APP, common::REDIRECT)
                .parse()
                .unwrap(),
        ];
    })
    .await;
    let fhir: Fhir = session(&ts, "launch/patient patient/*.rs").await;
    let answer = fhir.get("Patient").await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(answer.header("retry-after").is_some());
    answer.outcome();
    // The CapabilityStatement needs no token and is not affected.
    fhir.ok("metadata").await;
}
