//! The RESTful interactions against the real sandbox FHIR server.

use std::sync::Arc;

use fhir_client::r4::{
    Boolean, Bundle, MedicationRequest, Observation, ObservationValue, Patient, Resource, TextValue,
};
use fhir_client::search::{SearchParams, Token};
use fhir_client::{
    EverythingParams, FhirClient, FhirError, HttpPool, ResolveContext, coding, name, quantity,
};
use futures::TryStreamExt;
use serde_json::{Value, json};
use smart_launch::TokenSource;

use crate::common::{ALL, TestSandbox, observation, patient, typed};

#[tokio::test]
async fn read_returns_the_typed_patient_with_its_primitive_extension() {
    let sandbox = TestSandbox::start().await;
    sandbox.put(patient("p1", "Lovelace")).await;
    let tokens = sandbox.tokens(ALL).await;
    let client = sandbox.client_with(tokens.clone());

    let p: Patient = client.read("p1").await.unwrap();
    assert_eq!(name::patient_display_name(&p), "Ada Lovelace");
    assert_eq!(p.birth_date.text(), Some("1970-01-01"));
    assert_eq!(p.birth_date.as_ref().unwrap().extension().len(), 1);
    assert_eq!(p.meta.as_ref().unwrap().version_id.text().unwrap(), "1");

    let seen = sandbox.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path_and_query, "/fhir/Patient/p1");
    assert_eq!(seen[0].accept.as_deref(), Some("application/fhir+json"));
    let token = tokens.access_token().await.unwrap();
    assert_eq!(
        seen[0].authorization,
        Some(format!("Bearer {}", token.secret())),
        "the backend token is sent"
    );
}

#[tokio::test]
async fn missing_and_deleted_resources_are_typed_errors() {
    let sandbox = TestSandbox::start().await;
    sandbox.put(patient("p1", "Lovelace")).await;
    let client = sandbox.client().await;

    let err = client.read::<Patient>("nope").await.unwrap_err();
    assert!(matches!(err, FhirError::NotFound { .. }), "{err:?}");
    assert_eq!(err.issues()[0].code, "not-found");

    client.delete::<Patient>("p1").await.unwrap();
    assert_eq!(sandbox.seen().last().unwrap().method, "DELETE");
    let err = client.read::<Patient>("p1").await.unwrap_err();
    assert!(matches!(err, FhirError::Gone { .. }), "{err:?}");
    assert_eq!(err.issues()[0].code, "deleted");
}

#[tokio::test]
async fn ids_cannot_escape_their_path_segment() {
    let sandbox = TestSandbox::start().await;
    let err = sandbox
        .client()
        .await
        .read::<Patient>("../metadata")
        .await
        .unwrap_err();
    assert!(matches!(err, FhirError::InvalidInput(_)), "{err:?}");
    assert!(sandbox.seen().is_empty());
}

#[tokio::test]
async fn search_by_patient_and_category_gives_typed_observations_with_precise_values() {
    let sandbox = TestSandbox::start().await;
    sandbox.put(observation("o1", "p1", "vital-signs", "72.50")).await;
    sandbox.put(observation("o2", "p1", "laboratory", "1.0")).await;
    sandbox.put(observation("o3", "p2", "vital-signs", "80")).await;
    let client = sandbox.client().await;

    let params = SearchParams::new().patient("p1").token(
        "category",
        Token::new(coding::system::OBSERVATION_CATEGORY, "vital-signs"),
    );
    let page = client.search::<Observation>(&params).await.unwrap();
    assert_eq!(page.total, Some(1));
    assert_eq!(page.matches.len(), 1);
    let obs = &page.matches[0];
    assert_eq!(obs.id.as_deref().unwrap(), "o1");
    assert_eq!(
        coding::code_in_system(obs.code.as_deref().unwrap(), coding::system::LOINC),
        Some("29463-7")
    );
    let Some(ObservationValue::Quantity(q)) = &obs.value else {
        panic!("expected valueQuantity, got {:?}", obs.value)
    };
    assert_eq!(
        quantity::display_quantity(q.as_ref()).as_deref(),
        Some("72.50 kg")
    );

    let seen = sandbox.seen();
    assert!(
        seen[0]
            .path_and_query
            .starts_with("/fhir/Observation?patient=p1&category="),
        "{}",
        seen[0].path_and_query
    );

    // The same search by POST keeps the parameters out of the URL.
    let page = client.search_post::<Observation>(&params).await.unwrap();
    assert_eq!(page.matches.len(), 1);
    assert_eq!(page.matches[0].id.as_deref().unwrap(), "o1");
    let last = sandbox.seen().pop().unwrap();
    assert_eq!(last.path_and_query, "/fhir/Observation/_search");
    assert_eq!(
        last.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert!(last.body.contains("patient=p1"));
}

#[tokio::test]
async fn paging_follows_next_links_until_the_last_page() {
    let sandbox = TestSandbox::start().await;
    for i in 0..7 {
        let id = format!("o{i}");
        sandbox
            .put(observation(&id, "p1", "vital-signs", &format!("{i}")))
            .await;
    }
    sandbox.put(observation("other", "p2", "vital-signs", "1")).await;
    let client = sandbox.client().await;

    let params = SearchParams::new().patient("p1").count(3);
    let pages: Vec<_> = client
        .search_pages::<Observation>(params.clone())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        pages.iter().map(|p| p.matches.len()).collect::<Vec<_>>(),
        vec![3, 3, 1]
    );
    assert!(pages[2].next.is_none());
    assert_eq!(sandbox.seen().len(), 3, "one request per page");

    let all: Vec<Observation> = client.search_all(params).try_collect().await.unwrap();
    let mut ids: Vec<String> = all.iter().map(|o| o.id.clone().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, (0..7).map(|i| format!("o{i}")).collect::<Vec<_>>());
    assert_eq!(sandbox.seen().len(), 6);
}

