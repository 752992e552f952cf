//! The page frame every page shares: header, navigation, main landmark, stylesheet.

use maud::{DOCTYPE, Markup, PreEscaped, Render, html};

use crate::style::Theme;

/// The app's stylesheet, served at [`STYLESHEET_PATH`].
pub const STYLESHEET: &str = include_str!("../../static/app.css");

/// Where the stylesheet is served.
pub const STYLESHEET_PATH: &str = "/static/app.css";

/// A full HTML page. `theme` (from the EHR's `smart_style_url`) overrides the colours and font.
pub fn page(title: &str, theme: Option<&Theme>, body: impl Render) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · smart-fhir" }
                link rel="stylesheet" href=(STYLESHEET_PATH);
                @if let Some(theme) = theme {
                    // The values were validated when the style was fetched (colours and a font list
                    // only), so they cannot close the element or inject rules.
                    style { (PreEscaped(theme.css_variables())) }
                }
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.site {
                    a href="/" { "smart-fhir" }
                    nav aria-label="Main" {
                        a href="/" { "Patient" }
                        a href="/inspect" { "Inspect launch" }
                        a href="/inspect/timeline" { "Launch timeline" }
                    }
                }
                main #main { (body) }
                footer.site { "SMART on FHIR demo app · no data leaves this server except to the EHR" }
            }
        }
    }
}

/// The name of the hidden form field carrying the session's CSRF token (checked by the router's `csrf` module).
pub const CSRF_FIELD: &str = "csrf";

/// A POST form with the CSRF token and one button; `class` styles the button.
pub fn post_button(action: &str, csrf: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            input type="hidden" name=(CSRF_FIELD) value=(csrf);
            button type="submit" class=(class) { (label) }
        }
    }
}
