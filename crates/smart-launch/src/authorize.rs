//! Building the authorize request (standalone or EHR launch) and the pending launch that the
//! caller keeps server-side until the redirect comes back.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::discovery::SmartConfiguration;
use crate::pkce::CHALLENGE_METHOD;
use crate::scope::{Scope, ScopeSet};
use crate::secret::{ClientId, CsrfState, Nonce, PkceVerifier};

/// Where to send the browser.
#[derive(Clone, Debug)]
pub struct AuthorizeRequest {
    /// The authorize URL with every parameter in the query (for a GET redirect).
    pub url: Url,
    /// When the server supports `authorize-post` and POST was preferred: the form to auto-submit
    /// instead of redirecting.
    pub post: Option<AuthorizePost>,
}

/// An authorize request sent as an HTML form POST (`authorize-post`).
#[derive(Clone, Debug)]
pub struct AuthorizePost {
    /// The form's `action` (the authorization endpoint).
    pub action: Url,
    /// The form fields, in order.
    pub fields: Vec<(String, String)>,
}

/// Everything needed to finish a launch, kept server-side (keyed by its state) between the
/// redirect to the authorization server and the redirect back. It is consumed when completed.
#[derive(Debug, Serialize, Deserialize)]
pub struct PendingLaunch {
    state: CsrfState,
    pkce_verifier: PkceVerifier,
    nonce: Option<Nonce>,
    fhir_base: Url,
    client_id: ClientId,
    redirect_uri: Url,
    scope: ScopeSet,
    launch: Option<String>,
    token_endpoint: Url,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl PendingLaunch {
    /// The `state` sent; use it as the key to store this launch under.
    pub fn state(&self) -> &CsrfState {
        &self.state
    }

    /// The PKCE verifier (sent only in the code exchange).
    pub fn pkce_verifier(&self) -> &PkceVerifier {
        &self.pkce_verifier
    }

    /// The nonce sent when `openid` was requested.
    pub fn nonce(&self) -> Option<&Nonce> {
        self.nonce.as_ref()
    }

    /// The FHIR base (issuer) the launch is for.
    pub fn fhir_base(&self) -> &Url {
        &self.fhir_base
    }

    /// The client id used.
    pub fn client_id(&self) -> &ClientId {
        &self.client_id
    }

    /// The redirect URI sent (the code exchange repeats it).
    pub fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }

    /// The scopes requested.
    pub fn requested_scope(&self) -> &ScopeSet {
        &self.scope
    }

    /// The EHR's `launch` parameter, for an EHR launch.
    pub fn launch(&self) -> Option<&str> {
        self.launch.as_deref()
    }

    /// The token endpoint discovered when the launch started.
    pub fn token_endpoint(&self) -> &Url {
        &self.token_endpoint
    }

    /// When the launch started.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    /// When the launch stops being acceptable.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }

    /// True when `now` is past the expiry.
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }
}

/// The inputs of an authorize request.
#[derive(Clone, Debug)]
pub struct AuthorizeParams<'a> {
    /// The client id.
    pub client_id: &'a ClientId,
    /// The registered redirect URI.
    pub redirect_uri: &'a Url,
    /// The scopes to request.
    pub scope: &'a ScopeSet,
    /// The EHR's `launch` value (EHR launch), or `None` (standalone launch).
    pub launch: Option<&'a str>,
    /// The `aud` to send, exactly as the EHR gave `iss` (or as the app configured its FHIR base);
    /// `None` sends the configuration's (normalized) FHIR base.
    pub aud: Option<&'a str>,
    /// How long the pending launch stays valid.
    pub ttl: Duration,
    /// Use POST when the server advertises `authorize-post`.
    pub prefer_post: bool,
}

