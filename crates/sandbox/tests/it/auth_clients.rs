//! Confidential clients: client_secret_basic / client_secret_post, private_key_jwt (ES384, RS384),
//! client_credentials with the `jti` replay cache.

use crate::common::*;
use jsonwebtoken::{
    Algorithm, EncodingKey, Header,
    jwk::{Jwk, JwkSet},
};
use reqwest::StatusCode;
use rsa::pkcs1::EncodeRsaPrivateKey;
use sandbox::{ClientKeys, ClientSpec};
use serde_json::json;
use url::Url;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client key pair: how to sign, and the public JWK (with a kid).
struct ClientKey {
    encoding: EncodingKey,
    alg: Algorithm,
    kid: String,
    public: Jwk,
}

fn es384_key() -> ClientKey {
    use p384::pkcs8::EncodePrivateKey;
    let secret = p384::SecretKey::random(&mut rsa::rand_core::OsRng);
    let pem = secret.to_pkcs8_pem(p384::pkcs8::LineEnding::LF).unwrap();
    let encoding = EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
    finish(encoding, Algorithm::ES384, "es-key")
}

fn rs384_key() -> ClientKey {
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let pem = key.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap();
    let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    finish(encoding, Algorithm::RS384, "rs-key")
}

fn finish(encoding: EncodingKey, alg: Algorithm, kid: &str) -> ClientKey {
    let mut public = Jwk::from_encoding_key(&encoding, alg).unwrap();
    public.common.key_id = Some(kid.to_owned());
    ClientKey {
        encoding,
        alg,
        kid: kid.to_owned(),
        public,
    }
}

fn assertion(key: &ClientKey, client_id: &str, aud: &str, jti: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    let claims =
        json!({ "iss": client_id, "sub": client_id, "aud": aud, "exp": now + 120, "iat": now, "jti": jti });
    jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
}

fn backend(ts: &TestSandbox, id: &str, key: &ClientKey) {
    let spec = ClientSpec::public(id, Url::parse(REDIRECT).unwrap()).with_keys(ClientKeys::Set(JwkSet {
        keys: vec![key.public.clone()],
    }));
    ts.register(spec);
}

#[tokio::test]
async fn confidential_client_authenticates_with_basic_or_post_and_a_wrong_secret_is_refused() {
    let ts = start().await;
    ts.register(ClientSpec::public(APP, Url::parse(REDIRECT).unwrap()).with_secret("s3cret"));
    for method in ["basic", "post", "wrong", "none"] {
        let request = AuthRequest::new(&ts, "launch/patient patient/*.rs");
        let back = authorize(&ts, &request, Decision::Approve).await;
        let code = query(&back, "code").unwrap();
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", request.verifier.as_str()),
        ];
        let basic = match method {
            "basic" => Some((APP, "s3cret")),
            "wrong" => Some((APP, "guess")),
            _ => None,
        };
        if method == "post" {
            form.extend([("client_id", APP), ("client_secret", "s3cret")]);
        }
        if method == "none" {
            form.push(("client_id", APP));
        }
        let (status, body) = ts.post_form("/auth/token", &form, basic).await;
        match method {
            "basic" | "post" => assert_eq!(status, StatusCode::OK, "{method}: {body}"),
            _ => assert_eq!(
                (status, body["error"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("invalid_client")),
                "{method}"
            ),
        }
    }
}