#[tokio::test]
async fn patient_everything_streams_every_page() {
    let sandbox = TestSandbox::start().await;
    sandbox.put(patient("p1", "Lovelace")).await;
    // More than the sandbox's page of 50, so the record comes in two pages.
    for i in 0..60 {
        sandbox
            .put(observation(&format!("o{i}"), "p1", "vital-signs", "1"))
            .await;
    }
    sandbox.put(patient("p2", "Turing")).await;
    sandbox.put(observation("other", "p2", "vital-signs", "1")).await;
    let client = sandbox.client().await;

    let first = client.patient_everything("p1").await.unwrap();
    assert_eq!(first.entry.len(), 50);
    let all: Vec<Resource> = client.patient_everything_all("p1").try_collect().await.unwrap();
    assert_eq!(all.len(), 61);
    assert_eq!(
        sandbox.seen().len(),
        3,
        "one request for the first page, two for the stream"
    );
    assert_eq!(
        all.iter().filter(|r| matches!(r, Resource::Patient(_))).count(),
        1
    );
    assert!(
        all.iter()
            .all(|r| !matches!(r, Resource::Observation(o) if o.id.as_deref().unwrap() == "other")),
        "another patient's data is not part of p1's record"
    );
}

/// p1 with seven Observations and a Condition, and p2 with data of its own.
async fn two_patient_records(sandbox: &TestSandbox) {
    sandbox.put(patient("p1", "Lovelace")).await;
    for i in 0..7 {
        sandbox
            .put(observation(&format!("o{i}"), "p1", "vital-signs", "1"))
            .await;
    }
    sandbox
        .put(json!({"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"}}))
        .await;
    sandbox.put(patient("p2", "Turing")).await;
    sandbox.put(observation("other", "p2", "vital-signs", "1")).await;
}

