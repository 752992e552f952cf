//! The FHIR `patch` interaction with JSON Patch (RFC 6902): `PATCH [base]/[type]/[id]` with
//! `Content-Type: application/json-patch+json`.
//!
//! A patch is an update whose new content the server works out: it is checked like an update (scopes, the
//! patient compartment before and after, `If-Match`), applied to the current version with the `json-patch`
//! crate, and stored as the next version through the same path. A patch that cannot be applied (a failed `test`,
//! a path that is not there), changes the resource's `id` or `resourceType`, or leaves a resource the server
//! would refuse on update is answered 422, and nothing is stored.

use super::interaction::{
    check_id, check_if_match, current_if_changeable, gone, json_size, not_found, now, put_checked,
    resource_response, validate,
};
use super::limits;
use super::outcome::OutcomeError;
use super::{Ctx, FhirResponse};
use crate::store::{NumberTexts, Sent, Store, Written};
use axum::http::{HeaderMap, StatusCode, header};
use json_patch::{Patch, PatchOperation};
use rusqlite::Connection;
use serde_json::Value;

/// The media type of a JSON Patch document (RFC 6902 §6).
const JSON_PATCH: &str = "application/json-patch+json";

/// A JSON Patch document as sent, with the text of its numbers.
pub(crate) struct SentPatch {
    /// The operations.
    pub(crate) patch: Patch,
    /// The text of the numbers in the document (operation `i`'s value under `/i/value`).
    pub(crate) numbers: NumberTexts,
}

/// Parses a request body as a JSON Patch document (415 for another media type, 400 when it is not one).
pub(crate) fn parse_patch(headers: &HeaderMap, body: &[u8]) -> Result<SentPatch, OutcomeError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case(JSON_PATCH) {
        return Err(OutcomeError::UnsupportedMediaType(format!(
            "This server patches only with JSON Patch, sent with `Content-Type: {JSON_PATCH}` (got \
             `{content_type}`); FHIRPath Patch is not supported."
        )));
    }
    let patch = serde_json::from_slice(body).map_err(|e| {
        OutcomeError::BadRequest(format!(
            "The body is not a JSON Patch document (an array of RFC 6902 operations such as \
             `{{\"op\": \"replace\", \"path\": \"/status\", \"value\": \"final\"}}`): {e}."
        ))
    })?;
    Ok(SentPatch {
        patch,
        numbers: NumberTexts::scan(body),
    })
}

/// `PATCH [base]/[type]/[id]`: answered like an update of an existing resource (200, the new version, its ETag
/// and Last-Modified), with a Location naming the new version.
pub(crate) fn patch(
    ctx: &Ctx,
    store: &Store,
    resource_type: &str,
    id: &str,
    patch: &SentPatch,
    if_match: Option<&str>,
) -> Result<FhirResponse, OutcomeError> {
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
    patch: &SentPatch,
    if_match: Option<&str>,
    now: &str,
) -> Result<Written, OutcomeError> {
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
        .ok_or_else(|| OutcomeError::Internal(format!("the stored JSON of {reference} does not parse")))?;
    let patched = apply(resource, &patch.patch, &reference)?;
    let stored = NumberTexts::scan(current.json.as_deref().unwrap_or_default().as_bytes());
    let numbers = patched_numbers(stored, patch);
    validate(resource_type, &patched).map_err(|e| {
        OutcomeError::Unprocessable(format!(
            "The patch would leave {reference} invalid, so it was not applied: {}",
            e.message()
        ))
    })?;
    put_checked(
        ctx,
        conn,
        Sent {
            resource: patched,
            numbers,
        },
        now,
    )
}

/// Where the numbers of the stored version and of the patch's values stand once the patch is applied, so a
/// decimal keeps its text (`72.50`) through a patch that does not touch it, and one a patch writes keeps the
/// text it was sent with. Only a guide: a number is written with its recorded text only where the value there
/// is still that number, so an array element an `add` shifted is at worst written as `serde_json` writes it.
/// An `add` at the end of an array (`/-`) writes its value's numbers that way too.
fn patched_numbers(mut numbers: NumberTexts, patch: &SentPatch) -> NumberTexts {
    for (i, op) in patch.patch.0.iter().enumerate() {
        let value = || patch.numbers.within(&format!("/{i}/value"));
        match op {
            PatchOperation::Add(op) if op.path.as_str().ends_with("/-") => {}
            PatchOperation::Add(op) => numbers.extend_at(op.path.as_str(), value()),
            PatchOperation::Replace(op) => numbers.extend_at(op.path.as_str(), value()),
            PatchOperation::Remove(op) => numbers.forget(op.path.as_str()),
            PatchOperation::Move(op) => {
                let moved = numbers.within(op.from.as_str());
                numbers.forget(op.from.as_str());
                numbers.extend_at(op.path.as_str(), moved);
            }
            PatchOperation::Copy(op) => {
                let copied = numbers.within(op.from.as_str());
                numbers.extend_at(op.path.as_str(), copied);
            }
            PatchOperation::Test(_) => {}
        }
    }
    numbers
}

