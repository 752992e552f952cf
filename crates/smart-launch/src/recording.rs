//! Building the [`crate::trace`] steps from what the client sent and received. Only called when the
//! caller asked for a trace.

use chrono::{DateTime, Utc};
use url::Url;

use crate::authorize::{AuthorizeRequest, PendingLaunch};
use crate::discovery::{DiscoverySource, SmartConfiguration};
use crate::error::{Error, IdTokenError};
use crate::id_token::IdTokenClaims;
use crate::scope::ScopeSet;
use crate::token::{TokenResponse, TokenSet};
use crate::trace::{CheckOutcome, Fingerprint, LaunchTrace, Step, TraceField, TraceStep, parameter};

/// Records into an optional trace: does nothing (and builds nothing) when there is none.
pub(crate) fn record(trace: &mut Option<&mut LaunchTrace>, build: impl FnOnce() -> TraceStep) {
    if let Some(trace) = trace.as_deref_mut() {
        trace.push(build());
    }
}

/// Records a failure of `step` into an optional trace and hands the error back.
pub(crate) fn failed(trace: &mut Option<&mut LaunchTrace>, step: Step, error: Error) -> Error {
    if let Some(trace) = trace.as_deref_mut() {
        trace.fail(step, error.reason());
    }
    error
}

/// Discovery: which document answered and the endpoints it named.
pub(crate) fn discovery(config: &SmartConfiguration) -> TraceStep {
    let base = config.fhir_base.as_str().trim_end_matches('/');
    let (document, url) = match config.source {
        DiscoverySource::WellKnown => (
            ".well-known/smart-configuration",
            format!("{base}/.well-known/smart-configuration"),
        ),
        DiscoverySource::CapabilityStatement => {
            ("CapabilityStatement (/metadata)", format!("{base}/metadata"))
        }
    };
    let mut step = TraceStep::new(Step::Discovery).with_target(format!("GET {url}"));
    step.sent
        .push(TraceField::text("FHIR base", config.fhir_base.as_str()));
    let received = &mut step.received;
    received.push(TraceField::text("answered by", document));
    received.push(TraceField::text(
        "authorization_endpoint",
        config.authorization_endpoint.as_str(),
    ));
    received.push(TraceField::text("token_endpoint", config.token_endpoint.as_str()));
    let optional = [
        ("issuer", config.issuer.clone()),
        ("jwks_uri", config.jwks_uri.as_ref().map(Url::to_string)),
        (
            "revocation_endpoint",
            config.revocation_endpoint.as_ref().map(Url::to_string),
        ),
        (
            "introspection_endpoint",
            config.introspection_endpoint.as_ref().map(Url::to_string),
        ),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            received.push(TraceField::text(name, value));
        }
    }
    let lists = [
        ("capabilities", &config.capabilities),
        (
            "code_challenge_methods_supported",
            &config.code_challenge_methods_supported,
        ),
        (
            "token_endpoint_auth_methods_supported",
            &config.token_endpoint_auth_methods_supported,
        ),
    ];
    for (name, values) in lists {
        if !values.is_empty() {
            received.push(TraceField::text(name, values.join(" ")));
        }
    }
    step
}

/// A: the authorize request, every parameter (state, challenge, nonce and launch fingerprinted).
pub(crate) fn authorize(request: &AuthorizeRequest) -> TraceStep {
    let (method, endpoint) = match &request.post {
        Some(post) => ("POST", post.action.clone()),
        None => {
            let mut endpoint = request.url.clone();
            endpoint.set_query(None);
            ("GET", endpoint)
        }
    };
    let mut step = TraceStep::new(Step::AuthorizationRequest).with_target(format!("{method} {endpoint}"));
    step.sent = request
        .url
        .query_pairs()
        .map(|(k, v)| parameter(&k, &v))
        .collect();
    step
}

/// B: the checks of [`crate::CallbackParams::verify`], in its order.
pub(crate) fn callback(
    pending: &PendingLaunch,
    now: DateTime<Utc>,
    result: &Result<(), &Error>,
) -> TraceStep {
    let mut step = TraceStep::new(Step::AuthorizationGrant).with_target(pending.redirect_uri().as_str());
    let failing = match result {
        Ok(()) => usize::MAX,
        Err(Error::Authorization { .. }) => 0,
        Err(Error::MissingParameter { parameter: "state" } | Error::StateMismatch) => 1,
        Err(Error::LaunchExpired { .. }) => 2,
        Err(_) => 3,
    };
    let age = (now - pending.created_at()).num_seconds();
    let checks = [
        ("no error from the server", "no `error` parameter".to_owned()),
        (
            "state matches the pending launch",
            format!("expected {}", Fingerprint::of(pending.state().secret())),
        ),
        (
            "launch not expired",
            format!(
                "started {age} s ago, valid until {}",
                pending.expires_at().format("%H:%M:%S UTC")
            ),
        ),
        ("code present", "a non-empty `code`".to_owned()),
    ];
    for (i, (name, detail)) in checks.into_iter().enumerate() {
        let (detail, outcome) = outcome_of(i, failing, detail, result);
        step.check(name, detail, outcome);
    }
    if let Err(e) = result {
        step.failure = Some(e.reason());
    }
    step
}

fn outcome_of(
    i: usize,
    failing: usize,
    detail: String,
    result: &Result<(), &Error>,
) -> (String, CheckOutcome) {
    use std::cmp::Ordering::*;
    match i.cmp(&failing) {
        Less => (detail, CheckOutcome::Passed),
        Equal => (
            result.as_ref().err().map_or(detail, |e| e.reason()),
            CheckOutcome::Failed,
        ),
        Greater => (detail, CheckOutcome::NotReached),
    }
}

