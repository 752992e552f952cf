//! The FHIR interactions, run on the blocking pool against the store.

use super::bundle::{self, Page};
use super::limits;
use super::outcome::OutcomeError;
use super::{Ctx, FhirResponse};
use crate::registry;
use crate::store::normalize::instant_text;
use crate::store::search::{self, SearchRequest};
use crate::store::{self, ResourceRow, Sent, Store, Written};
use axum::http::{HeaderMap, StatusCode, header};
use rusqlite::Connection;
use serde_json::{Value, json};
use smart_launch::scope::Permissions;

/// Parses a request body as a FHIR JSON resource (415 when it is not JSON, 400 when it does not parse), keeping
/// the text of its numbers.
pub(crate) fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Sent, OutcomeError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.to_ascii_lowercase().contains("json") {
        return Err(OutcomeError::UnsupportedMediaType(format!(
            "The body must be FHIR JSON, sent with `Content-Type: application/fhir+json` (got `{content_type}`)."
        )));
    }
    let sent = Sent::parse(body)
        .map_err(|e| OutcomeError::BadRequest(format!("The body is not valid JSON: {e}.")))?;
    if !sent.resource.is_object() {
        return Err(OutcomeError::BadRequest(
            "The body must be a JSON object (a FHIR resource).".into(),
        ));
    }
    Ok(sent)
}

pub(crate) fn check_type(resource_type: &str) -> Result<(), OutcomeError> {
    if registry::is_known_type(resource_type) {
        Ok(())
    } else {
        Err(OutcomeError::NotFound(format!(
            "`{resource_type}` is not a FHIR R4 resource type (names are case-sensitive, e.g. `Patient`, `Observation`)."
        )))
    }
}

pub(crate) fn check_id(resource_type: &str, id: &str) -> Result<(), OutcomeError> {
    check_type(resource_type)?;
    if registry::is_valid_id(id) {
        Ok(())
    } else {
        Err(OutcomeError::NotFound(format!(
            "`{id}` is not a valid FHIR id (1–64 letters, digits, `-` or `.`), so there is no {resource_type} with it."
        )))
    }
}

pub(crate) fn not_found(resource_type: &str, id: &str) -> OutcomeError {
    OutcomeError::NotFound(format!(
        "There is no {resource_type} with id `{id}` on this server."
    ))
}

pub(crate) fn gone(row: &ResourceRow) -> OutcomeError {
    OutcomeError::Gone(format!(
        "{} was deleted (at {}).",
        row.reference(),
        row.last_updated
    ))
}

