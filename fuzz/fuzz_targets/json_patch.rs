//! JSON Patch application with the sandbox's limits: any body, applied to an Observation; never a panic or a 500.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandbox::fhir::fuzz;

fuzz_target!(|data: &[u8]| {
    let status = fuzz::apply_patch(fuzz::patch_target(), data);
    assert!(status < 500, "a patch answered {status}");
});