/// D: the token response's fields (tokens redacted, the id_token by header and claims), scopes
/// granted against requested, expiry.
pub(crate) fn token_response(response: &TokenResponse, tokens: &TokenSet, requested: &ScopeSet) -> TraceStep {
    let mut step = TraceStep::new(Step::AccessToken);
    let r = &mut step.received;
    r.push(TraceField::redacted("access_token"));
    r.push(TraceField::text("token_type", response.token_type.as_str()));
    match response.expires_in {
        Some(secs) => r.push(TraceField::text("expires_in", format!("{secs} s"))),
        None => r.push(TraceField::text("expires_in", "not sent")),
    }
    if let Some(at) = tokens.expires_at {
        r.push(TraceField::text(
            "expires at",
            at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        ));
    }
    r.push(TraceField::text(
        "scope",
        response
            .scope
            .clone()
            .unwrap_or_else(|| "not sent (as requested)".into()),
    ));
    if response.refresh_token.is_some() {
        r.push(TraceField::redacted("refresh_token"));
    }
    if let Some(id_token) = &response.id_token {
        r.push(TraceField::jwt("id_token", id_token.secret()));
    }
    let context = [
        ("patient", response.patient.clone()),
        ("encounter", response.encounter.clone()),
        (
            "need_patient_banner",
            response.need_patient_banner.map(|b| b.to_string()),
        ),
        ("smart_style_url", response.smart_style_url.clone()),
        ("intent", response.intent.clone()),
        ("tenant", response.tenant.clone()),
    ];
    for (name, value) in context {
        if let Some(value) = value {
            r.push(TraceField::text(name, value));
        }
    }
    for item in &response.fhir_context {
        if let Some(reference) = item.reference.as_ref().or(item.canonical.as_ref()) {
            r.push(TraceField::text("fhirContext", reference.as_str()));
        }
    }
    for key in response.extra.keys() {
        // Vendor fields may hold anything; their names are shown, their values are not.
        r.push(TraceField::redacted(key.as_str()));
    }
    let comparison = requested.compare_granted(&tokens.scope);
    r.push(TraceField::text("scopes requested", requested.to_string()));
    r.push(TraceField::text("scopes granted", tokens.scope.to_string()));
    let missing: Vec<String> = comparison.missing.iter().map(ToString::to_string).collect();
    step.check(
        "every requested scope granted",
        if missing.is_empty() {
            "all granted".to_owned()
        } else {
            format!("not granted: {}", missing.join(" "))
        },
        if missing.is_empty() {
            CheckOutcome::Passed
        } else {
            // Not fatal: the app works with what it was given.
            CheckOutcome::Failed
        },
    );
    step
}

/// The id_token checks of [`crate::IdTokenVerifier::verify`] and the issuer resolution before it,
/// in order, with the result of each (`result` is the outcome of the whole verification).
pub(crate) fn id_token_checks(
    step: &mut TraceStep,
    claims: Option<&serde_json::Map<String, serde_json::Value>>,
    expected_nonce: bool,
    result: Result<&IdTokenClaims, &Error>,
) {
    let claim = |name: &str| {
        claims
            .and_then(|c| c.get(name))
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| "absent".into())
    };
    let failing = match result {
        Ok(_) => usize::MAX,
        Err(Error::IdToken(e)) => match e {
            IdTokenError::Malformed(_) => 0,
            IdTokenError::UnsupportedAlgorithm { .. } => 1,
            IdTokenError::IssuerNotTrusted { .. }
            | IdTokenError::OpenIdConfiguration { .. }
            | IdTokenError::NoJwksUri => 2,
            IdTokenError::UnknownKey { .. } | IdTokenError::Jwks(_) => 3,
            IdTokenError::BadSignature => 4,
            IdTokenError::Expired => 5,
            IdTokenError::WrongIssuer { .. } => 6,
            IdTokenError::WrongAudience => 7,
            IdTokenError::MissingAuthorizedParty | IdTokenError::WrongAuthorizedParty { .. } => 8,
            IdTokenError::WrongNonce => 9,
        },
        Err(_) => 2,
    };
    let exp = claims
        .and_then(|c| c.get("exp"))
        .and_then(serde_json::Value::as_i64)
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .map_or_else(|| "absent".into(), |t| t.to_rfc3339());
    let checks = [
        ("well-formed JWT", "header.payload.signature".to_owned()),
        ("algorithm accepted", "RS256/RS384/ES256/ES384".to_owned()),
        ("issuer trusted", format!("iss {}", claim("iss"))),
        (
            "signing key found",
            "the key named by the header's kid, from jwks_uri".to_owned(),
        ),
        ("signature valid", "verified with that key".to_owned()),
        ("not expired", format!("exp {exp}")),
        ("iss exact", format!("iss {}", claim("iss"))),
        ("aud names this client", format!("aud {}", claim("aud"))),
        ("azp", format!("azp {}", claim("azp"))),
        (
            "nonce matches",
            if expected_nonce {
                format!("nonce {}", claim("nonce"))
            } else {
                "no nonce was sent".to_owned()
            },
        ),
    ];
    let result: Result<(), &Error> = result.map(|_| ());
    for (i, (name, detail)) in checks.into_iter().enumerate() {
        let (detail, outcome) = outcome_of(i, failing, detail, &result);
        step.check(format!("id_token: {name}"), detail, outcome);
    }
    if let Err(e) = result {
        step.failure = Some(e.reason());
    }
}
