//! `/authorize` and the pages behind it: the request is checked, kept server-side as a pending authorization
//! (keyed by a random `txn`, bound to the browser by an HttpOnly cookie, forms protected by a CSRF token), then
//! the user signs in, picks a patient and an encounter when asked, and approves or denies.
//!
//! Errors go back to the app's redirect URI as `error=…` (RFC 6749 §4.1.2.1), except a bad client or redirect
//! URI, which get an error page (the redirect URI cannot be trusted).

use axum::{
    body::Bytes,
    extract::{RawQuery, State},
    response::{Html, IntoResponse, Response},
};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use serde_json::Value;
use smart_launch::scope::{Scope, ScopeSet};
use subtle::ConstantTimeEq;
use url::Url;

use super::{
    AuthServer,
    clients::RegisteredClient,
    pages::{self, Choice, ConsentView, FormKeys},
    params::Params,
    records::{self, CodeRecord, EhrLaunch, GrantRecord, PendingAuthorization},
    scopes,
};
use crate::{
    config::{ClientSpec, PkcePolicy, SimulatedFailure},
    error::SandboxError,
    store::Store,
};

/// The cookie that binds pending authorizations to the browser that started them.
const BROWSER_COOKIE: &str = "sandbox_browser";
/// How long a user has to get through the pages.
const PENDING_TTL_MS: i64 = 10 * 60 * 1000;
/// How many people or encounters a picker lists.
const LIST_LIMIT: usize = 50;

/// Why an authorization request stops.
enum AuthorizeError {
    /// Shown to the user: the app cannot be trusted with a redirect.
    Page { title: &'static str, message: String },
    /// Shown to the user with 403: the request is well formed but not allowed.
    Forbidden { title: &'static str, message: String },
    /// Sent back to the app's redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
    /// The sandbox itself failed.
    Internal(SandboxError),
}

impl From<SandboxError> for AuthorizeError {
    fn from(err: SandboxError) -> Self {
        AuthorizeError::Internal(err)
    }
}

fn page(title: &'static str, message: impl Into<String>) -> AuthorizeError {
    AuthorizeError::Page {
        title,
        message: message.into(),
    }
}

fn forbidden(title: &'static str, message: impl Into<String>) -> AuthorizeError {
    AuthorizeError::Forbidden {
        title,
        message: message.into(),
    }
}

impl IntoResponse for AuthorizeError {
    fn into_response(self) -> Response {
        match self {
            AuthorizeError::Page { title, message } => (
                StatusCode::BAD_REQUEST,
                Html(pages::error_page(title, &message).into_string()),
            )
                .into_response(),
            AuthorizeError::Forbidden { title, message } => (
                StatusCode::FORBIDDEN,
                Html(pages::error_page(title, &message).into_string()),
            )
                .into_response(),
            AuthorizeError::Redirect {
                redirect_uri,
                state,
                error,
                description,
            } => {
                let mut pairs = vec![("error", error.to_owned()), ("error_description", description)];
                if let Some(state) = state {
                    pairs.push(("state", state));
                }
                redirect_to_app(&redirect_uri, &pairs)
            }
            AuthorizeError::Internal(err) if err.is_database_gone() => {
                tracing::error!(error = %err, "authorization failed");
                unavailable_page()
            }
            AuthorizeError::Internal(err) => {
                tracing::error!(error = %err, "authorization failed");
                let page = pages::error_page(
                    "Something went wrong",
                    "The sandbox failed to process the sign-in; see its log, then start again from the app.",
                );
                (StatusCode::INTERNAL_SERVER_ERROR, Html(page.into_string())).into_response()
            }
        }
    }
}

/// 503 with `Retry-After`: the sandbox cannot store the sign-in (its database file is gone).
pub(super) fn unavailable_page() -> Response {
    let page = pages::error_page(
        "The sandbox cannot sign you in",
        crate::error::DATABASE_GONE_ADVICE,
    );
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(
            header::RETRY_AFTER,
            HeaderValue::from(crate::limits::RETRY_AFTER_SECONDS),
        )],
        Html(page.into_string()),
    )
        .into_response()
}

