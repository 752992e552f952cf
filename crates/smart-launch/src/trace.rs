//! A launch trace: what each step of a launch sent and got back, as plain data a developer can
//! read — and that holds no secret.
//!
//! The steps are discovery and the six steps of RFC 6749's figure 1 (A authorization request,
//! B authorization grant, C token request, D access token, E resource request, F protected
//! resource). Recording is opt-in: [`crate::SmartClient::standalone_launch_traced`],
//! [`crate::SmartClient::ehr_launch_traced`] and [`crate::SmartClient::complete_traced`] add
//! steps to a [`LaunchTrace`] the caller passes; the untraced methods build nothing.
//!
//! No secret is representable: a [`TraceValue`] is plain text, a [`Fingerprint`] (the first 8 hex
//! digits of a SHA-256, for `state`, the PKCE challenge and the nonce, so a developer can match the
//! authorize request with the callback and the id_token), [`TraceValue::Redacted`] (tokens, codes,
//! verifiers, client secrets) or the header and claims of a JWT without its signature (client
//! assertions, id_tokens). The constructors taking secrets ([`TraceField::fingerprint`]) keep only
//! the fingerprint.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The steps of a launch, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// `.well-known/smart-configuration` (or the CapabilityStatement): where the endpoints are.
    Discovery,
    /// A: the authorization request (the browser is sent to the authorize endpoint).
    AuthorizationRequest,
    /// B: the authorization grant (the redirect back, with `code` and `state`).
    AuthorizationGrant,
    /// C: the token request (the code exchanged at the token endpoint).
    TokenRequest,
    /// D: the access token (the token response, the id_token's checks).
    AccessToken,
    /// E: the resource requests (the FHIR requests made with the token).
    ResourceRequest,
    /// F: the protected resource (what was read).
    ProtectedResource,
}

/// A link to the specification a step implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecLink {
    /// Short label (`SMART App Launch 2.2 §Obtain authorization code`).
    pub label: &'static str,
    /// The URL of the section.
    pub url: &'static str,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 7] = [
        Step::Discovery,
        Step::AuthorizationRequest,
        Step::AuthorizationGrant,
        Step::TokenRequest,
        Step::AccessToken,
        Step::ResourceRequest,
        Step::ProtectedResource,
    ];

    /// The letter of RFC 6749's figure 1 (`A`…`F`); discovery has none.
    pub fn letter(self) -> Option<char> {
        match self {
            Step::Discovery => None,
            Step::AuthorizationRequest => Some('A'),
            Step::AuthorizationGrant => Some('B'),
            Step::TokenRequest => Some('C'),
            Step::AccessToken => Some('D'),
            Step::ResourceRequest => Some('E'),
            Step::ProtectedResource => Some('F'),
        }
    }

    /// The step's name.
    pub fn title(self) -> &'static str {
        match self {
            Step::Discovery => "Discovery",
            Step::AuthorizationRequest => "Authorization request",
            Step::AuthorizationGrant => "Authorization grant",
            Step::TokenRequest => "Token request",
            Step::AccessToken => "Access token",
            Step::ResourceRequest => "Resource requests",
            Step::ProtectedResource => "Protected resource",
        }
    }

    /// The sections of the SMART App Launch IG 2.2 and the RFCs the step implements.
    pub fn spec_links(self) -> &'static [SpecLink] {
        match self {
            Step::Discovery => DISCOVERY,
            Step::AuthorizationRequest => AUTHORIZATION_REQUEST,
            Step::AuthorizationGrant => AUTHORIZATION_GRANT,
            Step::TokenRequest => TOKEN_REQUEST,
            Step::AccessToken => ACCESS_TOKEN,
            Step::ResourceRequest => RESOURCE_REQUEST,
            Step::ProtectedResource => PROTECTED_RESOURCE,
        }
    }
}

const fn link(label: &'static str, url: &'static str) -> SpecLink {
    SpecLink { label, url }
}

