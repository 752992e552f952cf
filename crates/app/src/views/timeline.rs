//! The launch timeline page: each step in order with what was sent, what came back, the checks
//! made and the specification it implements; a failed launch ends at the failing step.

use maud::{Markup, html};
use smart_launch::trace::{CheckOutcome, TraceField, TraceStep, TraceValue};
use smart_launch::{LaunchTrace, Step};

use super::layout;
use crate::style::Theme;

/// What a step is, for a developer new to SMART.
fn explanation(step: Step) -> &'static str {
    match step {
        Step::Discovery => {
            "The app asks the FHIR server where its authorization and token endpoints are \
             (.well-known/smart-configuration, else the CapabilityStatement)."
        }
        Step::AuthorizationRequest => {
            "The browser is sent to the EHR's authorize endpoint with the app's id, redirect URI, \
             scopes, a state (against CSRF), a PKCE challenge and, for OpenID Connect, a nonce."
        }
        Step::AuthorizationGrant => {
            "The EHR sends the browser back to the redirect URI with a one-time code and the same \
             state; the app checks the state against the launch it started."
        }
        Step::TokenRequest => {
            "The app's server exchanges the code at the token endpoint, proving it started the \
             launch with the PKCE verifier and authenticating itself."
        }
        Step::AccessToken => {
            "The token endpoint answers with the access token, the granted scopes, the launch \
             context and, with openid, an id_token whose signature and claims the app checks."
        }
        Step::ResourceRequest => {
            "The app reads FHIR resources with the access token in the Authorization header."
        }
        Step::ProtectedResource => "What the FHIR server returned for the first page.",
    }
}

fn heading(step: Step) -> String {
    match step.letter() {
        Some(letter) => format!("{letter}. {}", step.title()),
        None => step.title().to_owned(),
    }
}

fn value(value: &TraceValue) -> Markup {
    match value {
        TraceValue::Text(text) => html! { code { (text) } },
        TraceValue::Fingerprint(fp) => html! { code { (fp.to_string()) } " " span.muted { "(fingerprint)" } },
        TraceValue::Redacted => html! { span.badge { "[redacted]" } },
        TraceValue::Jwt { header, claims } => html! {
            span.muted { "JWT, signature not shown" }
            dl.kv {
                dt { "header" } dd { code { (serde_json::Value::Object(header.clone()).to_string()) } }
                dt { "claims" } dd { code { (serde_json::Value::Object(claims.clone()).to_string()) } }
            }
        },
    }
}

fn fields(label: &str, fields: &[TraceField]) -> Markup {
    html! {
        @if !fields.is_empty() {
            h3 { (label) }
            dl.kv { @for f in fields { dt { (f.name) } dd { (value(&f.value)) } } }
        }
    }
}

fn outcome(outcome: CheckOutcome) -> &'static str {
    match outcome {
        CheckOutcome::Passed => "passed",
        CheckOutcome::Failed => "failed",
        CheckOutcome::NotReached => "not reached",
    }
}

fn step_card(step: &TraceStep) -> Markup {
    let id = format!(
        "step-{}",
        serde_json::to_value(step.step)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    );
    html! {
        section.card.error[step.failure.is_some()] id=(id) aria-labelledby=(format!("{id}-h")) {
            h2 id=(format!("{id}-h")) { (heading(step.step)) }
            p.muted { (explanation(step.step)) }
            @if let Some(target) = &step.target { p { "To " code { (target) } } }
            @if let Some(reason) = &step.failure {
                p role="alert" { strong { "Failed: " } (reason) }
            }
            (fields("Sent", &step.sent))
            (fields("Received", &step.received))
            @if !step.checks.is_empty() {
                h3 { "Checks" }
                table {
                    thead { tr { th scope="col" { "Check" } th scope="col" { "Detail" } th scope="col" { "Result" } } }
                    tbody {
                        @for c in &step.checks {
                            tr { td { (c.name) } td { (c.detail) } td { (outcome(c.outcome)) } }
                        }
                    }
                }
            }
            @if !step.requests.is_empty() {
                h3 { "Requests" }
                table {
                    thead { tr {
                        th scope="col" { "Method" } th scope="col" { "URL" } th scope="col" { "Status" }
                        th scope="col" { "Latency" } th scope="col" { "Bytes" }
                    } }
                    tbody {
                        @for r in &step.requests {
                            tr {
                                td { (r.method) } td { code { (r.url) } }
                                td { (r.status.map_or_else(|| "no answer".to_owned(), |s| s.to_string())) }
                                td { (r.latency_ms) " ms" } td { (r.bytes) }
                            }
                        }
                    }
                }
            }
            h3 { "Specification" }
            ul { @for link in step.step.spec_links() { li { a href=(link.url) { (link.label) } } } }
        }
    }
}

/// The timeline of the session's last launch.
pub fn page(trace: &LaunchTrace, theme: Option<&Theme>) -> Markup {
    let failed = trace.failed_step().map(|s| s.step);
    layout::page(
        "Launch timeline",
        theme,
        html! {
            h1 { "Launch timeline" }
            p {
                "The last launch of this browser session, step by step (A–F after RFC 6749's figure 1). "
                "Tokens, codes, verifiers and secrets are never shown; the state, the PKCE challenge and "
                "the nonce appear as short SHA-256 fingerprints, so you can match them between steps. "
                a href="/inspect" { "Inspect the launch's result" } "."
            }
            @match failed {
                Some(step) => p role="status" { "The launch failed at " strong { (heading(step)) } "." },
                None => p role="status" { "No step failed." },
            }
            ol.timeline {
                @for step in &trace.steps { li { (step_card(step)) } }
            }
        },
    )
}

/// The page before any launch.
pub fn nothing_yet() -> Markup {
    layout::page(
        "Launch timeline",
        None,
        html! {
            section.card {
                h1 { "Launch timeline" }
                p { "No launch yet in this browser session: start one and its steps appear here." }
                p { a.button href="/authorize" { "Start a launch" } }
            }
        },
    )
}
