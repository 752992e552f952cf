//! Code exchange, refresh and client authentication against the sandbox.
//!
//! These stay on the in-test fault server, because the sandbox cannot produce them:
//! - `token_endpoint_500_is_a_typed_error`, `malformed_token_json_is_a_typed_error`,
//!   `non_bearer_tokens_are_refused`: the sandbox's token endpoint always answers well-formed OAuth JSON;
//! - `redirects_from_the_token_endpoint_are_not_followed`: the sandbox never redirects from it;
//! - `refresh_keeps_old_refresh_token_when_none_returned`: the sandbox always rotates refresh tokens and
//!   always sends `scope`;
//! - `twenty_concurrent_callers_cause_exactly_one_refresh`,
//!   `unauthorized_refreshes_once_for_all_holders_of_the_rejected_token`: single-flight counting needs refreshes
//!   slow enough that the callers surely overlap, which only the fault server guarantees (it counts refreshes
//!   by grant type too). The sandbox's rotation still checks the single flight from the other side in
//!   `concurrent_callers_share_one_rotation_and_the_grant_stays_valid`.

use std::sync::Arc;

use sandbox::{ClientKeys, ClientSpec};
use serde_json::json;
use smart_launch::{ClientAuth, CompletedLaunch, Error, SmartClient, SmartClientConfig, TokenSource};

use crate::common::{APP, TestSandbox, key, secret_auth};
use crate::fault_server::FaultServer;

const OFFLINE: &str = "launch/patient offline_access patient/Patient.read";

async fn launch_on_sandbox(
    ts: &TestSandbox,
    config: SmartClientConfig,
) -> (SmartClient, Result<CompletedLaunch, Error>) {
    let client = SmartClient::new(config).unwrap();
    let (request, pending) = client.standalone_launch(&ts.fhir_base).await.unwrap();
    let redirect = ts.approve(&request).await;
    let result = client.complete_from_url(pending, &redirect).await;
    (client, result)
}

async fn launch_on_fault_server(
    server: &FaultServer,
    scope: &str,
) -> (SmartClient, Result<CompletedLaunch, Error>) {
    let client = SmartClient::new(server.config(scope)).unwrap();
    let (request, pending) = client.standalone_launch(&server.fhir_base).await.unwrap();
    let redirect = server.follow_authorize(&request).await;
    let result = client.complete_from_url(pending, &redirect).await;
    (client, result)
}

fn an_hour_ago() -> Option<chrono::DateTime<chrono::Utc>> {
    Some(chrono::Utc::now() - chrono::Duration::hours(1))
}

#[tokio::test]
async fn refresh_replaces_a_rotated_refresh_token_and_the_old_one_is_refused() {
    let ts = TestSandbox::start().await;
    let (client, launch) = launch_on_sandbox(&ts, ts.config(OFFLINE)).await;
    let launch = launch.unwrap();
    let refreshed = client.refresh(&launch.tokens).await.unwrap();
    assert_ne!(refreshed.access_token, launch.tokens.access_token);
    assert!(refreshed.refresh_token.is_some());
    assert_ne!(
        refreshed.refresh_token, launch.tokens.refresh_token,
        "the new refresh token is kept"
    );
    assert_eq!(refreshed.scope, launch.tokens.scope);
    // The new one works; the old one is refused with a typed error.
    let again = client.refresh(&refreshed).await.unwrap();
    let err = client.refresh(&launch.tokens).await.unwrap_err();
    assert!(
        matches!(err, Error::TokenEndpoint { status: 400, ref error, .. } if error.as_deref() == Some("invalid_grant")),
        "{err}"
    );
    // Reusing a rotated refresh token revokes the grant at the sandbox: the newest one is dead too.
    assert!(matches!(
        client.refresh(&again).await.unwrap_err(),
        Error::TokenEndpoint { status: 400, .. }
    ));
}

#[tokio::test]
async fn refresh_without_a_refresh_token_is_a_typed_error() {
    let ts = TestSandbox::start().await;
    let (client, launch) = launch_on_sandbox(&ts, ts.config("launch/patient patient/Patient.read")).await;
    let launch = launch.unwrap();
    assert!(
        launch.tokens.refresh_token.is_none(),
        "no offline_access, no refresh token"
    );
    assert!(matches!(
        client.refresh(&launch.tokens).await.unwrap_err(),
        Error::NoRefreshToken
    ));
}

