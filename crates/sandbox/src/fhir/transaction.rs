//! `POST [base]` with a transaction or batch Bundle.
//!
//! A transaction runs in one database transaction: every entry succeeds or none does. A batch runs each entry on
//! its own and reports each outcome. In both, `urn:uuid:` (and other) `fullUrl`s of created resources are
//! replaced by the ids the server assigns, wherever the Bundle refers to them.

use super::interaction::{self, create_in, delete_in, now, update_in};
use super::limits;
use super::outcome::OutcomeError;
use super::{Ctx, FhirResponse};
use crate::import::rewrite_references;
use crate::registry;
use crate::store::{NumberTexts, ResourceRow, Sent, Store};
use axum::http::StatusCode;
use rusqlite::Connection;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use smart_launch::scope::Permissions;
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
    /// The entry's `fullUrl`, which other entries may refer to.
    full_url: Option<String>,
    resource: Option<Sent>,
    if_match: Option<String>,
    /// For creates: the id assigned up front.
    new_id: Option<String>,
}

/// One entry's result.
struct Outcome {
    status: StatusCode,
    /// The resource's JSON text (a stored version, or a read's or search's answer), spliced in unparsed.
    body: Option<String>,
    row: Option<ResourceRow>,
}

/// Runs a transaction or batch Bundle.
///
/// Bounded before any entry runs: at most [`limits::MAX_BUNDLE_ENTRIES`] entries, each one's interaction
/// authorized up front (the token's scopes for its type and verb, and the compartment the resource it writes would
/// land in), and the answer built as text no longer than [`limits::MAX_RESPONSE_BYTES`].
pub(crate) fn process(ctx: &Ctx, store: &Store, sent: Sent) -> Result<FhirResponse, OutcomeError> {
    let Sent {
        resource: mut bundle,
        numbers,
    } = sent;
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(OutcomeError::BadRequest(
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
        return Err(OutcomeError::BadRequest(format!(
            "The Bundle's type is `{kind}`; only `transaction` and `batch` Bundles can be posted to the base."
        )));
    }
    let entries = match bundle.get_mut("entry").map(Value::take) {
        Some(Value::Array(entries)) => entries,
        _ => Vec::new(),
    };
    if entries.len() > limits::MAX_BUNDLE_ENTRIES {
        return Err(OutcomeError::PayloadTooLarge(format!(
            "The Bundle has {} entries, more than the {} this server runs in one {kind}; split it into several \
             Bundles.",
            entries.len(),
            limits::MAX_BUNDLE_ENTRIES
        )));
    }
    let plans = plan_all(ctx, entries, &numbers)?;
    // Every entry is authorized before any runs: a transaction with one entry the token may not perform does
    // no work at all; in a batch, that entry alone fails.
    let allowed: Vec<Result<(), OutcomeError>> = plans.iter().map(|plan| authorize(ctx, plan)).collect();

    let answer = if kind == "transaction" {
        run_transaction(ctx, store, &kind, &plans, allowed)?
    } else {
        run_batch(ctx, store, &kind, &plans, allowed)
    };
    Ok(FhirResponse::json(StatusCode::OK, answer.finish()))
}

/// Every entry planned (its id decided up front for a create), then the `urn:uuid:` references between entries
/// rewritten to the ids they were given.
fn plan_all(ctx: &Ctx, entries: Vec<Value>, numbers: &NumberTexts) -> Result<Vec<Planned>, OutcomeError> {
    let mut plans = Vec::with_capacity(entries.len());
    let mut full_urls = HashMap::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let plan = plan(ctx, i, entry, numbers)?;
        if let Some(full_url) = &plan.full_url {
            let target = match (&plan.new_id, plan.url.split('?').next()) {
                (Some(id), Some(t)) => Some(format!("{t}/{id}")),
                (None, Some(path)) if plan.method == Method::Put => Some(path.to_owned()),
                _ => None,
            };
            if let Some(target) = target {
                full_urls.insert(full_url.clone(), target);
            }
        }
        plans.push(plan);
    }
    for plan in &mut plans {
        if let Some(sent) = plan.resource.as_mut() {
            rewrite_references(&mut sent.resource, &full_urls);
        }
    }
    Ok(plans)
}

