//! Launch traces: every step recorded in order, and no secret the test knows anywhere in them.

use sandbox::ClientSpec;
use smart_launch::trace::{CheckOutcome, TraceValue};
use smart_launch::{CallbackParams, LaunchTrace, SmartClient, Step};

use crate::common::{APP, TestSandbox, param, secret_auth};

const SCOPE: &str = "launch/patient openid fhirUser offline_access patient/Patient.read";
const SECRET: &str = "trace-client-s3cr3t";

fn steps(trace: &LaunchTrace) -> Vec<Step> {
    trace.steps.iter().map(|s| s.step).collect()
}

#[tokio::test]
async fn a_traced_launch_records_discovery_to_d_and_holds_no_secret() {
    let ts = TestSandbox::start().await;
    ts.register(ClientSpec::public(APP, TestSandbox::redirect()).with_secret(SECRET));
    let config = ts.config(SCOPE).with_client_auth(secret_auth(true, SECRET));
    let client = SmartClient::new(config).unwrap();
    let mut trace = LaunchTrace::new();
    let (request, pending) = client
        .standalone_launch_traced(&ts.fhir_base, &mut trace)
        .await
        .unwrap();
    let mut secrets = vec![SECRET.to_owned(), pending.pkce_verifier().secret().to_owned()];
    for name in ["state", "code_challenge", "nonce"] {
        secrets.push(param(&request.url, name).unwrap());
    }
    let redirect = ts.approve(&request).await;
    secrets.push(param(&redirect, "code").unwrap());
    let launch = client
        .complete_traced(pending, CallbackParams::from_url(&redirect), &mut trace)
        .await
        .unwrap();
    secrets.push(launch.tokens.access_token.secret().to_owned());
    secrets.push(launch.tokens.refresh_token.as_ref().unwrap().secret().to_owned());
    let id_token = launch.tokens.id_token.as_ref().unwrap().secret().to_owned();
    secrets.extend(id_token.split('.').map(str::to_owned));
    secrets.push(id_token);

    assert_eq!(
        steps(&trace),
        [
            Step::Discovery,
            Step::AuthorizationRequest,
            Step::AuthorizationGrant,
            Step::TokenRequest,
            Step::AccessToken
        ]
    );
    assert!(trace.failed_step().is_none());
    let json = serde_json::to_string(&trace).unwrap();
    let debug = format!("{trace:?}");
    for secret in &secrets {
        assert!(
            !json.contains(secret.as_str()),
            "a secret is in the stored trace: {json}"
        );
        assert!(!debug.contains(secret.as_str()));
    }
    // What a developer needs is there: the endpoints, the parameters, the method, the checks.
    let a = trace.step(Step::AuthorizationRequest).unwrap();
    let sent = |name: &str| a.sent.iter().find(|f| f.name == name).map(|f| f.value.clone());
    assert_eq!(
        sent("code_challenge_method"),
        Some(TraceValue::Text("S256".into()))
    );
    assert!(matches!(sent("state"), Some(TraceValue::Fingerprint(_))));
    let c = trace.step(Step::TokenRequest).unwrap();
    assert!(
        c.sent.iter().any(|f| f.name == "client authentication"
            && f.value == TraceValue::Text("client_secret_basic".into()))
    );
    assert!(
        c.sent
            .iter()
            .any(|f| f.name == "code" && f.value == TraceValue::Redacted)
    );
    let b = trace.step(Step::AuthorizationGrant).unwrap();
    assert!(
        b.checks.iter().all(|c| c.outcome == CheckOutcome::Passed),
        "{b:?}"
    );
    let d = trace.step(Step::AccessToken).unwrap();
    let id_checks: Vec<_> = d
        .checks
        .iter()
        .filter(|c| c.name.starts_with("id_token"))
        .collect();
    assert!(id_checks.len() >= 8);
    assert!(
        id_checks.iter().all(|c| c.outcome == CheckOutcome::Passed),
        "{id_checks:?}"
    );
    let id_field = d.received.iter().find(|f| f.name == "id_token").unwrap();
    match &id_field.value {
        TraceValue::Jwt { header, claims } => {
            assert!(header.contains_key("alg"));
            assert_eq!(claims["iss"], ts.fhir_base.as_str());
        }
        other => panic!("the id_token is shown by header and claims, not {other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_state_ends_the_trace_at_b_with_the_reason() {
    let ts = TestSandbox::start().await;
    let client = SmartClient::new(ts.config(SCOPE)).unwrap();
    let mut trace = LaunchTrace::new();
    let (request, pending) = client
        .standalone_launch_traced(&ts.fhir_base, &mut trace)
        .await
        .unwrap();
    let mut redirect = ts.approve(&request).await;
    let code = param(&redirect, "code").unwrap();
    redirect.set_query(Some(&format!("code={code}&state=forged")));
    let error = client
        .complete_traced(pending, CallbackParams::from_url(&redirect), &mut trace)
        .await
        .unwrap_err();
    assert_eq!(trace.steps.last().unwrap().step, Step::AuthorizationGrant);
    let failed = trace.failed_step().unwrap();
    assert_eq!(failed.step, Step::AuthorizationGrant);
    assert_eq!(failed.failure.as_deref(), Some(error.reason().as_str()));
    let outcomes: Vec<_> = failed.checks.iter().map(|c| c.outcome).collect();
    assert_eq!(
        outcomes,
        [
            CheckOutcome::Passed,
            CheckOutcome::Failed,
            CheckOutcome::NotReached,
            CheckOutcome::NotReached
        ]
    );
    assert!(!serde_json::to_string(&trace).unwrap().contains(&code));
}

#[tokio::test]
async fn a_server_without_discovery_ends_the_trace_at_discovery() {
    let ts = TestSandbox::start().await;
    let client = SmartClient::new(ts.config(SCOPE)).unwrap();
    let nowhere = ts.fhir_base.join("/no-fhir-here/").unwrap();
    let mut trace = LaunchTrace::new();
    let error = client
        .standalone_launch_traced(&nowhere, &mut trace)
        .await
        .unwrap_err();
    assert_eq!(steps(&trace), [Step::Discovery]);
    assert_eq!(trace.steps[0].failure.as_deref(), Some(error.reason().as_str()));
}

#[tokio::test]
async fn a_refused_ehr_issuer_fails_before_discovery_is_asked() {
    let ts = TestSandbox::start().await;
    let client = SmartClient::new(ts.config(SCOPE)).unwrap();
    let mut trace = LaunchTrace::new();
    client
        .ehr_launch_traced("https://evil.example/fhir", "l", &mut trace)
        .await
        .unwrap_err();
    assert_eq!(steps(&trace), [Step::Discovery]);
    assert!(trace.steps[0].failure.as_deref().unwrap().contains("not allowed"));
    assert_eq!(ts.total_requests(), 0);
}