/// The HTTP date of a FHIR instant, for `Last-Modified`.
fn http_date(instant: &str) -> Option<String> {
    chrono::DateTime::parse_from_rfc3339(instant)
        .ok()
        .map(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
}

pub(crate) fn resource_response(status: StatusCode, row: &ResourceRow, base: &str) -> FhirResponse {
    FhirResponse {
        status,
        body: row.json.clone(),
        etag: Some(row.etag()),
        last_modified: http_date(&row.last_updated),
        location: (status == StatusCode::CREATED)
            .then(|| format!("{base}/{}/{}/_history/{}", row.resource_type, row.id, row.version)),
    }
}

/// What read, vread and history share: a valid id, a reader, the current version (404 when there is none),
/// and the token's right to read it (decided on the current version before any older one is looked at); then
/// `then` with the connection and that current row.
fn with_current<T>(
    ctx: &Ctx,
    store: &Store,
    resource_type: &str,
    id: &str,
    then: impl FnOnce(&Connection, ResourceRow) -> Result<T, OutcomeError>,
) -> Result<T, OutcomeError> {
    check_id(resource_type, id)?;
    store.with_reader(|conn| {
        let current =
            store::current_row(conn, resource_type, id)?.ok_or_else(|| not_found(resource_type, id))?;
        ctx.access.check_row(conn, &current, Permissions::READ)?;
        then(conn, current)
    })
}

/// `GET [base]/[type]/[id]`.
pub(crate) fn read(
    ctx: &Ctx,
    store: &Store,
    resource_type: &str,
    id: &str,
) -> Result<FhirResponse, OutcomeError> {
    with_current(ctx, store, resource_type, id, |_, row| {
        if row.deleted {
            return Err(gone(&row));
        }
        Ok(resource_response(StatusCode::OK, &row, &ctx.base))
    })
}

/// `GET [base]/[type]/[id]/_history/[vid]`.
pub(crate) fn vread(
    ctx: &Ctx,
    store: &Store,
    resource_type: &str,
    id: &str,
    version: &str,
) -> Result<FhirResponse, OutcomeError> {
    check_id(resource_type, id)?;
    let Ok(number) = version.parse::<i64>() else {
        return Err(OutcomeError::NotFound(format!(
            "`{version}` is not a version id of {resource_type}/{id}."
        )));
    };
    with_current(ctx, store, resource_type, id, |conn, current| {
        let row = store::version_row(conn, &current, number)?.ok_or_else(|| {
            OutcomeError::NotFound(format!(
                "{resource_type}/{id} has no version {number} (the current one is {}).",
                current.version
            ))
        })?;
        // The version is judged by its own compartment and content: a resource re-filed from another patient
        // keeps that patient's versions out of this token's reach.
        ctx.access.check_version(&row, Permissions::READ)?;
        if row.deleted {
            return Err(gone(&row));
        }
        Ok(resource_response(StatusCode::OK, &row, &ctx.base))
    })
}

/// `GET [base]/[type]/[id]/_history`: the versions the token may read (each judged by its own compartment and
/// content), once it may read the current one.
pub(crate) fn history(
    ctx: &Ctx,
    store: &Store,
    resource_type: &str,
    id: &str,
) -> Result<FhirResponse, OutcomeError> {
    with_current(ctx, store, resource_type, id, |conn, current| {
        let older = store::older_versions(conn, &current)?
            .into_iter()
            .filter(|row| ctx.access.check_version(row, Permissions::READ).is_ok());
        let shown: Vec<ResourceRow> = std::iter::once(current.clone()).chain(older).collect();
        Ok(FhirResponse::json(
            StatusCode::OK,
            bundle::history(&ctx.base, &shown),
        ))
    })
}

/// `GET [base]/[type]?…` and `POST [base]/[type]/_search`.
pub(crate) fn search(
    ctx: &Ctx,
    store: &Store,
    resource_type: &str,
    pairs: &[(String, String)],
) -> Result<FhirResponse, OutcomeError> {
    check_type(resource_type)?;
    let request = SearchRequest::parse(resource_type, pairs)?;
    let decision = ctx.access.decide(resource_type, Permissions::SEARCH)?;
    store.with_reader(|conn| {
        let result = search::execute(conn, &request, &decision.restriction())?;
        let included = readable(ctx, conn, search::includes(conn, &request, &result.matches)?)?;
        let page = Page {
            base: &ctx.base,
            path: resource_type.to_owned(),
            link_params: &request.link_params,
            // A count-only search (`_summary=count`, `_count=0`) has no pages to follow: no `next` link.
            count: if request.summary_count { 0 } else { request.count },
            offset: request.offset,
            total: result.total,
        };
        Ok(FhirResponse::json(
            StatusCode::OK,
            bundle::searchset(&page, &result.matches, &included),
        ))
    })
}

fn readable(ctx: &Ctx, conn: &Connection, rows: Vec<ResourceRow>) -> Result<Vec<ResourceRow>, OutcomeError> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        if ctx.access.may(conn, &row, Permissions::READ)? {
            out.push(row);
        }
    }
    Ok(out)
}

/// Fields a resource must have before the server stores it (a small, practical subset of R4's cardinalities).
const REQUIRED: &[(&str, &[&str])] = &[
    ("Observation", &["status", "code"]),
    ("Encounter", &["status", "class"]),
    ("Condition", &["subject"]),
    (
        "MedicationRequest",
        &["status", "intent", "subject", "medication[x]"],
    ),
    ("AllergyIntolerance", &["patient"]),
    (
        "Immunization",
        &["status", "vaccineCode", "patient", "occurrence[x]"],
    ),
    ("Procedure", &["status", "subject"]),
    ("DiagnosticReport", &["status", "code"]),
];

