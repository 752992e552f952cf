//! What a SMART App Launch 2.2 server conformance run checks (modelled on Inferno's `smart_stu2_2` suite) and the
//! sandbox used to miss: CORS, the issuer's OpenID configuration, the signed-in user's own resource, the
//! normative capability names — for every persona. And the CapabilityStatement, count-only searches and the
//! port bound before an import (issue 16, points 5 and 6).

use reqwest::StatusCode;
use sandbox::{Persona, SandboxConfig};
use serde_json::{Value, json};

use crate::common;
use crate::persona_support::{claims, fhir, get_json, smart_configuration, standalone, start};

/// The origin of the test app's registered redirect URI.
const APP_ORIGIN: &str = "http://127.0.0.1:9";
const STRANGER: &str = "https://stranger.example";

async fn origin_allowed(
    ts: &common::TestSandbox,
    method: reqwest::Method,
    url: &str,
    origin: &str,
) -> Option<String> {
    let response = ts
        .http
        .request(method, url)
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    response
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned())
}

async fn preflight(ts: &common::TestSandbox, url: &str, origin: &str, method: &str) -> reqwest::Response {
    ts.http
        .request(reqwest::Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", "authorization, content-type")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn discovery_and_metadata_answer_cross_origin_requests_from_any_origin_for_every_persona() {
    for persona in Persona::ALL {
        let ts = start(persona).await;
        let config = smart_configuration(&ts).await;
        for url in [
            format!("{}/.well-known/smart-configuration", ts.aud()),
            format!("{}/metadata", ts.aud()),
            config["jwks_uri"].as_str().unwrap().to_owned(),
        ] {
            let allowed = origin_allowed(&ts, reqwest::Method::GET, &url, STRANGER).await;
            assert_eq!(allowed.as_deref(), Some(STRANGER), "{persona}: {url}");
            let response = preflight(&ts, &url, STRANGER, "GET").await;
            assert!(
                response.status().is_success(),
                "{persona}: preflight of {url}: {}",
                response.status()
            );
        }
        let (_, metadata) = get_json(&ts, &format!("{}/metadata", ts.aud())).await;
        assert_eq!(metadata["rest"][0]["security"]["cors"], true);
    }
}

#[tokio::test]
async fn the_token_endpoint_and_fhir_api_answer_cors_for_registered_origins_only() {
    for persona in Persona::ALL {
        let ts = start(persona).await;
        let config = smart_configuration(&ts).await;
        let token_endpoint = config["token_endpoint"].as_str().unwrap();
        let response = preflight(&ts, token_endpoint, APP_ORIGIN, "POST").await;
        assert!(response.status().is_success(), "{persona}: {}", response.status());
        assert_eq!(response.headers()["access-control-allow-origin"], APP_ORIGIN);
        let response = preflight(&ts, token_endpoint, STRANGER, "POST").await;
        assert!(
            response.headers().get("access-control-allow-origin").is_none(),
            "{persona}"
        );

        let patient_search = format!("{}/Patient", ts.aud());
        let response = preflight(&ts, &patient_search, APP_ORIGIN, "GET").await;
        assert!(
            response.status().is_success(),
            "{persona}: OPTIONS {patient_search}: {}",
            response.status()
        );
        let allowed = response.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        assert!(allowed.contains("authorization"), "{allowed}");

        let tokens = standalone(&ts, "launch/patient openid fhirUser patient/Patient.read").await;
        let patient = tokens["patient"].as_str().unwrap();
        let read = ts
            .http
            .get(format!("{}/Patient/{patient}", ts.aud()))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .header("origin", APP_ORIGIN)
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), StatusCode::OK);
        assert_eq!(read.headers()["access-control-allow-origin"], APP_ORIGIN);
        let stranger = origin_allowed(
            &ts,
            reqwest::Method::GET,
            &format!("{}/Patient/{patient}", ts.aud()),
            STRANGER,
        )
        .await;
        assert_eq!(stranger, None, "{persona}");
    }
}

#[tokio::test]
async fn the_id_token_issuer_publishes_an_openid_configuration_naming_the_same_key_set() {
    for persona in Persona::ALL {
        let ts = start(persona).await;
        let config = smart_configuration(&ts).await;
        let tokens = standalone(&ts, "launch/patient openid fhirUser patient/Patient.read").await;
        let iss = claims(tokens["id_token"].as_str().unwrap())["iss"]
            .as_str()
            .unwrap()
            .to_owned();
        if let Some(issuer) = config["issuer"].as_str() {
            assert_eq!(issuer, iss, "{persona}");
        }
        let url = format!("{}/.well-known/openid-configuration", iss.trim_end_matches('/'));
        let (status, oidc) = get_json(&ts, &url).await;
        assert_eq!(status, StatusCode::OK, "{persona}: {url}");
        assert_eq!(oidc["issuer"], iss.as_str(), "{persona}");
        assert_eq!(oidc["jwks_uri"], config["jwks_uri"], "{persona}");
        let allowed = origin_allowed(&ts, reqwest::Method::GET, &url, STRANGER).await;
        assert_eq!(allowed.as_deref(), Some(STRANGER));
    }
}