/// A transaction: all or nothing. The first entry the token may not perform refuses the whole; the rest run in
/// one database transaction in R4's order (deletes, creates, updates, reads), and the answer is built inside it,
/// so an answer too large to send rolls the work back.
fn run_transaction(
    ctx: &Ctx,
    store: &Store,
    kind: &str,
    plans: &[Planned],
    allowed: Vec<Result<(), OutcomeError>>,
) -> Result<ResponseText, OutcomeError> {
    if let Some((i, e)) = allowed
        .into_iter()
        .enumerate()
        .find_map(|(i, a)| a.err().map(|e| (i, e)))
    {
        return Err(annotate(e, &format!("entry {i} ({})", plans[i].url)));
    }
    let mut order: Vec<usize> = (0..plans.len()).collect();
    order.sort_by_key(|i| plans[*i].method);
    store.write(|tx| {
        let mut results: Vec<Option<Outcome>> = (0..plans.len()).map(|_| None).collect();
        for i in order {
            let outcome = run(ctx, store, tx, &plans[i])
                .map_err(|e| annotate(e, &format!("entry {i} ({})", plans[i].url)))?;
            results[i] = Some(outcome);
        }
        // Built inside the transaction, so an answer too large to send rolls the work back.
        let mut answer = ResponseText::new(kind);
        for outcome in results.into_iter().flatten() {
            if !answer.push(&entry_text(ctx, Ok(outcome))) {
                return Err(OutcomeError::PayloadTooLarge(format!(
                    "The transaction was not applied: its answer would be larger than the {} bytes this server \
                     sends in one response. Split it into several transactions, or use `Prefer: \
                     return=minimal`-sized entries.",
                    limits::MAX_RESPONSE_BYTES
                )));
            }
        }
        Ok::<_, OutcomeError>(answer)
    })
}

/// A batch: each entry on its own, in its own database transaction; an entry refused or failing is answered in
/// its place, and entries past the answer's size limit are answered as not run.
fn run_batch(
    ctx: &Ctx,
    store: &Store,
    kind: &str,
    plans: &[Planned],
    allowed: Vec<Result<(), OutcomeError>>,
) -> ResponseText {
    let mut answer = ResponseText::new(kind);
    for (plan, allowed) in plans.iter().zip(allowed) {
        if answer.full() {
            answer.push_unbounded(&entry_text(ctx, Err(OutcomeError::PayloadTooLarge(format!(
                "This entry was not run: the batch's answer reached the {} bytes this server sends in one \
                 response. Send it again in another batch.",
                limits::MAX_RESPONSE_BYTES
            )))));
            continue;
        }
        let outcome = allowed.and_then(|()| store.write(|tx| run(ctx, store, tx, plan)));
        let text = entry_text(ctx, outcome);
        if !answer.push(&text) {
            answer.push_unbounded(&entry_text(ctx, Err(OutcomeError::PayloadTooLarge(format!(
                "This entry ran, but its answer would take the batch's answer past the {} bytes this server \
                 sends in one response, so it was left out; read it again on its own.",
                limits::MAX_RESPONSE_BYTES
            )))));
            answer.close_budget();
        }
    }
    answer
}

/// A `transaction-response` / `batch-response` Bundle written as text entry by entry, so no answer is ever held
/// as a tree of values, and its size is known as it grows.
struct ResponseText {
    text: String,
    entries: usize,
    full: bool,
}

