//! Search: every supported parameter, prefixes, modifiers, paging, `_sort`, `_include`, and bad searches.

use crate::fhir_support::{CATEGORY, Fhir, launch, patient_of};
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::HashSet;

fn ids(resources: &[Value]) -> HashSet<String> {
    resources
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_named_patient(fhir: &Fhir) -> Value {
    let all = fhir.ok("Patient?_count=100").await.resources("match");
    all.into_iter().find(|p| p.get("name").is_some()).unwrap()
}

#[tokio::test]
async fn patients_are_found_by_name_family_given_gender_birthdate_identifier_and_id() {
    let (_ts, fhir) = launch("launch/patient user/*.rs").await;
    let everyone = fhir.ok("Patient").await;
    assert_eq!(everyone.total(), 5);
    let p = a_named_patient(&fhir).await;
    let id = p["id"].as_str().unwrap();
    let family = p["name"][0]["family"].as_str().unwrap();
    let given = p["name"][0]["given"][0].as_str().unwrap();
    let prefix: String = family.chars().take(3).collect::<String>().to_uppercase();
    let by = |query: String| {
        let fhir = &fhir;
        async move { ids(&fhir.ok(&format!("Patient?{query}")).await.resources("match")) }
    };
    assert!(
        by(format!("name={prefix}")).await.contains(id),
        "name prefix, any case"
    );
    assert!(by(format!("family={family}")).await.contains(id));
    assert!(by(format!("given={given}")).await.contains(id));
    assert!(by(format!("name:exact={family}")).await.contains(id));
    assert!(
        !by(format!("name:exact={}", family.to_lowercase()))
            .await
            .contains(id)
            || family == family.to_lowercase()
    );
    let gender = p["gender"].as_str().unwrap();
    let same_gender = by(format!("gender={gender}")).await;
    assert!(same_gender.contains(id));
    let other_gender = by(format!(
        "gender={}",
        if gender == "male" { "female" } else { "male" }
    ))
    .await;
    assert!(!other_gender.contains(id));
    assert_eq!(same_gender.len() + other_gender.len(), 5);
    let birth = p["birthDate"].as_str().unwrap();
    assert!(by(format!("birthdate={birth}")).await.contains(id));
    assert!(
        by(format!("birthdate={}", &birth[..4])).await.contains(id),
        "a year covers the birth date"
    );
    assert!(!by(format!("birthdate=lt{birth}")).await.contains(id));
    assert!(by(format!("birthdate=le{birth}")).await.contains(id));
    assert!(!by(format!("birthdate=gt{birth}")).await.contains(id));
    let mrn = &p["identifier"][0];
    let token = format!(
        "{}|{}",
        mrn["system"].as_str().unwrap(),
        mrn["value"].as_str().unwrap()
    );
    assert_eq!(
        by(format!("identifier={}", urlencode(&token))).await,
        HashSet::from([id.to_owned()])
    );
    assert_eq!(by(format!("_id={id}")).await, HashSet::from([id.to_owned()]));
    assert!(by("name=zzzqqq".into()).await.is_empty());
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn observations_are_found_by_patient_category_code_status_and_date_prefixes() {
    let (_ts, fhir) = launch("launch/patient user/*.rs").await;
    let p = a_named_patient(&fhir).await;
    let id = p["id"].as_str().unwrap();
    let (total, all) = fhir.all_pages(&format!("Observation?patient={id}")).await;
    assert!(total > 20);
    assert!(all.iter().all(|o| patient_of(o).as_deref() == Some(id)));
    let by_subject = fhir
        .ok(&format!("Observation?subject=Patient/{id}&_count=0"))
        .await;
    assert_eq!(by_subject.total(), total);
    assert!(
        by_subject.resources("match").is_empty(),
        "_count=0 returns only the total"
    );

    let vitals = fhir
        .ok(&format!(
            "Observation?patient={id}&category={}&_count=1000",
            urlencode(&format!("{CATEGORY}|vital-signs"))
        ))
        .await;
    let labs = fhir
        .ok(&format!(
            "Observation?patient={id}&category=laboratory&_count=1000"
        ))
        .await;
    assert_eq!(vitals.total() + labs.total(), total);
    assert!(
        vitals
            .resources("match")
            .iter()
            .all(|o| o["category"][0]["coding"][0]["code"] == "vital-signs")
    );

    let hr = fhir
        .ok(&format!(
            "Observation?patient={id}&code=http://loinc.org|8867-4&_count=1000"
        ))
        .await;
    assert!(hr.total() > 0);
    assert!(
        hr.resources("match")
            .iter()
            .all(|o| o["code"]["coding"][0]["code"] == "8867-4")
    );
    let either = fhir
        .ok(&format!("Observation?patient={id}&code=8867-4,29463-7&_count=0"))
        .await;
    let weight = fhir
        .ok(&format!("Observation?patient={id}&code=29463-7&_count=0"))
        .await;
    assert_eq!(either.total(), hr.total() + weight.total(), "comma means OR");
    let wrong_system = fhir
        .ok(&format!(
            "Observation?patient={id}&code=http://snomed.info/sct|8867-4"
        ))
        .await;
    assert_eq!(wrong_system.total(), 0);
    let not_final = fhir
        .ok(&format!("Observation?patient={id}&status:not=final"))
        .await;
    assert_eq!(not_final.total(), 0);
    assert_eq!(
        fhir.ok(&format!("Observation?patient={id}&status=final&_count=0"))
            .await
            .total(),
        total
    );

    // Dates: everything is either before a cut or at/after it, and sa/eb agree with gt/lt for instants.
    let mut dates: Vec<&str> = all
        .iter()
        .filter_map(|o| o["effectiveDateTime"].as_str())
        .collect();
    dates.sort_unstable();
    let cut = &dates[dates.len() / 2][..10];
    let count = |q: String| {
        let fhir = &fhir;
        async move {
            fhir.ok(&format!("Observation?patient={id}&{q}&_count=0"))
                .await
                .total()
        }
    };
    let before = count(format!("date=lt{cut}")).await;
    let from = count(format!("date=ge{cut}")).await;
    assert_eq!(before + from, total);
    assert!(before > 0 && from > 0);
    let on = count(format!("date={cut}")).await;
    assert_eq!(on, dates.iter().filter(|d| d.starts_with(cut)).count() as u64);
    assert_eq!(count(format!("date=gt{cut}")).await + on + before, total);
    assert_eq!(count(format!("date=eb{cut}")).await, before);
    assert_eq!(count(format!("date=ne{cut}")).await, total - on);
    assert_eq!(
        count(format!("date=ge{cut}&date=lt{cut}")).await,
        0,
        "repeated parameters mean AND"
    );
}

#[tokio::test]
async fn paging_follows_absolute_next_links_to_every_match_once() {
    let (_ts, fhir) = launch("launch/patient user/*.rs").await;
    let first = fhir.ok("Observation?category=vital-signs&_count=7").await;
    assert_eq!(first.resources("match").len(), 7);
    let next = first.next().unwrap();
    assert!(next.starts_with(&format!("{}/Observation?", fhir.base)), "{next}");
    assert!(next.contains("category=vital-signs"));
    let (total, all) = fhir.all_pages("Observation?category=vital-signs&_count=50").await;
    assert_eq!(total as usize, all.len());
    assert_eq!(total, first.total());
    let last = fhir
        .ok(&format!(
            "Observation?category=vital-signs&_count=50&_offset={}",
            total - 1
        ))
        .await;
    assert_eq!(last.resources("match").len(), 1);
    assert!(last.next().is_none());
}

#[tokio::test]
async fn sort_orders_by_date_and_family_name() {
    let (_ts, fhir) = launch("launch/patient user/*.rs").await;
    let p = a_named_patient(&fhir).await;
    let id = p["id"].as_str().unwrap();
    let newest_first = fhir
        .ok(&format!("Encounter?patient={id}&_sort=-date"))
        .await
        .resources("match");
    let starts: Vec<&str> = newest_first
        .iter()
        .map(|e| e["period"]["start"].as_str().unwrap())
        .collect();
    let mut sorted = starts.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(starts, sorted);
    let patients = fhir.ok("Patient?_sort=family").await.resources("match");
    let families: Vec<String> = patients
        .iter()
        .filter_map(|p| p["name"][0]["family"].as_str())
        .map(str::to_lowercase)
        .collect();
    let mut sorted = families.clone();
    sorted.sort();
    assert_eq!(families, sorted);
    assert!(
        patients.last().unwrap().get("name").is_none(),
        "the nameless patient sorts last"
    );
}

#[tokio::test]
async fn include_adds_referenced_encounters_and_patients_once() {
    let (_ts, fhir) = launch("launch/patient user/*.rs").await;
    let p = a_named_patient(&fhir).await;
    let id = p["id"].as_str().unwrap();
    let answer = fhir
        .ok(&format!(
            "Observation?patient={id}&code=8867-4&_include=Observation:encounter&_include=Observation:patient"
        ))
        .await;
    let matches = answer.resources("match");
    let included = answer.resources("include");
    let encounters: HashSet<String> = matches
        .iter()
        .map(|o| {
            o["encounter"]["reference"]
                .as_str()
                .unwrap()
                .trim_start_matches("Encounter/")
                .to_owned()
        })
        .collect();
    let included_encounters: HashSet<String> = included
        .iter()
        .filter(|r| r["resourceType"] == "Encounter")
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(encounters, included_encounters);
    let included_patients: Vec<&Value> = included
        .iter()
        .filter(|r| r["resourceType"] == "Patient")
        .collect();
    assert_eq!(included_patients.len(), 1);
    assert_eq!(included_patients[0]["id"], id);
    assert_eq!(
        answer.total() as usize,
        matches.len(),
        "includes do not count towards total"
    );
}

#[tokio::test]
async fn unknown_parameters_and_malformed_values_get_400() {
    let (_ts, fhir) = launch("launch/patient user/*.rs").await;
    for query in [
        "Observation?colour=red",
        "Observation?date=yesterday",
        "Observation?_count=lots",
        "Observation?code:below=123",
        "Observation?_include=Patient:organization",
        "Patient?_sort=weight",
    ] {
        let answer = fhir.get(query).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}: {}", answer.body);
        assert!(answer.outcome().contains("search"), "{query}");
    }
}

#[tokio::test]
async fn post_search_takes_form_parameters() {
    let (_ts, fhir) = launch("launch/patient user/*.rs").await;
    let p = a_named_patient(&fhir).await;
    let id = p["id"].as_str().unwrap();
    let response = fhir
        .http
        .post(fhir.url("Condition/_search"))
        .bearer_auth(fhir.token.as_deref().unwrap())
        .form(&[("patient", id)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let by_get = fhir.ok(&format!("Condition?patient={id}")).await;
    assert_eq!(body["total"], by_get.body["total"]);
}

#[tokio::test]
async fn last_updated_and_id_apply_to_every_type() {
    let (_ts, fhir) = launch("launch/patient user/*.rs").await;
    let all = fhir.ok("Condition?_count=0").await.total();
    assert!(all > 0);
    assert_eq!(
        fhir.ok("Condition?_lastUpdated=ge2000-01-01&_count=0")
            .await
            .total(),
        all
    );
    assert_eq!(
        fhir.ok("Condition?_lastUpdated=lt2000-01-01&_count=0")
            .await
            .total(),
        0
    );
    let first = &fhir.ok("Condition?_count=1").await.resources("match")[0];
    let stamp = first["meta"]["lastUpdated"].as_str().unwrap();
    assert_eq!(
        fhir.ok(&format!("Condition?_lastUpdated=gt{}&_count=0", &stamp[..4]))
            .await
            .total(),
        0
    );
    let id = first["id"].as_str().unwrap();
    let two = fhir.ok(&format!("Condition?_id={id},no-such-id")).await;
    assert_eq!(two.total(), 1);
}