/// The length of `value`'s JSON text, counted without building it.
pub(crate) fn json_size(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing a `Value` to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

/// Refuses (413) a resource whose JSON text is longer than [`limits::MAX_RESOURCE_BYTES`].
pub(crate) fn check_size(resource_type: &str, resource: &Value) -> Result<(), OutcomeError> {
    let size = json_size(resource);
    if size > limits::MAX_RESOURCE_BYTES {
        return Err(OutcomeError::PayloadTooLarge(format!(
            "The {resource_type} would be {size} bytes, more than the {} bytes this server stores in one \
             resource; keep large documents (attachments) out of it or split it.",
            limits::MAX_RESOURCE_BYTES
        )));
    }
    Ok(())
}

/// Checks the body is a resource of `resource_type` with the fields R4 requires (422 otherwise) and no larger
/// than the server stores (413).
pub(crate) fn validate(resource_type: &str, resource: &Value) -> Result<(), OutcomeError> {
    check_type(resource_type)?;
    check_size(resource_type, resource)?;
    match resource.get("resourceType").and_then(Value::as_str) {
        Some(t) if t == resource_type => {}
        Some(t) => {
            return Err(OutcomeError::BadRequest(format!(
                "The body is a {t}, but the request is for {resource_type}: send it to `/fhir/{t}`."
            )));
        }
        None => return Err(OutcomeError::BadRequest("The body has no `resourceType`.".into())),
    }
    let map = resource
        .as_object()
        .ok_or_else(|| OutcomeError::BadRequest("The body must be a JSON object.".into()))?;
    for (t, fields) in REQUIRED {
        if *t != resource_type {
            continue;
        }
        for field in *fields {
            let present = match field.strip_suffix("[x]") {
                Some(prefix) => map
                    .keys()
                    .any(|k| k.starts_with(prefix) && k.len() > prefix.len()),
                None => map.get(*field).is_some_and(|v| !v.is_null()),
            };
            if !present {
                return Err(OutcomeError::Unprocessable(format!(
                    "{resource_type}.{field} is required (R4 cardinality 1..1); add it and send the resource again."
                )));
            }
        }
    }
    Ok(())
}

pub(crate) fn now() -> String {
    instant_text(chrono::Utc::now())
}

/// Creates `resource` with a new id, checking the token may create it where it would land.
pub(crate) fn create_in(
    ctx: &Ctx,
    conn: &Connection,
    mut sent: Sent,
    id: String,
    now: &str,
) -> Result<Written, OutcomeError> {
    let resource = &mut sent.resource;
    let resource_type = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    validate(&resource_type, resource)?;
    ctx.access.decide(&resource_type, Permissions::CREATE)?;
    resource["id"] = json!(id);
    let written = store::put_sent(conn, sent, now)?;
    ctx.access.check_row(conn, &written.row, Permissions::CREATE)?;
    Ok(written)
}

/// Creates or replaces `type/id`, honouring `If-Match`, checking the token may change both the old and the new
/// version.
pub(crate) fn update_in(
    ctx: &Ctx,
    conn: &Connection,
    resource_type: &str,
    id: &str,
    sent: Sent,
    if_match: Option<&str>,
    now: &str,
) -> Result<Written, OutcomeError> {
    check_id(resource_type, id)?;
    validate(resource_type, &sent.resource)?;
    match sent.resource.get("id").and_then(Value::as_str) {
        Some(body_id) if body_id == id => {}
        Some(body_id) => {
            return Err(OutcomeError::BadRequest(format!(
                "The body's id `{body_id}` differs from the id in the URL `{id}`; they must be the same."
            )));
        }
        None => {
            return Err(OutcomeError::BadRequest(
                "An update must carry the resource's `id` in the body.".into(),
            ));
        }
    }
    let current = current_if_changeable(ctx, conn, resource_type, id)?;
    check_if_match(resource_type, id, current.as_ref(), if_match)?;
    put_checked(ctx, conn, sent, now)
}

/// The current row of `type/id` (`None` if it never existed), once the token is known to be allowed to update
/// it: its scopes allow updating the type, and a live current version is within the token's reach.
pub(crate) fn current_if_changeable(
    ctx: &Ctx,
    conn: &Connection,
    resource_type: &str,
    id: &str,
) -> Result<Option<ResourceRow>, OutcomeError> {
    ctx.access.decide(resource_type, Permissions::UPDATE)?;
    let current = store::current_row(conn, resource_type, id)?;
    match current.as_ref() {
        Some(row) if !row.deleted => ctx.access.check_row(conn, row, Permissions::UPDATE)?,
        // A deleted resource still belongs to the patient it was deleted from: writing over its id would hand
        // the writer that patient's history.
        Some(row) => ctx.access.check_version(row, Permissions::UPDATE)?,
        None => {}
    }
    Ok(current)
}

/// Checks `If-Match` (if sent) names the current version (412 otherwise).
pub(crate) fn check_if_match(
    resource_type: &str,
    id: &str,
    current: Option<&ResourceRow>,
    if_match: Option<&str>,
) -> Result<(), OutcomeError> {
    let Some(expected) = if_match else {
        return Ok(());
    };
    let wanted = expected.trim().trim_start_matches("W/").trim_matches('"');
    let current_version = current.filter(|r| !r.deleted).map(|r| r.version);
    if current_version.map(|v| v.to_string()).as_deref() == Some(wanted) {
        return Ok(());
    }
    Err(OutcomeError::PreconditionFailed(match current_version {
        Some(v) => format!(
            "{resource_type}/{id} is at version {v}, but If-Match asked for {expected}: read it again and retry \
             with ETag W/\"{v}\"."
        ),
        None => format!("{resource_type}/{id} does not exist, so If-Match {expected} cannot match."),
    }))
}

/// Stores `resource` as the next version of itself, then checks the token may hold what it became (an update
/// cannot move a resource out of the token's compartment; the caller's transaction rolls back if it tried).
pub(crate) fn put_checked(
    ctx: &Ctx,
    conn: &Connection,
    sent: Sent,
    now: &str,
) -> Result<Written, OutcomeError> {
    let written = store::put_sent(conn, sent, now)?;
    ctx.access.check_row(conn, &written.row, Permissions::UPDATE)?;
    Ok(written)
}

/// Deletes `type/id` if the token may; `None` when it never existed.
pub(crate) fn delete_in(
    ctx: &Ctx,
    conn: &Connection,
    resource_type: &str,
    id: &str,
    now: &str,
) -> Result<ResourceRow, OutcomeError> {
    check_id(resource_type, id)?;
    ctx.access.decide(resource_type, Permissions::DELETE)?;
    let current = store::current_row(conn, resource_type, id)?.ok_or_else(|| not_found(resource_type, id))?;
    if !current.deleted {
        ctx.access.check_row(conn, &current, Permissions::DELETE)?;
    }
    store::delete_resource(conn, resource_type, id, now)?.ok_or_else(|| not_found(resource_type, id))
}

/// `POST [base]/[type]`.
pub(crate) fn create(
    ctx: &Ctx,
    store: &Store,
    resource_type: &str,
    sent: Sent,
) -> Result<FhirResponse, OutcomeError> {
    validate(resource_type, &sent.resource)?;
    let id = uuid::Uuid::new_v4().to_string();
    let written = store.write(|tx| create_in(ctx, tx, sent, id, &now()))?;
    Ok(resource_response(StatusCode::CREATED, &written.row, &ctx.base))
}

/// `PUT [base]/[type]/[id]`.
pub(crate) fn update(
    ctx: &Ctx,
    store: &Store,
    resource_type: &str,
    id: &str,
    sent: Sent,
    if_match: Option<&str>,
) -> Result<FhirResponse, OutcomeError> {
    let written = store.write(|tx| update_in(ctx, tx, resource_type, id, sent, if_match, &now()))?;
    let status = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(resource_response(status, &written.row, &ctx.base))
}

/// `DELETE [base]/[type]/[id]`.
pub(crate) fn delete(
    ctx: &Ctx,
    store: &Store,
    resource_type: &str,
    id: &str,
) -> Result<FhirResponse, OutcomeError> {
    let row = store.write(|tx| delete_in(ctx, tx, resource_type, id, &now()))?;
    Ok(FhirResponse {
        status: StatusCode::NO_CONTENT,
        body: None,
        etag: Some(row.etag()),
        last_modified: None,
        location: None,
    })
}
