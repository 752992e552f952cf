//! Batch and transaction Bundles posted to the base by a clinician, against a real SQLite store; never a panic
//! or a 500.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sandbox::{fhir::fuzz, store::Store};

fn store() -> &'static Store {
    static STORE: OnceLock<(tempfile::TempDir, Store)> = OnceLock::new();
    &STORE
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("a temp dir");
            let store = Store::open(&dir.path().join("fuzz.db")).expect("the store opens");
            (dir, store)
        })
        .1
}

fuzz_target!(|data: &[u8]| {
    let status = fuzz::bundle(store(), data);
    assert!(status < 500, "a Bundle answered {status}");
});
