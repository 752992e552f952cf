//! The FHIR R4 server, mounted at `/fhir`: CapabilityStatement, read, vread, history, search (with paging,
//! `_include`, `_sort`), `Patient/{id}/$everything` (`start`, `end`, `_since`, `_type`), create, update
//! (`If-Match`), patch (JSON Patch, `If-Match`), delete, and transaction / batch Bundles (posted to the base,
//! with or without a trailing slash), all as `application/fhir+json`.
//!
//! Every request except `GET /metadata` needs a bearer token from the sandbox's authorization server; its scopes
//! decide what may be read or written (see [`access`](self) rules in `access.rs`), and every error is an
//! OperationOutcome. Handlers only parse the request and hand the work to a blocking task, where the store does
//! it.

pub(crate) mod access;
mod bundle;
mod capability;
mod everything;
#[doc(hidden)]
pub mod fuzz;
mod interaction;
pub mod limits;
pub(crate) mod outcome;
mod patch;
mod transaction;

use crate::SandboxState;
use access::Access;
use axum::{
    Router,
    body::Body,
    extract::{DefaultBodyLimit, OriginalUri, Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{MethodRouter, get, post},
};
use outcome::{FHIR_JSON, OutcomeError};
use url::Url;

/// The largest request body accepted (see [`limits::MAX_BODY_BYTES`]).
const BODY_LIMIT: usize = limits::MAX_BODY_BYTES;

/// The FHIR server's routes, to be nested at `/fhir` with the sandbox state.
pub fn router() -> Router<SandboxState> {
    Router::new()
        .route("/metadata", get(metadata))
        .route("/", base_routes())
        .route("/{resource_type}", get(search_get).post(create))
        .route("/{resource_type}/_search", post(search_post))
        .route(
            "/{resource_type}/{id}",
            get(read).put(update).patch(patch_resource).delete(delete),
        )
        .route("/{resource_type}/{id}/{operation}", get(instance_operation))
        .route("/{resource_type}/{id}/_history/{version}", get(vread))
        .fallback(unknown_endpoint)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

/// The routes of the FHIR base itself: `POST [base]` takes a transaction or batch Bundle; other methods get a 405
/// OperationOutcome. Mounted at `/fhir` by [`router`], and at `/fhir/` by the sandbox's router, because many
/// clients write the base with a trailing slash and `nest` does not route it.
pub fn base_routes() -> MethodRouter<SandboxState> {
    post(transaction_or_batch)
        .fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

/// What a handler knows once the token is checked.
pub(crate) struct Ctx {
    /// The FHIR base, without a trailing slash.
    pub base: String,
    /// The token's permissions.
    pub access: Access,
}

/// A successful FHIR answer.
pub(crate) struct FhirResponse {
    pub status: StatusCode,
    pub body: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub location: Option<String>,
}

impl FhirResponse {
    pub(crate) fn json(status: StatusCode, body: String) -> Self {
        Self {
            status,
            body: Some(body),
            etag: None,
            last_modified: None,
            location: None,
        }
    }
}

impl IntoResponse for FhirResponse {
    fn into_response(self) -> Response {
        let mut response = match self.body {
            Some(body) => (
                self.status,
                [(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON))],
                body,
            )
                .into_response(),
            None => self.status.into_response(),
        };
        let headers = response.headers_mut();
        for (name, value) in [
            (header::ETAG, self.etag),
            (header::LAST_MODIFIED, self.last_modified),
            (header::LOCATION, self.location),
        ] {
            if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert(name, v);
            }
        }
        response
    }
}

fn base_of(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

/// Refuses clients that want only XML (or another non-JSON format).
fn negotiate(headers: &HeaderMap, query: Option<&str>) -> Result<(), OutcomeError> {
    let json_ok = |v: &str| {
        let v = v.to_ascii_lowercase();
        v.contains("json") || v.contains("*/*") || v.contains("application/*")
    };
    if let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())
        && !accept.trim().is_empty()
        && !json_ok(accept)
    {
        return Err(OutcomeError::NotAcceptable(format!(
            "This server answers only in JSON, but the request accepts `{accept}`. Send `Accept: application/fhir+json`."
        )));
    }
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if k == "_format" && !json_ok(&v) && v != "json" {
            return Err(OutcomeError::NotAcceptable(format!(
                "This server answers only in JSON, but the request asks for `_format={v}`. Use `_format=json` or leave it out."
            )));
        }
    }
    Ok(())
}