/// `Type/id` of each resource, sorted.
fn keys(resources: &[Resource]) -> Vec<String> {
    let mut keys: Vec<String> = resources
        .iter()
        .map(|r| format!("{}/{}", r.resource_type(), r.id().unwrap()))
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn everything_with_count_pages_through_the_same_record() {
    let sandbox = TestSandbox::start().await;
    two_patient_records(&sandbox).await;
    let client = sandbox.client().await;
    let params = EverythingParams {
        count: Some(3),
        ..EverythingParams::default()
    };

    let first = client.patient_everything_with("p1", &params).await.unwrap();
    assert_eq!(first.entry.len(), 3);
    let next = first
        .link_url("next")
        .expect("a next link after a page of 3 of 9");
    assert!(next.contains("_count=3"), "{next}");

    let paged: Vec<Resource> = client
        .patient_everything_all_with("p1", &params)
        .try_collect()
        .await
        .unwrap();
    let whole: Vec<Resource> = client.patient_everything_all("p1").try_collect().await.unwrap();
    assert_eq!(paged.len(), 9);
    assert_eq!(keys(&paged), keys(&whole));
    assert!(keys(&paged).contains(&String::from("Condition/c1")));
    let seen: Vec<String> = sandbox.seen().into_iter().map(|s| s.path_and_query).collect();
    assert_eq!(
        seen.len(),
        1 + 3 + 1,
        "the first page, three pages of 3, the unparameterised call: {seen:?}"
    );
    assert_eq!(seen[0], "/fhir/Patient/p1/$everything?_count=3");
    assert_eq!(seen[4], "/fhir/Patient/p1/$everything");
}

#[tokio::test]
async fn everything_with_types_keeps_only_those_types() {
    let sandbox = TestSandbox::start().await;
    two_patient_records(&sandbox).await;
    let client = sandbox.client().await;
    let params = EverythingParams {
        types: vec![String::from("Patient"), String::from("Condition")],
        count: Some(1),
        ..EverythingParams::default()
    };
    let found: Vec<Resource> = client
        .patient_everything_all_with("p1", &params)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(keys(&found), ["Condition/c1", "Patient/p1"]);
    // The `next` link the sandbox wrote kept `_type` on the second page.
    assert_eq!(sandbox.seen().len(), 2);
}

#[tokio::test]
async fn everything_parameters_are_sent_url_encoded() {
    let sandbox = TestSandbox::start().await;
    two_patient_records(&sandbox).await;
    let client = sandbox.client().await;
    let params = EverythingParams {
        start: Some("2024-01".into()),
        end: Some("2024-12-31".into()),
        since: Some("2024-03-15T10:00:00.5+01:00".into()),
        types: vec![String::from("Observation"), String::from("Condition")],
        count: Some(50),
    };
    let bundle = client.patient_everything_with("p1", &params).await.unwrap();
    // The sandbox accepts start, end and _since but does not filter by them; _type it applies.
    assert_eq!(bundle.entry.len(), 8);

    let seen = sandbox.seen();
    assert_eq!(seen.len(), 1);
    let (path, query) = seen[0].path_and_query.split_once('?').unwrap();
    assert_eq!(path, "/fhir/Patient/p1/$everything");
    assert_eq!(
        query,
        "start=2024-01&end=2024-12-31&_since=2024-03-15T10%3A00%3A00.5%2B01%3A00\
         &_type=Observation%2CCondition&_count=50"
    );
    let decoded: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(
        decoded[2],
        ("_since".into(), "2024-03-15T10:00:00.5+01:00".into())
    );
    assert_eq!(decoded[3], ("_type".into(), "Observation,Condition".into()));
}

#[tokio::test]
async fn invalid_everything_parameters_are_refused_before_sending() {
    let sandbox = TestSandbox::start().await;
    let client = sandbox.client().await;
    let params = EverythingParams {
        since: Some("yesterday".into()),
        ..EverythingParams::default()
    };
    let err = client.patient_everything_with("p1", &params).await.unwrap_err();
    assert!(matches!(err, FhirError::InvalidInput(_)), "{err:?}");
    assert!(err.to_string().contains("_since"), "{err}");
    let err = client
        .patient_everything_all_with("p1", &params)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(matches!(err, FhirError::InvalidInput(_)), "{err:?}");
    assert!(sandbox.seen().is_empty());
}

#[tokio::test]
async fn create_then_update_with_if_match_then_vread_and_history() {
    let sandbox = TestSandbox::start().await;
    let client = sandbox.client().await;

    let new: Patient = typed(patient("ignored", "Hopper"));
    let created = client.create(&new).await.unwrap();
    let id = created.id.clone().unwrap();
    assert_ne!(id, "ignored", "the server picks the id");
    assert_eq!(created.meta.as_ref().unwrap().version_id.text().unwrap(), "1");
    assert_eq!(sandbox.seen()[0].method, "POST");
    assert!(sandbox.seen()[0].body.contains("\"resourceType\":\"Patient\""));

    let mut changed = created.clone();
    changed.active = Some(Boolean::new(true));
    let updated = client.update_if_unchanged(&changed).await.unwrap();
    assert_eq!(updated.meta.as_ref().unwrap().version_id.text().unwrap(), "2");
    let put = sandbox.seen().pop().unwrap();
    assert_eq!(
        (put.method.as_str(), put.if_match.as_deref()),
        ("PUT", Some("W/\"1\""))
    );

    // The stale copy (version 1) is refused now.
    let err = client.update_if_unchanged(&changed).await.unwrap_err();
    assert!(
        matches!(err, FhirError::VersionConflict { status: 412, .. }),
        "{err:?}"
    );

    let v1: Patient = client.vread(&id, "1").await.unwrap();
    assert!(v1.active.is_none());
    let v2: Patient = client.vread(&id, "2").await.unwrap();
    assert_eq!(v2.active, Some(Boolean::new(true)));

    let history = client.history::<Patient>(Some(&id)).await.unwrap();
    assert_eq!(history.entry.len(), 2);
    let versions: Vec<Value> = history
        .entry
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(&fhir_client::r4::to_string(e.resource.as_ref().unwrap())).unwrap()
        })
        .map(|v| v["meta"]["versionId"].clone())
        .collect();
    assert_eq!(versions, [json!("2"), json!("1")], "newest first");
}