/// A 303 to the app's redirect URI with `pairs` added to its query.
fn redirect_to_app(redirect_uri: &str, pairs: &[(&str, String)]) -> Response {
    match Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut query = url.query_pairs_mut();
                for (k, v) in pairs {
                    query.append_pair(k, v);
                }
            }
            see_other(url.as_str())
        }
        Err(_) => page("Wrong redirect URI", "The app's redirect URI is not a valid URL.").into_response(),
    }
}

fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => page(
            "Wrong redirect URI",
            "The redirect location is not a valid header value.",
        )
        .into_response(),
    }
}

fn step_location(txn: &str) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("txn", txn)
        .finish();
    format!("/auth/authorize/step?{query}")
}

/// `GET` and `POST /auth/authorize`.
pub(crate) async fn authorize(
    State(auth): State<AuthServer>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let raw: Vec<u8> = if method == Method::POST {
        body.to_vec()
    } else {
        uri.query().unwrap_or_default().as_bytes().to_vec()
    };
    if method == Method::POST && !auth.persona().accepts_standalone_authorize_post() {
        let launched = url::form_urlencoded::parse(&raw).any(|(k, _)| k == "launch");
        if !launched {
            return page(
                "Use GET for a standalone launch",
                "This EHR takes a standalone launch's authorization request by GET only (POST is for EHR launches). \
                 Send the same parameters in the query string.",
            )
            .into_response();
        }
    }
    blocking(auth.store().clone(), move || start(&auth, &headers, &raw)).await
}

/// Runs a page's database work through the store's task limit ([`Store::blocking`]), so SQLite never stalls the
/// async threads and the authorization pages share the database with the FHIR API by one rule.
async fn blocking<F>(store: Store, work: F) -> Response
where
    F: FnOnce() -> Result<Response, AuthorizeError> + Send + 'static,
{
    store
        .blocking(move |_| work())
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// An authorization request, checked in this order: the parameters parse and none is repeated; the app and its
/// redirect URI are known ([`verified_app`]: a failure is a page, since nothing may be sent to a redirect URI not
/// yet verified); the OAuth and SMART parameters ([`pending_authorization`]: a failure goes back to the app as an
/// `error` on its redirect URI); then the pending authorization is stored and the browser sent to its first step
/// ([`begin`]).
fn start(auth: &AuthServer, headers: &HeaderMap, raw: &[u8]) -> Result<Response, AuthorizeError> {
    let params = Params::parse(raw).map_err(|m| page("Invalid request", m))?;
    let single = [
        "client_id",
        "redirect_uri",
        "response_type",
        "scope",
        "state",
        "aud",
        "code_challenge",
        "code_challenge_method",
        "launch",
        "nonce",
    ];
    if let Some(name) = params.repeated(&single) {
        return Err(page(
            "Invalid request",
            format!("The parameter {name} appears more than once."),
        ));
    }
    let app = verified_app(auth, &params)?;
    let pending = pending_authorization(auth, &params, app)?;
    begin(auth, headers, &pending)
}

/// The app an authorization request is from, once its client id and redirect URI are known to match.
struct VerifiedApp<'a> {
    client: std::sync::Arc<RegisteredClient>,
    redirect_uri: &'a str,
    /// The EHR launch named by `launch`, taken (single use).
    launch: Option<EhrLaunch>,
    /// The failure this launch or client is set to simulate.
    fail: Option<SimulatedFailure>,
}

/// The client and its exact redirect URI (a launch id is taken here too: it may carry a simulated failure).
fn verified_app<'a>(auth: &AuthServer, params: &'a Params) -> Result<VerifiedApp<'a>, AuthorizeError> {
    let client_id = params.get("client_id").ok_or_else(|| {
        page(
            "Unknown app",
            "The request has no client_id. The app must send the client id it was registered with.",
        )
    })?;
    let redirect_uri = params.get("redirect_uri").ok_or_else(|| {
        page(
            "Wrong redirect URI",
            "The request has no redirect_uri. The app must send one of its registered redirect URIs.",
        )
    })?;
    let launch = match params.get("launch") {
        // Single use: the launch is taken, so a second authorization with the same id finds nothing.
        Some(id) => records::take_launch(auth.store(), id)?,
        None => None,
    };
    let client = find_or_register_client(auth, client_id, redirect_uri)?;
    let fail = launch.as_ref().and_then(|l| l.fail).or(client.fail);
    if fail == Some(SimulatedFailure::InvalidClient) {
        return Err(page(
            "Unknown app",
            format!("The client {client_id} is not registered (simulated failure invalid_client)."),
        ));
    }
    if fail == Some(SimulatedFailure::InvalidRedirect) || !client.redirect_matches(redirect_uri) {
        let registered: Vec<&str> = client.redirect_uris.iter().map(Url::as_str).collect();
        return Err(page(
            "Wrong redirect URI",
            format!(
                "The redirect URI {redirect_uri} is not registered for the app {client_id}. Registered: {}. Redirect URIs must match exactly.",
                registered.join(", ")
            ),
        ));
    }
    Ok(VerifiedApp {
        client,
        redirect_uri,
        launch,
        fail,
    })
}

