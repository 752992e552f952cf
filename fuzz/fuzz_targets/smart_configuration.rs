//! smart-launch's SMART configuration parsers: `.well-known/smart-configuration` and the CapabilityStatement's
//! `oauth-uris`, with endpoints resolved against the FHIR base.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smart_launch::{SmartConfiguration, Url};

fuzz_target!(|data: &[u8]| {
    let Ok(document) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let base = Url::parse("https://ehr.example/fhir/r4").expect("a base");
    if let Ok(config) = SmartConfiguration::from_well_known(&base, document.clone()) {
        let _ = (config.supports("launch-ehr"), config.supports_authorize_post(), config.expected_id_token_issuer());
    }
    let _ = SmartConfiguration::from_capability_statement(&base, &document);
});
