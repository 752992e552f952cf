//! The token endpoint with public clients: codes, PKCE, refresh rotation, id_token, expiry, introspection and
//! revocation.

use std::time::Duration;

use crate::common::*;
use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};
use reqwest::StatusCode;
use sandbox::{BearerError, ClientSpec, SimulatedFailure};
use serde_json::Value;
use url::Url;

#[tokio::test]
async fn standalone_launch_returns_tokens_with_patient_context_and_a_verifiable_id_token() {
    let ts = start().await;
    let body = launch_and_exchange(&ts, "launch/patient openid fhirUser patient/*.rs made_up").await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(
        body["scope"], "launch/patient openid fhirUser patient/*.rs",
        "unknown scopes are not granted"
    );
    assert_eq!(body["need_patient_banner"], true);
    assert!(body["smart_style_url"].is_string());
    assert!(
        body.get("refresh_token").is_none(),
        "no offline_access, no refresh token"
    );
    let patient = body["patient"].as_str().unwrap().to_owned();

    let grant = ts.check(body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(grant.patient.as_deref(), Some(patient.as_str()));
    assert_eq!(grant.client_id, APP);
    assert_eq!(grant.fhir_user, Some(format!("Patient/{patient}")));

    let jwks: JwkSet = ts
        .http
        .get(ts.url("/auth/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
    let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[APP]);
    validation.set_issuer(&[ts.aud()]);
    let claims = jsonwebtoken::decode::<Value>(body["id_token"].as_str().unwrap(), &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["nonce"], "nonce-456");
    assert_eq!(claims["fhirUser"], format!("{}/Patient/{patient}", ts.aud()));
}

#[tokio::test]
async fn replayed_code_is_refused_and_revokes_the_tokens_issued_from_it() {
    let ts = start().await;
    let request = AuthRequest::new(&ts, "launch/patient patient/*.rs offline_access");
    let back = authorize(&ts, &request, Decision::Approve).await;
    let code = query(&back, "code").unwrap();
    let (status, first) = ts.exchange(&code, &request.verifier).await;
    assert_eq!(status, StatusCode::OK);
    let access = first["access_token"].as_str().unwrap();
    assert!(ts.check(access).is_ok());

    let (status, replay) = ts.exchange(&code, &request.verifier).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(replay["error"], "invalid_grant");
    assert!(matches!(ts.check(access), Err(BearerError::Revoked)));
    let (status, refreshed) = ts
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
            ("client_id", APP),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refreshed}");
}

#[tokio::test]
async fn expired_code_is_refused() {
    let ts = start_with(|c| c.code_ttl = Duration::ZERO).await;
    let request = AuthRequest::new(&ts, "launch/patient patient/*.rs");
    let back = authorize(&ts, &request, Decision::Approve).await;
    let (status, body) = ts
        .exchange(&query(&back, "code").unwrap(), &request.verifier)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert!(body["error_description"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn wrong_code_verifier_or_redirect_uri_is_refused() {
    let ts = start().await;
    let request = AuthRequest::new(&ts, "launch/patient patient/*.rs");
    let back = authorize(&ts, &request, Decision::Approve).await;
    let code = query(&back, "code").unwrap();
    let (_, other_verifier) = pkce();
    let (status, body) = ts
        .exchange(
            &code,
            &format!("{other_verifier}-and-more-characters-to-be-long-enough"),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    let request = AuthRequest::new(&ts, "launch/patient patient/*.rs");
    let back = authorize(&ts, &request, Decision::Approve).await;
    let code = query(&back, "code").unwrap();
    let (status, _) = ts
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/other"),
            ("code_verifier", &request.verifier),
            ("client_id", APP),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_refresh_token_revokes_the_grant() {
    let ts = start().await;
    let first = launch_and_exchange(&ts, "launch/patient patient/*.rs offline_access").await;
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();
    let (status, second) = ts
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &r1),
            ("client_id", APP),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(
        second["scope"], first["scope"],
        "no scope asked: the grant is kept"
    );
    assert_eq!(second["patient"], first["patient"]);
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    let a2 = second["access_token"].as_str().unwrap().to_owned();
    assert!(ts.check(&a2).is_ok());

    let (status, reuse) = ts
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &r1),
            ("client_id", APP),
        ])
        .await;
    assert_eq!(
        (status, reuse["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert!(matches!(ts.check(&a2), Err(BearerError::Revoked)));
    let (status, _) = ts
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &r2),
            ("client_id", APP),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn refresh_may_narrow_the_scope_but_not_widen_it() {
    let ts = start().await;
    let first = launch_and_exchange(
        &ts,
        "launch/patient patient/Patient.rs patient/Observation.rs online_access",
    )
    .await;
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();
    let (status, wider) = ts
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &r1),
            ("client_id", APP),
            ("scope", "patient/*.cruds"),
        ])
        .await;
    assert_eq!(
        (status, wider["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );
    let (status, narrower) = ts
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &r1),
            ("client_id", APP),
            ("scope", "patient/Patient.rs online_access"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{narrower}");
    assert_eq!(narrower["scope"], "patient/Patient.rs online_access");
}

#[tokio::test]
async fn expired_access_token_is_refused_and_lowercase_bearer_is_accepted() {
    let ts = start_with(|c| c.token_ttl = Duration::ZERO).await;
    let body = launch_and_exchange(&ts, "launch/patient patient/*.rs").await;
    assert!(matches!(
        ts.check(body["access_token"].as_str().unwrap()),
        Err(BearerError::Expired)
    ));

    let live = start().await;
    let body = launch_and_exchange(&live, "launch/patient patient/*.rs").await;
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("bearer {}", body["access_token"].as_str().unwrap())
            .parse()
            .unwrap(),
    );
    assert!(live.running.state.auth().check_bearer(&headers).is_ok());
    assert!(matches!(live.check("not-a-token"), Err(BearerError::Unknown)));
    let none = http::HeaderMap::new();
    assert!(matches!(
        live.running.state.auth().check_bearer(&none),
        Err(BearerError::Missing)
    ));
}

#[tokio::test]
async fn simulated_expired_token_and_token_error() {
    let ts = start().await;
    ts.register(
        ClientSpec::public(APP, Url::parse(REDIRECT).unwrap()).with_failure(SimulatedFailure::ExpiredToken),
    );
    let body = launch_and_exchange(&ts, "launch/patient patient/*.rs").await;
    assert!(matches!(
        ts.check(body["access_token"].as_str().unwrap()),
        Err(BearerError::Expired)
    ));

    ts.register(
        ClientSpec::public(APP, Url::parse(REDIRECT).unwrap()).with_failure(SimulatedFailure::TokenError),
    );
    let request = AuthRequest::new(&ts, "launch/patient patient/*.rs");
    let back = authorize(&ts, &request, Decision::Approve).await;
    let (status, body) = ts
        .exchange(&query(&back, "code").unwrap(), &request.verifier)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn introspection_reports_the_launch_context_and_revocation_ends_it() {
    let ts = start().await;
    ts.register(
        "id=inspector,redirect=http://127.0.0.1:9/x,secret=s3cret"
            .parse()
            .unwrap(),
    );
    let body = launch_and_exchange(&ts, "launch/patient patient/*.rs offline_access").await;
    let access = body["access_token"].as_str().unwrap().to_owned();
    let introspect = |token: String| {
        let ts = &ts;
        async move {
            ts.post_form(
                "/auth/introspect",
                &[("token", &token)],
                Some(("inspector", "s3cret")),
            )
            .await
        }
    };
    let (status, info) = introspect(access.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["active"], true);
    assert_eq!(info["patient"], body["patient"]);
    assert_eq!(info["client_id"], APP);
    assert_eq!(info["scope"], body["scope"]);

    // A public client cannot introspect; a bearer token can.
    let (status, _) = ts
        .post_form(
            "/auth/introspect",
            &[("token", &access), ("client_id", APP)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, _) = ts
        .post_form(
            "/auth/revoke",
            &[
                ("token", body["refresh_token"].as_str().unwrap()),
                ("client_id", APP),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(introspect(access.clone()).await.1["active"], false);
    assert!(matches!(ts.check(&access), Err(BearerError::Revoked)));
    let (status, _) = ts
        .post_form(
            "/auth/revoke",
            &[("token", "unknown-token"), ("client_id", APP)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn token_endpoint_refuses_unknown_grant_types_and_clients() {
    let ts = start().await;
    let (status, body) = ts.token(&[("grant_type", "password"), ("client_id", APP)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
    let (status, body) = ts
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("client_id", "nobody"),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (status, body) = ts
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("client_id", APP),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}
