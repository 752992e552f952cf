//! Token responses and token sets, and the requests to the token endpoint (code exchange, refresh,
//! client credentials).
//!
//! Readers are tolerant of real servers: `token_type` in any case, `expires_in` as a number or a
//! string, booleans as strings, and every unknown or vendor key (`__epic.dstu2.patient`) kept.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use url::Url;

use crate::client_auth::ClientAuth;
use crate::context::{FhirContextItem, LaunchContext};
use crate::error::Error;
use crate::http;
use crate::scope::ScopeSet;
use crate::secret::{AccessToken, AuthorizationCode, ClientId, IdToken, PkceVerifier, RefreshToken};
use crate::trace::{Step, TraceField, TraceStep, parameter};

/// A token endpoint's successful answer, as sent.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: AccessToken,
    /// The token type; `Bearer` in any case is accepted.
    #[serde(default = "default_token_type")]
    pub token_type: String,
    /// Lifetime in seconds (number or numeric string).
    #[serde(
        default,
        deserialize_with = "lenient_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_in: Option<u64>,
    /// A refresh token, when granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<RefreshToken>,
    /// The granted scopes, when the server says (absent means "as requested").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The id_token, when `openid` was granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<IdToken>,
    /// Launch context: the patient id.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub patient: Option<String>,
    /// Launch context: the encounter id.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub encounter: Option<String>,
    /// Launch context: further resources (SMART 2.1 objects, or 2.0 reference strings).
    #[serde(
        rename = "fhirContext",
        default,
        deserialize_with = "lenient_fhir_context",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub fhir_context: Vec<FhirContextItem>,
    /// Launch context: whether the app must show a patient banner (bool or `"true"`/`"false"`).
    #[serde(
        default,
        deserialize_with = "lenient_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub need_patient_banner: Option<bool>,
    /// Launch context: the EHR's style sheet URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smart_style_url: Option<String>,
    /// Launch context: the launch intent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// Launch context: the tenant.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub tenant: Option<String>,
    /// Every other key, kept (vendor extensions such as `__epic.dstu2.patient`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn default_token_type() -> String {
    "Bearer".to_owned()
}

/// The tokens of a completed launch, with an absolute expiry; serializable for server-side storage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenSet {
    /// The access token.
    pub access_token: AccessToken,
    /// The token type as sent (`Bearer`).
    pub token_type: String,
    /// When the access token expires (`None`: the server did not say).
    pub expires_at: Option<DateTime<Utc>>,
    /// The refresh token, if any.
    pub refresh_token: Option<RefreshToken>,
    /// The granted scopes (the requested ones when the server did not say).
    pub scope: ScopeSet,
    /// The id_token, if any (already verified when it came from a launch).
    pub id_token: Option<IdToken>,
    /// When these tokens were received.
    pub issued_at: DateTime<Utc>,
    /// The FHIR base the tokens are for.
    pub fhir_base: Url,
    /// The token endpoint that issued them (used to refresh).
    pub token_endpoint: Url,
}

impl TokenSet {
    /// Build a token set from a response received at `now`.
    pub fn from_response(
        response: &TokenResponse,
        requested: &ScopeSet,
        fhir_base: &Url,
        token_endpoint: &Url,
        now: DateTime<Utc>,
    ) -> TokenSet {
        TokenSet {
            access_token: response.access_token.clone(),
            token_type: response.token_type.clone(),
            expires_at: expiry(response.expires_in, now),
            refresh_token: response.refresh_token.clone().filter(|r| !r.secret().is_empty()),
            scope: granted_scope(response.scope.as_deref(), requested),
            id_token: response.id_token.clone(),
            issued_at: now,
            fhir_base: fhir_base.clone(),
            token_endpoint: token_endpoint.clone(),
        }
    }

    /// The token set after a refresh answered with `response`: a new refresh token replaces the
    /// old one, and when none comes the old one is kept; likewise the scopes and id_token.
    pub fn refreshed(&self, response: &TokenResponse, now: DateTime<Utc>) -> TokenSet {
        let mut next =
            TokenSet::from_response(response, &self.scope, &self.fhir_base, &self.token_endpoint, now);
        if next.refresh_token.is_none() {
            next.refresh_token = self.refresh_token.clone();
        }
        if next.id_token.is_none() {
            next.id_token = self.id_token.clone();
        }
        next
    }

