//! Entry points for the `cargo fuzz` targets in the repository's `fuzz/` directory. Not an API: hidden from the
//! docs and free to change. Each takes untrusted bytes the way the server would and answers the HTTP status the
//! server would send, so a target can insist that nothing panics and nothing is a 500.

use super::access::Access;
use super::{Ctx, patch, transaction};
use crate::auth::AccessGrant;
use crate::store::Store;
use serde_json::{Value, json};
use smart_launch::scope::ScopeSet;

/// A clinician's context: `user/*.cruds`, no patient compartment.
fn clinician() -> Ctx {
    Ctx {
        base: "http://127.0.0.1/fhir".to_owned(),
        access: Access::new(AccessGrant {
            client_id: "fuzz".to_owned(),
            scopes: ScopeSet::parse_lenient("user/*.cruds"),
            patient: None,
            encounter: None,
            fhir_user: Some("Practitioner/fuzz".to_owned()),
            simulated_failure: None,
        }),
    }
}

/// The resource the patch target patches: an Observation with nested objects and arrays to copy and move.
pub fn patch_target() -> Value {
    json!({
        "resourceType": "Observation",
        "id": "fuzz",
        "status": "final",
        "code": { "coding": [{ "system": "http://loinc.org", "code": "8867-4", "display": "Heart rate" }] },
        "subject": { "reference": "Patient/p1" },
        "valueQuantity": { "value": 71, "unit": "/min" },
        "note": [{ "text": "one" }, { "text": "two" }]
    })
}

/// Parses `body` as a JSON Patch document (as `PATCH` does) and applies it to `resource` with the server's own
/// checks (the operation count, the growing size, `-` targets, `id` and `resourceType` kept, the result valid).
/// Answers the status the server would send.
pub fn apply_patch(resource: Value, body: &[u8]) -> u16 {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json-patch+json"),
    );
    let status = patch::parse_patch(&headers, body).and_then(|p| {
        let patched = patch::apply(resource, &p.patch, "Observation/fuzz")?;
        super::interaction::validate("Observation", &patched).map(|_| ())
    });
    match status {
        Ok(()) => 200,
        Err(e) => e.status().as_u16(),
    }
}

/// Runs `body` as a batch or transaction Bundle posted to the base by a clinician, against `store`. Answers the
/// status the server would send (the Bundle's own, or its error's).
pub fn bundle(store: &Store, body: &[u8]) -> u16 {
    let Ok(sent) = crate::store::Sent::parse(body) else {
        return 400;
    };
    match transaction::process(&clinician(), store, sent) {
        Ok(response) => response.status.as_u16(),
        Err(e) => e.status().as_u16(),
    }
}
