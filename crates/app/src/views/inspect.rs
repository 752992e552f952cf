//! The launch inspector page: endpoints, requested vs granted scopes, launch context, id_token
//! claims, token expiry. Token values are never rendered — only whether each token is present.

use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde_json::Value;

use super::layout;
use crate::launch_record::{LaunchKind, LaunchRecord};

/// "expires in 4 min 12 s" / "expired 30 s ago".
pub fn countdown(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (expires_at - now).num_seconds();
    let span = |s: i64| {
        if s >= 60 {
            format!("{} min {} s", s / 60, s % 60)
        } else {
            format!("{s} s")
        }
    };
    if secs >= 0 {
        format!("expires in {}", span(secs))
    } else {
        format!("expired {} ago", span(-secs))
    }
}

fn json_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn row(label: &str, value: Option<String>) -> Markup {
    html! { dt { (label) } dd { (value.unwrap_or_else(|| "—".to_owned())) } }
}

/// The page for a session with a completed launch: one card each for the launch, its tokens, the server's
/// endpoints, the scopes, the launch context and the id_token's claims.
pub fn launched(record: &LaunchRecord, now: DateTime<Utc>) -> Markup {
    layout::page(
        "Inspect launch",
        record.theme.as_ref(),
        html! {
            h1 { "Inspect launch" }
            p { a href="/inspect/timeline" { "See the launch step by step (A–F) on the timeline" } "." }
            div.grid.wide {
                (launch_card(record))
                (tokens_card(record, now))
                (endpoints_card(record))
                (scopes_card(record))
                (context_card(record))
                (claims_card(record))
            }
        },
    )
}

/// The kind of launch, the FHIR server, when it completed.
fn launch_card(record: &LaunchRecord) -> Markup {
    html! {
        section.card aria-label="Launch" {
            h2 { "Launch" }
            dl.kv {
                (row("Kind", Some(match record.kind { LaunchKind::Standalone => "standalone", LaunchKind::Ehr => "EHR launch" }.to_owned())))
                (row("FHIR server", Some(record.fhir_base().to_string())))
                (row("Completed", Some(record.completed_at.format("%Y-%m-%d %H:%M:%S UTC").to_string())))
            }
        }
    }
}

/// Which tokens the launch holds (never their values) and when the access token expires.
fn tokens_card(record: &LaunchRecord, now: DateTime<Utc>) -> Markup {
    let tokens = record.tokens();
    let present = |p: bool| if p { "present (value hidden)" } else { "none" }.to_owned();
    html! {
        section.card aria-label="Tokens" {
            h2 { "Tokens" }
            dl.kv {
                (row("Access token", Some(present(true))))
                (row("Token type", Some(tokens.token_type.clone())))
                (row("Issued", Some(tokens.issued_at.format("%Y-%m-%d %H:%M:%S UTC").to_string())))
                (row("Expiry", Some(match tokens.expires_at {
                    Some(at) => format!("{} ({})", countdown(at, now), at.format("%H:%M:%S UTC")),
                    None => "not stated by the server".to_owned(),
                })))
                (row("Refresh token", Some(present(tokens.refresh_token.is_some()))))
                (row("id_token", Some(present(tokens.id_token.is_some()))))
            }
        }
    }
}

/// The endpoints discovery found, and the server's capabilities.
fn endpoints_card(record: &LaunchRecord) -> Markup {
    let endpoints = &record.endpoints;
    html! {
        section.card aria-label="Endpoints" {
            h2 { "Server endpoints" }
            dl.kv {
                (row("Discovered from", Some(format!("{:?}", endpoints.source))))
                (row("Authorize", Some(endpoints.authorization_endpoint.to_string())))
                (row("Token", Some(endpoints.token_endpoint.to_string())))
                (row("JWKS", endpoints.jwks_uri.as_ref().map(ToString::to_string)))
                (row("Introspection", endpoints.introspection_endpoint.as_ref().map(ToString::to_string)))
                (row("Revocation", endpoints.revocation_endpoint.as_ref().map(ToString::to_string)))
            }
            @if !endpoints.capabilities.is_empty() {
                h3 { "Capabilities" }
                ul.tags { @for c in &endpoints.capabilities { li.badge { (c) } } }
            }
        }
    }
}

/// The scopes asked for and granted, and how they differ.
fn scopes_card(record: &LaunchRecord) -> Markup {
    let tokens = record.tokens();
    let comparison = record.requested.compare_granted(&tokens.scope);
    html! {
        section.card aria-label="Scopes" {
            h2 { "Scopes" }
            dl.kv {
                (row("Requested", Some(record.requested.to_string())))
                (row("Granted", Some(tokens.scope.to_string())))
            }
            @if comparison.missing.is_empty() {
                p { "Everything requested was granted." }
            } @else {
                h3 { "Requested but not granted" }
                ul { @for s in &comparison.missing { li { code { (s.to_string()) } } } }
            }
            @if !comparison.extra.is_empty() {
                h3 { "Granted beyond the request" }
                ul { @for s in &comparison.extra { li { code { (s.to_string()) } } } }
            }
        }
    }
}

/// The launch context the token response carried.
fn context_card(record: &LaunchRecord) -> Markup {
    let context = record.context();
    html! {
        section.card aria-label="Launch context" {
            h2 { "Launch context" }
            dl.kv {
                (row("patient", context.patient.clone()))
                (row("encounter", context.encounter.clone()))
                (row("need_patient_banner", context.need_patient_banner.map(|b| b.to_string())))
                (row("smart_style_url", context.smart_style_url.clone()))
                (row("intent", context.intent.clone()))
                (row("tenant", context.tenant.clone()))
                @for item in &context.fhir_context {
                    (row("fhirContext", item.reference.clone().or_else(|| item.canonical.clone())))
                }
                @for (key, value) in &context.extras {
                    (row(key, Some(json_text(value))))
                }
            }
        }
    }
}

/// The id_token's claims, when there was one.
fn claims_card(record: &LaunchRecord) -> Markup {
    html! {
        section.card aria-label="id_token claims" {
            h2 { "id_token claims" }
            @match &record.launch.id_token_claims {
                Some(claims) => dl.kv {
                    (row("iss", Some(claims.iss.clone())))
                    (row("sub", Some(claims.sub.clone())))
                    (row("aud", Some(claims.aud.join(", "))))
                    (row("exp", DateTime::from_timestamp(claims.exp, 0).map(|t| t.to_rfc3339())))
                    (row("iat", claims.iat.and_then(|t| DateTime::from_timestamp(t, 0)).map(|t| t.to_rfc3339())))
                    (row("fhirUser", claims.fhir_user.clone()))
                    (row("profile", claims.profile.clone()))
                    @for (key, value) in &claims.extra { (row(key, Some(json_text(value)))) }
                },
                None => p.muted { "No id_token was received (the launch did not ask for openid, or the server sent none)." },
            }
        }
    }
}

/// The page before any launch.
pub fn nothing_yet() -> Markup {
    layout::page(
        "Inspect launch",
        None,
        html! {
            section.card {
                h1 { "Inspect launch" }
                p { "Nothing to inspect yet: this browser session has not completed a launch." }
                p { a.button href="/" { "Start" } }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn countdown_reads_naturally() {
        let now = Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap();
        assert_eq!(
            countdown(now + chrono::Duration::seconds(252), now),
            "expires in 4 min 12 s"
        );
        assert_eq!(
            countdown(now - chrono::Duration::seconds(30), now),
            "expired 30 s ago"
        );
    }
}