    /// True when the access token expires within `margin` of `now` (never, when no expiry is known).
    pub fn expires_within(&self, margin: Duration, now: DateTime<Utc>) -> bool {
        let limit = chrono::Duration::from_std(margin)
            .ok()
            .and_then(|m| now.checked_add_signed(m));
        self.expires_at
            .is_some_and(|at| limit.is_none_or(|limit| at <= limit))
    }

    /// True when the access token should be refreshed at `now`: within `ahead` of its expiry, with
    /// `ahead` capped at half the token's lifetime, so that a short-lived token (Cerner's and many
    /// sandboxes' can be 20–30 s) is used for half its life instead of being refreshed before every
    /// request. Never, when no expiry is known.
    pub fn refresh_due(&self, ahead: Duration, now: DateTime<Utc>) -> bool {
        let Some(expires_at) = self.expires_at else {
            return false;
        };
        let lifetime = (expires_at - self.issued_at).to_std().unwrap_or(Duration::ZERO);
        self.expires_within(ahead.min(lifetime / 2), now)
    }

    /// True when the access token has expired.
    pub fn is_expired(&self) -> bool {
        self.expires_within(Duration::ZERO, Utc::now())
    }
}

/// The granted scopes of a token response: as sent, or `requested` when the server sent none, an
/// empty one, or one with tokens that are not SMART scope grammar (Epic answers with API names such
/// as `"openid Patient.read Patient.search "`, fhir.epic.com's OAuth 2.0 specification). Reading
/// such a string as granted would leave the app thinking nothing was shared; with the requested
/// scopes it asks, and the server's 403s decide. The fall-back is logged at `warn`.
fn granted_scope(sent: Option<&str>, requested: &ScopeSet) -> ScopeSet {
    let Some(text) = sent.filter(|t| !t.trim().is_empty()) else {
        return requested.clone();
    };
    let not_understood = ScopeSet::not_understood(text);
    if not_understood.is_empty() {
        return ScopeSet::parse_lenient(text);
    }
    tracing::warn!(
        granted = %text.trim(),
        not_understood = %not_understood.join(" "),
        using = %requested,
        "the token response's scope is not SMART scope syntax; using the requested scopes instead, \
         and the server's answers decide what can be read"
    );
    requested.clone()
}

fn expiry(expires_in: Option<u64>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let secs = i64::try_from(expires_in?).ok()?;
    now.checked_add_signed(chrono::Duration::try_seconds(secs)?)
}

/// Sends requests to token endpoints for one client.
#[derive(Clone, Debug)]
pub struct TokenClient {
    pub(crate) http: reqwest::Client,
    pub(crate) client_id: ClientId,
    pub(crate) auth: ClientAuth,
}

impl TokenClient {
    /// A client with its own no-redirect HTTP client.
    pub fn new(client_id: ClientId, auth: ClientAuth) -> Result<Self, Error> {
        Ok(TokenClient {
            http: http::oauth_client(Duration::from_secs(30))?,
            client_id,
            auth,
        })
    }

    /// The client id.
    pub fn client_id(&self) -> &ClientId {
        &self.client_id
    }

    /// The client authentication.
    pub fn auth(&self) -> &ClientAuth {
        &self.auth
    }

    /// Exchange an authorization code (`grant_type=authorization_code`, with the PKCE verifier).
    pub async fn exchange_code(
        &self,
        token_endpoint: &Url,
        code: &AuthorizationCode,
        redirect_uri: &Url,
        verifier: &PkceVerifier,
    ) -> Result<TokenResponse, Error> {
        self.exchange_code_recorded(token_endpoint, code, redirect_uri, verifier, None)
            .await
    }