/// The length of an operation's target path (the key an `add` or `copy` writes counts towards the new size).
fn op_path_len(op: &PatchOperation) -> usize {
    let path = match op {
        PatchOperation::Add(op) => &op.path,
        PatchOperation::Replace(op) => &op.path,
        PatchOperation::Copy(op) => &op.path,
        PatchOperation::Move(op) => &op.path,
        PatchOperation::Remove(op) => &op.path,
        PatchOperation::Test(op) => &op.path,
    };
    path.as_str().len() + 4
}

/// `resource` with `patch` applied, refusing (422) a patch that fails or changes what the resource is.
pub(super) fn apply(resource: Value, patch: &Patch, reference: &str) -> Result<Value, OutcomeError> {
    check_operations(patch, reference)?;
    let patched = apply_within_size(resource.clone(), patch, reference)?;
    check_result(&resource, &patched, reference)?;
    Ok(patched)
}

/// A 422 saying why the patch was not applied to `reference`.
fn unprocessable(reference: &str, why: String) -> OutcomeError {
    OutcomeError::Unprocessable(format!("The patch was not applied to {reference}: {why}."))
}

/// Refuses, before applying anything, a patch that removes from `-` or has too many operations.
fn check_operations(patch: &Patch, reference: &str) -> Result<(), OutcomeError> {
    for (i, op) in patch.0.iter().enumerate() {
        // RFC 6902 §4.2: `-` names no element, so nothing can be removed (or moved away) from it. Refused here
        // because `json-patch` would instead take an array's last element (and panic on an empty array).
        let removes = match op {
            PatchOperation::Remove(op) => Some(&op.path),
            PatchOperation::Move(op) => Some(&op.from),
            _ => None,
        };
        if let Some(path) = removes.filter(|p| p.last().is_some_and(|t| t.encoded() == "-")) {
            return Err(unprocessable(
                reference,
                format!("operation {i} removes `{path}`, but `-` names no array element"),
            ));
        }
    }
    if patch.0.len() > limits::MAX_PATCH_OPERATIONS {
        return Err(OutcomeError::PayloadTooLarge(format!(
            "The patch has {} operations, more than the {} this server applies in one request; send several \
             smaller patches.",
            patch.0.len(),
            limits::MAX_PATCH_OPERATIONS
        )));
    }
    Ok(())
}

/// Applies the operations one at a time, so the resource's size is known after each: a `copy` can double it, and
/// a few dozen of them would otherwise grow a small resource past any memory before the patch ends.
fn apply_within_size(mut patched: Value, patch: &Patch, reference: &str) -> Result<Value, OutcomeError> {
    let mut size = json_size(&patched);
    for (i, op) in patch.0.iter().enumerate() {
        let growth = match op {
            PatchOperation::Add(op) => Some(json_size(&op.value)),
            PatchOperation::Replace(op) => Some(json_size(&op.value)),
            PatchOperation::Copy(op) => Some(
                patched
                    .pointer(op.from.as_str())
                    .map(json_size)
                    .unwrap_or_default(),
            ),
            // Moving, removing and testing never make the resource larger.
            PatchOperation::Move(_) | PatchOperation::Remove(_) | PatchOperation::Test(_) => None,
        };
        json_patch::patch_unsafe(&mut patched, std::slice::from_ref(op)).map_err(|e| {
            unprocessable(
                reference,
                match e.kind {
                    json_patch::PatchErrorKind::TestFailed => format!(
                        "its `test` operation {i} failed (the value at `{}` is not the one given)",
                        e.path
                    ),
                    _ => format!("operation {i} failed at `{}`: {}", e.path, e.kind),
                },
            )
        })?;
        if let Some(growth) = growth {
            // An upper bound (a path's key and punctuation aside, what was added is at most `growth` bytes);
            // measured exactly only when the bound passes the limit.
            size = size.saturating_add(growth + op_path_len(op));
            if size > limits::MAX_RESOURCE_BYTES {
                size = json_size(&patched);
            }
            if size > limits::MAX_RESOURCE_BYTES {
                return Err(OutcomeError::PayloadTooLarge(format!(
                    "The patch was not applied to {reference}: after operation {i} the resource would be {size} \
                     bytes, more than the {} bytes this server stores in one resource.",
                    limits::MAX_RESOURCE_BYTES
                )));
            }
        }
    }
    Ok(patched)
}

/// Refuses a result that is not a resource, or that changed the resource's type or id.
fn check_result(resource: &Value, patched: &Value, reference: &str) -> Result<(), OutcomeError> {
    if !patched.is_object() {
        return Err(unprocessable(
            reference,
            "it would replace the resource with something that is not a JSON object".into(),
        ));
    }
    for field in ["resourceType", "id"] {
        if patched.get(field) != resource.get(field) {
            return Err(unprocessable(
                reference,
                format!("it changes `{field}`, which a patch may not do (create a new resource instead)"),
            ));
        }
    }
    Ok(())
}
