//! `POST [base]` with a transaction or batch Bundle.
//!
//! A transaction runs in one database transaction: every entry succeeds or none does. A batch runs each entry on
//! its own and reports each outcome. In both, `urn:uuid:` (and other) `fullUrl`s of created resources are
//! replaced by the ids the server assigns, wherever the Bundle refers to them.

use super::interaction::{self, create_in, delete_in, now, update_in};
use super::outcome::FhirError;
use super::{Ctx, FhirResponse};
use crate::import::rewrite_references;
use crate::store::{ResourceRow, Store, index};
use axum::http::StatusCode;
use rusqlite::Connection;
use serde_json::{Value, json};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Method {
    // Declared in the order a transaction processes them (R4 §3.1.0.11.2).
    Delete,
    Post,
    Put,
    Get,
}

struct Planned {
    method: Method,
    /// The request URL, relative to the base.
    url: String,
    resource: Option<Value>,
    if_match: Option<String>,
    /// For creates: the id assigned up front.
    new_id: Option<String>,
}

/// One entry's result.
struct Outcome {
    status: StatusCode,
    resource: Option<Value>,
    row: Option<ResourceRow>,
}

/// Runs a transaction or batch Bundle.
pub(crate) fn process(ctx: &Ctx, store: &Store, bundle: Value) -> Result<FhirResponse, FhirError> {
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(FhirError::BadRequest(
            "POST to the FHIR base takes a Bundle of type `transaction` or `batch`; to create a resource, POST it to \
             `/fhir/{resourceType}`."
                .into(),
        ));
    }
    let kind = bundle
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if kind != "transaction" && kind != "batch" {
        return Err(FhirError::BadRequest(format!(
            "The Bundle's type is `{kind}`; only `transaction` and `batch` Bundles can be posted to the base."
        )));
    }
    let entries = bundle
        .get("entry")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut plans = Vec::with_capacity(entries.len());
    let mut full_urls = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let plan = plan(ctx, i, entry)?;
        if let Some(full_url) = entry.get("fullUrl").and_then(Value::as_str) {
            let target = match (&plan.new_id, plan.url.split('?').next()) {
                (Some(id), Some(t)) => Some(format!("{t}/{id}")),
                (None, Some(path)) if plan.method == Method::Put => Some(path.to_owned()),
                _ => None,
            };
            if let Some(target) = target {
                full_urls.insert(full_url.to_owned(), target);
            }
        }
        plans.push(plan);
    }
    for plan in &mut plans {
        if let Some(resource) = plan.resource.as_mut() {
            rewrite_references(resource, &full_urls);
        }
    }

    let outcomes: Vec<Result<Outcome, FhirError>> = if kind == "transaction" {
        let mut order: Vec<usize> = (0..plans.len()).collect();
        order.sort_by_key(|i| plans[*i].method);
        let done = store.write(|tx| {
            let mut results: Vec<Option<Outcome>> = (0..plans.len()).map(|_| None).collect();
            for i in order {
                let outcome = run(ctx, store, tx, &plans[i])
                    .map_err(|e| annotate(e, &format!("entry {i} ({})", plans[i].url)))?;
                results[i] = Some(outcome);
            }
            Ok::<_, FhirError>(results)
        })?;
        done.into_iter().flatten().map(Ok).collect()
    } else {
        plans
            .iter()
            .map(|plan| store.write(|tx| run(ctx, store, tx, plan)))
            .collect()
    };

    let response_entries: Vec<Value> = outcomes.into_iter().map(|o| response_entry(ctx, o)).collect();
    let body = json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "type": format!("{kind}-response"),
        "entry": response_entries
    });
    Ok(FhirResponse::json(StatusCode::OK, body.to_string()))
}

fn annotate(e: FhirError, at: &str) -> FhirError {
    let message = format!("The transaction was not applied: {at} failed: {}", e.message());
    match e {
        FhirError::BadRequest(_) => FhirError::BadRequest(message),
        FhirError::Forbidden(_) => FhirError::Forbidden(message),
        FhirError::InsufficientScope { scope, .. } => FhirError::InsufficientScope { message, scope },
        FhirError::NotFound(_) => FhirError::NotFound(message),
        FhirError::Gone(_) => FhirError::Gone(message),
        FhirError::PreconditionFailed(_) => FhirError::PreconditionFailed(message),
        FhirError::Unprocessable(_) => FhirError::Unprocessable(message),
        other => other,
    }
}