/// The references for [`Step::Discovery`].
const DISCOVERY: &[SpecLink] = &[
    link(
        "SMART App Launch 2.2: Retrieve .well-known/smart-configuration",
        "https://hl7.org/fhir/smart-app-launch/app-launch.html#retrieve-well-knownsmart-configuration",
    ),
    link(
        "SMART App Launch 2.2: Conformance (FHIR authorization endpoint discovery)",
        "https://hl7.org/fhir/smart-app-launch/conformance.html",
    ),
];

/// The references for [`Step::AuthorizationRequest`].
const AUTHORIZATION_REQUEST: &[SpecLink] = &[
    link(
        "SMART App Launch 2.2: Obtain authorization code",
        "https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-authorization-code",
    ),
    link(
        "RFC 6749 §4.1.1 Authorization Request",
        "https://www.rfc-editor.org/rfc/rfc6749#section-4.1.1",
    ),
    link(
        "RFC 7636 §4.3 PKCE code challenge",
        "https://www.rfc-editor.org/rfc/rfc7636#section-4.3",
    ),
];

/// The references for [`Step::AuthorizationGrant`].
const AUTHORIZATION_GRANT: &[SpecLink] = &[
    link(
        "SMART App Launch 2.2: Obtain authorization code (response)",
        "https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-authorization-code",
    ),
    link(
        "RFC 6749 §4.1.2 Authorization Response",
        "https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2",
    ),
    link(
        "RFC 6749 §10.12 Cross-Site Request Forgery (state)",
        "https://www.rfc-editor.org/rfc/rfc6749#section-10.12",
    ),
    link(
        "RFC 9207 Authorization Server Issuer Identification",
        "https://www.rfc-editor.org/rfc/rfc9207",
    ),
];

/// The references for [`Step::TokenRequest`].
const TOKEN_REQUEST: &[SpecLink] = &[
    link(
        "SMART App Launch 2.2: Obtain access token",
        "https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-access-token",
    ),
    link(
        "RFC 6749 §4.1.3 Access Token Request",
        "https://www.rfc-editor.org/rfc/rfc6749#section-4.1.3",
    ),
    link(
        "RFC 7636 §4.5 code_verifier",
        "https://www.rfc-editor.org/rfc/rfc7636#section-4.5",
    ),
    link(
        "SMART App Launch 2.2: Client Authentication: Asymmetric (private_key_jwt)",
        "https://hl7.org/fhir/smart-app-launch/client-confidential-asymmetric.html",
    ),
];

/// The references for [`Step::AccessToken`].
const ACCESS_TOKEN: &[SpecLink] = &[
    link(
        "SMART App Launch 2.2: Obtain access token (response)",
        "https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-access-token",
    ),
    link(
        "RFC 6749 §5.1 Successful Response",
        "https://www.rfc-editor.org/rfc/rfc6749#section-5.1",
    ),
    link(
        "SMART App Launch 2.2: Scopes and launch context",
        "https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html",
    ),
    link(
        "OpenID Connect Core §3.1.3.7 ID Token Validation",
        "https://openid.net/specs/openid-connect-core-1_0.html#IDTokenValidation",
    ),
];

/// The references for [`Step::ResourceRequest`].
const RESOURCE_REQUEST: &[SpecLink] = &[
    link(
        "SMART App Launch 2.2: Access FHIR API",
        "https://hl7.org/fhir/smart-app-launch/app-launch.html#access-fhir-api",
    ),
    link(
        "RFC 6750 §2.1 Authorization Request Header Field",
        "https://www.rfc-editor.org/rfc/rfc6750#section-2.1",
    ),
];

/// The references for [`Step::ProtectedResource`].
const PROTECTED_RESOURCE: &[SpecLink] = &[
    link(
        "RFC 6749 §1.2 Protocol Flow (F)",
        "https://www.rfc-editor.org/rfc/rfc6749#section-1.2",
    ),
    link(
        "FHIR R4 RESTful API: search",
        "https://hl7.org/fhir/R4/http.html#search",
    ),
];

