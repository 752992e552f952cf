//! The CapabilityStatement at `GET /fhir/metadata`: what the server supports — every resource type it serves,
//! with the search parameters of each — and where its SMART authorization endpoints are (the `oauth-uris`
//! extension older clients such as Python `fhirclient` 4.x read).

use crate::SandboxState;
use crate::auth::AuthEndpoints;
use crate::error::SandboxError;
use crate::registry::{self, ParamKind};
use crate::store::Store;
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

/// The server's R4 CapabilityStatement: the types the registry describes ([`registry::described`]) and every
/// type in `stored`, each with the search parameters the server answers for it.
pub(crate) fn capability_statement(base: &str, endpoints: &AuthEndpoints, stored: &[String]) -> Value {
    let mut resources: Vec<Value> = registry::described()
        .map(|kind| resource(kind.name, kind.params()))
        .collect();
    for t in stored {
        if registry::is_valid_type(t) && !registry::kind(t).is_some_and(|k| k.is_described()) {
            resources.push(resource(t, registry::params_for(t)));
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

fn resource(resource_type: &str, params: &[registry::SearchParam]) -> Value {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::KINDS;
    use crate::store::search::{self, Restriction, SearchRequest};

    fn endpoints() -> AuthEndpoints {
        let url = url::Url::parse("http://127.0.0.1:9/auth/endpoint").unwrap();
        AuthEndpoints {
            authorize: url.clone(),
            token: url.clone(),
            jwks: url.clone(),
            introspect: url.clone(),
            revoke: url.clone(),
            launch_page: url.clone(),
            launcher: url.clone(),
            issuer: url.clone(),
            openid_configuration: url,
        }
    }

    /// A value of the parameter's kind that its search accepts.
    fn sample(param: &registry::SearchParam) -> String {
        match param.kind {
            ParamKind::String => "a".to_owned(),
            ParamKind::Token => "http://example.org|a".to_owned(),
            ParamKind::Date => "ge2024-03".to_owned(),
            ParamKind::Reference | ParamKind::Compartment => {
                format!("{}/1", param.target.unwrap_or("Patient"))
            }
        }
    }

    /// Adding a search parameter is one place: the registry entry is all it takes for the CapabilityStatement to
    /// list it and for a search (and a sort or an include, where its kind allows) to run on it.
    #[test]
    fn every_registry_parameter_is_described_and_searchable() {
        let stored: Vec<String> = KINDS.iter().map(|k| k.name.to_owned()).collect();
        let statement = capability_statement("http://127.0.0.1:9/fhir", &endpoints(), &stored);
        let resources = statement["rest"][0]["resource"].as_array().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("sandbox.db")).unwrap();
        for kind in KINDS {
            let entry = resources
                .iter()
                .find(|r| r["type"] == kind.name)
                .unwrap_or_else(|| panic!("{} is not in the CapabilityStatement", kind.name));
            let listed = entry["searchParam"].as_array().unwrap();
            for param in kind.params() {
                let what = format!("{}.{}", kind.name, param.name);
                assert!(
                    listed
                        .iter()
                        .any(|p| p["name"] == param.name && p["type"] == param.kind.fhir_type()),
                    "{what} is not listed: {listed:?}"
                );
                let mut queries = vec![vec![(param.name.to_owned(), sample(param))]];
                match param.kind {
                    ParamKind::String | ParamKind::Token | ParamKind::Date => {
                        queries.push(vec![("_sort".to_owned(), format!("-{}", param.name))]);
                    }
                    ParamKind::Reference | ParamKind::Compartment => {
                        let include = format!("{}:{}", kind.name, param.name);
                        assert!(
                            entry["searchInclude"]
                                .as_array()
                                .is_some_and(|i| i.iter().any(|i| *i == include.as_str())),
                            "{what} is not includable"
                        );
                        queries.push(vec![("_include".to_owned(), include)]);
                    }
                }
                for pairs in queries {
                    let request = SearchRequest::parse(kind.name, &pairs)
                        .unwrap_or_else(|e| panic!("{what}: {pairs:?} is refused: {e}"));
                    let result = store
                        .with_reader(|c| search::execute(c, &request, &Restriction::none()))
                        .unwrap_or_else(|e| panic!("{what}: {pairs:?} fails: {e}"));
                    assert_eq!(result.total, 0, "{what}");
                }
            }
        }
    }

    #[test]
    fn described_types_come_first_and_stored_ones_are_added_once() {
        let stored = vec!["Coverage".to_owned(), "Patient".to_owned()];
        let statement = capability_statement("http://127.0.0.1:9/fhir", &endpoints(), &stored);
        let types: Vec<&str> = statement["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["type"].as_str())
            .collect();
        let described: Vec<&str> = registry::described().map(|k| k.name).collect();
        assert_eq!(types[..described.len()], described[..]);
        assert_eq!(types[described.len()..], ["Coverage"]);
    }
}