/// The authorization to walk the user through, from the request's OAuth and SMART parameters, in order:
/// `response_type`, `state`, `aud`, `scope`, PKCE, the launch context.
fn pending_authorization(
    auth: &AuthServer,
    params: &Params,
    app: VerifiedApp<'_>,
) -> Result<PendingAuthorization, AuthorizeError> {
    let VerifiedApp {
        client,
        redirect_uri,
        launch,
        fail,
    } = app;
    let state_param = params.get("state").map(str::to_owned);
    let back = |error: &'static str, description: String| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.to_owned(),
        state: state_param.clone(),
        error,
        description,
    };
    match params.get("response_type") {
        Some("code") => {}
        None => {
            return Err(back(
                "invalid_request",
                "response_type is missing; send response_type=code.".to_owned(),
            ));
        }
        Some(other) => {
            return Err(back(
                "unsupported_response_type",
                format!("response_type={other} is not supported; use code."),
            ));
        }
    }
    let Some(state_value) = state_param.clone() else {
        return Err(back(
            "invalid_request",
            "state is missing; send a random state value and check it on return.".to_owned(),
        ));
    };
    check_aud(auth, params).map_err(|m| back("invalid_request", m))?;
    let requested = requested_scopes(params, fail).map_err(|m| back("invalid_scope", m))?;
    let code_challenge = check_pkce(params, &client).map_err(|m| back("invalid_request", m))?;
    let launch = check_launch(params, launch, &requested, &client).map_err(|(e, m)| back(e, m))?;

    let wants_encounter = requested.contains(&Scope::LaunchEncounter);
    Ok(PendingAuthorization {
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        state: state_value,
        scope: requested.to_string(),
        code_challenge,
        nonce: params.get("nonce").map(str::to_owned),
        // The launch's clinician is only offered first on the sign-in page: `/launcher` takes no credentials, so a
        // launch cannot sign anyone in.
        user: None,
        patient: launch.as_ref().and_then(|l| l.patient.clone()),
        encounter: launch.as_ref().and_then(|l| l.encounter.clone()),
        encounter_done: !wants_encounter || launch.as_ref().is_some_and(|l| l.encounter.is_some()),
        launch,
        fail,
    })
}

/// `aud` must name this server's FHIR base (SMART App Launch 2.2, "aud").
fn check_aud(auth: &AuthServer, params: &Params) -> Result<(), String> {
    let base = auth.fhir_base().as_str().trim_end_matches('/');
    match params.get("aud") {
        Some(aud) if aud.trim_end_matches('/') == base => Ok(()),
        Some(aud) => Err(format!(
            "aud={aud} is not this server; aud must be the FHIR base URL {base}."
        )),
        None => Err(format!("aud is missing; send aud={base} (the FHIR base URL).")),
    }
}

/// The scopes asked for, when at least one of them can be granted here.
fn requested_scopes(params: &Params, fail: Option<SimulatedFailure>) -> Result<ScopeSet, String> {
    let scope_text = params
        .get("scope")
        .ok_or_else(|| "scope is missing; ask for the scopes the app needs.".to_owned())?;
    let requested = ScopeSet::parse(scope_text).map_err(|e| e.to_string())?;
    if fail == Some(SimulatedFailure::InvalidScope) {
        return Err("The requested scope is refused (simulated failure invalid_scope).".to_owned());
    }
    if scopes::grant_interactive(&requested).is_empty() {
        return Err(format!(
            "None of the requested scopes ({scope_text}) can be granted here."
        ));
    }
    Ok(requested)
}

