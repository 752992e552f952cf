//! The FHIR R4 server, mounted at `/fhir`: CapabilityStatement, read, vread, history, search (with paging,
//! `_include`, `_sort`), `Patient/{id}/$everything` (`start`, `end`, `_since`, `_type`), create, update
//! (`If-Match`), patch (JSON Patch, `If-Match`), delete, and transaction / batch Bundles (posted to the base,
//! with or without a trailing slash), all as `application/fhir+json`.
//!
//! Every request except `GET /metadata` needs a bearer token from the sandbox's authorization server; its scopes
//! decide what may be read or written (see [`access`](self) rules in `access.rs`), and every error is an
//! OperationOutcome. Handlers only parse the request and hand the work to a blocking task, where the store does
//! it.

mod access;
mod bundle;
mod capability;
mod everything;
mod interaction;
mod outcome;
mod patch;
mod transaction;

use crate::SandboxState;
use access::Access;
use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, OriginalUri, Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{MethodRouter, get, post},
};
use outcome::{FHIR_JSON, FhirError};
use url::Url;

/// The largest request body accepted (transaction Bundles can be large).
const BODY_LIMIT: usize = 32 * 1024 * 1024;

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
fn negotiate(headers: &HeaderMap, query: Option<&str>) -> Result<(), FhirError> {
    let json_ok = |v: &str| {
        let v = v.to_ascii_lowercase();
        v.contains("json") || v.contains("*/*") || v.contains("application/*")
    };
    if let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())
        && !accept.trim().is_empty()
        && !json_ok(accept)
    {
        return Err(FhirError::NotAcceptable(format!(
            "This server answers only in JSON, but the request accepts `{accept}`. Send `Accept: application/fhir+json`."
        )));
    }
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if k == "_format" && !json_ok(&v) && v != "json" {
            return Err(FhirError::NotAcceptable(format!(
                "This server answers only in JSON, but the request asks for `_format={v}`. Use `_format=json` or leave it out."
            )));
        }
    }
    Ok(())
}

/// Checks the token (off the async threads: it reads the database), then runs `work` on the blocking pool.
async fn serve<F>(state: SandboxState, headers: HeaderMap, query: Option<String>, work: F) -> Response
where
    F: FnOnce(&Ctx, &crate::store::Store) -> Result<FhirResponse, FhirError> + Send + 'static,
{
    if let Err(e) = negotiate(&headers, query.as_deref()) {
        return e.into_response();
    }
    let st = state.clone();
    let result = state
        .store()
        .blocking(move |store| {
            let grant = st.auth().check_bearer(&headers)?;
            if let Some(failure) = grant.simulated_failure {
                return Err(FhirError::Simulated(failure));
            }
            let ctx = Ctx {
                base: base_of(st.fhir_base()),
                access: Access::new(grant),
            };
            work(&ctx, store)
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
    let statement = capability::capability_statement(&base_of(state.fhir_base()), &state.auth().endpoints());
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
    body: Bytes,
) -> Response {
    let mut pairs = query_pairs(query.as_deref());
    pairs.extend(url::form_urlencoded::parse(&body).into_owned());
    serve(state, headers, query, move |ctx, store| {
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
        _ => Err(FhirError::NotFound(format!(
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
    body: Bytes,
) -> Response {
    let parsed = interaction::parse_body(&headers, &body);
    serve(state, headers, query, move |ctx, store| {
        interaction::create(ctx, store, &resource_type, parsed?)
    })
    .await
}

async fn update(
    State(state): State<SandboxState>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let parsed = interaction::parse_body(&headers, &body);
    let if_match = if_match(&headers);
    serve(state, headers, query, move |ctx, store| {
        interaction::update(ctx, store, &resource_type, &id, parsed?, if_match.as_deref())
    })
    .await
}

async fn patch_resource(
    State(state): State<SandboxState>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let parsed = patch::parse_patch(&headers, &body);
    let if_match = if_match(&headers);
    serve(state, headers, query, move |ctx, store| {
        patch::patch(ctx, store, &resource_type, &id, &parsed?, if_match.as_deref())
    })
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
    body: Bytes,
) -> Response {
    let parsed = interaction::parse_body(&headers, &body);
    serve(state, headers, query, move |ctx, store| {
        transaction::process(ctx, store, parsed?)
    })
    .await
}

async fn unknown_endpoint(OriginalUri(uri): OriginalUri) -> Response {
    FhirError::NotFound(format!(
        "There is no FHIR endpoint at `{}`. FHIR endpoints look like `/fhir/Patient/{{id}}` or \
         `/fhir/Observation?patient={{id}}`; see `/fhir/metadata`.",
        uri.path()
    ))
    .into_response()
}

async fn method_not_allowed() -> Response {
    FhirError::MethodNotAllowed(
        "This endpoint does not support that HTTP method; `/fhir/metadata` lists the interactions of each resource type."
            .into(),
    )
    .into_response()
}