#[tokio::test]
async fn openid_fhiruser_reads_the_signed_in_users_own_resource_and_no_other() {
    for persona in Persona::ALL {
        let ts = start(persona).await;
        // No scope covers Patient reads: only `openid fhirUser` lets the app read the user's own resource.
        let tokens = standalone(&ts, "launch/patient openid fhirUser patient/Observation.rs").await;
        let access = tokens["access_token"].as_str().unwrap();
        let user = claims(tokens["id_token"].as_str().unwrap())["fhirUser"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, body) = fhir(&ts, access, &user).await;
        assert_eq!(status, StatusCode::OK, "{persona}: {user}: {body}");
        let own = user.rsplit('/').next().unwrap();
        let other = ts
            .running
            .state
            .store()
            .find_patients("", 10)
            .unwrap()
            .into_iter()
            .filter_map(|p| p["id"].as_str().map(str::to_owned))
            .find(|id| id != own)
            .unwrap();
        let (status, body) = fhir(&ts, access, &format!("Patient/{other}")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{persona}: {body}");
        assert_eq!(body["resourceType"], "OperationOutcome");
        // Searching Patients still needs a scope.
        assert_eq!(fhir(&ts, access, "Patient").await.0, StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn capabilities_use_the_normative_context_banner_and_style_names() {
    for persona in Persona::ALL {
        let ts = start(persona).await;
        let config = smart_configuration(&ts).await;
        let capabilities: Vec<&str> = config["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            capabilities.contains(&"context-banner"),
            "{persona}: {capabilities:?}"
        );
        assert!(
            capabilities.contains(&"context-style"),
            "{persona}: {capabilities:?}"
        );
        assert!(
            !capabilities.iter().any(|c| c.starts_with("context-passthrough")),
            "{persona}"
        );
        assert_eq!(
            config["code_challenge_methods_supported"],
            json!(["S256"]),
            "{persona}"
        );
    }
}

#[tokio::test]
async fn metadata_lists_every_served_type_with_its_search_parameters() {
    let ts = common::start().await;
    let store = ts.running.state.store();
    store
        .import_value(json!({
            "resourceType": "Coverage", "id": "cov-1", "status": "active",
            "beneficiary": { "reference": "Patient/nobody" }, "payor": [{ "display": "Acme" }]
        }))
        .unwrap();
    let (status, metadata) = get_json(&ts, &format!("{}/metadata", ts.aud())).await;
    assert_eq!(status, StatusCode::OK);
    let resources = metadata["rest"][0]["resource"].as_array().unwrap();
    let coverage = resources
        .iter()
        .find(|r| r["type"] == "Coverage")
        .expect("Coverage is listed");
    let params: Vec<&str> = coverage["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(
        params.contains(&"_id") && params.contains(&"patient"),
        "{params:?}"
    );
    for described in sandbox::registry::described() {
        assert!(
            resources.iter().any(|r| r["type"] == described.name),
            "{}",
            described.name
        );
    }
}

#[tokio::test]
async fn a_count_only_search_has_a_total_and_no_next_link() {
    let ts = common::start().await;
    let tokens = common::launch_and_exchange(&ts, "launch/patient patient/Observation.rs").await;
    let access = tokens["access_token"].as_str().unwrap();
    let patient = tokens["patient"].as_str().unwrap();
    for query in ["_summary=count", "_count=0"] {
        let (status, body) = fhir(&ts, access, &format!("Observation?patient={patient}&{query}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body["total"].as_u64().unwrap() > 0, "{body}");
        let relations: Vec<&str> = body["link"]
            .as_array()
            .map(|l| l.iter().filter_map(|l| l["relation"].as_str()).collect())
            .unwrap_or_default();
        assert!(!relations.contains(&"next"), "{query}: {body}");
    }
}

#[tokio::test]
async fn the_port_is_bound_before_the_import_starts() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = SandboxConfig {
        port,
        db: Some(dir.path().join("sandbox.db")),
        patients: 1,
        imports: vec![dir.path().join("not-there")],
        issuer_key_pem: Some(test_support::ISSUER_KEY_PEM.to_owned()),
        ..SandboxConfig::default()
    };
    // The import directory does not exist either: the error is the port's, so the bind came first.
    let err = sandbox::Sandbox::start(config)
        .await
        .err()
        .expect("the port is taken");
    assert!(matches!(err, sandbox::SandboxError::Bind { .. }), "{err}");
    assert!(
        !dir.path().join("sandbox.db").exists(),
        "no database work before the bind"
    );
}
