//! `Patient/[id]/$everything` with `start`, `end` and `_since`: what they keep, what they leave out, that every
//! page link carries them, and 400 OperationOutcomes for values that are not dates or instants.

use crate::fhir_support::{Answer, Fhir, launch};
use crate::fhir_write::heart_rate;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// `Patient/{id}/$everything?{params}`, form-encoded.
fn everything(patient: &str, params: &[(&str, &str)]) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("Patient/{patient}/$everything?{query}")
}

fn reference(resource: &Value) -> String {
    format!(
        "{}/{}",
        resource["resourceType"].as_str().unwrap(),
        resource["id"].as_str().unwrap()
    )
}

/// Every resource of every page (following `next`), as `Type/id`.
async fn references(fhir: &Fhir, path: &str) -> BTreeSet<String> {
    let (total, all) = fhir.all_pages(path).await;
    assert_eq!(total as usize, all.len(), "{path}");
    all.iter().map(reference).collect()
}

async fn create(fhir: &Fhir, resource: Value) -> Value {
    let resource_type = resource["resourceType"].as_str().unwrap().to_owned();
    let created = fhir
        .send(Method::POST, &resource_type, Some(&resource), &[])
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    created.body
}

fn encounter(patient: &str, start: &str, end: &str) -> Value {
    json!({
        "resourceType": "Encounter",
        "status": "finished",
        "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB" },
        "subject": { "reference": format!("Patient/{patient}") },
        "period": { "start": start, "end": end }
    })
}

/// A Condition with no onset, recorded or abatement date: it has no care date.
fn undated_condition(patient: &str) -> Value {
    json!({
        "resourceType": "Condition",
        "code": { "text": "Undated worry" },
        "subject": { "reference": format!("Patient/{patient}") }
    })
}

fn observation_at(patient: &str, when: &str) -> Value {
    let mut observation = heart_rate(patient, 72);
    observation["effectiveDateTime"] = json!(when);
    observation
}

/// The care date text of an Encounter or Observation (`None` for other types).
fn care_date(resource: &Value) -> Option<&str> {
    match resource["resourceType"].as_str()? {
        "Encounter" => resource["period"]["start"].as_str(),
        "Observation" => resource["effectiveDateTime"].as_str(),
        _ => None,
    }
}

#[tokio::test]
async fn since_keeps_what_changed_at_or_after_it_and_always_the_patient() {
    let (_ts, fhir) = launch("launch/patient user/*.cruds").await;
    let patient = fhir.patient.clone().unwrap();
    let everything_now = references(&fhir, &everything(&patient, &[("_count", "1000")])).await;
    assert!(everything_now.len() > 10);

    let future = fhir
        .ok(&everything(&patient, &[("_since", "2999-01-01T00:00:00Z")]))
        .await;
    assert_eq!(future.total(), 1, "{}", future.body);
    assert_eq!(
        reference(&future.resources("match")[0]),
        format!("Patient/{patient}")
    );

    let long_ago = references(
        &fhir,
        &everything(
            &patient,
            &[("_since", "2000-01-01T01:00:00+01:00"), ("_count", "1000")],
        ),
    )
    .await;
    assert_eq!(long_ago, everything_now);

    // A change made now: `_since` its own lastUpdated finds it (at, not only after) and nothing older.
    let created = create(&fhir, heart_rate(&patient, 66)).await;
    let last_updated = created["meta"]["lastUpdated"].as_str().unwrap();
    let changed = references(&fhir, &everything(&patient, &[("_since", last_updated)])).await;
    assert_eq!(
        changed,
        BTreeSet::from([format!("Patient/{patient}"), reference(&created)])
    );
}

