//! The confirm pages behind `GET /logout` and `GET /reset` (the actions themselves are POSTs).

use maud::{Markup, html};

use super::layout;
use crate::style::Theme;

/// "Change patient": forget this launch's tokens and start a new one.
pub fn logout(csrf: &str, theme: Option<&Theme>) -> Markup {
    layout::page(
        "Change patient",
        theme,
        html! {
            section.card {
                h1 { "Change patient" }
                p { "This forgets the current patient and this app's access to the EHR. You can then authorize again and pick another patient." }
                div.actions {
                    (layout::post_button("/logout", csrf, "Change patient", "button"))
                    a.button.secondary href="/" { "Cancel" }
                }
            }
        },
    )
}

/// "Reset": delete the whole session.
pub fn reset(csrf: &str, theme: Option<&Theme>) -> Markup {
    layout::page(
        "Reset",
        theme,
        html! {
            section.card {
                h1 { "Reset" }
                p { "This deletes everything this app keeps for your browser: the session, any tokens and any launch in progress." }
                div.actions {
                    (layout::post_button("/reset", csrf, "Reset", "button"))
                    a.button.secondary href="/" { "Cancel" }
                }
            }
        },
    )
}