/// Checks the token (off the async threads: it reads the database), then runs `work` on the blocking pool.
async fn serve<F>(state: SandboxState, headers: HeaderMap, query: Option<String>, work: F) -> Response
where
    F: FnOnce(&Ctx, &crate::store::Store) -> Result<FhirResponse, OutcomeError> + Send + 'static,
{
    if let Err(e) = negotiate(&headers, query.as_deref()) {
        return e.into_response();
    }
    let st = state.clone();
    let result = state
        .store()
        .blocking(move |store| work(&context(&st, &headers)?, store))
        .await;
    match result {
        Ok(response) => response.into_response(),
        Err(e) => e.into_response(),
    }
}

/// What the bearer token in `headers` allows (401 without a usable one; the simulated failure a launch asked for).
fn context(state: &SandboxState, headers: &HeaderMap) -> Result<Ctx, OutcomeError> {
    let grant = state.auth().check_bearer(headers)?;
    if let Some(failure) = grant.simulated_failure {
        return Err(OutcomeError::Simulated(failure));
    }
    Ok(Ctx {
        base: base_of(state.fhir_base()),
        access: Access::new(grant),
    })
}

/// Like [`serve`] for a request with a body: the token is checked first, and only then is the body read (at most
/// [`BODY_LIMIT`] bytes; 413 beyond) and `parse`d, so a request without a valid token costs no more than its
/// headers, and nobody can make the server parse megabytes of JSON without a token.
async fn serve_with_body<T, P, F>(
    state: SandboxState,
    headers: HeaderMap,
    query: Option<String>,
    body: Body,
    parse: P,
    work: F,
) -> Response
where
    T: Send + 'static,
    P: FnOnce(&HeaderMap, &[u8]) -> Result<T, OutcomeError> + Send + 'static,
    F: FnOnce(&Ctx, &crate::store::Store, T) -> Result<FhirResponse, OutcomeError> + Send + 'static,
{
    if let Err(e) = negotiate(&headers, query.as_deref()) {
        return e.into_response();
    }
    let st = state.clone();
    let (ctx, headers) = match state
        .store()
        .blocking(move |_| context(&st, &headers).map(|ctx| (ctx, headers)))
        .await
    {
        Ok(checked) => checked,
        Err(e) => return e.into_response(),
    };
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return OutcomeError::PayloadTooLarge(format!(
                "The request body is larger than this server accepts ({} MiB) or was cut off; send smaller \
                 Bundles (split a large transaction into several).",
                BODY_LIMIT / (1024 * 1024)
            ))
            .into_response();
        }
    };
    let result = state
        .store()
        .blocking(move |store| {
            let parsed = parse(&headers, &bytes)?;
            work(&ctx, store, parsed)
        })
        .await;
    match result {
        Ok(response) => response.into_response(),
        Err(e) => e.into_response(),
    }
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

async fn metadata(
    State(state): State<SandboxState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(e) = negotiate(&headers, query.as_deref()) {
        return e.into_response();
    }
    let statement = capability::for_state(&state).await;
    FhirResponse::json(StatusCode::OK, statement.to_string()).into_response()
}

async fn search_get(
    State(state): State<SandboxState>,
    Path(resource_type): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = query_pairs(query.as_deref());
    serve(state, headers, query, move |ctx, store| {
        interaction::search(ctx, store, &resource_type, &pairs)
    })
    .await
}