/// Stores `pending` under a new transaction id bound to the browser (its cookie set here when it had none) and
/// sends the browser to the first step.
fn begin(
    auth: &AuthServer,
    headers: &HeaderMap,
    pending: &PendingAuthorization,
) -> Result<Response, AuthorizeError> {
    let (browser, new_cookie) = match browser_cookie(headers) {
        Some(value) => (value, false),
        None => (records::random_token(), true),
    };
    let txn = records::random_token();
    let csrf = records::random_token();
    records::insert_pending(
        auth.store(),
        &txn,
        &records::hash_secret(&browser),
        &csrf,
        pending,
        records::now_ms() + PENDING_TTL_MS,
        auth.limits(),
    )?;
    let mut response = see_other(&step_location(&txn));
    if new_cookie {
        let secure = if auth.inner.secure_cookies { "; Secure" } else { "" };
        let cookie = format!("{BROWSER_COOKIE}={browser}; Path=/; HttpOnly; SameSite=Lax{secure}");
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    Ok(response)
}

fn find_or_register_client(
    auth: &AuthServer,
    client_id: &str,
    redirect_uri: &str,
) -> Result<std::sync::Arc<RegisteredClient>, AuthorizeError> {
    if let Some(client) = auth.client(client_id) {
        return Ok(client);
    }
    let loopback = Url::parse(redirect_uri).ok().filter(is_loopback);
    match loopback {
        Some(url) if auth.inner.open_registration => {
            let mut client = RegisteredClient::from_spec(ClientSpec::public(client_id, url))?;
            client.open_loopback = true;
            auth.insert_client(client)?;
            auth.client(client_id)
                .ok_or_else(|| page("Unknown app", "The client could not be registered."))
        }
        _ => Err(page(
            "Unknown app",
            format!(
                "No app with client id {client_id} is registered with this sandbox. Register it with `--client 'id={client_id},redirect=…'`{}.",
                if auth.inner.open_registration {
                    " (open registration accepts only loopback redirect URIs)"
                } else {
                    " or start the sandbox with --open-registration"
                }
            ),
        )),
    }
}

/// Whether a URL points at this machine (`localhost`, `127.0.0.0/8`, `[::1]`).
pub(crate) fn is_loopback(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https")
        && match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        }
}

/// The S256 code challenge, or why the PKCE parameters are refused.
fn check_pkce(params: &Params, client: &RegisteredClient) -> Result<Option<String>, String> {
    match (params.get("code_challenge"), params.get("code_challenge_method")) {
        (Some(challenge), Some("S256")) => {
            let well_formed = challenge.len() == 43
                && challenge
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if well_formed {
                Ok(Some(challenge.to_owned()))
            } else {
                Err(
                    "code_challenge must be the base64url SHA-256 of the verifier (43 characters)."
                        .to_owned(),
                )
            }
        }
        (Some(_), Some(method)) => Err(format!(
            "code_challenge_method={method} is not supported; use S256."
        )),
        (Some(_), None) => {
            Err("code_challenge_method is missing; the plain method is not supported, use S256.".to_owned())
        }
        (None, Some(_)) => Err("code_challenge_method was sent without code_challenge.".to_owned()),
        (None, None) if client.pkce == PkcePolicy::Optional => Ok(None),
        (None, None) => {
            Err("PKCE is required: send code_challenge and code_challenge_method=S256.".to_owned())
        }
    }
}

/// The EHR launch context, or the error to redirect with.
fn check_launch(
    params: &Params,
    launch: Option<EhrLaunch>,
    requested: &ScopeSet,
    client: &RegisteredClient,
) -> Result<Option<EhrLaunch>, (&'static str, String)> {
    let wants_launch = requested.contains(&Scope::Launch);
    match (params.get("launch"), launch) {
        (None, _) if wants_launch => Err((
            "invalid_request",
            "The launch scope needs the launch parameter from an EHR launch; a standalone launch must not ask for `launch`.".to_owned(),
        )),
        (None, _) => Ok(None),
        (Some(_), _) if !wants_launch => Err((
            "invalid_scope",
            "An EHR launch must ask for the `launch` scope together with the launch parameter.".to_owned(),
        )),
        (Some(_), None) => Err(("invalid_request", "The launch parameter is unknown or expired; launch the app again from the EHR.".to_owned())),
        (Some(_), Some(l)) if l.client_id.as_deref().is_some_and(|c| c != client.id) => {
            Err(("invalid_request", "The launch was made for another app.".to_owned()))
        }
        (Some(_), Some(l)) => Ok(Some(l)),
    }
}

