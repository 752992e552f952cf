//! The EHR side of an EHR launch: the launch page at `/` and `GET /launcher`, which stores the launch context
//! under an opaque `launch` id and sends the browser to the app's launch URL with `iss` and `launch`.

use axum::{
    extract::{RawQuery, State},
    response::{Html, IntoResponse, Response},
};
use http::{HeaderValue, StatusCode, header};
use serde_json::Value;
use url::Url;

use super::{
    AuthServer,
    pages::{self, Choice, ClientRow, HomeView},
    params::Params,
    records::{self, EhrLaunch},
};
use crate::{config::SimulatedFailure, error::SandboxError, store::Store};

/// How long a `launch` id stays valid: long enough for the browser to reach the app and the app to send its
/// authorization request, and single use besides (RFC 9700 §4.5-style short-lived one-time values).
const LAUNCH_TTL_MS: i64 = 5 * 60 * 1000;

fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    (status, Html(pages::error_page(title, message).into_string())).into_response()
}

fn internal(err: &SandboxError) -> Response {
    tracing::error!(error = %err, "launcher failed");
    if err.is_database_gone() {
        return super::authorize::unavailable_page();
    }
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The sandbox failed; see its log.",
    )
}

fn choice(resource: &Value) -> Choice {
    let id = resource
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let birth = resource
        .get("birthDate")
        .and_then(Value::as_str)
        .map(|b| format!("born {b}, "))
        .unwrap_or_default();
    Choice {
        label: pages::display_name(resource),
        detail: format!("{birth}id {id}"),
        value: id,
    }
}

/// `GET /`: the registered clients and a launch form.
pub(crate) async fn home(State(auth): State<AuthServer>) -> Response {
    let store = auth.store().clone();
    store
        .blocking(move |_| Ok::<_, SandboxError>(home_page(&auth)))
        .await
        .unwrap_or_else(|e| internal(&e))
}

fn home_page(auth: &AuthServer) -> Response {
    let store = auth.store();
    let (patients, practitioners) = match (store.find_patients("", 100), store.list_practitioners(50)) {
        (Ok(p), Ok(r)) => (p, r),
        (Err(e), _) | (_, Err(e)) => return internal(&e),
    };
    let clients: Vec<ClientRow> = auth
        .clients()
        .into_iter()
        .map(|c| ClientRow {
            redirects: c
                .redirect_uris
                .iter()
                .map(Url::as_str)
                .collect::<Vec<_>>()
                .join(" "),
            launch_uri: c.launch_uri.map(String::from),
            kind: c.kind,
            id: c.id,
        })
        .collect();
    let failures: Vec<(&'static str, &'static str)> = SimulatedFailure::ALL
        .iter()
        .map(|f| (f.name(), f.description()))
        .collect();
    let patients: Vec<Choice> = patients.iter().map(choice).collect();
    let practitioners: Vec<Choice> = practitioners.iter().map(choice).collect();
    let view = HomeView {
        fhir_base: auth.fhir_base().as_str(),
        clients: &clients,
        patients: &patients,
        practitioners: &practitioners,
        failures: &failures,
    };
    Html(pages::home(&view).into_string()).into_response()
}

/// `GET /launcher?launch_uri=…|client_id=…[&patient=…][&encounter=…][&practitioner=…][&fail=…]
/// [&need_patient_banner=false][&intent=…][&fhir_context=Type/id,…]`.
pub(crate) async fn launch(State(auth): State<AuthServer>, RawQuery(query): RawQuery) -> Response {
    let store = auth.store().clone();
    let outcome = store
        .blocking(move |_| launch_inner(&auth, query.as_deref().unwrap_or_default()))
        .await;
    match outcome {
        Ok(location) => match HeaderValue::from_str(location.as_str()) {
            Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
            Err(_) => error_page(
                StatusCode::BAD_REQUEST,
                "Invalid launch URL",
                "The launch URL is not a valid header value.",
            ),
        },
        Err(LaunchError::Bad(message)) => error_page(StatusCode::BAD_REQUEST, "Cannot launch", &message),
        Err(LaunchError::Internal(err)) => internal(&err),
    }
}

enum LaunchError {
    Bad(String),
    Internal(SandboxError),
}

impl From<SandboxError> for LaunchError {
    fn from(err: SandboxError) -> Self {
        LaunchError::Internal(err)
    }
}

