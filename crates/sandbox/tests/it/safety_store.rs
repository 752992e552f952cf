//! The database file deleted under a running sandbox: writes are refused with 503 instead of vanishing into an
//! unlinked file.

use crate::common;
use crate::fhir_support::{patient_ids, session};
use crate::fhir_write::heart_rate;
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn a_database_file_deleted_while_running_refuses_writes_with_503() {
    let ts = common::start().await;
    let clinician = session(&ts, "launch/patient user/*.cruds").await;
    let patient = patient_ids(&ts).remove(0);
    let before = clinician
        .send(Method::POST, "Observation", Some(&heart_rate(&patient, 70)), &[])
        .await;
    assert_eq!(before.status, StatusCode::CREATED, "{}", before.body);
    let db = ts.dir.path().join("sandbox.db");
    std::fs::remove_file(&db).unwrap();
    let after = clinician
        .send(Method::POST, "Observation", Some(&heart_rate(&patient, 71)), &[])
        .await;
    assert_eq!(after.status, StatusCode::SERVICE_UNAVAILABLE, "{}", after.body);
    assert_eq!(after.body["resourceType"], "OperationOutcome");
    assert_eq!(after.body["issue"][0]["code"], "transient");
    assert!(after.headers.get("retry-after").is_some());
}
