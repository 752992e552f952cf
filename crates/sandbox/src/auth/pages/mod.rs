//! The sandbox's HTML pages (maud): plain, accessible forms that work without JavaScript.
//!
//! Every state-changing form is a POST carrying the pending authorization's id (`txn`) and its CSRF token
//! (`csrf`) as hidden fields.

use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

/// One option in a list of people or encounters.
pub(crate) struct Choice {
    /// The value submitted.
    pub value: String,
    /// The name shown.
    pub label: String,
    /// A short detail (birth date, period…).
    pub detail: String,
}

/// The hidden fields that tie a form to its pending authorization.
pub(crate) struct FormKeys<'a> {
    pub txn: &'a str,
    pub csrf: &'a str,
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.5}\
fieldset{border:1px solid #999;padding:1rem;margin:1rem 0}label{display:block;margin:.25rem 0}\
button{font-size:1rem;padding:.4rem 1rem;margin-right:.5rem}.detail{color:#555}.error{border-left:4px solid #b00;padding-left:1rem}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}";

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — SMART sandbox" }
                style { (STYLE) }
            }
            body {
                header { p { strong { "smart-fhir sandbox EHR" } } }
                main { h1 { (title) } (body) }
            }
        }
    }
}

fn hidden(keys: &FormKeys<'_>) -> Markup {
    html! {
        input type="hidden" name="txn" value=(keys.txn);
        input type="hidden" name="csrf" value=(keys.csrf);
    }
}

fn choice_list(name: &str, choices: &[Choice]) -> Markup {
    html! {
        @for (i, c) in choices.iter().enumerate() {
            label {
                input type="radio" name=(name) value=(c.value) required checked[i == 0];
                " " (c.label) " " span.detail { (c.detail) }
            }
        }
    }
}

/// An error the user must act on (bad client, bad redirect URI, expired sign-in…).
pub(crate) fn error_page(title: &str, message: &str) -> Markup {
    layout(title, html! { p.error role="alert" { (message) } })
}