fn plan(ctx: &Ctx, i: usize, entry: &Value) -> Result<Planned, FhirError> {
    let bad = |what: &str| FhirError::BadRequest(format!("Bundle entry {i}: {what}."));
    let request = entry.get("request").ok_or_else(|| bad("it has no `request`"))?;
    let method = match request.get("method").and_then(Value::as_str).unwrap_or_default() {
        "GET" | "HEAD" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        other => {
            return Err(bad(&format!(
                "the method `{other}` is not supported (use GET, POST, PUT or DELETE)"
            )));
        }
    };
    let raw_url = request
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("its request has no `url`"))?;
    let url = raw_url
        .strip_prefix(&format!("{}/", ctx.base))
        .unwrap_or(raw_url)
        .trim_start_matches('/')
        .to_owned();
    let resource = entry.get("resource").cloned();
    if matches!(method, Method::Post | Method::Put) && resource.is_none() {
        return Err(bad("a POST or PUT entry needs a `resource`"));
    }
    let new_id = (method == Method::Post).then(|| uuid::Uuid::new_v4().to_string());
    let if_match = request.get("ifMatch").and_then(Value::as_str).map(str::to_owned);
    Ok(Planned {
        method,
        url,
        resource,
        if_match,
        new_id,
    })
}

fn run(ctx: &Ctx, store: &Store, conn: &Connection, plan: &Planned) -> Result<Outcome, FhirError> {
    let time = now();
    let path = plan.url.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (plan.method, segments.as_slice()) {
        (Method::Post, [resource_type]) => {
            let resource = plan.resource.clone().unwrap_or_default();
            interaction::validate(resource_type, &resource)?;
            let id = plan.new_id.clone().unwrap_or_default();
            let written = create_in(ctx, conn, resource, id, &time)?;
            Ok(Outcome {
                status: StatusCode::CREATED,
                resource: Some(written.resource),
                row: Some(written.row),
            })
        }
        (Method::Put, [resource_type, id]) => {
            let resource = plan.resource.clone().unwrap_or_default();
            let written = update_in(
                ctx,
                conn,
                resource_type,
                id,
                resource,
                plan.if_match.as_deref(),
                &time,
            )?;
            let status = if written.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(Outcome {
                status,
                resource: Some(written.resource),
                row: Some(written.row),
            })
        }
        (Method::Delete, [resource_type, id]) => {
            let row = delete_in(ctx, conn, resource_type, id, &time)?;
            Ok(Outcome {
                status: StatusCode::NO_CONTENT,
                resource: None,
                row: Some(row),
            })
        }
        (Method::Get, [resource_type, id]) if index::is_valid_id(id) => {
            let response = interaction::read(ctx, store, resource_type, id)?;
            Ok(from_response(response))
        }
        (Method::Get, [resource_type]) => {
            let query = plan.url.split_once('?').map(|(_, q)| q).unwrap_or_default();
            let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
            let response = interaction::search(ctx, store, resource_type, &pairs)?;
            Ok(from_response(response))
        }
        _ => Err(FhirError::BadRequest(format!(
            "`{:?} {}` is not an interaction a Bundle entry can carry here (POST Type, PUT/DELETE/GET Type/id, GET Type?query).",
            plan.method, plan.url
        ))),
    }
}

fn from_response(response: FhirResponse) -> Outcome {
    let resource = response
        .body
        .as_deref()
        .and_then(|b| serde_json::from_str(b).ok());
    Outcome {
        status: response.status,
        resource,
        row: None,
    }
}

fn status_text(status: StatusCode) -> String {
    format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default()
    )
}

fn response_entry(ctx: &Ctx, outcome: Result<Outcome, FhirError>) -> Value {
    match outcome {
        Ok(outcome) => {
            let mut response = json!({ "status": status_text(outcome.status) });
            if let Some(row) = &outcome.row {
                response["etag"] = json!(row.etag());
                response["lastModified"] = json!(row.last_updated);
                if !row.deleted {
                    response["location"] = json!(format!("{}/_history/{}", row.reference(), row.version));
                }
            }
            let mut entry = json!({ "response": response });
            if let Some(resource) = outcome.resource {
                if let Some(row) = &outcome.row {
                    entry["fullUrl"] = json!(format!("{}/{}", ctx.base, row.reference()));
                }
                entry["resource"] = resource;
            }
            entry
        }
        Err(e) => json!({ "response": { "status": status_text(e.status()), "outcome": e.outcome() } }),
    }
}