#[tokio::test]
async fn an_expired_token_is_refreshed_by_the_token_source() {
    let ts = TestSandbox::start().await;
    let (client, launch) = launch_on_sandbox(&ts, ts.config(OFFLINE)).await;
    let mut tokens = launch.unwrap().tokens;
    tokens.expires_at = an_hour_ago();
    let source = client.token_source(tokens.clone());
    let fresh = source.access_token().await.unwrap();
    assert_ne!(fresh, tokens.access_token);
    assert_eq!(
        source.access_token().await.unwrap(),
        fresh,
        "a fresh token is reused"
    );
    assert_eq!(ts.hits("/auth/token"), 2, "one code exchange, one refresh");
}

#[tokio::test]
async fn concurrent_callers_share_one_rotation_and_the_grant_stays_valid() {
    let ts = TestSandbox::start().await;
    let (client, launch) = launch_on_sandbox(&ts, ts.config(OFFLINE)).await;
    let mut tokens = launch.unwrap().tokens;
    tokens.expires_at = an_hour_ago();
    let source: Arc<dyn TokenSource> = client.token_source(tokens);
    let calls = (0..10).map(|_| {
        let source = source.clone();
        tokio::spawn(async move { source.access_token().await })
    });
    // A second refresh with the same (rotated) refresh token would be refused and revoke the grant.
    let got: Vec<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert!(got.iter().all(|t| *t == got[0]));
    assert_eq!(ts.hits("/auth/token"), 2, "one code exchange, one refresh");
}

#[tokio::test]
async fn expired_token_without_refresh_token_is_a_typed_error() {
    let ts = TestSandbox::start().await;
    let (client, launch) = launch_on_sandbox(&ts, ts.config("launch/patient patient/Patient.read")).await;
    let mut tokens = launch.unwrap().tokens;
    tokens.expires_at = an_hour_ago();
    let source = client.token_source(tokens);
    assert!(matches!(
        source.access_token().await.unwrap_err(),
        Error::NoRefreshToken
    ));
}

#[tokio::test]
async fn client_secret_basic_and_post_authenticate_code_exchange_and_refresh() {
    let ts = TestSandbox::start().await;
    ts.register(ClientSpec::public(APP, TestSandbox::redirect()).with_secret("s3cr3t/+="));
    for basic in [true, false] {
        let config = ts
            .config(OFFLINE)
            .with_client_auth(secret_auth(basic, "s3cr3t/+="));
        let (client, result) = launch_on_sandbox(&ts, config).await;
        let launch = result.unwrap();
        client.refresh(&launch.tokens).await.unwrap();

        let wrong = ts.config(OFFLINE).with_client_auth(secret_auth(basic, "wrong"));
        let (_, result) = launch_on_sandbox(&ts, wrong).await;
        let err = result.unwrap_err();
        assert!(
            matches!(err, Error::TokenEndpoint { status: 401, ref error, .. } if error.as_deref() == Some("invalid_client")),
            "{err}"
        );
    }
}

#[tokio::test]
async fn private_key_jwt_authenticates_code_exchange_and_refresh_with_rs384_and_es384() {
    for name in ["client-rs384", "client-es384"] {
        let ts = TestSandbox::start().await;
        let signing = key(name);
        let spec =
            ClientSpec::public(APP, TestSandbox::redirect()).with_keys(ClientKeys::Set(signing.jwks()));
        ts.register(spec);
        let config = ts
            .config(OFFLINE)
            .with_client_auth(ClientAuth::PrivateKeyJwt(signing.clone()));
        let (client, result) = launch_on_sandbox(&ts, config).await;
        let launch = result.unwrap();
        // The sandbox accepts nothing but a valid RS384/ES384 assertion from this client, with a fresh jti.
        let refreshed = client.refresh(&launch.tokens).await.unwrap();
        client.refresh(&refreshed).await.unwrap();
        assert_eq!(client.public_jwks().unwrap(), signing.jwks());
    }
}

#[tokio::test]
async fn private_key_jwt_signed_with_an_unregistered_key_is_refused() {
    let ts = TestSandbox::start().await;
    let spec = ClientSpec::public(APP, TestSandbox::redirect())
        .with_keys(ClientKeys::Set(key("client-es384").jwks()));
    ts.register(spec);
    let config = ts
        .config(OFFLINE)
        .with_client_auth(ClientAuth::PrivateKeyJwt(key("other-es384")));
    let (_, result) = launch_on_sandbox(&ts, config).await;
    let err = result.unwrap_err();
    assert!(
        matches!(err, Error::TokenEndpoint { status: 401, ref error, .. } if error.as_deref() == Some("invalid_client")),
        "{err}"
    );
}

