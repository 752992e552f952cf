//! The RESTful interactions against a real HTTP server.

use fhir_client::r4::resources::{Bundle, Observation, Patient, Resource};
use fhir_client::search::{SearchParams, Token};
use fhir_client::{FhirError, ResolveContext, coding, name, quantity};
use futures::TryStreamExt;
use serde_json::json;

use crate::common::{TestServer, observation, patient};

#[tokio::test]
async fn read_returns_the_typed_patient_with_its_primitive_extension() {
    let server = TestServer::start().await;
    server.put(patient("p1", "Lovelace"));
    let client = server.client();

    let p: Patient = client.read("p1").await.unwrap();
    assert_eq!(name::patient_display_name(&p), "Ada Lovelace");
    assert_eq!(p.birth_date.as_ref().unwrap().0, "1970-01-01");
    assert_eq!(p.birth_date_ext.as_ref().unwrap().extension.len(), 1);

    let seen = server.seen();
    assert_eq!(seen[0].path_and_query, "/fhir/Patient/p1");
    assert_eq!(seen[0].accept.as_deref(), Some("application/fhir+json"));
    assert_eq!(seen[0].authorization, None, "an open client sends no token");
}

#[tokio::test]
async fn missing_and_deleted_resources_are_typed_errors() {
    let server = TestServer::start().await;
    server.put(patient("p1", "Lovelace"));
    let client = server.client();

    let err = client.read::<Patient>("nope").await.unwrap_err();
    assert!(matches!(err, FhirError::NotFound { .. }), "{err:?}");
    assert_eq!(err.issues()[0].code, "not-found");

    client.delete::<Patient>("p1").await.unwrap();
    assert_eq!(server.seen().last().unwrap().method, "DELETE");
    let err = client.read::<Patient>("p1").await.unwrap_err();
    assert!(matches!(err, FhirError::Gone { .. }), "{err:?}");
}

