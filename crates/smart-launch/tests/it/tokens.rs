use std::sync::Arc;

use serde_json::json;
use smart_launch::{
    ClientAuth, CompletedLaunch, Error, RefreshToken, SmartClient, SmartClientConfig, TokenSource,
};

use crate::common::{Registered, TestAuthServer, key, secret_auth};

async fn launch_with(
    server: &TestAuthServer,
    config: SmartClientConfig,
) -> (SmartClient, Result<CompletedLaunch, Error>) {
    let client = SmartClient::new(config).unwrap();
    let (request, pending) = client.standalone_launch(&server.fhir_base).await.unwrap();
    let redirect = server.follow_authorize(&request).await;
    let result = client.complete_from_url(pending, &redirect).await;
    (client, result)
}

async fn launch(server: &TestAuthServer) -> (SmartClient, CompletedLaunch) {
    let (client, result) = launch_with(
        server,
        server.config("launch/patient offline_access patient/Patient.read"),
    )
    .await;
    (client, result.unwrap())
}

#[tokio::test]
async fn token_endpoint_400_is_a_typed_error() {
    let server = TestAuthServer::start().await;
    server.behave(|b| {
        b.token_failure = Some((
            400,
            "application/json",
            r#"{"error":"invalid_grant","error_description":"code expired"}"#,
        ))
    });
    let (_, result) = launch_with(&server, server.config("launch/patient")).await;
    match result.unwrap_err() {
        Error::TokenEndpoint {
            status,
            error,
            description,
            ..
        } => {
            assert_eq!(status, 400);
            assert_eq!(error.as_deref(), Some("invalid_grant"));
            assert_eq!(description.as_deref(), Some("code expired"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn token_endpoint_500_is_a_typed_error() {
    let server = TestAuthServer::start().await;
    server.behave(|b| b.token_failure = Some((500, "text/html", "<h1>Internal Server Error</h1>")));
    let (_, result) = launch_with(&server, server.config("launch/patient")).await;
    let err = result.unwrap_err();
    assert!(
        matches!(err, Error::TokenEndpoint { status: 500, error: None, ref body, .. } if body.contains("Internal"))
    );
    assert!(err.to_string().contains("try again later"));
}

#[tokio::test]
async fn malformed_token_json_is_a_typed_error() {
    let server = TestAuthServer::start().await;
    server.behave(|b| {
        b.token_failure = Some((200, "application/json", r#"{"access_token": "a", "expires_in": "#))
    });
    let (_, result) = launch_with(&server, server.config("launch/patient")).await;
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
    let (_, result) = launch_with(&server, server.config("launch/patient")).await;
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
    let server = TestAuthServer::start().await;
    server.behave(|b| {
        b.token_failure = Some((
            200,
            "application/json",
            r#"{"access_token": "a", "token_type": "mac"}"#,
        ))
    });
    let (_, result) = launch_with(&server, server.config("launch/patient")).await;
    assert!(matches!(result.unwrap_err(), Error::MalformedResponse { ref path, .. } if path == "token_type"));
}

#[tokio::test]
async fn redirects_from_the_token_endpoint_are_not_followed() {
    let server = TestAuthServer::start().await;
    server.behave(|b| b.token_redirect = true);
    let (_, result) = launch_with(&server, server.config("launch/patient")).await;
    assert!(matches!(
        result.unwrap_err(),
        Error::UnexpectedRedirect { status: 307, .. }
    ));
}

#[tokio::test]
async fn refresh_keeps_old_refresh_token_when_none_returned() {
    let server = TestAuthServer::start().await;
    let (client, launch) = launch(&server).await;
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
async fn refresh_replaces_a_rotated_refresh_token() {
    let server = TestAuthServer::start().await;
    server.behave(|b| b.rotate_refresh_token = true);
    let (client, launch) = launch(&server).await;
    let refreshed = client.refresh(&launch.tokens).await.unwrap();
    let new: &RefreshToken = refreshed.refresh_token.as_ref().unwrap();
    assert_ne!(Some(new), launch.tokens.refresh_token.as_ref());
    // The old one is gone at the server; using it is a typed error.
    assert!(matches!(
        client.refresh(&launch.tokens).await.unwrap_err(),
        Error::TokenEndpoint { status: 400, .. }
    ));
}

#[tokio::test]
async fn refresh_without_a_refresh_token_is_a_typed_error() {
    let server = TestAuthServer::start().await;
    let (client, mut launch) = launch(&server).await;
    launch.tokens.refresh_token = None;
    assert!(matches!(
        client.refresh(&launch.tokens).await.unwrap_err(),
        Error::NoRefreshToken
    ));
}

#[tokio::test]
async fn twenty_concurrent_callers_cause_exactly_one_refresh() {
    let server = TestAuthServer::start().await;
    server.behave(|b| b.expires_in = json!(0));
    let (client, launch) = launch(&server).await;
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
    let server = TestAuthServer::start().await;
    let (client, launch) = launch(&server).await;
    let holder = client.token_source(launch.tokens.clone());
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

#[tokio::test]
async fn expired_token_without_refresh_token_is_a_typed_error() {
    let server = TestAuthServer::start().await;
    server.behave(|b| b.expires_in = json!(0));
    let (client, mut launch) = launch(&server).await;
    launch.tokens.refresh_token = None;
    let source = client.token_source(launch.tokens);
    assert!(matches!(
        source.access_token().await.unwrap_err(),
        Error::NoRefreshToken
    ));
}

#[tokio::test]
async fn client_secret_basic_and_post_authenticate_code_exchange_and_refresh() {
    for basic in [true, false] {
        let server = TestAuthServer::start().await;
        server.register("public-app", Registered::Secret("s3cr3t/+=".into()));
        let config = server
            .config("launch/patient offline_access")
            .with_client_auth(secret_auth(basic, "s3cr3t/+="));
        let (client, result) = launch_with(&server, config).await;
        let launch = result.unwrap();
        client.refresh(&launch.tokens).await.unwrap();

        let wrong = server
            .config("launch/patient")
            .with_client_auth(secret_auth(basic, "wrong"));
        let (_, result) = launch_with(&server, wrong).await;
        assert!(
            matches!(result.unwrap_err(), Error::TokenEndpoint { status: 401, ref error, .. } if error.as_deref() == Some("invalid_client"))
        );
    }
}

#[tokio::test]
async fn private_key_jwt_authenticates_code_exchange_and_refresh_with_rs384_and_es384() {
    for (name, alg) in [("client-rs384", "RS384"), ("client-es384", "ES384")] {
        let server = TestAuthServer::start().await;
        let signing = key(name);
        server.register("public-app", Registered::Jwks(signing.jwks()));
        let config = server
            .config("launch/patient offline_access")
            .with_client_auth(ClientAuth::PrivateKeyJwt(signing.clone()));
        let (client, result) = launch_with(&server, config).await;
        let launch = result.unwrap();
        client.refresh(&launch.tokens).await.unwrap();
        assert_eq!(
            server.hits(&format!("auth:{alg}")),
            2,
            "code exchange and refresh both signed"
        );
        assert_eq!(client.public_jwks().unwrap(), signing.jwks());
    }
}
