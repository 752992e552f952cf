//! The page that sends the authorize request as a POST (SMART `authorize-post`): a form of hidden
//! fields that a small same-origin script submits at once. The app's CSP forbids inline script,
//! so the script is a file (`/static/authorize-post.js`); without JavaScript the visible button
//! does the same.

use maud::{Markup, html};
use smart_launch::AuthorizePost;

use super::layout;

/// Where the auto-submit script is served.
pub const SCRIPT_PATH: &str = "/static/authorize-post.js";

/// The auto-submit script: submits the one form marked `data-auto-submit`.
pub const SCRIPT: &str =
    "document.querySelectorAll('form[data-auto-submit]').forEach(function (f) { f.submit(); });\n";

/// The form page for `post`.
pub fn page(post: &AuthorizePost) -> Markup {
    let body = html! {
        section.card {
            h1 { "Continuing to the EHR" }
            form #authorize-post data-auto-submit method="post" action=(post.action.as_str()) {
                @for (name, value) in &post.fields {
                    input type="hidden" name=(name) value=(value);
                }
                p { "Your browser is being sent to the EHR to sign in and choose what to share." }
                p.actions { button.button type="submit" { "Continue to the EHR" } }
            }
        }
        script src=(SCRIPT_PATH) {}
    };
    layout::page("Continuing to the EHR", None, body)
}

/// The Content-Security-Policy of the page: the app's own, plus the EHR's origin as a form target
/// and the app's own script.
pub fn content_security_policy(post: &AuthorizePost) -> String {
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
         form-action 'self' {}; base-uri 'none'",
        post.action.origin().ascii_serialization()
    )
}