#[tokio::test]
async fn patch_sends_a_json_patch_with_if_match_and_the_server_applies_it() {
    let sandbox = TestSandbox::start().await;
    sandbox.put(patient("p1", "Hopper")).await;
    let client = sandbox.client().await;
    let ops = json!([
        {"op": "test", "path": "/name/0/family", "value": "Hopper"},
        {"op": "add", "path": "/gender", "value": "female"}
    ]);

    let patched: Patient = client.patch("p1", &ops, Some("1")).await.unwrap();
    assert!(patched.gender.is_some());
    assert_eq!(name::patient_display_name(&patched), "Ada Hopper");
    assert_eq!(patched.meta.as_ref().unwrap().version_id.text().unwrap(), "2");
    let sent = sandbox.seen().pop().unwrap();
    assert_eq!(sent.method, "PATCH");
    assert_eq!(sent.path_and_query, "/fhir/Patient/p1");
    assert_eq!(sent.content_type.as_deref(), Some("application/json-patch+json"));
    assert_eq!(sent.if_match.as_deref(), Some("W/\"1\""));
    assert_eq!(serde_json::from_str::<Value>(&sent.body).unwrap(), ops);
    let stored: Patient = client.read("p1").await.unwrap();
    assert!(stored.gender.is_some());

    // Version 1 is stale now; a failed `test` is the server's 422 with its OperationOutcome.
    let err = client.patch::<Patient>("p1", &ops, Some("1")).await.unwrap_err();
    assert!(
        matches!(err, FhirError::VersionConflict { status: 412, .. }),
        "{err:?}"
    );
    let wrong = json!([{"op": "test", "path": "/gender", "value": "male"}]);
    let err = client.patch::<Patient>("p1", &wrong, None).await.unwrap_err();
    assert_eq!(err.status(), Some(422), "{err:?}");
    assert_eq!(err.issues()[0].code, "processing");
}

#[tokio::test]
async fn a_resource_the_server_finds_incomplete_is_refused_with_its_operation_outcome() {
    let sandbox = TestSandbox::start().await;
    // R4 requires medication[x]; the typed model lets it be absent, the server does not.
    let request: MedicationRequest = typed(json!({"resourceType": "MedicationRequest",
        "status": "active", "intent": "order", "subject": {"reference": "Patient/p1"}}));
    let err = sandbox.client().await.create(&request).await.unwrap_err();
    assert_eq!(err.status(), Some(422), "{err:?}");
    let issues = err.issues();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].severity, "error");
    assert!(
        issues[0]
            .diagnostics
            .as_deref()
            .is_some_and(|d| d.contains("medication[x]")),
        "{issues:?}"
    );
    assert!(err.to_string().contains("medication[x]"), "{err}");
}

#[tokio::test]
async fn transaction_posts_the_bundle_to_the_base() {
    let sandbox = TestSandbox::start().await;
    let client = sandbox.client().await;
    let p: Patient = typed(patient("x", "Turing"));
    let bundle: Bundle = typed(
        json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
            "resource": serde_json::from_str::<Value>(&fhir_client::r4::to_string(&p)).unwrap(),
            "request": {"method": "POST", "url": "Patient"}
        }]}),
    );
    let response = client.transaction(&bundle).await.unwrap();
    assert_eq!(response.entry.len(), 1);
    assert_eq!(sandbox.seen()[0].path_and_query, "/fhir");
    let location = response.entry[0]
        .response
        .as_ref()
        .unwrap()
        .location
        .text()
        .unwrap()
        .to_owned();
    assert!(location.starts_with("Patient/"), "{location}");

    let found = client.search::<Patient>(&SearchParams::new()).await.unwrap();
    assert_eq!(found.matches.len(), 1);
    assert_eq!(name::patient_display_name(&found.matches[0]), "Ada Turing");

    let err = client.batch(&bundle).await.unwrap_err();
    assert!(
        matches!(err, FhirError::InvalidInput(_)),
        "a transaction Bundle is not sent as a batch"
    );
}

#[tokio::test]
async fn capabilities_are_read_from_metadata() {
    let sandbox = TestSandbox::start().await;
    let cs = sandbox.client().await.capabilities().await.unwrap();
    assert_eq!(cs.fhir_version.text(), Some("4.0.1"));
}

