//! smart-launch's callback URL parser: whatever the browser brings back to the redirect URI.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smart_launch::{CallbackParams, Url};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let params = CallbackParams::from_query(text);
    let _ = (params.state().is_some(), params.error(), params.trace_fields());
    if let Ok(url) = Url::parse(&format!("https://app.example/callback?{text}")) {
        let _ = CallbackParams::from_url(&url).error();
    }
});