/// The first 8 hex digits of a value's SHA-256: enough to match two occurrences, useless to an
/// attacker (32 bits of a 256-bit random value).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of `secret`.
    pub fn of(secret: &str) -> Fingerprint {
        let digest = Sha256::digest(secret.as_bytes());
        Fingerprint(digest.iter().take(4).map(|b| format!("{b:02x}")).collect())
    }

    /// The 8 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}…", self.0)
    }
}

/// A value as the trace shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum TraceValue {
    /// Shown as is (not a secret).
    Text(String),
    /// A secret's fingerprint.
    Fingerprint(Fingerprint),
    /// A secret: not shown at all.
    Redacted,
    /// A JWT's header and claims; the signature is not kept.
    Jwt {
        /// The JOSE header.
        header: Map<String, Value>,
        /// The claims (a nonce claim is replaced by its fingerprint).
        claims: Map<String, Value>,
    },
}

impl std::fmt::Display for TraceValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TraceValue::Text(text) => f.write_str(text),
            TraceValue::Fingerprint(fp) => write!(f, "{fp}"),
            TraceValue::Redacted => f.write_str("[redacted]"),
            TraceValue::Jwt { header, claims } => write!(
                f,
                "JWT header {} claims {} (signature not shown)",
                Value::Object(header.clone()),
                Value::Object(claims.clone())
            ),
        }
    }
}

/// A named value: a query parameter, a form field, a response field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceField {
    /// The parameter or field name.
    pub name: String,
    /// Its value as shown.
    pub value: TraceValue,
}

impl TraceField {
    /// A value shown as is.
    pub fn text(name: impl Into<String>, value: impl Into<String>) -> TraceField {
        TraceField {
            name: name.into(),
            value: TraceValue::Text(value.into()),
        }
    }

    /// A secret shown by its fingerprint only.
    pub fn fingerprint(name: impl Into<String>, secret: &str) -> TraceField {
        TraceField {
            name: name.into(),
            value: TraceValue::Fingerprint(Fingerprint::of(secret)),
        }
    }

    /// A secret not shown at all.
    pub fn redacted(name: impl Into<String>) -> TraceField {
        TraceField {
            name: name.into(),
            value: TraceValue::Redacted,
        }
    }

    /// A JWT by its header and claims (the signature is dropped; a `nonce` claim becomes its
    /// fingerprint). A value that is not a JWT is redacted.
    pub fn jwt(name: impl Into<String>, token: &str) -> TraceField {
        TraceField {
            name: name.into(),
            value: jwt_value(token).unwrap_or(TraceValue::Redacted),
        }
    }
}

fn jwt_part(part: &str) -> Option<Map<String, Value>> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

fn jwt_value(token: &str) -> Option<TraceValue> {
    let mut parts = token.split('.');
    let header = jwt_part(parts.next()?)?;
    let mut claims = jwt_part(parts.next()?)?;
    if let Some(Value::String(nonce)) = claims.get("nonce") {
        let fp = Fingerprint::of(nonce).to_string();
        claims.insert("nonce".into(), Value::String(fp));
    }
    Some(TraceValue::Jwt { header, claims })
}

/// The result of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    /// The check passed.
    Passed,
    /// The check failed (the step failed here).
    Failed,
    /// An earlier check failed, so this one was not made.
    NotReached,
}

/// One check a step made (the state matched, the id_token's `aud` names us, …).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceCheck {
    /// What was checked.
    pub name: String,
    /// What was expected or found (never a secret).
    pub detail: String,
    /// The result.
    pub outcome: CheckOutcome,
}

