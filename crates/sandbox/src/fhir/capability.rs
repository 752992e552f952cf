//! The CapabilityStatement at `GET /fhir/metadata`: what the server supports — every resource type it serves,
//! with the search parameters of each — and where its SMART authorization endpoints are (the `oauth-uris`
//! extension older clients such as Python `fhirclient` 4.x read).

use crate::SandboxState;
use crate::auth::AuthEndpoints;
use crate::error::SandboxError;
use crate::store::Store;
use crate::store::index::{self, ParamKind};
use serde_json::{Value, json};

const OAUTH_URIS: &str = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris";

/// The CapabilityStatement of the running server: the described types plus every other type it holds.
pub(crate) async fn for_state(state: &SandboxState) -> Value {
    let stored = match state.store().blocking(stored_types).await {
        Ok(types) => types,
        Err(e) => {
            tracing::warn!(error = %e, "the stored resource types could not be listed for /metadata");
            Vec::new()
        }
    };
    let base = state.fhir_base().as_str().trim_end_matches('/');
    capability_statement(base, &state.auth().endpoints(), &stored)
}

/// The resource types that have at least one current resource.
fn stored_types(store: &Store) -> Result<Vec<String>, SandboxError> {
    store.with_reader(|conn| {
        let mut statement = conn
            .prepare_cached("SELECT DISTINCT type FROM fhir_resources WHERE deleted = 0 ORDER BY type")
            .map_err(SandboxError::from)?;
        let types = statement
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(SandboxError::from)?
            .collect::<Result<Vec<String>, _>>()
            .map_err(SandboxError::from)?;
        Ok(types)
    })
}

/// The server's R4 CapabilityStatement: the types of [`index::RESOURCE_TYPES`] and every type in `stored`, each
/// with the search parameters the server answers for it.
pub(crate) fn capability_statement(base: &str, endpoints: &AuthEndpoints, stored: &[String]) -> Value {
    let mut resources: Vec<Value> = index::RESOURCE_TYPES
        .iter()
        .map(|(t, params)| resource(t, params))
        .collect();
    for t in stored {
        if index::is_valid_type(t) && !index::RESOURCE_TYPES.iter().any(|(known, _)| known == t) {
            resources.push(resource(t, index::params_for(t)));
        }
    }
    json!({
        "resourceType": "CapabilityStatement",
        "id": "smart-fhir-sandbox",
        "url": format!("{base}/metadata"),
        "name": "SmartFhirSandbox",
        "title": "smart-fhir sandbox EHR",
        "status": "active",
        "experimental": true,
        "date": chrono::Utc::now().format("%Y-%m-%d").to_string(),
        "publisher": "smart-fhir",
        "description": "A SMART App Launch 2.2 sandbox EHR with synthetic patients, for developing and testing SMART apps offline.",
        "kind": "instance",
        "software": { "name": "smart-fhir sandbox", "version": env!("CARGO_PKG_VERSION") },
        "implementation": { "description": "smart-fhir sandbox FHIR R4 server", "url": base },
        "fhirVersion": "4.0.1",
        // Bulk Data Access IG 2.0.0: servers that support $export instantiate its CapabilityStatement.
        "instantiates": ["http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"],
        "format": ["json", "application/fhir+json"],
        "rest": [{
            "mode": "server",
            "security": {
                "cors": true,
                "service": [{
                    "coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                        "display": "SMART-on-FHIR"
                    }],
                    "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)"
                }],
                "extension": [{
                    "url": OAUTH_URIS,
                    "extension": [
                        { "url": "authorize", "valueUri": endpoints.authorize.as_str() },
                        { "url": "token", "valueUri": endpoints.token.as_str() },
                        { "url": "introspect", "valueUri": endpoints.introspect.as_str() },
                        { "url": "revoke", "valueUri": endpoints.revoke.as_str() }
                    ]
                }]
            },
            "resource": resources,
            "interaction": [{ "code": "transaction" }, { "code": "batch" }],
            "searchParam": [
                { "name": "_id", "type": "token" },
                { "name": "_lastUpdated", "type": "date" },
                { "name": "_count", "type": "number" },
                { "name": "_sort", "type": "string" },
                { "name": "_include", "type": "string" }
            ],
            "operation": [{
                "name": "everything",
                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"
            }, {
                "name": "export",
                "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"
            }, {
                "name": "export",
                "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"
            }, {
                "name": "export",
                "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"
            }]
        }]
    })
}

fn resource(resource_type: &str, params: &[index::SearchParam]) -> Value {
    let mut search_params = vec![
        json!({ "name": "_id", "type": "token" }),
        json!({ "name": "_lastUpdated", "type": "date" }),
    ];
    search_params.extend(
        params
            .iter()
            .map(|p| json!({ "name": p.name, "type": p.kind.fhir_type() })),
    );
    let includes: Vec<String> = params
        .iter()
        .filter(|p| matches!(p.kind, ParamKind::Reference | ParamKind::Compartment))
        .map(|p| format!("{resource_type}:{}", p.name))
        .collect();
    let interactions: Vec<Value> = [
        "read",
        "vread",
        "history-instance",
        "search-type",
        "create",
        "update",
        "patch",
        "delete",
    ]
    .iter()
    .map(|code| json!({ "code": code }))
    .collect();
    let mut resource = json!({
        "type": resource_type,
        "interaction": interactions,
        "versioning": "versioned",
        "readHistory": true,
        "updateCreate": true,
        "conditionalCreate": false,
        "conditionalUpdate": false,
        "conditionalDelete": "not-supported",
        "searchParam": search_params
    });
    if !includes.is_empty() {
        resource["searchInclude"] = json!(includes);
    }
    if resource_type == "Patient" {
        resource["operation"] = json!([{
            "name": "everything",
            "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"
        }]);
    }
    resource
}