/// Build the authorize request and its pending launch. A fresh state (256 bits), PKCE verifier
/// (S256) and, when `openid` is requested, nonce are drawn from a CSPRNG. For an EHR launch,
/// `launch` is added to the scopes when missing.
pub fn build_authorize_request(
    config: &SmartConfiguration,
    params: &AuthorizeParams<'_>,
    now: DateTime<Utc>,
) -> (AuthorizeRequest, PendingLaunch) {
    let state = CsrfState::generate();
    let verifier = PkceVerifier::generate();
    let mut scope = params.scope.clone();
    if params.launch.is_some() {
        scope.insert(Scope::Launch);
    }
    let nonce = scope.has_openid().then(Nonce::generate);

    let mut fields: Vec<(String, String)> = vec![
        ("response_type".into(), "code".into()),
        ("client_id".into(), params.client_id.to_string()),
        ("redirect_uri".into(), params.redirect_uri.to_string()),
        ("scope".into(), scope.to_string()),
        ("state".into(), state.secret().to_owned()),
        (
            "aud".into(),
            params
                .aud
                .map_or_else(|| config.fhir_base.to_string(), str::to_owned),
        ),
        ("code_challenge".into(), verifier.challenge()),
        ("code_challenge_method".into(), CHALLENGE_METHOD.into()),
    ];
    if let Some(launch) = params.launch {
        fields.push(("launch".into(), launch.to_owned()));
    }
    if let Some(nonce) = &nonce {
        fields.push(("nonce".into(), nonce.secret().to_owned()));
    }

    let mut url = config.authorization_endpoint.clone();
    url.query_pairs_mut()
        .extend_pairs(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let post = (params.prefer_post && config.supports_authorize_post()).then(|| AuthorizePost {
        action: config.authorization_endpoint.clone(),
        fields,
    });

    let ttl = chrono::Duration::from_std(params.ttl).unwrap_or(chrono::Duration::minutes(10));
    let pending = PendingLaunch {
        state,
        pkce_verifier: verifier,
        nonce,
        fhir_base: config.fhir_base.clone(),
        client_id: params.client_id.clone(),
        redirect_uri: params.redirect_uri.clone(),
        scope,
        launch: params.launch.map(str::to_owned),
        token_endpoint: config.token_endpoint.clone(),
        created_at: now,
        expires_at: now.checked_add_signed(ttl).unwrap_or(now),
    };
    (AuthorizeRequest { url, post }, pending)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    fn config(post: bool) -> SmartConfiguration {
        let caps = if post {
            json!(["authorize-post"])
        } else {
            json!([])
        };
        SmartConfiguration::from_well_known(
            &Url::parse("https://ehr.example/fhir").unwrap(),
            json!({"authorization_endpoint": "https://ehr.example/auth?tenant=1", "token_endpoint": "https://ehr.example/token", "capabilities": caps}),
        )
        .unwrap()
    }

    fn build(
        scope: &str,
        launch: Option<&str>,
        post: bool,
    ) -> (AuthorizeRequest, PendingLaunch, HashMap<String, String>) {
        let client = ClientId::new("app");
        let redirect = Url::parse("http://localhost:8000/fhir-app/").unwrap();
        let scope = ScopeSet::parse(scope).unwrap();
        let params = AuthorizeParams {
            client_id: &client,
            redirect_uri: &redirect,
            scope: &scope,
            launch,
            aud: None,
            ttl: Duration::from_secs(600),
            prefer_post: true,
        };
        let (request, pending) = build_authorize_request(&config(post), &params, Utc::now());
        let query = request.url.query_pairs().into_owned().collect();
        (request, pending, query)
    }

    #[test]
    fn standalone_request_has_every_required_parameter() {
        let (request, pending, q) = build("launch/patient patient/Patient.read", None, false);
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "app");
        assert_eq!(q["redirect_uri"], "http://localhost:8000/fhir-app/");
        assert_eq!(q["scope"], "launch/patient patient/Patient.read");
        assert_eq!(q["aud"], "https://ehr.example/fhir");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"], pending.pkce_verifier().challenge());
        assert_eq!(q["state"], pending.state().secret());
        assert_eq!(q["tenant"], "1", "the endpoint's own query is kept");
        assert!(pending.state().secret().len() >= 22, "at least 128 bits");
        assert!(!q.contains_key("nonce") && !q.contains_key("launch"));
        assert!(request.post.is_none());
    }

    #[test]
    fn ehr_launch_echoes_launch_and_adds_the_launch_scope_and_nonce() {
        let (_, pending, q) = build("openid fhirUser", Some("xyz"), false);
        assert_eq!(q["launch"], "xyz");
        assert_eq!(q["scope"], "openid fhirUser launch");
        assert_eq!(q["nonce"], pending.nonce().unwrap().secret());
        assert_eq!(pending.launch(), Some("xyz"));
    }

    #[test]
    fn states_and_verifiers_are_fresh_each_time() {
        let (_, a, _) = build("openid", None, false);
        let (_, b, _) = build("openid", None, false);
        assert_ne!(a.state(), b.state());
        assert_ne!(a.pkce_verifier(), b.pkce_verifier());
        assert_ne!(a.nonce(), b.nonce());
    }

    #[test]
    fn aud_is_sent_exactly_as_the_ehr_gave_iss() {
        let client = ClientId::new("app");
        let redirect = Url::parse("http://localhost:8000/fhir-app/").unwrap();
        let scope = ScopeSet::parse("launch").unwrap();
        let params = AuthorizeParams {
            client_id: &client,
            redirect_uri: &redirect,
            scope: &scope,
            launch: Some("l"),
            aud: Some("https://ehr.example/fhir/"),
            ttl: Duration::from_secs(600),
            prefer_post: false,
        };
        let (request, _) = build_authorize_request(&config(false), &params, Utc::now());
        assert!(
            request
                .url
                .query_pairs()
                .any(|(k, v)| k == "aud" && v == "https://ehr.example/fhir/")
        );
    }

    #[test]
    fn post_is_used_only_when_advertised() {
        let (request, _, _) = build("openid", None, true);
        let post = request.post.unwrap();
        assert_eq!(post.action.as_str(), "https://ehr.example/auth?tenant=1");
        assert!(post.fields.iter().any(|(k, _)| k == "code_challenge"));
    }

    #[test]
    fn pending_launch_serializes_and_expires() {
        let (_, pending, _) = build("openid", None, false);
        let json = serde_json::to_string(&pending).unwrap();
        let back: PendingLaunch = serde_json::from_str(&json).unwrap();
        assert_eq!(back.state(), pending.state());
        assert_eq!(back.created_at(), pending.created_at());
        assert!(!back.is_expired_at(pending.created_at()));
        assert!(back.is_expired_at(pending.created_at() + chrono::Duration::seconds(601)));
        assert!(!format!("{pending:?}").contains(pending.pkce_verifier().secret()));
    }
}