fn browser_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == BROWSER_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

/// A pending authorization checked against the browser's cookie.
fn load(auth: &AuthServer, headers: &HeaderMap, txn: &str) -> Result<records::PendingRow, AuthorizeError> {
    let row = records::find_pending(auth.store(), txn)?.ok_or_else(|| {
        page(
            "Sign-in expired",
            "This sign-in is unknown or took longer than 10 minutes. Go back to the app and start again.",
        )
    })?;
    let browser = browser_cookie(headers).ok_or_else(|| {
        page("Cookies needed", "Your browser did not send the sandbox's sign-in cookie. Allow cookies for this site and start again from the app.")
    })?;
    let same = records::hash_secret(&browser)
        .as_bytes()
        .ct_eq(row.browser_hash.as_bytes());
    if !bool::from(same) {
        return Err(page(
            "Sign-in started elsewhere",
            "This sign-in was started in another browser. Start again from the app.",
        ));
    }
    Ok(row)
}

/// A form post's pending authorization, checked against the cookie and the CSRF token.
fn load_form(
    auth: &AuthServer,
    headers: &HeaderMap,
    form: &Params,
) -> Result<(String, records::PendingRow), AuthorizeError> {
    let txn = form.get("txn").ok_or_else(|| {
        page(
            "Invalid form",
            "The form lacks its sign-in id (txn). Start again from the app.",
        )
    })?;
    let row = load(auth, headers, txn)?;
    let sent = form.get("csrf").unwrap_or_default();
    if !bool::from(sent.as_bytes().ct_eq(row.csrf.as_bytes())) {
        return Err(page(
            "Form expired",
            "The form's security token does not match. Reload the page and try again.",
        ));
    }
    Ok((txn.to_owned(), row))
}

fn parse_form(body: &[u8]) -> Result<Params, AuthorizeError> {
    Params::parse(body).map_err(|m| page("Invalid form", m))
}

/// `GET /auth/authorize/step?txn=…[&name=…]`: the next page of a pending authorization.
pub(crate) async fn step(
    State(auth): State<AuthServer>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    blocking(auth.store().clone(), move || {
        let params =
            Params::parse(query.unwrap_or_default().as_bytes()).map_err(|m| page("Invalid request", m))?;
        let txn = params
            .get("txn")
            .ok_or_else(|| page("Invalid request", "The page address lacks its sign-in id (txn)."))?;
        let row = load(&auth, &headers, txn)?;
        render_step(&auth, txn, row, params.get("name").unwrap_or_default())
    })
    .await
}

/// The next page of the sign-in: who signs in, then which patient (when `launch/patient` asks for one), then which
/// encounter (when the patient has any), then consent.
fn render_step(
    auth: &AuthServer,
    txn: &str,
    row: records::PendingRow,
    search: &str,
) -> Result<Response, AuthorizeError> {
    let mut pending = row.pending;
    let keys = FormKeys { txn, csrf: &row.csrf };
    let requested = ScopeSet::parse_lenient(&pending.scope);
    if pending.user.is_none() {
        return login_page(auth, &keys, &pending, &requested, search);
    }
    if requested.contains(&Scope::LaunchPatient) && pending.patient.is_none() {
        let patients: Vec<Choice> = auth
            .store()
            .find_patients(search, LIST_LIMIT)?
            .iter()
            .map(|p| person_choice(p, ""))
            .collect();
        return Ok(html(pages::patient_picker(&keys, &patients, search)));
    }
    if !pending.encounter_done {
        if let Some(page) = encounter_page(auth, &keys, &pending)? {
            return Ok(page);
        }
        // Nothing to choose from: continue without an encounter.
        pending.encounter_done = true;
        records::update_pending(auth.store(), txn, &pending)?;
    }
    consent_page(auth, &keys, &pending, &requested)
}