#[tokio::test]
async fn private_key_jwt_client_exchanges_a_code_with_an_es384_assertion() {
    let ts = start().await;
    let key = es384_key();
    backend(&ts, APP, &key);
    let request = AuthRequest::new(&ts, "launch/patient patient/*.rs");
    let back = authorize(&ts, &request, Decision::Approve).await;
    let code = query(&back, "code").unwrap();
    let token_url = ts.url("/auth/token");
    let jwt = assertion(&key, APP, &token_url, "jti-1");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", request.verifier.as_str()),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", jwt.as_str()),
    ];
    let (status, body) = ts.token(&form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn client_credentials_grants_system_scopes_and_refuses_a_replayed_jti() {
    let ts = start().await;
    let key = rs384_key();
    backend(&ts, "backend", &key);
    let token_url = ts.url("/auth/token");
    let jwt = assertion(&key, "backend", &token_url, "jti-once");
    let form = [
        ("grant_type", "client_credentials"),
        ("scope", "system/Patient.rs system/Observation.rs patient/*.rs"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", jwt.as_str()),
    ];
    let (status, body) = ts.token(&form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "system/Patient.rs system/Observation.rs");
    assert!(body.get("refresh_token").is_none());
    let grant = ts.check(body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(
        (grant.client_id.as_str(), grant.patient, grant.fhir_user),
        ("backend", None, None)
    );

    let (status, replay) = ts.token(&form).await;
    assert_eq!(
        (status, replay["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
}

#[tokio::test]
async fn client_assertions_with_wrong_audience_key_or_algorithm_are_refused() {
    let ts = start().await;
    let key = es384_key();
    backend(&ts, "backend", &key);
    let token_url = ts.url("/auth/token");
    let send = |jwt: String| {
        let ts = &ts;
        async move {
            let form = [
                ("grant_type", "client_credentials"),
                ("scope", "system/*.rs"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", jwt.as_str()),
            ];
            ts.token(&form).await
        }
    };
    let (status, _) = send(assertion(&key, "backend", "https://elsewhere.example/token", "a")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let stranger = es384_key();
    let (status, _) = send(assertion(&stranger, "backend", &token_url, "b")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let hs = ClientKey {
        encoding: EncodingKey::from_secret(b"shared"),
        alg: Algorithm::HS256,
        kid: "es-key".into(),
        public: key.public.clone(),
    };
    let (status, body) = send(assertion(&hs, "backend", &token_url, "c")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = send(assertion(&key, "backend", &token_url, "d")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn client_credentials_is_refused_to_public_and_secret_clients() {
    let ts = start().await;
    let (status, body) = ts
        .token(&[
            ("grant_type", "client_credentials"),
            ("scope", "system/*.rs"),
            ("client_id", APP),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client"))
    );
}

#[tokio::test]
async fn client_keys_can_come_from_a_jwks_file() {
    let ts = start().await;
    let key = es384_key();
    let path = ts.dir.path().join("client.jwks.json");
    std::fs::write(
        &path,
        serde_json::to_string(&JwkSet {
            keys: vec![key.public.clone()],
        })
        .unwrap(),
    )
    .unwrap();
    let spec: ClientSpec = format!("id=filed,redirect={REDIRECT},jwks={}", path.display())
        .parse()
        .unwrap();
    ts.register(spec);
    let jwt = assertion(&key, "filed", &ts.url("/auth/token"), "f");
    let form = [
        ("grant_type", "client_credentials"),
        ("scope", "system/*.rs"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", jwt.as_str()),
    ];
    let (status, body) = ts.token(&form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let missing: ClientSpec = format!("id=x,redirect={REDIRECT},jwks=/no/such/file.json")
        .parse()
        .unwrap();
    assert!(ts.running.state.auth().register_client(missing).is_err());
}

#[tokio::test]
async fn client_keys_can_come_from_a_jwks_url() {
    let ts = start().await;
    let key = es384_key();
    let set = JwkSet {
        keys: vec![key.public.clone()],
    };
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || async move { axum::Json(set) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = Url::parse(&format!("http://{}/jwks.json", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    ts.register(
        ClientSpec::public("remote-keys", Url::parse(REDIRECT).unwrap()).with_keys(ClientKeys::Url(jwks_url)),
    );
    for jti in ["u1", "u2"] {
        let jwt = assertion(&key, "remote-keys", &ts.url("/auth/token"), jti);
        let form = [
            ("grant_type", "client_credentials"),
            ("scope", "system/*.rs"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", jwt.as_str()),
        ];
        let (status, body) = ts.token(&form).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}
