//! The client SHALLs of SMART App Launch 2.2 a conformance run checks on the wire: the exact parameter sets
//! of the authorize, token and refresh requests for each kind of client (no `client_id` in the body of Basic
//! or JWT clients, no `auth_time`/`max_age`, no `scope` on refresh), and plain `http` refused for EHR
//! endpoints on other hosts unless `allow_insecure_http` says otherwise.

use smart_launch::{ClientAuth, Error, SmartClient, SmartClientConfig, Url};

use crate::common::{key, secret_auth};
use crate::fault_server::{FaultServer, Recorded};

const SCOPE: &str = "launch/patient openid fhirUser offline_access patient/Patient.read";

/// A standalone launch and one refresh with `auth`; returns what the server received.
async fn launch_and_refresh(auth: ClientAuth) -> Vec<Recorded> {
    let server = FaultServer::start().await;
    let client = SmartClient::new(server.config(SCOPE).with_client_auth(auth)).unwrap();
    let (request, pending) = client.standalone_launch(&server.fhir_base).await.unwrap();
    let redirect = server.follow_authorize(&request).await;
    let launch = client.complete_from_url(pending, &redirect).await.unwrap();
    client.refresh(&launch.tokens).await.unwrap();
    server.requests()
}

fn of_kind<'a>(requests: &'a [Recorded], kind: &str) -> &'a Recorded {
    let found: Vec<&Recorded> = requests.iter().filter(|r| r.kind == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} request expected: {requests:?}");
    found[0]
}

const AUTHORIZE: &[&str] = &[
    "aud",
    "client_id",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
];

#[tokio::test]
async fn a_public_client_sends_exactly_the_smart_parameters() {
    let requests = launch_and_refresh(ClientAuth::None).await;
    assert_eq!(of_kind(&requests, "authorize").names(), AUTHORIZE);
    let exchange = of_kind(&requests, "token:authorization_code");
    assert_eq!(
        exchange.names(),
        ["client_id", "code", "code_verifier", "grant_type", "redirect_uri"]
    );
    assert!(!exchange.basic_auth);
    let refresh = of_kind(&requests, "token:refresh_token");
    assert_eq!(refresh.names(), ["client_id", "grant_type", "refresh_token"]);
}

#[tokio::test]
async fn a_basic_client_sends_no_client_id_in_the_body() {
    let requests = launch_and_refresh(secret_auth(true, "s3cret")).await;
    assert_eq!(of_kind(&requests, "authorize").names(), AUTHORIZE);
    let exchange = of_kind(&requests, "token:authorization_code");
    assert_eq!(
        exchange.names(),
        ["code", "code_verifier", "grant_type", "redirect_uri"]
    );
    assert!(exchange.basic_auth);
    let refresh = of_kind(&requests, "token:refresh_token");
    assert_eq!(refresh.names(), ["grant_type", "refresh_token"]);
    assert!(refresh.basic_auth);
}

#[tokio::test]
async fn a_jwt_client_sends_its_assertion_and_no_client_id() {
    let requests = launch_and_refresh(ClientAuth::PrivateKeyJwt(key("client-rs384"))).await;
    assert_eq!(of_kind(&requests, "authorize").names(), AUTHORIZE);
    let exchange = of_kind(&requests, "token:authorization_code");
    assert_eq!(
        exchange.names(),
        [
            "client_assertion",
            "client_assertion_type",
            "code",
            "code_verifier",
            "grant_type",
            "redirect_uri"
        ]
    );
    assert!(!exchange.basic_auth);
    let refresh = of_kind(&requests, "token:refresh_token");
    assert_eq!(
        refresh.names(),
        [
            "client_assertion",
            "client_assertion_type",
            "grant_type",
            "refresh_token"
        ]
    );
}

#[tokio::test]
async fn an_ehr_launch_adds_launch_and_nothing_else() {
    let server = FaultServer::start().await;
    let client = SmartClient::new(server.config("launch openid fhirUser patient/Patient.read")).unwrap();
    let (request, pending) = client
        .ehr_launch(server.fhir_base.as_str(), "launch-1")
        .await
        .unwrap();
    let redirect = server.follow_authorize(&request).await;
    client.complete_from_url(pending, &redirect).await.unwrap();
    let mut expected = AUTHORIZE.to_vec();
    expected.push("launch");
    expected.sort_unstable();
    let requests = server.requests();
    let authorize = of_kind(&requests, "authorize");
    assert_eq!(authorize.names(), expected);
    let aud = authorize.params.iter().find(|(k, _)| k == "aud").unwrap();
    assert_eq!(aud.1, server.fhir_base.as_str());
}

fn public(scope: &str) -> SmartClientConfig {
    SmartClientConfig::new(
        "public-app",
        Url::parse("http://127.0.0.1:9/fhir-app/").unwrap(),
        scope.parse().unwrap(),
    )
}

#[tokio::test]
async fn a_plain_http_fhir_base_on_another_host_is_refused_before_any_request() {
    let base = Url::parse("http://ehr.example/fhir").unwrap();
    let client = SmartClient::new(public("launch/patient").allow_issuer(base.clone())).unwrap();
    let err = client.standalone_launch(&base).await.unwrap_err();
    match err {
        Error::InsecureUrl { what, url } => {
            assert_eq!(what, "FHIR base");
            assert_eq!(url, "http://ehr.example/fhir");
        }
        other => panic!("{other}"),
    }
    let err = client.ehr_launch(base.as_str(), "l1").await.unwrap_err();
    assert!(matches!(err, Error::InsecureUrl { .. }), "{err}");
}

#[tokio::test]
async fn plain_http_endpoints_on_another_host_are_refused() {
    let server = FaultServer::start().await;
    server.behave(|b| b.token_endpoint = "http://ehr.example/oauth/token".to_owned());
    let client = SmartClient::new(server.config("launch/patient")).unwrap();
    let err = client.discover(&server.fhir_base).await.unwrap_err();
    match err {
        Error::InsecureUrl { what, url } => {
            assert_eq!(what, "token endpoint");
            assert_eq!(url, "http://ehr.example/oauth/token");
        }
        other => panic!("{other}"),
    }
    assert!(err_text_names_the_setting(&client, &server).await);
}

async fn err_text_names_the_setting(client: &SmartClient, server: &FaultServer) -> bool {
    let err = client.discover(&server.fhir_base).await.unwrap_err();
    err.to_string().contains("insecure_http")
}

#[tokio::test]
async fn allow_insecure_http_lets_plain_http_endpoints_through() {
    let server = FaultServer::start().await;
    server.behave(|b| b.token_endpoint = "http://ehr.example/oauth/token".to_owned());
    let mut config = server.config("launch/patient");
    config.allow_insecure_http = true;
    let client = SmartClient::new(config).unwrap();
    let discovered = client.discover(&server.fhir_base).await.unwrap();
    assert_eq!(
        discovered.token_endpoint.as_str(),
        "http://ehr.example/oauth/token"
    );
}