fn html(markup: maud::Markup) -> Response {
    Html(markup.into_string()).into_response()
}

/// Who signs in: patients for a patient's standalone launch, clinicians otherwise; an EHR launch's preset
/// clinician first.
fn login_page(
    auth: &AuthServer,
    keys: &FormKeys<'_>,
    pending: &PendingAuthorization,
    requested: &ScopeSet,
    search: &str,
) -> Result<Response, AuthorizeError> {
    let store = auth.store();
    let hint = pending.launch.as_ref().and_then(|l| l.user.as_deref());
    let as_patient = pending.launch.is_none() && !scopes::is_provider_request(requested);
    let mut users: Vec<Choice> = if as_patient {
        store
            .find_patients(search, LIST_LIMIT)?
            .iter()
            .map(|p| person_choice(p, "Patient/"))
            .collect()
    } else {
        store
            .list_practitioners(LIST_LIMIT)?
            .iter()
            .map(|p| person_choice(p, "Practitioner/"))
            .collect()
    };
    if let Some(hint) = hint {
        users.retain(|u| u.value != hint);
        if let Some((kind, id)) = hint.split_once('/')
            && let Some(resource) = store.read(kind, id)?
        {
            users.insert(0, person_choice(&resource, "Practitioner/"));
        }
    }
    Ok(html(pages::login(
        keys,
        &pending.client_id,
        &users,
        as_patient,
        search,
    )))
}

/// The encounter picker, when the chosen patient has encounters to choose from.
fn encounter_page(
    auth: &AuthServer,
    keys: &FormKeys<'_>,
    pending: &PendingAuthorization,
) -> Result<Option<Response>, AuthorizeError> {
    let Some(patient) = &pending.patient else {
        return Ok(None);
    };
    let encounters: Vec<Choice> = auth
        .store()
        .encounters_for_patient(patient, LIST_LIMIT)?
        .iter()
        .map(encounter_choice)
        .collect();
    if encounters.is_empty() {
        return Ok(None);
    }
    let name = resource_name(auth, &format!("Patient/{patient}"))?;
    Ok(Some(html(pages::encounter_picker(keys, &name, &encounters))))
}

/// Consent: the app, the user, the patient and the requested scopes in words.
fn consent_page(
    auth: &AuthServer,
    keys: &FormKeys<'_>,
    pending: &PendingAuthorization,
    requested: &ScopeSet,
) -> Result<Response, AuthorizeError> {
    let user = match &pending.user {
        Some(reference) => resource_name(auth, reference)?,
        None => String::new(),
    };
    let patient = match &pending.patient {
        Some(id) => Some(resource_name(auth, &format!("Patient/{id}"))?),
        None => None,
    };
    let words: Vec<String> = requested.iter().map(scopes::describe).collect();
    let view = ConsentView {
        client_id: &pending.client_id,
        user: &user,
        patient: patient.as_deref(),
        scopes: &words,
    };
    Ok(html(pages::consent(keys, &view)))
}

fn resource_name(auth: &AuthServer, reference: &str) -> Result<String, AuthorizeError> {
    let Some((kind, id)) = reference.split_once('/') else {
        return Ok(reference.to_owned());
    };
    Ok(match auth.store().read(kind, id)? {
        Some(resource) => pages::display_name(&resource),
        None => reference.to_owned(),
    })
}

fn person_choice(resource: &Value, value_prefix: &str) -> Choice {
    let id = resource.get("id").and_then(Value::as_str).unwrap_or_default();
    let mut detail = Vec::new();
    if let Some(gender) = resource.get("gender").and_then(Value::as_str) {
        detail.push(gender.to_owned());
    }
    if let Some(birth) = resource.get("birthDate").and_then(Value::as_str) {
        detail.push(format!("born {birth}"));
    }
    detail.push(format!("id {id}"));
    Choice {
        value: format!("{value_prefix}{id}"),
        label: pages::display_name(resource),
        detail: detail.join(", "),
    }
}