/// The login page: pick a sandbox user.
pub(crate) fn login(
    keys: &FormKeys<'_>,
    client_id: &str,
    users: &[Choice],
    as_patient: bool,
    search: &str,
) -> Markup {
    let who = if as_patient { "patient" } else { "clinician" };
    layout(
        "Sign in",
        html! {
            p { "The app " strong { (client_id) } " asks you to sign in. Choose a sandbox " (who) " to sign in as; there are no passwords." }
            @if as_patient { (search_form(keys, search, "Find a patient by name")) }
            @if users.is_empty() {
                p.error role="alert" { "No sandbox " (who) " matches. Clear the search or start the sandbox with more patients." }
            } @else {
                form method="post" action="/auth/authorize/login" {
                    (hidden(keys))
                    fieldset { legend { "Sign in as" } (choice_list("user", users)) }
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

fn search_form(keys: &FormKeys<'_>, search: &str, label: &str) -> Markup {
    html! {
        form method="get" action="/auth/authorize/step" role="search" {
            input type="hidden" name="txn" value=(keys.txn);
            label for="name" { (label) }
            input type="search" id="name" name="name" value=(search);
            " " button type="submit" { "Search" }
        }
    }
}

/// The patient picker (standalone launch with `launch/patient`).
pub(crate) fn patient_picker(keys: &FormKeys<'_>, patients: &[Choice], search: &str) -> Markup {
    layout(
        "Select a patient",
        html! {
            p { "The app asked for a patient. Choose the patient whose record it may open." }
            (search_form(keys, search, "Find a patient by name"))
            @if patients.is_empty() {
                p.error role="alert" { "No patient matches “" (search) "”." }
            } @else {
                form method="post" action="/auth/authorize/patient" {
                    (hidden(keys))
                    fieldset { legend { "Patient" } (choice_list("patient", patients)) }
                    button type="submit" { "Select patient" }
                }
            }
        },
    )
}

/// The encounter picker (`launch/encounter`).
pub(crate) fn encounter_picker(keys: &FormKeys<'_>, patient: &str, encounters: &[Choice]) -> Markup {
    layout(
        "Select an encounter",
        html! {
            p { "The app asked for an encounter of " strong { (patient) } "." }
            form method="post" action="/auth/authorize/encounter" {
                (hidden(keys))
                fieldset {
                    legend { "Encounter" }
                    (choice_list("encounter", encounters))
                    label { input type="radio" name="encounter" value="none"; " No encounter" }
                }
                button type="submit" { "Select encounter" }
            }
        },
    )
}

/// What the consent page shows.
pub(crate) struct ConsentView<'a> {
    pub client_id: &'a str,
    pub user: &'a str,
    pub patient: Option<&'a str>,
    pub scopes: &'a [String],
}

/// The consent page: the scopes in words, Approve / Deny.
pub(crate) fn consent(keys: &FormKeys<'_>, view: &ConsentView<'_>) -> Markup {
    layout(
        "Allow access?",
        html! {
            p { "Signed in as " strong { (view.user) } "." }
            @if let Some(patient) = view.patient { p { "Patient: " strong { (patient) } } }
            p { "The app " strong { (view.client_id) } " asks to:" }
            ul { @for s in view.scopes { li { (s) } } }
            form method="post" action="/auth/authorize/consent" {
                (hidden(keys))
                button type="submit" name="decision" value="approve" { "Approve" }
                button type="submit" name="decision" value="deny" { "Deny" }
            }
        },
    )
}

/// A registered client as the launch page shows it.
pub(crate) struct ClientRow {
    pub id: String,
    pub kind: &'static str,
    pub redirects: String,
    pub launch_uri: Option<String>,
}

/// What the launch page offers.
pub(crate) struct HomeView<'a> {
    pub fhir_base: &'a str,
    pub clients: &'a [ClientRow],
    pub patients: &'a [Choice],
    pub practitioners: &'a [Choice],
    pub failures: &'a [(&'static str, &'static str)],
}

/// The EHR launch page at `/`.
pub(crate) fn home(view: &HomeView<'_>) -> Markup {
    let launchable: Vec<&ClientRow> = view.clients.iter().filter(|c| c.launch_uri.is_some()).collect();
    layout(
        "EHR launch",
        html! {
            p { "FHIR base: " code { (view.fhir_base) } ". Discovery: " code { (view.fhir_base) "/.well-known/smart-configuration" } "." }
            h2 { "Registered clients" }
            table {
                thead { tr { th { "Client id" } th { "Type" } th { "Redirect URIs" } th { "Launch URL" } } }
                tbody {
                    @for c in view.clients {
                        tr { td { (c.id) } td { (c.kind) } td { (c.redirects) } td { (c.launch_uri.as_deref().unwrap_or("—")) } }
                    }
                }
            }
            h2 { "Launch an app" }
            form method="get" action="/launcher" {
                label for="client_id" { "App" }
                select id="client_id" name="client_id" {
                    @for c in &launchable { option value=(c.id) { (c.id) " — " (c.launch_uri.as_deref().unwrap_or_default()) } }
                }
                label for="launch_uri" { "…or a registered client's launch URL" }
                input type="url" id="launch_uri" name="launch_uri" size="50";
                label for="patient" { "Patient" }
                select id="patient" name="patient" {
                    option value="" { "No patient" }
                    @for (i, p) in view.patients.iter().enumerate() { option value=(p.value) selected[i == 0] { (p.label) " (" (p.detail) ")" } }
                }
                label for="encounter" { "Encounter id (optional)" }
                input type="text" id="encounter" name="encounter";
                label for="practitioner" { "Signed-in clinician" }
                select id="practitioner" name="practitioner" {
                    @for p in view.practitioners { option value=(p.value) { (p.label) } }
                }
                label { input type="checkbox" name="need_patient_banner" value="false"; " The EHR shows the patient banner (need_patient_banner=false)" }
                label for="fail" { "Simulate a failure" }
                select id="fail" name="fail" {
                    option value="" { "None" }
                    @for (name, description) in view.failures { option value=(name) { (description) } }
                }
                p { button type="submit" { "Launch" } }
            }
        },
    )
}

/// A person's name from a FHIR resource: the first `HumanName` as "prefix given family, suffix".
pub(crate) fn display_name(resource: &Value) -> String {
    let Some(name) = resource.get("name").and_then(|n| n.get(0)) else {
        return fallback_name(resource);
    };
    if let Some(text) = name
        .get("text")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
    {
        return text.to_owned();
    }
    let strings = |key: &str| -> Vec<String> {
        name.get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let mut parts = strings("prefix");
    parts.extend(strings("given"));
    if let Some(family) = name.get("family").and_then(Value::as_str) {
        parts.push(family.to_owned());
    }
    let mut shown = parts.join(" ");
    let suffix = strings("suffix");
    if !suffix.is_empty() {
        shown = format!("{shown}, {}", suffix.join(" "));
    }
    if shown.trim().is_empty() {
        fallback_name(resource)
    } else {
        shown
    }
}

fn fallback_name(resource: &Value) -> String {
    let kind = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("Resource");
    let id = resource.get("id").and_then(Value::as_str).unwrap_or("?");
    format!("{kind} {id} (no name)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_read_like_the_seed() {
        let p = json!({"resourceType": "Patient", "id": "1", "name": [{"prefix": ["Dr."], "given": ["Ann", "B"], "family": "Lee", "suffix": ["PhD"]}]});
        assert_eq!(display_name(&p), "Dr. Ann B Lee, PhD");
        assert_eq!(
            display_name(&json!({"resourceType": "Patient", "id": "7"})),
            "Patient 7 (no name)"
        );
    }

    #[test]
    fn forms_escape_values() {
        let keys = FormKeys {
            txn: "t\"x",
            csrf: "c",
        };
        let page = consent(
            &keys,
            &ConsentView {
                client_id: "<app>",
                user: "u",
                patient: None,
                scopes: &[],
            },
        )
        .into_string();
        assert!(
            page.contains("&lt;app&gt;") && page.contains("t&quot;x"),
            "{page}"
        );
    }
}
