//! The `cerner` persona: what Oracle Health (Cerner) documents, on the wire.

use reqwest::StatusCode;
use sandbox::{Persona, persona::CERNER_TENANT};
use serde_json::Value;
use url::Url;

use crate::persona_support::{
    claims, entries, fhir, get_json, header, smart_configuration, standalone, start, token,
};

const SCOPE: &str =
    "launch/patient openid fhirUser offline_access patient/Patient.read patient/Observation.rs";

#[tokio::test]
async fn cerner_discovery_has_a_separate_authorization_host_with_tenant_paths_and_no_issuer() {
    let ts = start(Persona::Cerner).await;
    assert_eq!(ts.fhir_base.path(), format!("/r4/{CERNER_TENANT}"));
    let config = smart_configuration(&ts).await;
    assert!(config.get("issuer").is_none(), "Cerner names no issuer: {config}");
    let authorize = Url::parse(config["authorization_endpoint"].as_str().unwrap()).unwrap();
    let token = Url::parse(config["token_endpoint"].as_str().unwrap()).unwrap();
    let jwks = Url::parse(config["jwks_uri"].as_str().unwrap()).unwrap();
    let auth_port = ts.running.auth_addr.expect("an authorization host").port();
    assert_ne!(auth_port, ts.running.addr.port());
    for url in [&authorize, &token, &jwks] {
        assert_eq!(url.port(), Some(auth_port), "{url} is on the authorization host");
    }
    assert_eq!(
        authorize.path(),
        format!("/tenants/{CERNER_TENANT}/protocols/oauth2/profiles/smart-v1/personas/provider/authorize")
    );
    assert_eq!(
        token.path(),
        format!("/tenants/{CERNER_TENANT}/protocols/oauth2/profiles/smart-v1/token")
    );
    assert_eq!(jwks.path(), "/jwk");
    let (status, keys) = get_json(&ts, jwks.as_str()).await;
    assert_eq!(status, StatusCode::OK);
    let algs: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["alg"].as_str())
        .collect();
    assert!(algs.contains(&"RS256") && algs.contains(&"ES256"), "{keys}");
}

#[tokio::test]
async fn cerner_id_tokens_come_from_the_oidc_issuer_whose_configuration_names_the_same_key_set() {
    let ts = start(Persona::Cerner).await;
    let config = smart_configuration(&ts).await;
    let tokens = standalone(&ts, SCOPE).await;
    assert_eq!(tokens["expires_in"], 570);
    assert_eq!(tokens["token_type"], "Bearer");
    let id_token = tokens["id_token"].as_str().unwrap();
    let iss = claims(id_token)["iss"].as_str().unwrap().to_owned();
    assert!(
        iss.ends_with(&format!("/tenants/{CERNER_TENANT}/oidc/idsps/{CERNER_TENANT}/")),
        "{iss}"
    );
    let (status, oidc) = get_json(&ts, &format!("{iss}.well-known/openid-configuration")).await;
    assert_eq!(status, StatusCode::OK, "{oidc}");
    assert_eq!(oidc["issuer"], iss.as_str());
    assert_eq!(oidc["jwks_uri"], config["jwks_uri"]);
    // The id_token is signed by the RS256 key of `/jwk`.
    let (_, keys) = get_json(&ts, config["jwks_uri"].as_str().unwrap()).await;
    let kid = header(id_token)["kid"].as_str().unwrap().to_owned();
    assert!(kid.ends_with(".rsa"), "{kid}");
    let key = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap();
    assert_eq!(key["alg"], "RS256");
}

#[tokio::test]
async fn cerner_refreshes_answer_without_a_new_refresh_token_and_the_first_keeps_working() {
    let ts = start(Persona::Cerner).await;
    let config = smart_configuration(&ts).await;
    let tokens = standalone(&ts, SCOPE).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    for _ in 0..2 {
        let (status, body) = token(
            &ts,
            &config,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh),
                ("client_id", crate::common::APP),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("refresh_token").is_none(), "{body}");
        let access = body["access_token"].as_str().unwrap();
        let patient = tokens["patient"].as_str().unwrap();
        assert_eq!(
            fhir(&ts, access, &format!("Patient/{patient}")).await.0,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn cerner_patients_have_string_ranks_and_lab_observations_a_data_absent_category() {
    let ts = start(Persona::Cerner).await;
    let tokens = standalone(&ts, SCOPE).await;
    let access = tokens["access_token"].as_str().unwrap();
    let patient = tokens["patient"].as_str().unwrap();
    let (status, body) = fhir(&ts, access, &format!("Patient/{patient}")).await;
    assert_eq!(status, StatusCode::OK);
    let telecom = body["telecom"]
        .as_array()
        .expect("the generated patients have telecoms");
    assert!(telecom.iter().all(|t| t["rank"].is_string()), "{body}");

    let (status, labs) = fhir(
        &ts,
        access,
        &format!("Observation?patient={patient}&category=laboratory&_count=1"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let found = entries(&labs, "match");
    assert!(!found.is_empty(), "the generated patients have labs: {labs}");
    for lab in &found {
        let category = &lab["category"][0];
        assert!(category.get("coding").is_none(), "{lab}");
        assert_eq!(
            category["extension"][0]["url"],
            "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
        );
    }
    // Paging links are absolute URLs on the FHIR base, to be followed as they are.
    let next = labs["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .map(|l| l["url"].as_str().unwrap().to_owned());
    if let Some(next) = next {
        assert!(next.starts_with(&ts.aud()), "{next}");
        assert_eq!(fhir(&ts, access, &next).await.0, StatusCode::OK);
    }
    let (status, vitals) = fhir(
        &ts,
        access,
        &format!("Observation?patient={patient}&category=vital-signs"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for vital in entries(&vitals, "match") {
        assert_eq!(vital["category"][0]["coding"][0]["code"], "vital-signs");
    }
}

#[tokio::test]
async fn cerner_persona_keeps_the_patient_compartment_and_answers_errors_as_operation_outcomes() {
    let ts = start(Persona::Cerner).await;
    let tokens = standalone(&ts, SCOPE).await;
    let access = tokens["access_token"].as_str().unwrap();
    let patient = tokens["patient"].as_str().unwrap();
    let others: Vec<Value> = ts.running.state.store().find_patients("", 10).unwrap();
    let other = others
        .iter()
        .filter_map(|p| p["id"].as_str())
        .find(|id| *id != patient)
        .unwrap();
    let (status, body) = fhir(&ts, access, &format!("Patient/{other}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["resourceType"], "OperationOutcome");
    let (status, body) = fhir(&ts, access, &format!("Observation?patient={other}")).await;
    assert!(
        status == StatusCode::FORBIDDEN || entries(&body, "match").is_empty(),
        "{status} {body}"
    );
    let (status, body) = fhir(&ts, "not-a-token", &format!("Patient/{patient}")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["resourceType"], "OperationOutcome");
}
