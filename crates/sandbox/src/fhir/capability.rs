//! The CapabilityStatement at `GET /fhir/metadata`: what the server supports, and where its SMART authorization
//! endpoints are (the `oauth-uris` extension older clients such as Python `fhirclient` 4.x read).

use crate::auth::AuthEndpoints;
use crate::store::index::{self, ParamKind};
use serde_json::{Value, json};

const OAUTH_URIS: &str = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris";

/// The server's R4 CapabilityStatement.
pub(crate) fn capability_statement(base: &str, endpoints: &AuthEndpoints) -> Value {
    let resources: Vec<Value> = index::RESOURCE_TYPES
        .iter()
        .map(|(t, params)| resource(t, params))
        .collect();
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
        "format": ["json", "application/fhir+json"],
        "rest": [{
            "mode": "server",
            "security": {
                "cors": false,
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