#[tokio::test]
async fn references_resolve_locally_first_and_never_to_other_servers() {
    let sandbox = TestSandbox::start().await;
    sandbox.put(patient("p1", "Lovelace")).await;
    let client = sandbox.client().await;

    let found = client
        .resolve("Patient/p1", ResolveContext::default())
        .await
        .unwrap();
    assert!(matches!(found, Resource::Patient(_)));
    let absolute = format!("{}/Patient/p1", sandbox.fhir_base);
    assert!(matches!(
        client
            .resolve(&absolute, ResolveContext::default())
            .await
            .unwrap(),
        Resource::Patient(_)
    ));

    let contained: Vec<Resource> = vec![typed(json!({"resourceType": "Medication", "id": "m"}))];
    let context = ResolveContext {
        contained: &contained,
        ..ResolveContext::default()
    };
    assert!(matches!(
        client.resolve("#m", context).await.unwrap(),
        Resource::Medication(_)
    ));

    let requests = sandbox.seen().len();
    assert_eq!(requests, 2, "the contained reference needed no request");
    let err = client
        .resolve("https://other.example/fhir/Patient/p1", ResolveContext::default())
        .await
        .unwrap_err();
    assert!(matches!(err, FhirError::ForeignUrl { .. }), "{err:?}");
    assert_eq!(
        sandbox.seen().len(),
        requests,
        "nothing was sent for the foreign reference"
    );
}

#[tokio::test]
async fn read_and_update_keep_members_the_model_does_not_know() {
    let sandbox = TestSandbox::start().await;
    let mut p = patient("p1", "Lovelace");
    p["x-vendor"] = json!({"tier": "gold"});
    p["name"][0]["x-pronunciation"] = json!("LUV-lace");
    sandbox.put(p).await;
    let client = sandbox.client().await;

    let read = client
        .read_with::<Patient>("p1", fhir_client::r4::Mode::Tolerant)
        .await
        .unwrap();
    let mut paths: Vec<&str> = read.issues.iter().map(|i| i.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["Patient.name[0].x-pronunciation", "Patient.x-vendor"]);
    let mut changed = read.resource;
    changed.active = Some(Boolean::new(true));
    let updated = client.update_if_unchanged(&changed).await.unwrap();
    assert_eq!(updated.meta.as_ref().unwrap().version_id.text().unwrap(), "2");

    let sent = sandbox.seen().pop().unwrap();
    assert_eq!(sent.if_match.as_deref(), Some("W/\"1\""));
    let body: Value = serde_json::from_str(&sent.body).unwrap();
    assert_eq!(body["x-vendor"]["tier"], "gold");
    assert_eq!(body["name"][0]["x-pronunciation"], "LUV-lace");
    assert_eq!(body["active"], true);

    // The server kept what it was sent: a fresh read sees the members and the edit.
    let again = client
        .read_with::<Patient>("p1", fhir_client::r4::Mode::Tolerant)
        .await
        .unwrap();
    assert_eq!(again.issues.len(), 2);
    assert_eq!(again.resource.active, Some(Boolean::new(true)));
    // Strict reading refuses the same resource, naming a path.
    let err = client
        .read_with::<Patient>("p1", fhir_client::r4::Mode::Strict)
        .await
        .unwrap_err();
    assert!(matches!(err, FhirError::InvalidBody { .. }), "{err:?}");
}

#[tokio::test]
async fn clients_sharing_one_pool_each_send_their_own_token() {
    let sandbox = TestSandbox::start().await;
    sandbox.put(patient("p1", "Lovelace")).await;
    let pool = HttpPool::new(std::time::Duration::from_secs(5)).unwrap();
    let (alice_tokens, bob_tokens) = (sandbox.tokens(ALL).await, sandbox.tokens(ALL).await);
    let client_for = |tokens: Arc<dyn TokenSource>| {
        FhirClient::builder(sandbox.fhir_base.as_str())
            .pool(pool.clone())
            .token_source(tokens)
            .build()
            .unwrap()
    };
    let (alice, bob) = (client_for(alice_tokens.clone()), client_for(bob_tokens.clone()));

    let _: Patient = alice.read("p1").await.unwrap();
    let _: Patient = bob.read("p1").await.unwrap();

    let expected: Vec<Option<String>> = vec![
        Some(format!(
            "Bearer {}",
            alice_tokens.access_token().await.unwrap().secret()
        )),
        Some(format!(
            "Bearer {}",
            bob_tokens.access_token().await.unwrap().secret()
        )),
    ];
    assert_ne!(expected[0], expected[1], "two backend tokens");
    let sent: Vec<Option<String>> = sandbox.seen().into_iter().map(|s| s.authorization).collect();
    assert_eq!(sent, expected);
}