#[tokio::test]
async fn token_endpoint_500_is_a_typed_error() {
    let server = FaultServer::start().await;
    server.behave(|b| b.token_failure = Some((500, "text/html", "<h1>Internal Server Error</h1>")));
    let (_, result) = launch_on_fault_server(&server, "launch/patient").await;
    let err = result.unwrap_err();
    assert!(
        matches!(err, Error::TokenEndpoint { status: 500, error: None, ref body, .. } if body.contains("Internal"))
    );
    assert!(err.to_string().contains("try again later"));
}

#[tokio::test]
async fn malformed_token_json_is_a_typed_error() {
    let server = FaultServer::start().await;
    server.behave(|b| {
        b.token_failure = Some((200, "application/json", r#"{"access_token": "a", "expires_in": "#))
    });
    let (_, result) = launch_on_fault_server(&server, "launch/patient").await;
    assert!(matches!(
        result.unwrap_err(),
        Error::MalformedResponse {
            what: "token response",
            ..
        }
    ));

    server.behave(|b| {
        b.token_failure = Some((
            200,
            "application/json",
            r#"{"access_token": "a", "expires_in": "soon"}"#,
        ))
    });
    let (_, result) = launch_on_fault_server(&server, "launch/patient").await;
    match result.unwrap_err() {
        Error::MalformedResponse { path, body, .. } => {
            assert_eq!(path, "expires_in");
            assert!(body.contains("soon"), "the raw body is kept");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn non_bearer_tokens_are_refused() {
    let server = FaultServer::start().await;
    server.behave(|b| {
        b.token_failure = Some((
            200,
            "application/json",
            r#"{"access_token": "a", "token_type": "mac"}"#,
        ))
    });
    let (_, result) = launch_on_fault_server(&server, "launch/patient").await;
    assert!(matches!(result.unwrap_err(), Error::MalformedResponse { ref path, .. } if path == "token_type"));
}

#[tokio::test]
async fn redirects_from_the_token_endpoint_are_not_followed() {
    let server = FaultServer::start().await;
    server.behave(|b| b.token_redirect = true);
    let (_, result) = launch_on_fault_server(&server, "launch/patient").await;
    assert!(matches!(
        result.unwrap_err(),
        Error::UnexpectedRedirect { status: 307, .. }
    ));
}

#[tokio::test]
async fn refresh_keeps_old_refresh_token_when_none_returned() {
    let server = FaultServer::start().await;
    let (client, launch) = launch_on_fault_server(&server, OFFLINE).await;
    let launch = launch.unwrap();
    let old = launch.tokens.refresh_token.clone().unwrap();
    let refreshed = client.refresh(&launch.tokens).await.unwrap();
    assert_ne!(refreshed.access_token, launch.tokens.access_token);
    assert_eq!(refreshed.refresh_token, Some(old));
    assert_eq!(
        refreshed.scope, launch.tokens.scope,
        "scope kept when the refresh response has none"
    );
    // The kept refresh token still works.
    client.refresh(&refreshed).await.unwrap();
}

#[tokio::test]
async fn twenty_concurrent_callers_cause_exactly_one_refresh() {
    let server = FaultServer::start().await;
    server.behave(|b| b.expires_in = json!(0));
    let (client, launch) = launch_on_fault_server(&server, OFFLINE).await;
    let launch = launch.unwrap();
    server.behave(|b| b.expires_in = json!(3600));
    let source: Arc<dyn TokenSource> = client.token_source(launch.tokens.clone());

    let calls = (0..20).map(|_| {
        let source = source.clone();
        tokio::spawn(async move { source.access_token().await })
    });
    let tokens: Vec<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert_eq!(server.hits("token:refresh_token"), 1);
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_ne!(tokens[0], launch.tokens.access_token);
    // Fresh now: no further refresh.
    source.access_token().await.unwrap();
    assert_eq!(server.hits("token:refresh_token"), 1);
}

#[tokio::test]
async fn unauthorized_refreshes_once_for_all_holders_of_the_rejected_token() {
    let server = FaultServer::start().await;
    let (client, launch) = launch_on_fault_server(&server, OFFLINE).await;
    let holder = client.token_source(launch.unwrap().tokens);
    let mut updates = holder.subscribe();
    let rejected = holder.access_token().await.unwrap();
    let calls = (0..5).map(|_| {
        let holder = holder.clone();
        let rejected = rejected.clone();
        tokio::spawn(async move { holder.refresh_after_unauthorized(&rejected).await })
    });
    let replaced: Vec<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert_eq!(server.hits("token:refresh_token"), 1);
    assert!(replaced.iter().all(|t| *t == replaced[0] && *t != rejected));
    assert!(updates.has_changed().unwrap());
    assert_eq!(updates.borrow_and_update().access_token, replaced[0]);
}