/// One request the step made (E: the FHIR requests of the first page).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TracedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The URL, without any token-like query parameter.
    pub url: String,
    /// The HTTP status, or `None` when no answer came.
    pub status: Option<u16>,
    /// How long the request took, in milliseconds.
    pub latency_ms: u64,
    /// The size of the answer's body in bytes.
    pub bytes: u64,
}

/// One step of a launch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceStep {
    /// Which step.
    pub step: Step,
    /// Where the step went (`POST https://ehr/token`), when it was a request.
    #[serde(default)]
    pub target: Option<String>,
    /// What was sent.
    #[serde(default)]
    pub sent: Vec<TraceField>,
    /// What came back.
    #[serde(default)]
    pub received: Vec<TraceField>,
    /// The checks made, in order.
    #[serde(default)]
    pub checks: Vec<TraceCheck>,
    /// The requests made (step E).
    #[serde(default)]
    pub requests: Vec<TracedRequest>,
    /// Why the step failed; `None` when it succeeded.
    #[serde(default)]
    pub failure: Option<String>,
}

impl TraceStep {
    /// An empty, successful step.
    pub fn new(step: Step) -> TraceStep {
        TraceStep {
            step,
            target: None,
            sent: Vec::new(),
            received: Vec::new(),
            checks: Vec::new(),
            requests: Vec::new(),
            failure: None,
        }
    }

    /// Where the step went.
    pub fn with_target(mut self, target: impl Into<String>) -> TraceStep {
        self.target = Some(target.into());
        self
    }

    /// Adds a check.
    pub fn check(&mut self, name: impl Into<String>, detail: impl Into<String>, outcome: CheckOutcome) {
        self.checks.push(TraceCheck {
            name: name.into(),
            detail: detail.into(),
            outcome,
        });
    }

    fn cap(&mut self, max_requests: usize, max_chars: usize) {
        let cut = |s: &mut String| {
            if s.chars().count() > max_chars {
                *s = s.chars().take(max_chars).collect::<String>() + "…";
            }
        };
        if let Some(t) = self.target.as_mut() {
            cut(t)
        }
        for field in self.sent.iter_mut().chain(self.received.iter_mut()) {
            cut(&mut field.name);
            match &mut field.value {
                TraceValue::Text(text) => cut(text),
                jwt @ TraceValue::Jwt { .. } => {
                    if jwt.to_string().chars().count() > max_chars {
                        *jwt = TraceValue::Text("JWT too large to show".into());
                    }
                }
                TraceValue::Fingerprint(_) | TraceValue::Redacted => {}
            }
        }
        for check in &mut self.checks {
            cut(&mut check.name);
            cut(&mut check.detail);
        }
        self.requests.truncate(max_requests);
        for request in &mut self.requests {
            cut(&mut request.url);
        }
        if let Some(f) = self.failure.as_mut() {
            cut(f)
        }
    }
}

/// A launch, step by step. Steps are appended in the order they happened; a failed launch ends
/// with the failed step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LaunchTrace {
    /// The steps so far.
    pub steps: Vec<TraceStep>,
}

impl LaunchTrace {
    /// An empty trace.
    pub fn new() -> LaunchTrace {
        LaunchTrace::default()
    }

    /// Appends a step.
    pub fn push(&mut self, step: TraceStep) {
        self.steps.push(step);
    }

    /// Appends a failed step with `reason` (use [`crate::Error::reason`]: it never holds a
    /// secret).
    pub fn fail(&mut self, step: Step, reason: impl Into<String>) {
        let mut failed = TraceStep::new(step);
        failed.failure = Some(reason.into());
        self.steps.push(failed);
    }

    /// The step, when recorded.
    pub fn step(&self, step: Step) -> Option<&TraceStep> {
        self.steps.iter().find(|s| s.step == step)
    }

    /// The step that failed, if one did.
    pub fn failed_step(&self) -> Option<&TraceStep> {
        self.steps.iter().find(|s| s.failure.is_some())
    }

