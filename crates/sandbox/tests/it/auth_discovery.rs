//! Discovery and the signing key.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn discovery_lists_endpoints_and_smart_capabilities() {
    let ts = start().await;
    let response = ts
        .http
        .get(format!("{}/.well-known/smart-configuration", ts.aud()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let config: Value = response.json().await.unwrap();
    assert_eq!(config["issuer"], ts.aud());
    assert_eq!(
        config["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    let caps: Vec<&str> = config["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for needed in [
        "launch-ehr",
        "launch-standalone",
        "client-confidential-asymmetric",
        "permission-v2",
        "sso-openid-connect",
    ] {
        assert!(caps.contains(&needed), "{needed} missing from {caps:?}");
    }
    let methods = config["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert!(methods.contains(&Value::from("private_key_jwt")));
    assert_eq!(config["token_endpoint"], ts.url("/auth/token"));
    assert_eq!(config["authorization_endpoint"], ts.url("/auth/authorize"));
    let endpoints = ts.running.state.auth().endpoints();
    assert_eq!(endpoints.jwks.as_str(), config["jwks_uri"]);
}

#[tokio::test]
async fn signing_key_survives_a_restart() {
    let ts = start().await;
    let kid = |jwks: &Value| jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
    let first: Value = ts
        .http
        .get(ts.url("/auth/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["keys"][0]["kty"], "RSA");
    let TestSandbox { running, dir, .. } = ts;
    running.shutdown().await;
    let again = start_in(dir, |_| {}).await;
    let second: Value = again
        .http
        .get(again.url("/auth/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(kid(&first), kid(&second));
}