async fn search_post(
    State(state): State<SandboxState>,
    Path(resource_type): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    let mut pairs = query_pairs(query.as_deref());
    let form = |_: &HeaderMap, body: &[u8]| -> Result<_, OutcomeError> {
        Ok(url::form_urlencoded::parse(body).into_owned().collect::<Vec<_>>())
    };
    serve_with_body(state, headers, query, body, form, move |ctx, store, form| {
        pairs.extend(form);
        interaction::search(ctx, store, &resource_type, &pairs)
    })
    .await
}

async fn read(
    State(state): State<SandboxState>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    serve(state, headers, query, move |ctx, store| {
        interaction::read(ctx, store, &resource_type, &id)
    })
    .await
}

async fn vread(
    State(state): State<SandboxState>,
    Path((resource_type, id, version)): Path<(String, String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    serve(state, headers, query, move |ctx, store| {
        interaction::vread(ctx, store, &resource_type, &id, &version)
    })
    .await
}

async fn instance_operation(
    State(state): State<SandboxState>,
    Path((resource_type, id, operation)): Path<(String, String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = query_pairs(query.as_deref());
    serve(state, headers, query, move |ctx, store| match (resource_type.as_str(), operation.as_str()) {
        (_, "_history") => interaction::history(ctx, store, &resource_type, &id),
        ("Patient", "$everything") => everything::everything(ctx, store, &id, &pairs),
        _ => Err(OutcomeError::NotFound(format!(
            "`{resource_type}/{id}/{operation}` is not an operation this server supports (try `_history`, or \
             `$everything` on a Patient)."
        ))),
    })
    .await
}

async fn create(
    State(state): State<SandboxState>,
    Path(resource_type): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    serve_with_body(
        state,
        headers,
        query,
        body,
        interaction::parse_body,
        move |ctx, store, parsed| interaction::create(ctx, store, &resource_type, parsed),
    )
    .await
}

async fn update(
    State(state): State<SandboxState>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    let if_match = if_match(&headers);
    serve_with_body(
        state,
        headers,
        query,
        body,
        interaction::parse_body,
        move |ctx, store, parsed| {
            interaction::update(ctx, store, &resource_type, &id, parsed, if_match.as_deref())
        },
    )
    .await
}

async fn patch_resource(
    State(state): State<SandboxState>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    let if_match = if_match(&headers);
    serve_with_body(
        state,
        headers,
        query,
        body,
        patch::parse_patch,
        move |ctx, store, parsed| patch::patch(ctx, store, &resource_type, &id, &parsed, if_match.as_deref()),
    )
    .await
}

fn if_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn delete(
    State(state): State<SandboxState>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    serve(state, headers, query, move |ctx, store| {
        interaction::delete(ctx, store, &resource_type, &id)
    })
    .await
}

async fn transaction_or_batch(
    State(state): State<SandboxState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    serve_with_body(
        state,
        headers,
        query,
        body,
        interaction::parse_body,
        transaction::process,
    )
    .await
}

/// A 503 OperationOutcome saying the server is overloaded (the caller adds `Retry-After`).
pub(crate) fn overload_outcome(why: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON))],
        outcome::operation_outcome("error", "transient", why).to_string(),
    )
        .into_response()
}

async fn unknown_endpoint(OriginalUri(uri): OriginalUri) -> Response {
    OutcomeError::NotFound(format!(
        "There is no FHIR endpoint at `{}`. FHIR endpoints look like `/fhir/Patient/{{id}}` or \
         `/fhir/Observation?patient={{id}}`; see `/fhir/metadata`.",
        uri.path()
    ))
    .into_response()
}

async fn method_not_allowed() -> Response {
    OutcomeError::MethodNotAllowed(
        "This endpoint does not support that HTTP method; `/fhir/metadata` lists the interactions of each resource type."
            .into(),
    )
    .into_response()
}