    /// [`TokenClient::exchange_code`], recording the request as sent into `sent` (step C).
    pub(crate) async fn exchange_code_recorded(
        &self,
        token_endpoint: &Url,
        code: &AuthorizationCode,
        redirect_uri: &Url,
        verifier: &PkceVerifier,
        sent: Option<&mut Option<TraceStep>>,
    ) -> Result<TokenResponse, Error> {
        let form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.secret().to_owned()),
            ("redirect_uri", redirect_uri.to_string()),
            ("code_verifier", verifier.secret().to_owned()),
        ];
        let body = self.post_form_recorded(token_endpoint, form, sent).await?;
        self.read_token(body)
    }

    /// Refresh (`grant_type=refresh_token`), keeping the old refresh token when none comes back.
    pub async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet, Error> {
        self.refresh_at(tokens, Utc::now()).await
    }

    /// [`TokenClient::refresh`], with the new token set's expiry counted from `now` (a caller with
    /// its own clock). No `scope` is sent: the refreshed grant keeps the scopes it had.
    pub async fn refresh_at(&self, tokens: &TokenSet, now: DateTime<Utc>) -> Result<TokenSet, Error> {
        let Some(refresh_token) = &tokens.refresh_token else {
            return Err(Error::NoRefreshToken);
        };
        let form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh_token.secret().to_owned()),
        ];
        let response = self.post_token(&tokens.token_endpoint, form).await?;
        Ok(tokens.refreshed(&response, now))
    }

    /// Ask for a token with `grant_type=client_credentials` (backend services).
    pub async fn client_credentials(
        &self,
        token_endpoint: &Url,
        scope: &ScopeSet,
    ) -> Result<TokenResponse, Error> {
        let form = vec![
            ("grant_type", "client_credentials".to_owned()),
            ("scope", scope.to_string()),
        ];
        self.post_token(token_endpoint, form).await
    }

    /// POST a form to an OAuth endpoint with client authentication and read the answer.
    pub(crate) async fn post_form(
        &self,
        endpoint: &Url,
        form: Vec<(&'static str, String)>,
    ) -> Result<http::Body, Error> {
        self.post_form_recorded(endpoint, form, None).await
    }

    /// [`TokenClient::post_form`], recording the request as sent (after client authentication is
    /// added) into `sent` when asked.
    async fn post_form_recorded(
        &self,
        endpoint: &Url,
        mut form: Vec<(&'static str, String)>,
        sent: Option<&mut Option<TraceStep>>,
    ) -> Result<http::Body, Error> {
        let request = self
            .http
            .post(endpoint.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        let request = self.auth.apply(request, &mut form, &self.client_id, endpoint)?;
        if let Some(sent) = sent {
            let basic = matches!(self.auth, ClientAuth::ClientSecretBasic(_));
            *sent = Some(token_request_step(
                endpoint,
                self.auth.method_name(),
                &form,
                basic,
            ));
        }
        http::send(request.form(&form), endpoint.as_str()).await
    }

    async fn post_token(
        &self,
        endpoint: &Url,
        form: Vec<(&'static str, String)>,
    ) -> Result<TokenResponse, Error> {
        let body = self.post_form(endpoint, form).await?;
        self.read_token(body)
    }

    /// A token endpoint's answer: an OAuth error, or a Bearer token response.
    fn read_token(&self, body: http::Body) -> Result<TokenResponse, Error> {
        if !body.is_success() {
            let oauth = body.oauth_error();
            return Err(Error::TokenEndpoint {
                status: body.status,
                error: oauth.error,
                description: oauth.error_description,
                uri: oauth.error_uri,
                body: crate::error::truncate_body(&body.text),
            });
        }
        let response: TokenResponse = body.json("token response")?;
        if !response.token_type.eq_ignore_ascii_case("bearer") {
            return Err(Error::MalformedResponse {
                what: "token response",
                url: body.url.clone(),
                path: "token_type".into(),
                reason: format!(
                    "the token type {:?} is not supported (only Bearer)",
                    response.token_type
                ),
                body: String::new(),
            });
        }
        if response.access_token.secret().is_empty() {
            return Err(Error::MalformedResponse {
                what: "token response",
                url: body.url.clone(),
                path: "access_token".into(),
                reason: "the access token is empty".into(),
                body: String::new(),
            });
        }
        Ok(response)
    }
}

/// A number, or a string holding one (`"3600"`); floats are truncated; `null` is none.
pub(crate) fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error as _;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("{n} is not a non-negative number"))),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("{s:?} is not a number of seconds"))),
        Some(other) => Err(D::Error::custom(format!("{other} is not a number"))),
    }
}

/// A boolean, or `"true"` / `"false"` in any case; `null` is none.
pub(crate) fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    use serde::de::Error as _;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(Some(true)),
        Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(Some(false)),
        Some(other) => Err(D::Error::custom(format!("{other} is not a boolean"))),
    }
}

/// A string, or a number sent where a string belongs (ids like `12345`); `null` is none.
pub(crate) fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    use serde::de::Error as _;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(D::Error::custom(format!("{other} is not a string"))),
    }
}