#[tokio::test]
async fn ids_cannot_escape_their_path_segment() {
    let server = TestServer::start().await;
    let err = server.client().read::<Patient>("../metadata").await.unwrap_err();
    assert!(matches!(err, FhirError::InvalidInput(_)), "{err:?}");
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn reading_the_wrong_type_is_refused() {
    let server = TestServer::start().await;
    server.put(json!({"resourceType": "Observation", "id": "x", "status": "final", "code": {}}));
    // The server (wrongly) answers Patient/x with an Observation.
    server.fault(crate::common::Fault::new(
        "/Patient/x",
        200,
        &json!({"resourceType": "Observation", "id": "x", "status": "final", "code": {}}).to_string(),
    ));
    let err = server.client().read::<Patient>("x").await.unwrap_err();
    assert!(
        matches!(err, FhirError::UnexpectedResourceType { ref found, .. } if found == "Observation"),
        "{err:?}"
    );
}

#[tokio::test]
async fn search_by_patient_and_category_gives_typed_observations_with_precise_values() {
    let server = TestServer::start().await;
    server.put(observation("o1", "p1", "vital-signs", "72.50"));
    server.put(observation("o2", "p1", "laboratory", "1.0"));
    server.put(observation("o3", "p2", "vital-signs", "80"));
    let client = server.client();

    let params = SearchParams::new().patient("p1").token(
        "category",
        Token::new(coding::system::OBSERVATION_CATEGORY, "vital-signs"),
    );
    let page = client.search::<Observation>(&params).await.unwrap();
    assert_eq!(page.total, Some(1));
    assert_eq!(page.matches.len(), 1);
    let obs = &page.matches[0];
    assert_eq!(obs.id.as_ref().unwrap().0, "o1");
    assert_eq!(
        coding::code_in_system(&obs.code, coding::system::LOINC),
        Some("29463-7")
    );
    let Some(fhir_client::r4::resources::observation::ObservationValue::Quantity(q)) = &obs.value else {
        panic!("expected valueQuantity, got {:?}", obs.value)
    };
    assert_eq!(
        quantity::display_quantity(q.as_ref()).as_deref(),
        Some("72.50 kg")
    );

    let seen = server.seen();
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
    let last = server.seen().pop().unwrap();
    assert_eq!(last.path_and_query, "/fhir/Observation/_search");
    assert_eq!(
        last.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert!(last.body.contains("patient=p1"));
}

#[tokio::test]
async fn paging_follows_next_links_until_the_last_page() {
    let server = TestServer::start().await;
    for i in 0..7 {
        server.put(observation(
            &format!("o{i}"),
            "p1",
            "vital-signs",
            &format!("{i}"),
        ));
    }
    let client = server.client();

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

    let all: Vec<Observation> = client.search_all(params).try_collect().await.unwrap();
    let mut ids: Vec<String> = all.iter().map(|o| o.id.as_ref().unwrap().0.clone()).collect();
    ids.sort();
    assert_eq!(ids, (0..7).map(|i| format!("o{i}")).collect::<Vec<_>>());
    assert_eq!(server.seen().len(), 6);
}

#[tokio::test]
async fn patient_everything_streams_every_page() {
    let server = TestServer::start().await;
    server.put(patient("p1", "Lovelace"));
    for i in 0..4 {
        server.put(observation(&format!("o{i}"), "p1", "vital-signs", "1"));
    }
    server.put(observation("other", "p2", "vital-signs", "1"));
    let client = server.client();
    let first = client.patient_everything("p1").await.unwrap();
    assert_eq!(first.entry.len(), 2);
    let all: Vec<Resource> = client.patient_everything_all("p1").try_collect().await.unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(
        all.iter().filter(|r| matches!(r, Resource::Patient(_))).count(),
        1
    );
}

#[tokio::test]
async fn create_update_with_if_match_and_patch() {
    let server = TestServer::start().await;
    let client = server.client();

    let new: Patient = serde_json::from_value(patient("ignored", "Hopper")).unwrap();
    let created = client.create(&new).await.unwrap();
    let id = created.id.as_ref().unwrap().0.clone();
    assert!(id.starts_with("new-"));
    assert_eq!(created.meta.as_ref().unwrap().version_id.as_ref().unwrap().0, "1");
    assert!(server.seen()[0].body.contains("\"resourceType\":\"Patient\""));

    let mut changed = created.clone();
    changed.active = Some(fhir_client::r4::types::Boolean(true));
    let updated = client.update_if_unchanged(&changed).await.unwrap();
    assert_eq!(updated.meta.as_ref().unwrap().version_id.as_ref().unwrap().0, "2");
    assert_eq!(server.seen().last().unwrap().if_match.as_deref(), Some("W/\"1\""));

    // The stale copy (version 1) is refused now.
    let err = client.update_if_unchanged(&changed).await.unwrap_err();
    assert!(
        matches!(err, FhirError::VersionConflict { status: 412, .. }),
        "{err:?}"
    );

    let patched: Patient = client
        .patch(
            &id,
            &json!([{"op": "replace", "path": "/gender", "value": "female"}]),
            Some("2"),
        )
        .await
        .unwrap();
    assert!(patched.gender.is_some());
    let last = server.seen().pop().unwrap();
    assert_eq!(last.content_type.as_deref(), Some("application/json-patch+json"));
    let v1: Patient = client.vread(&id, "1").await.unwrap();
    assert!(v1.active.is_none());
}

#[tokio::test]
async fn transaction_posts_the_bundle_to_the_base() {
    let server = TestServer::start().await;
    let client = server.client();
    let p: Patient = serde_json::from_value(patient("x", "Turing")).unwrap();
    let bundle = Bundle::transaction().create(&p, "Patient").build();
    let response = client.transaction(&bundle).await.unwrap();
    assert_eq!(response.entry.len(), 1);
    assert_eq!(server.seen()[0].path_and_query, "/fhir");
    assert!(server.state.lock().unwrap().resources["Patient"].len() == 1);

    let err = client.batch(&bundle).await.unwrap_err();
    assert!(
        matches!(err, FhirError::InvalidInput(_)),
        "a transaction Bundle is not sent as a batch"
    );
}

#[tokio::test]
async fn capabilities_are_read_from_metadata() {
    let server = TestServer::start().await;
    let cs = server.client().capabilities().await.unwrap();
    assert_eq!(serde_json::to_value(&cs.fhir_version).unwrap(), json!("4.0.1"));
}

#[tokio::test]
async fn references_resolve_locally_first_and_never_to_other_servers() {
    let server = TestServer::start().await;
    server.put(patient("p1", "Lovelace"));
    let client = server.client();

    let found = client
        .resolve("Patient/p1", ResolveContext::default())
        .await
        .unwrap();
    assert!(matches!(found, Resource::Patient(_)));
    let absolute = format!("{}/Patient/p1", server.base);
    assert!(matches!(
        client
            .resolve(&absolute, ResolveContext::default())
            .await
            .unwrap(),
        Resource::Patient(_)
    ));

    let contained: Vec<Resource> =
        serde_json::from_value(json!([{"resourceType": "Medication", "id": "m"}])).unwrap();
    let context = ResolveContext {
        contained: &contained,
        ..ResolveContext::default()
    };
    assert!(matches!(
        client.resolve("#m", context).await.unwrap(),
        Resource::Medication(_)
    ));

    let requests = server.seen().len();
    let err = client
        .resolve("https://other.example/fhir/Patient/p1", ResolveContext::default())
        .await
        .unwrap_err();
    assert!(matches!(err, FhirError::ForeignUrl { .. }), "{err:?}");
    assert_eq!(
        server.seen().len(),
        requests,
        "nothing was sent for the foreign reference"
    );
}

#[tokio::test]
async fn lossless_read_and_update_keep_unknown_members() {
    let server = TestServer::start().await;
    let mut p = patient("p1", "Lovelace");
    p["x-vendor"] = json!({"tier": "gold"});
    p["name"][0]["x-pronunciation"] = json!("LUV-lace");
    server.put(p);
    let client = server.client();

    let mut read: fhir_client::Lossless<Patient> = client.read_lossless("p1").await.unwrap();
    assert_eq!(read.unknown_elements().len(), 2);
    read.active = Some(fhir_client::r4::types::Boolean(true));
    let updated = client.update_lossless(&read).await.unwrap();
    assert_eq!(updated.meta.as_ref().unwrap().version_id.as_ref().unwrap().0, "2");

    let sent: serde_json::Value = serde_json::from_str(&server.seen().last().unwrap().body).unwrap();
    assert_eq!(sent["x-vendor"]["tier"], "gold");
    assert_eq!(sent["name"][0]["x-pronunciation"], "LUV-lace");
    assert_eq!(sent["active"], true);
    assert_eq!(server.seen().last().unwrap().if_match.as_deref(), Some("W/\"1\""));
}

#[tokio::test]
async fn clients_sharing_one_pool_each_send_their_own_token() {
    use fhir_client::{FhirClient, HttpPool};
    use smart_launch::{AccessToken, StaticToken};
    use std::sync::Arc;

    let server = TestServer::start().await;
    server.put(patient("p1", "Lovelace"));
    let pool = HttpPool::new(std::time::Duration::from_secs(5)).unwrap();
    let client_for = |token: &str| {
        FhirClient::builder(&server.base)
            .pool(pool.clone())
            .token_source(Arc::new(StaticToken::new(AccessToken::new(token.to_owned()))))
            .build()
            .unwrap()
    };
    let (alice, bob) = (client_for("token-a"), client_for("token-b"));

    let _: Patient = alice.read("p1").await.unwrap();
    let _: Patient = bob.read("p1").await.unwrap();

    let tokens: Vec<Option<String>> = server.seen().into_iter().map(|s| s.authorization).collect();
    assert_eq!(
        tokens,
        vec![
            Some("Bearer token-a".to_owned()),
            Some("Bearer token-b".to_owned())
        ]
    );
}
