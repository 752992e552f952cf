//! CapabilityStatement, read, vread, history, 401/404 answers and `$everything`.

use crate::fhir_support::{Fhir, launch, patient_ids, patient_of};
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::HashSet;

#[tokio::test]
async fn metadata_is_an_r4_capability_statement_with_smart_endpoints_and_needs_no_token() {
    let (ts, fhir) = launch("launch/patient patient/*.rs").await;
    let answer = fhir.anonymous().ok("metadata").await;
    assert!(
        answer
            .header("content-type")
            .unwrap()
            .starts_with("application/fhir+json")
    );
    let cs = &answer.body;
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["fhirVersion"], "4.0.1");
    assert_eq!(cs["kind"], "instance");
    assert_eq!(cs["status"], "active");
    assert!(cs["date"].as_str().unwrap().len() >= 10);
    assert!(
        cs["format"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "application/fhir+json")
    );
    let rest = &cs["rest"][0];
    assert_eq!(rest["mode"], "server");
    assert_eq!(
        rest["security"]["service"][0]["coding"][0]["code"],
        "SMART-on-FHIR"
    );
    let oauth = rest["security"]["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris")
        .unwrap();
    let uri = |name: &str| {
        oauth["extension"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["url"] == name)
            .unwrap()["valueUri"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let discovery = fhir.anonymous().ok(".well-known/smart-configuration").await;
    assert_eq!(
        uri("authorize"),
        discovery.body["authorization_endpoint"].as_str().unwrap()
    );
    assert_eq!(uri("token"), discovery.body["token_endpoint"].as_str().unwrap());
    let observation = rest["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Observation")
        .unwrap();
    let interactions: HashSet<&str> = observation["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    for code in [
        "read",
        "vread",
        "search-type",
        "create",
        "update",
        "patch",
        "delete",
    ] {
        assert!(
            interactions.contains(code),
            "Observation lacks the {code} interaction"
        );
    }
    let params: HashSet<&str> = observation["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in ["_id", "patient", "subject", "code", "category", "date", "status"] {
        assert!(params.contains(p), "Observation lacks {p}");
    }
    assert!(
        observation["searchInclude"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == "Observation:encounter")
    );
    drop(ts);
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401_with_an_operation_outcome() {
    let (_ts, fhir) = launch("launch/patient patient/*.rs").await;
    let anonymous = fhir.anonymous();
    let answer = anonymous.get("Patient").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.header("www-authenticate").unwrap().starts_with("Bearer"));
    assert!(answer.outcome().contains("access token"));

    let forged = Fhir {
        token: Some("not-a-token".into()),
        ..anonymous
    };
    let answer = forged
        .get(&format!("Patient/{}", fhir.patient.as_deref().unwrap()))
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(
        answer
            .header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    answer.outcome();
}

#[tokio::test]
async fn read_vread_and_history_carry_versions_and_etags() {
    let (_ts, fhir) = launch("launch/patient patient/*.rs").await;
    let id = fhir.patient.clone().unwrap();
    let read = fhir.ok(&format!("Patient/{id}")).await;
    assert_eq!(read.body["resourceType"], "Patient");
    assert_eq!(read.body["id"], id.as_str());
    assert_eq!(read.body["meta"]["versionId"], "1");
    assert_eq!(read.header("etag"), Some("W/\"1\""));
    assert!(read.header("last-modified").unwrap().ends_with("GMT"));

    let vread = fhir.ok(&format!("Patient/{id}/_history/1")).await;
    assert_eq!(vread.body, read.body);
    let missing_version = fhir.get(&format!("Patient/{id}/_history/7")).await;
    assert_eq!(missing_version.status, StatusCode::NOT_FOUND);
    missing_version.outcome();

    let history = fhir.ok(&format!("Patient/{id}/_history")).await;
    assert_eq!(history.body["type"], "history");
    assert_eq!(history.total(), 1);
    assert_eq!(history.body["entry"][0]["resource"], read.body);
}

#[tokio::test]
async fn unknown_ids_types_and_endpoints_get_404_operation_outcomes() {
    let (_ts, fhir) = launch("launch/patient patient/*.rs").await;
    for path in [
        "Patient/does-not-exist",
        "Patinet",
        "Patient/bad id!",
        "Observation/x/$nothing",
    ] {
        let answer = fhir.get(path).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}: {}", answer.body);
        assert!(!answer.outcome().is_empty());
    }
    let answer = fhir.send(reqwest::Method::PATCH, "Patient", None, &[]).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    answer.outcome();
    let xml = fhir
        .send(reqwest::Method::GET, "metadata?_format=xml", None, &[])
        .await;
    assert_eq!(xml.status, StatusCode::NOT_ACCEPTABLE);
    xml.outcome();
}

#[tokio::test]
async fn everything_pages_through_the_patient_compartment_and_referenced_practitioners() {
    let (ts, fhir) = launch("launch/patient patient/*.rs").await;
    let id = fhir.patient.clone().unwrap();
    let (total, all) = fhir
        .all_pages(&format!("Patient/{id}/$everything?_count=17"))
        .await;
    assert_eq!(total as usize, all.len());
    assert_eq!(all[0]["resourceType"], "Patient");
    assert_eq!(all[0]["id"], id.as_str());
    let mut types = HashSet::new();
    for r in &all[1..] {
        let t = r["resourceType"].as_str().unwrap();
        types.insert(t.to_owned());
        match t {
            "Practitioner" | "Organization" => {}
            _ => assert_eq!(patient_of(r).as_deref(), Some(id.as_str()), "{r}"),
        }
    }
    for t in [
        "Encounter",
        "Observation",
        "Condition",
        "Practitioner",
        "Organization",
    ] {
        assert!(types.contains(t), "$everything lacks {t}: {types:?}");
    }
    // Exactly the compartment: the same count as searching each type by patient.
    let compartment = all
        .iter()
        .filter(|r| r["resourceType"] != "Practitioner" && r["resourceType"] != "Organization");
    let observations = fhir
        .ok(&format!("Observation?patient={id}&_count=0"))
        .await
        .total();
    assert_eq!(
        compartment.filter(|r| r["resourceType"] == "Observation").count() as u64,
        observations
    );

    let other = patient_ids(&ts).into_iter().find(|p| *p != id).unwrap();
    let answer = fhir.get(&format!("Patient/{other}/$everything")).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    answer.outcome();
}

#[tokio::test]
async fn the_patient_without_a_name_is_served_as_is() {
    let (ts, fhir) = launch("launch/patient user/*.rs").await;
    let store = ts.running.state.store();
    let nameless: Vec<Value> = store
        .find_patients("", 100)
        .unwrap()
        .into_iter()
        .filter(|p| p.get("name").is_none())
        .collect();
    assert_eq!(
        nameless.len(),
        1,
        "the generator makes exactly one nameless patient"
    );
    let id = nameless[0]["id"].as_str().unwrap();
    let read = fhir.ok(&format!("Patient/{id}")).await;
    assert!(read.body.get("name").is_none());
    assert!(read.body["identifier"][0]["value"].is_string());
}
