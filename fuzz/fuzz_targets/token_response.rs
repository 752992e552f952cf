//! smart-launch's token response parser: the token endpoint's JSON into a `TokenResponse`, a `TokenSet` and the
//! launch context, as a launch reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smart_launch::{LaunchContext, ScopeSet, TokenResponse, TokenSet, Url};

fuzz_target!(|data: &[u8]| {
    let Ok(response) = serde_json::from_slice::<TokenResponse>(data) else {
        return;
    };
    let base = Url::parse("https://ehr.example/fhir").expect("a base");
    let endpoint = Url::parse("https://ehr.example/token").expect("an endpoint");
    let requested = ScopeSet::parse_lenient("launch openid fhirUser patient/*.rs offline_access");
    let now = chrono::Utc::now();
    let tokens = TokenSet::from_response(&response, &requested, &base, &endpoint, now);
    let _ = tokens.refreshed(&response, now);
    let _ = tokens.is_expired();
    let _ = LaunchContext::from_response(&response);
});