fn encounter_choice(resource: &Value) -> Choice {
    let id = resource.get("id").and_then(Value::as_str).unwrap_or_default();
    let kind = resource
        .pointer("/type/0/text")
        .or_else(|| resource.pointer("/type/0/coding/0/display"))
        .or_else(|| resource.pointer("/class/display"))
        .or_else(|| resource.pointer("/class/code"))
        .and_then(Value::as_str)
        .unwrap_or("Encounter");
    let start = resource
        .pointer("/period/start")
        .and_then(Value::as_str)
        .unwrap_or("date unknown");
    Choice {
        value: id.to_owned(),
        label: kind.to_owned(),
        detail: format!("{start}, id {id}"),
    }
}

/// `POST /auth/authorize/login` (`txn`, `csrf`, `user` = `Patient/{id}` or `Practitioner/{id}`).
pub(crate) async fn login(State(auth): State<AuthServer>, headers: HeaderMap, body: Bytes) -> Response {
    record_choice(auth, headers, body, choose_user).await
}

/// `POST /auth/authorize/patient` (`txn`, `csrf`, `patient` = a Patient id).
pub(crate) async fn choose_patient(
    State(auth): State<AuthServer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record_choice(auth, headers, body, choose_patient_record).await
}

/// `POST /auth/authorize/encounter` (`txn`, `csrf`, `encounter` = an Encounter id of the patient, or `none`).
pub(crate) async fn choose_encounter(
    State(auth): State<AuthServer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record_choice(auth, headers, body, choose_encounter_record).await
}

/// One choice on the way to consent, recorded in its pending authorization.
type Choose = fn(&AuthServer, &Params, &mut PendingAuthorization) -> Result<(), AuthorizeError>;

/// What the sign-in, patient and encounter steps share: read the form, find its pending authorization (the
/// form's CSRF token checked by [`load_form`]), let `choose` check and record the choice, store it, and send the
/// browser to the next step.
async fn record_choice(auth: AuthServer, headers: HeaderMap, body: Bytes, choose: Choose) -> Response {
    blocking(auth.store().clone(), move || {
        let form = parse_form(&body)?;
        let (txn, row) = load_form(&auth, &headers, &form)?;
        let mut pending = row.pending;
        choose(&auth, &form, &mut pending)?;
        records::update_pending(auth.store(), &txn, &pending)?;
        Ok(see_other(&step_location(&txn)))
    })
    .await
}

/// The sandbox user to sign in as; a patient signs in to their own record only.
fn choose_user(
    auth: &AuthServer,
    form: &Params,
    pending: &mut PendingAuthorization,
) -> Result<(), AuthorizeError> {
    let user = form
        .get("user")
        .ok_or_else(|| page("Choose a user", "Choose a sandbox user to sign in as."))?;
    let (kind, id) = user
        .split_once('/')
        .filter(|(kind, _)| matches!(*kind, "Patient" | "Practitioner"))
        .ok_or_else(|| {
            page(
                "Unknown user",
                "The user must be Patient/{id} or Practitioner/{id}.",
            )
        })?;
    if auth.store().read(kind, id)?.is_none() {
        return Err(page(
            "Unknown user",
            format!("There is no {kind} with id {id} in this sandbox."),
        ));
    }
    if kind == "Patient" && pending.patient.as_deref().is_some_and(|p| p != id) {
        return Err(forbidden(
            "Not your record",
            "A patient signs in to their own record only; this authorization is for another patient.",
        ));
    }
    pending.user = Some(user.to_owned());
    if kind == "Patient" && pending.patient.is_none() {
        pending.patient = Some(id.to_owned());
    }
    Ok(())
}

/// The patient in context, chosen once.
fn choose_patient_record(
    auth: &AuthServer,
    form: &Params,
    pending: &mut PendingAuthorization,
) -> Result<(), AuthorizeError> {
    let patient = form
        .get("patient")
        .ok_or_else(|| page("Choose a patient", "Choose a patient."))?;
    if auth.store().read("Patient", patient)?.is_none() {
        return Err(page(
            "Unknown patient",
            format!("There is no patient with id {patient} in this sandbox."),
        ));
    }
    // The patient is chosen once: a patient's own sign-in or the EHR launch fixed it, and a form posted by hand
    // must not swap in another record.
    if pending.patient.as_deref().is_some_and(|p| p != patient) {
        return Err(forbidden(
            "Patient already chosen",
            "This authorization is for another patient; start again from the app to choose a different one.",
        ));
    }
    pending.patient = Some(patient.to_owned());
    Ok(())
}