pub(crate) fn lenient_fhir_context<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<FhirContextItem>, D::Error> {
    use serde::de::Error as _;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(reference) => Ok(FhirContextItem {
                    reference: Some(reference),
                    ..Default::default()
                }),
                other => serde_json::from_value(other).map_err(D::Error::custom),
            })
            .collect(),
        Some(other) => Err(D::Error::custom(format!(
            "fhirContext must be an array, not {other}"
        ))),
    }
}

/// C: the token request's form fields and headers as sent (secrets redacted, an assertion shown by
/// header and claims).
fn token_request_step(
    endpoint: &Url,
    method: &str,
    form: &[(&'static str, String)],
    basic: bool,
) -> TraceStep {
    let mut step = TraceStep::new(Step::TokenRequest).with_target(format!("POST {endpoint}"));
    step.sent.push(TraceField::text("client authentication", method));
    if basic {
        step.sent.push(TraceField::redacted("Authorization: Basic"));
    }
    step.sent
        .extend(form.iter().map(|(name, value)| parameter(name, value)));
    step
}

/// Where a token response becomes the launch context (here, beside the response, so that `context` stays plain
/// data that points at nothing).
impl LaunchContext {
    /// The context carried by a token response.
    pub fn from_response(response: &TokenResponse) -> LaunchContext {
        LaunchContext {
            patient: response.patient.clone().filter(|p| !p.is_empty()),
            encounter: response.encounter.clone().filter(|e| !e.is_empty()),
            fhir_context: response.fhir_context.clone(),
            need_patient_banner: response.need_patient_banner,
            smart_style_url: response.smart_style_url.clone(),
            intent: response.intent.clone(),
            tenant: response.tenant.clone(),
            extras: response.extra.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> TokenResponse {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn tolerant_of_real_servers() {
        let r = parse(json!({
            "access_token": "a", "token_type": "bearer", "expires_in": "3600",
            "need_patient_banner": "true", "patient": 12345, "scope": "patient/Patient.read launch",
            "__epic.dstu2.patient": "T1wI5bk8n1YVgvWk9D05BmRV0Pi3ECImNSK8DKyKltsMB",
            "fhirContext": ["Encounter/1", {"reference": "Location/2", "role": "https://x"}],
            "something_new": {"a": 1}
        }));
        assert_eq!(r.expires_in, Some(3600));
        assert_eq!(r.need_patient_banner, Some(true));
        assert_eq!(r.patient.as_deref(), Some("12345"));
        assert_eq!(r.fhir_context.len(), 2);
        assert_eq!(r.fhir_context[0].reference.as_deref(), Some("Encounter/1"));
        assert_eq!(r.fhir_context[1].role.as_deref(), Some("https://x"));
        assert!(r.extra.contains_key("__epic.dstu2.patient"));
        assert!(r.extra.contains_key("something_new"));
        let r = parse(
            json!({"access_token": "a", "token_type": "Bearer", "expires_in": 299.0, "need_patient_banner": false}),
        );
        assert_eq!(r.expires_in, Some(299));
        assert_eq!(r.need_patient_banner, Some(false));
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        assert!(serde_json::from_value::<TokenResponse>(json!({"token_type": "bearer"})).is_err());
        assert!(
            serde_json::from_value::<TokenResponse>(json!({"access_token": "a", "expires_in": "soon"}))
                .is_err()
        );
        assert!(
            serde_json::from_value::<TokenResponse>(json!({"access_token": "a", "expires_in": -5})).is_err()
        );
        assert!(
            serde_json::from_value::<TokenResponse>(
                json!({"access_token": "a", "need_patient_banner": "yes"})
            )
            .is_err()
        );
    }

    fn set(response: Value, now: DateTime<Utc>) -> TokenSet {
        let base = Url::parse("https://ehr.example/fhir").unwrap();
        let token = Url::parse("https://ehr.example/token").unwrap();
        TokenSet::from_response(
            &parse(response),
            &ScopeSet::parse("launch/patient").unwrap(),
            &base,
            &token,
            now,
        )
    }

    #[test]
    fn expiry_is_absolute_and_survives_serialization() {
        let now = Utc::now();
        let tokens = set(
            json!({"access_token": "a", "token_type": "bearer", "expires_in": 300, "refresh_token": "r"}),
            now,
        );
        assert_eq!(tokens.expires_at, Some(now + chrono::Duration::seconds(300)));
        assert!(!tokens.expires_within(Duration::from_secs(60), now));
        assert!(tokens.expires_within(Duration::from_secs(301), now));
        let back: TokenSet = serde_json::from_str(&serde_json::to_string(&tokens).unwrap()).unwrap();
        assert_eq!(back, tokens);
        assert_eq!(
            back.scope.to_string(),
            "launch/patient",
            "requested scope when none was granted explicitly"
        );
    }

    #[test]
    fn refresh_comes_at_most_half_a_lifetime_ahead() {
        let now = Utc::now();
        let short = set(json!({"access_token": "a", "expires_in": 20}), now);
        let ahead = Duration::from_secs(30);
        assert!(!short.refresh_due(ahead, now));
        assert!(!short.refresh_due(ahead, now + chrono::Duration::seconds(9)));
        assert!(short.refresh_due(ahead, now + chrono::Duration::seconds(10)));
        let long = set(json!({"access_token": "a", "expires_in": 3600}), now);
        assert!(!long.refresh_due(ahead, now + chrono::Duration::seconds(3569)));
        assert!(long.refresh_due(ahead, now + chrono::Duration::seconds(3570)));
        let unknown = set(json!({"access_token": "a"}), now);
        assert!(!unknown.refresh_due(ahead, now + chrono::Duration::days(1)));
    }

    #[test]
    fn granted_scopes_outside_smart_grammar_fall_back_to_the_requested() {
        let now = Utc::now();
        let epic = set(
            json!({"access_token": "a", "scope": "openid Patient.read Patient.search "}),
            now,
        );
        assert_eq!(epic.scope.to_string(), "launch/patient");
        let blank = set(json!({"access_token": "a", "scope": "  "}), now);
        assert_eq!(blank.scope.to_string(), "launch/patient");
        let smart = set(
            json!({"access_token": "a", "scope": "patient/Patient.rs email"}),
            now,
        );
        assert_eq!(smart.scope.to_string(), "patient/Patient.rs email");
    }

    #[test]
    fn refresh_keeps_old_refresh_token_when_none_returned() {
        let now = Utc::now();
        let tokens = set(
            json!({"access_token": "a", "refresh_token": "r1", "scope": "openid"}),
            now,
        );
        let next = tokens.refreshed(&parse(json!({"access_token": "b", "token_type": "Bearer"})), now);
        assert_eq!(next.access_token.secret(), "b");
        assert_eq!(next.refresh_token.as_ref().map(RefreshToken::secret), Some("r1"));
        assert_eq!(next.scope.to_string(), "openid");
        let rotated = tokens.refreshed(&parse(json!({"access_token": "c", "refresh_token": "r2"})), now);
        assert_eq!(
            rotated.refresh_token.as_ref().map(RefreshToken::secret),
            Some("r2")
        );
    }

    #[test]
    fn a_refresh_answered_with_api_name_scopes_keeps_the_scopes_the_launch_had() {
        // Epic answers refreshes like its first token: API names, not SMART scopes (fhir.epic.com's
        // OAuth 2.0 specification). The refreshed set keeps what the launch was granted, not nothing.
        let now = Utc::now();
        let tokens = set(
            json!({"access_token": "a", "refresh_token": "r1", "scope": "patient/Observation.rs openid"}),
            now,
        );
        let epic = parse(json!({"access_token": "b", "token_type": "bearer",
            "scope": "openid Patient.read Patient.search Observation.read "}));
        let next = tokens.refreshed(&epic, now);
        assert_eq!(next.scope.to_string(), "patient/Observation.rs openid");
    }

    #[test]
    fn context_is_typed_and_extras_kept() {
        let response: TokenResponse = serde_json::from_value(json!({
            "access_token": "a", "token_type": "bearer", "patient": "p1", "encounter": "",
            "need_patient_banner": "false", "smart_style_url": "https://ehr/style.json",
            "intent": "summary", "tenant": "t1", "__epic.dstu2.patient": "x"
        }))
        .unwrap();
        let ctx = LaunchContext::from_response(&response);
        assert_eq!(ctx.patient.as_deref(), Some("p1"));
        assert_eq!(ctx.encounter, None);
        assert!(!ctx.should_show_patient_banner());
        assert_eq!(ctx.intent.as_deref(), Some("summary"));
        assert_eq!(ctx.tenant.as_deref(), Some("t1"));
        assert_eq!(ctx.extras.get("__epic.dstu2.patient"), Some(&json!("x")));
        let back: LaunchContext = serde_json::from_value(serde_json::to_value(&ctx).unwrap()).unwrap();
        assert_eq!(back, ctx);
    }
}