impl ResponseText {
    fn new(kind: &str) -> Self {
        let head = serde_json::json!({
            "resourceType": "Bundle",
            "id": uuid::Uuid::new_v4().to_string(),
            "type": format!("{kind}-response"),
        })
        .to_string();
        // `{…}` without its closing brace, then the entries.
        let mut text = head[..head.len() - 1].to_owned();
        text.push_str(r#","entry":["#);
        Self {
            text,
            entries: 0,
            full: false,
        }
    }

    /// Appends an entry unless it would take the answer past [`limits::MAX_RESPONSE_BYTES`]; false when it did not.
    fn push(&mut self, entry: &str) -> bool {
        if self.full || self.text.len() + entry.len() + 2 > limits::MAX_RESPONSE_BYTES {
            return false;
        }
        self.push_unbounded(entry);
        true
    }

    /// Appends a (small) entry whatever the size: the note that an entry was left out.
    fn push_unbounded(&mut self, entry: &str) {
        if self.entries > 0 {
            self.text.push(',');
        }
        self.text.push_str(entry);
        self.entries += 1;
    }

    /// True once an entry was refused for size: later entries are not run.
    fn full(&self) -> bool {
        self.full
    }

    fn close_budget(&mut self) {
        self.full = true;
    }

    fn finish(mut self) -> String {
        self.text.push_str("]}");
        self.text
    }
}

/// Decides, before anything runs, whether the token may perform `plan`: its scopes for the type and verb, and
/// for a write, that the resource would land in the token's compartment. The store checks again as it writes.
fn authorize(ctx: &Ctx, plan: &Planned) -> Result<(), OutcomeError> {
    let path = plan.url.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let Some(resource_type) = segments.first().copied().filter(|t| registry::is_known_type(t)) else {
        // Not an interaction at all: `run` answers it with a message.
        return Ok(());
    };
    let needed = match (plan.method, segments.len()) {
        (Method::Post, _) => Permissions::CREATE,
        (Method::Put, _) => Permissions::UPDATE,
        (Method::Delete, _) => Permissions::DELETE,
        (Method::Get, 1) => Permissions::SEARCH,
        (Method::Get, _) => Permissions::READ,
    };
    let decision = ctx.access.decide(resource_type, needed)?;
    if let (Some(patient), Some(sent)) = (&decision.patient, &plan.resource)
        && !registry::is_shared(resource_type)
        && registry::compartment_patient(resource_type, &sent.resource).as_deref() != Some(patient.as_str())
    {
        return Err(OutcomeError::Forbidden(format!(
            "The {resource_type} this entry writes is not in the compartment of the patient this token is for; \
             its patient/ scopes do not reach it."
        )));
    }
    Ok(())
}

fn annotate(e: OutcomeError, at: &str) -> OutcomeError {
    let message = format!("The transaction was not applied: {at} failed: {}", e.message());
    match e {
        OutcomeError::BadRequest(_) => OutcomeError::BadRequest(message),
        OutcomeError::Forbidden(_) => OutcomeError::Forbidden(message),
        OutcomeError::InsufficientScope { scope, .. } => OutcomeError::InsufficientScope { message, scope },
        OutcomeError::NotFound(_) => OutcomeError::NotFound(message),
        OutcomeError::Gone(_) => OutcomeError::Gone(message),
        OutcomeError::PreconditionFailed(_) => OutcomeError::PreconditionFailed(message),
        OutcomeError::PayloadTooLarge(_) => OutcomeError::PayloadTooLarge(message),
        OutcomeError::Unprocessable(_) => OutcomeError::Unprocessable(message),
        other => other,
    }
}

/// Entry `i` of the Bundle as an interaction to run; `numbers` are the Bundle's.
fn plan(ctx: &Ctx, i: usize, mut entry: Value, numbers: &NumberTexts) -> Result<Planned, OutcomeError> {
    let bad = |what: &str| OutcomeError::BadRequest(format!("Bundle entry {i}: {what}."));
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
    let if_match = request.get("ifMatch").and_then(Value::as_str).map(str::to_owned);
    let full_url = entry.get("fullUrl").and_then(Value::as_str).map(str::to_owned);
    let resource = entry.get_mut("resource").map(Value::take).map(|resource| Sent {
        resource,
        numbers: numbers.within(&format!("/entry/{i}/resource")),
    });
    if matches!(method, Method::Post | Method::Put) && resource.is_none() {
        return Err(bad("a POST or PUT entry needs a `resource`"));
    }
    let new_id = (method == Method::Post).then(|| uuid::Uuid::new_v4().to_string());
    Ok(Planned {
        method,
        url,
        full_url,
        resource,
        if_match,
        new_id,
    })
}

fn run(ctx: &Ctx, store: &Store, conn: &Connection, plan: &Planned) -> Result<Outcome, OutcomeError> {
    let time = now();
    let path = plan.url.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (plan.method, segments.as_slice()) {
        (Method::Post, [resource_type]) => {
            let resource = plan.resource.clone().unwrap_or_default();
            interaction::validate(resource_type, &resource.resource)?;
            let id = plan.new_id.clone().unwrap_or_default();
            let written = create_in(ctx, conn, resource, id, &time)?;
            Ok(Outcome {
                status: StatusCode::CREATED,
                body: written.row.json.clone(),
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
                body: written.row.json.clone(),
                row: Some(written.row),
            })
        }
        (Method::Delete, [resource_type, id]) => {
            let row = delete_in(ctx, conn, resource_type, id, &time)?;
            Ok(Outcome {
                status: StatusCode::NO_CONTENT,
                body: None,
                row: Some(row),
            })
        }
        (Method::Get, [resource_type, id]) if registry::is_valid_id(id) => {
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
        _ => Err(OutcomeError::BadRequest(format!(
            "`{:?} {}` is not an interaction a Bundle entry can carry here (POST Type, PUT/DELETE/GET Type/id, GET Type?query).",
            plan.method, plan.url
        ))),
    }
}

fn from_response(response: FhirResponse) -> Outcome {
    Outcome {
        status: response.status,
        body: response.body,
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

/// One entry of the response Bundle, as JSON text; the resource is spliced in as the stored text, unparsed.
fn entry_text(ctx: &Ctx, outcome: Result<Outcome, OutcomeError>) -> String {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Entry<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        full_url: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        resource: Option<&'a RawValue>,
        response: Value,
    }
    let entry = match outcome {
        Ok(outcome) => {
            let mut response = json!({ "status": status_text(outcome.status) });
            if let Some(row) = &outcome.row {
                response["etag"] = json!(row.etag());
                response["lastModified"] = json!(row.last_updated);
                if !row.deleted {
                    response["location"] = json!(format!("{}/_history/{}", row.reference(), row.version));
                }
            }
            let raw = outcome.body.and_then(|body| RawValue::from_string(body).ok());
            let full_url = match (&outcome.row, &raw) {
                (Some(row), Some(_)) => Some(format!("{}/{}", ctx.base, row.reference())),
                _ => None,
            };
            return serde_json::to_string(&Entry {
                full_url,
                resource: raw.as_deref(),
                response,
            })
            .unwrap_or_default();
        }
        Err(e) => Entry {
            full_url: None,
            resource: None,
            response: json!({ "status": status_text(e.status()), "outcome": e.outcome() }),
        },
    };
    serde_json::to_string(&entry).unwrap_or_default()
}