/// The encounter in context: one of the patient's, or none.
fn choose_encounter_record(
    auth: &AuthServer,
    form: &Params,
    pending: &mut PendingAuthorization,
) -> Result<(), AuthorizeError> {
    let choice = form
        .get("encounter")
        .ok_or_else(|| page("Choose an encounter", "Choose an encounter, or No encounter."))?;
    if choice != "none" {
        let encounter = auth.store().read("Encounter", choice)?;
        let subject = encounter
            .as_ref()
            .and_then(|e| e.pointer("/subject/reference"))
            .and_then(Value::as_str);
        let expected = pending.patient.as_deref().map(|p| format!("Patient/{p}"));
        let belongs = subject
            .zip(expected.as_deref())
            .is_some_and(|(s, e)| s == e || s.ends_with(&format!("/{e}")));
        if !belongs {
            return Err(page(
                "Unknown encounter",
                format!("The patient has no encounter with id {choice}."),
            ));
        }
        pending.encounter = Some(choice.to_owned());
    }
    pending.encounter_done = true;
    Ok(())
}

/// `POST /auth/authorize/consent` (`txn`, `csrf`, `decision` = `approve` or `deny`).
pub(crate) async fn consent(State(auth): State<AuthServer>, headers: HeaderMap, body: Bytes) -> Response {
    blocking(auth.store().clone(), move || {
        let form = parse_form(&body)?;
        let (txn, row) = load_form(&auth, &headers, &form)?;
        let pending = row.pending;
        let approve = match form.get("decision") {
            Some("approve") => true,
            Some("deny") => false,
            _ => return Err(page("Choose", "Choose Approve or Deny.")),
        };
        let requested = ScopeSet::parse_lenient(&pending.scope);
        let incomplete = pending.user.is_none()
            || (requested.contains(&Scope::LaunchPatient) && pending.patient.is_none())
            || !pending.encounter_done;
        if approve && incomplete {
            return Ok(see_other(&step_location(&txn)));
        }
        if !records::delete_pending(auth.store(), &txn)? {
            return Err(page(
                "Already answered",
                "This sign-in was already completed. Go back to the app.",
            ));
        }
        let state_pair = ("state", pending.state.clone());
        if !approve {
            let pairs = [
                ("error", "access_denied".to_owned()),
                ("error_description", "The user denied access.".to_owned()),
                state_pair,
            ];
            return Ok(redirect_to_app(&pending.redirect_uri, &pairs));
        }
        let code = issue_code(&auth, pending.clone(), &requested)?;
        Ok(redirect_to_app(
            &pending.redirect_uri,
            &[("code", code), state_pair],
        ))
    })
    .await
}

/// Stores a new single-use code for an approved authorization and returns it.
fn issue_code(
    auth: &AuthServer,
    pending: PendingAuthorization,
    requested: &ScopeSet,
) -> Result<String, SandboxError> {
    let granted = scopes::grant_interactive(requested);
    let was_ehr_launch = pending.launch.is_some();
    let launch = pending.launch.unwrap_or_default();
    let now = records::now_ms();
    let grant = GrantRecord {
        client_id: pending.client_id,
        scope: granted.to_string(),
        patient: pending.patient,
        encounter: pending.encounter,
        fhir_user: pending.user,
        need_patient_banner: if was_ehr_launch {
            launch.need_patient_banner
        } else {
            true
        },
        intent: launch.intent,
        nonce: pending.nonce,
        fail: pending.fail,
        fhir_context: launch.fhir_context,
        auth_time: now / 1000,
    };
    let record = CodeRecord {
        redirect_uri: pending.redirect_uri,
        code_challenge: pending.code_challenge,
        grant,
    };
    let code = records::random_token();
    let ttl = i64::try_from(auth.inner.code_ttl.as_millis()).unwrap_or(i64::MAX);
    records::insert_code(
        auth.store(),
        &records::hash_secret(&code),
        &record,
        now.saturating_add(ttl),
    )?;
    Ok(code)
}