/// A launch from the launcher's form, in order: which app ([`launch_target`]: only a registered launch URL);
/// the context, each part checked against the store ([`launch_context`]); then the launch record stored under a
/// new id and the app's launch URL with `iss` and `launch`.
fn launch_inner(auth: &AuthServer, query: &str) -> Result<Url, LaunchError> {
    let params = Params::parse(query.as_bytes()).map_err(LaunchError::Bad)?;
    let (launch_uri, client_id) = launch_target(&auth.clients(), &params)?;
    let record = launch_context(auth.store(), &params, client_id)?;
    let id = records::random_token();
    records::insert_launch(
        auth.store(),
        &id,
        &record,
        records::now_ms() + LAUNCH_TTL_MS,
        auth.limits(),
    )?;
    let mut location = launch_uri;
    location
        .query_pairs_mut()
        .append_pair("iss", auth.fhir_base().as_str().trim_end_matches('/'))
        .append_pair("launch", &id);
    Ok(location)
}

/// The launch URL and the client it belongs to, from `launch_uri` or `client_id`.
fn launch_target(
    clients: &[super::ClientSummary],
    params: &Params,
) -> Result<(Url, Option<String>), LaunchError> {
    match (params.get("launch_uri"), params.get("client_id")) {
        (Some(uri), _) => {
            let url = Url::parse(uri)
                .map_err(|e| LaunchError::Bad(format!("launch_uri is not an absolute URL ({e}).")))?;
            let owner = clients
                .iter()
                .find(|c| c.launch_uri.as_ref() == Some(&url))
                .map(|c| c.id.clone());
            // Only a registered launch URL: the launcher must not become an open redirector, not even to this
            // machine's other ports.
            let Some(owner) = owner else {
                return Err(LaunchError::Bad(format!(
                    "{url} is not a registered client's launch URL; register it with `--client '…,launch={url}'`."
                )));
            };
            Ok((url, Some(owner)))
        }
        (None, Some(id)) => {
            let client = clients
                .iter()
                .find(|c| c.id == id)
                .ok_or_else(|| LaunchError::Bad(format!("No client with id {id} is registered.")))?;
            let url = client.launch_uri.clone().ok_or_else(|| {
                LaunchError::Bad(format!(
                    "Client {id} has no launch URL; register it with `launch=URL`."
                ))
            })?;
            Ok((url, Some(id.to_owned())))
        }
        (None, None) => Err(LaunchError::Bad(
            "Give launch_uri=… or client_id=… to launch.".to_owned(),
        )),
    }
}

/// The launch's context: the patient, the encounter (which must be that patient's), the practitioner (or the
/// first one), a simulated failure, the banner flag, `fhirContext` references and the intent.
fn launch_context(
    store: &Store,
    params: &Params,
    client_id: Option<String>,
) -> Result<EhrLaunch, LaunchError> {
    let patient = params.get("patient").map(str::to_owned);
    if let Some(id) = &patient
        && store.read("Patient", id)?.is_none()
    {
        return Err(LaunchError::Bad(format!("There is no patient with id {id}.")));
    }
    let encounter = params.get("encounter").map(str::to_owned);
    if let Some(id) = &encounter {
        check_encounter(store, id, patient.as_deref())?;
    }
    let user = match params.get("practitioner") {
        Some(id) => {
            if store.read("Practitioner", id)?.is_none() {
                return Err(LaunchError::Bad(format!(
                    "There is no practitioner with id {id}."
                )));
            }
            Some(format!("Practitioner/{id}"))
        }
        None => store
            .list_practitioners(1)?
            .first()
            .and_then(|p| p.get("id").and_then(Value::as_str))
            .map(|id| format!("Practitioner/{id}")),
    };
    let fail = match params.get("fail") {
        Some(name) => Some(name.parse::<SimulatedFailure>().map_err(LaunchError::Bad)?),
        None => None,
    };
    let need_patient_banner = !matches!(params.get("need_patient_banner"), Some("false" | "0" | "no"));
    let fhir_context: Vec<String> = params
        .get("fhir_context")
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|r| r.contains('/'))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(EhrLaunch {
        client_id,
        patient,
        encounter,
        user,
        need_patient_banner,
        intent: params.get("intent").map(str::to_owned),
        fail,
        fhir_context,
    })
}

/// The encounter `id` exists and, when a patient is given, is that patient's.
fn check_encounter(store: &Store, id: &str, patient: Option<&str>) -> Result<(), LaunchError> {
    let Some(resource) = store.read("Encounter", id)? else {
        return Err(LaunchError::Bad(format!("There is no encounter with id {id}.")));
    };
    let subject = resource
        .pointer("/subject/reference")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some(p) = patient {
        let expected = format!("Patient/{p}");
        if subject != expected && !subject.ends_with(&format!("/{expected}")) {
            return Err(LaunchError::Bad(format!(
                "Encounter {id} does not belong to patient {p}."
            )));
        }
    }
    Ok(())
}
