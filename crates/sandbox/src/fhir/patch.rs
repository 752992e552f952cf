//! The FHIR `patch` interaction with JSON Patch (RFC 6902): `PATCH [base]/[type]/[id]` with
//! `Content-Type: application/json-patch+json`.
//!
//! A patch is an update whose new content the server works out: it is checked like an update (scopes, the
//! patient compartment before and after, `If-Match`), applied to the current version with the `json-patch`
//! crate, and stored as the next version through the same path. A patch that cannot be applied (a failed `test`,
//! a path that is not there), changes the resource's `id` or `resourceType`, or leaves a resource the server
//! would refuse on update is answered 422, and nothing is stored.

use super::interaction::{
    check_id, check_if_match, current_if_changeable, gone, not_found, now, put_checked, resource_response,
    validate,
};
use super::outcome::FhirError;
use super::{Ctx, FhirResponse};
use crate::store::{Store, Written};
use axum::http::{HeaderMap, StatusCode, header};
use json_patch::{Patch, PatchOperation};
use rusqlite::Connection;
use serde_json::Value;

/// The media type of a JSON Patch document (RFC 6902 §6).
const JSON_PATCH: &str = "application/json-patch+json";

/// Parses a request body as a JSON Patch document (415 for another media type, 400 when it is not one).
pub(crate) fn parse_patch(headers: &HeaderMap, body: &[u8]) -> Result<Patch, FhirError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case(JSON_PATCH) {
        return Err(FhirError::UnsupportedMediaType(format!(
            "This server patches only with JSON Patch, sent with `Content-Type: {JSON_PATCH}` (got \
             `{content_type}`); FHIRPath Patch is not supported."
        )));
    }
    serde_json::from_slice(body).map_err(|e| {
        FhirError::BadRequest(format!(
            "The body is not a JSON Patch document (an array of RFC 6902 operations such as \
             `{{\"op\": \"replace\", \"path\": \"/status\", \"value\": \"final\"}}`): {e}."
        ))
    })
}

/// `PATCH [base]/[type]/[id]`: answered like an update of an existing resource (200, the new version, its ETag
/// and Last-Modified), with a Location naming the new version.
pub(crate) fn patch(
    ctx: &Ctx,
    store: &Store,
    resource_type: &str,
    id: &str,
    patch: &Patch,
    if_match: Option<&str>,
) -> Result<FhirResponse, FhirError> {
    let written = store.write(|tx| patch_in(ctx, tx, resource_type, id, patch, if_match, &now()))?;
    let row = &written.row;
    let mut response = resource_response(StatusCode::OK, row, &ctx.base);
    response.location = Some(format!(
        "{}/{}/{}/_history/{}",
        ctx.base, row.resource_type, row.id, row.version
    ));
    Ok(response)
}

/// Applies `patch` to the current version of `type/id` and stores the result as its next version.
fn patch_in(
    ctx: &Ctx,
    conn: &Connection,
    resource_type: &str,
    id: &str,
    patch: &Patch,
    if_match: Option<&str>,
    now: &str,
) -> Result<Written, FhirError> {
    check_id(resource_type, id)?;
    let current =
        current_if_changeable(ctx, conn, resource_type, id)?.ok_or_else(|| not_found(resource_type, id))?;
    if current.deleted {
        return Err(gone(&current));
    }
    check_if_match(resource_type, id, Some(&current), if_match)?;
    let reference = current.reference();
    let resource = current
        .resource()
        .ok_or_else(|| FhirError::Internal(format!("the stored JSON of {reference} does not parse")))?;
    let patched = apply(resource, patch, &reference)?;
    validate(resource_type, &patched).map_err(|e| {
        FhirError::Unprocessable(format!(
            "The patch would leave {reference} invalid, so it was not applied: {}",
            e.message()
        ))
    })?;
    put_checked(ctx, conn, patched, now)
}

/// `resource` with `patch` applied, refusing (422) a patch that fails or changes what the resource is.
fn apply(resource: Value, patch: &Patch, reference: &str) -> Result<Value, FhirError> {
    let unprocessable =
        |why: String| FhirError::Unprocessable(format!("The patch was not applied to {reference}: {why}."));
    for (i, op) in patch.0.iter().enumerate() {
        // RFC 6902 §4.2: `-` names no element, so nothing can be removed (or moved away) from it. Refused here
        // because `json-patch` would instead take an array's last element (and panic on an empty array).
        let removes = match op {
            PatchOperation::Remove(op) => Some(&op.path),
            PatchOperation::Move(op) => Some(&op.from),
            _ => None,
        };
        if let Some(path) = removes.filter(|p| p.last().is_some_and(|t| t.encoded() == "-")) {
            return Err(unprocessable(format!(
                "operation {i} removes `{path}`, but `-` names no array element"
            )));
        }
    }
    let mut patched = resource.clone();
    json_patch::patch_unsafe(&mut patched, &patch.0).map_err(|e| {
        unprocessable(match e.kind {
            json_patch::PatchErrorKind::TestFailed => format!(
                "its `test` operation {} failed (the value at `{}` is not the one given)",
                e.operation, e.path
            ),
            _ => format!("operation {} failed at `{}`: {}", e.operation, e.path, e.kind),
        })
    })?;
    if !patched.is_object() {
        return Err(unprocessable(
            "it would replace the resource with something that is not a JSON object".into(),
        ));
    }
    for field in ["resourceType", "id"] {
        if patched.get(field) != resource.get(field) {
            return Err(unprocessable(format!(
                "it changes `{field}`, which a patch may not do (create a new resource instead)"
            )));
        }
    }
    Ok(patched)
}
