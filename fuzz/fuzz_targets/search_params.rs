//! The sandbox's search parameter parser: a query string for a resource type, as `GET [base]/[type]?…` gets it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandbox::store::search::SearchRequest;

const TYPES: [&str; 6] = ["Patient", "Observation", "Condition", "Encounter", "MedicationRequest", "Nope"];

fuzz_target!(|data: &[u8]| {
    let Some((&first, query)) = data.split_first() else {
        return;
    };
    let resource_type = TYPES[usize::from(first) % TYPES.len()];
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query).into_owned().collect();
    let _ = SearchRequest::parse(resource_type, &pairs);
});