    /// Bounds the trace: at most `max_requests` requests per step and `max_chars` characters per
    /// string (longer ones are cut and end in `…`; a JWT longer than that is replaced by a note).
    pub fn cap(&mut self, max_requests: usize, max_chars: usize) {
        for step in &mut self.steps {
            step.cap(max_requests, max_chars);
        }
    }
}

/// Authorize-request and form fields that are secrets shown by fingerprint.
const FINGERPRINTED: &[&str] = &["state", "code_challenge", "nonce", "launch"];
/// Fields that are secrets not shown at all.
const REDACTED: &[&str] = &[
    "code",
    "code_verifier",
    "client_secret",
    "refresh_token",
    "access_token",
    "id_token",
    "password",
];
/// Fields that are JWTs shown by header and claims.
const JWTS: &[&str] = &["client_assertion"];

/// A request parameter as the trace shows it: fingerprinted, redacted, decoded or plain.
pub fn parameter(name: &str, value: &str) -> TraceField {
    if FINGERPRINTED.contains(&name) {
        TraceField::fingerprint(name, value)
    } else if REDACTED.contains(&name) {
        TraceField::redacted(name)
    } else if JWTS.contains(&name) {
        TraceField::jwt(name, value)
    } else {
        TraceField::text(name, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_short_and_stable() {
        let fp = Fingerprint::of("abc");
        assert_eq!(fp.as_str(), "ba7816bf");
        assert_eq!(fp.to_string(), "sha256:ba7816bf…");
    }

    #[test]
    fn secrets_are_fingerprinted_or_redacted() {
        let secret = "s3cr3t-value-of-some-length";
        for name in [
            "state",
            "code_challenge",
            "nonce",
            "code",
            "code_verifier",
            "client_secret",
        ] {
            let field = parameter(name, secret);
            let json = serde_json::to_string(&field).unwrap();
            assert!(!json.contains(secret), "{name}: {json}");
            assert!(!field.value.to_string().contains(secret));
        }
        assert_eq!(
            parameter("scope", "openid").value,
            TraceValue::Text("openid".into())
        );
    }

    #[test]
    fn jwts_lose_their_signature_and_nonce() {
        use base64::Engine as _;
        let enc = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let token = format!(
            "{}.{}.SIGNATURE",
            enc(serde_json::json!({"alg": "RS384", "kid": "k1"})),
            enc(serde_json::json!({"iss": "app", "nonce": "the-nonce"}))
        );
        let field = TraceField::jwt("client_assertion", &token);
        let json = serde_json::to_string(&field).unwrap();
        assert!(json.contains("RS384") && json.contains("\"iss\":\"app\""));
        assert!(!json.contains("SIGNATURE") && !json.contains("the-nonce"));
        assert_eq!(TraceField::jwt("x", "not a jwt").value, TraceValue::Redacted);
    }

    #[test]
    fn caps_bound_strings_and_requests() {
        let mut step = TraceStep::new(Step::ResourceRequest);
        step.sent.push(TraceField::text("long", "x".repeat(100)));
        for _ in 0..10 {
            step.requests.push(TracedRequest {
                method: "GET".into(),
                url: "y".repeat(100),
                status: Some(200),
                latency_ms: 1,
                bytes: 2,
            });
        }
        let mut trace = LaunchTrace { steps: vec![step] };
        trace.cap(3, 10);
        let step = &trace.steps[0];
        assert_eq!(step.requests.len(), 3);
        assert_eq!(step.requests[0].url.chars().count(), 11);
        assert_eq!(step.sent[0].value.to_string().chars().count(), 11);
    }

    #[test]
    fn a_failure_ends_the_trace_with_its_reason() {
        let mut trace = LaunchTrace::new();
        trace.fail(Step::AuthorizationGrant, crate::Error::StateMismatch.reason());
        let failed = trace.failed_step().unwrap();
        assert_eq!(failed.step, Step::AuthorizationGrant);
        assert_eq!(failed.failure.as_deref(), Some("state mismatch"));
    }
}