#[tokio::test]
async fn start_and_end_narrow_dated_resources_and_keep_undated_ones() {
    let (_ts, fhir) = launch("launch/patient user/*.cruds").await;
    let patient = fhir.patient.clone().unwrap();
    let may = create(
        &fhir,
        encounter(&patient, "1990-05-10T09:00:00Z", "1990-05-10T10:00:00Z"),
    )
    .await;
    let may_observation = create(&fhir, observation_at(&patient, "1990-05-20T09:00:00Z")).await;
    let july = create(
        &fhir,
        encounter(&patient, "1990-07-01T09:00:00Z", "1990-07-01T10:00:00Z"),
    )
    .await;
    let undated = create(&fhir, undated_condition(&patient)).await;
    let all = fhir
        .ok(&everything(&patient, &[("_count", "1000")]))
        .await
        .resources("match");

    let in_may = fhir
        .ok(&everything(
            &patient,
            &[("start", "1990-05"), ("end", "1990-05-31"), ("_count", "1000")],
        ))
        .await
        .resources("match");
    let found: BTreeSet<String> = in_may.iter().map(reference).collect();
    for expected in [&may, &may_observation, &undated] {
        assert!(found.contains(&reference(expected)), "{found:?}");
    }
    assert!(found.contains(&format!("Patient/{patient}")));
    assert!(!found.contains(&reference(&july)));
    assert!(
        in_may.iter().any(|r| r["resourceType"] == "Practitioner"),
        "practitioners have no care date, so they stay"
    );
    for resource in &in_may {
        if let Some(date) = care_date(resource) {
            assert!(date.starts_with("1990-05"), "{resource}");
        }
    }
    assert!(in_may.len() < all.len());
    let encounters = all.iter().filter(|r| r["resourceType"] == "Encounter").count();
    assert!(encounters > 2);

    // Open-ended: `start` alone keeps everything from then on, `end` alone everything up to it.
    let from_june: BTreeSet<String> = fhir
        .ok(&everything(&patient, &[("start", "1990-06"), ("_count", "1000")]))
        .await
        .resources("match")
        .iter()
        .map(reference)
        .collect();
    assert!(from_june.contains(&reference(&july)) && from_june.contains(&reference(&undated)));
    assert!(!from_june.contains(&reference(&may)) && !from_june.contains(&reference(&may_observation)));
    assert_eq!(
        all.iter()
            .filter(|r| r["resourceType"] == "Encounter")
            .filter(|r| from_june.contains(&reference(r)))
            .count(),
        encounters - 1,
        "every Encounter but May's"
    );
    let to_mid_may: Vec<Value> = fhir
        .ok(&everything(
            &patient,
            &[("end", "1990-05-15"), ("_count", "1000")],
        ))
        .await
        .resources("match");
    let dated: BTreeSet<String> = to_mid_may
        .iter()
        .filter(|r| care_date(r).is_some())
        .map(reference)
        .collect();
    assert_eq!(dated, BTreeSet::from([reference(&may)]));
}

/// Asserts that the `self`, `next` and `previous` links of `page` carry `params`.
fn assert_links_keep(page: &Answer, params: &[(&str, &str)]) {
    let links = page.body["link"].as_array().unwrap();
    for link in links {
        let url = url::Url::parse(link["url"].as_str().unwrap()).unwrap();
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        for (k, v) in params {
            assert!(
                pairs.contains(&((*k).to_owned(), (*v).to_owned())),
                "the {} link {url} lost {k}={v}",
                link["relation"]
            );
        }
    }
}

#[tokio::test]
async fn every_page_link_keeps_the_filters() {
    let (_ts, fhir) = launch("launch/patient user/*.cruds").await;
    let patient = fhir.patient.clone().unwrap();
    for day in [
        "1990-05-01",
        "1990-05-02",
        "1990-05-03",
        "1990-05-04",
        "1990-05-05",
    ] {
        create(&fhir, observation_at(&patient, &format!("{day}T08:00:00Z"))).await;
    }
    create(&fhir, undated_condition(&patient)).await;
    let filters = [
        ("start", "1990-05-02"),
        ("end", "1990-05-04"),
        ("_since", "2000-01-01T01:00:00+01:00"),
        ("_type", "Patient,Observation,Condition"),
    ];
    let mut one_page = filters.to_vec();
    one_page.push(("_count", "1000"));
    let expected: BTreeSet<String> = fhir
        .ok(&everything(&patient, &one_page))
        .await
        .resources("match")
        .iter()
        .map(reference)
        .collect();
    // The patient, three days of Observations and the undated Condition.
    assert_eq!(expected.len(), 5, "{expected:?}");

    let mut paged = filters.to_vec();
    paged.push(("_count", "2"));
    let mut page = fhir.ok(&everything(&patient, &paged)).await;
    let mut seen = BTreeSet::new();
    let mut pages = 1;
    loop {
        assert_eq!(page.total(), 5);
        assert_links_keep(&page, &filters);
        seen.extend(page.resources("match").iter().map(reference));
        let Some(next) = page.next() else { break };
        page = fhir.ok(&next).await;
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn dates_and_instants_that_do_not_parse_are_400_outcomes() {
    let (_ts, fhir) = launch("launch/patient user/*.rs").await;
    let patient = fhir.patient.clone().unwrap();
    for (params, named) in [
        (vec![("start", "yesterday")], "start=yesterday"),
        (vec![("end", "2024-02-30")], "end=2024-02-30"),
        (vec![("start", "ge2024")], "start=ge2024"),
        (vec![("_since", "2024-01-01")], "_since=2024-01-01"),
        (
            vec![("_since", "2024-01-01T10:00:00")],
            "_since=2024-01-01T10:00:00",
        ),
        (vec![("start", "2025"), ("end", "2024")], "start=2025"),
        (
            vec![
                ("_since", "2024-01-01T00:00:00Z"),
                ("_since", "2025-01-01T00:00:00Z"),
            ],
            "_since",
        ),
    ] {
        let answer = fhir.get(&everything(&patient, &params)).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{params:?}: {}",
            answer.body
        );
        let message = answer.outcome();
        assert!(message.contains(named), "{params:?}: {message}");
        assert_eq!(answer.body["issue"][0]["code"], "invalid");
    }
}
