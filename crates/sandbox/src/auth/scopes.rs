//! What the authorization server grants for requested scopes, and how it words them on the consent page.

use smart_launch::scope::{Permissions, ResourceScope, Scope, ScopeContext, ScopeSet};

/// Whether the app asks for clinical data as a clinician (`user/` scopes) rather than as a patient.
pub(crate) fn is_provider_request(requested: &ScopeSet) -> bool {
    requested
        .resource_scopes()
        .any(|r| r.context == ScopeContext::User)
}

/// The scopes granted to an interactive (authorization-code) launch: everything understood that a user can grant.
/// Unknown scopes and `system/` scopes (backend services only) are dropped, so `scope` in the token response
/// tells the app what it really got.
pub(crate) fn grant_interactive(requested: &ScopeSet) -> ScopeSet {
    requested
        .iter()
        .filter(|s| match s {
            Scope::Other(_) => false,
            Scope::Resource(r) => r.context != ScopeContext::System,
            _ => true,
        })
        .cloned()
        .collect()
}

/// The scopes granted to a backend service (client_credentials): only `system/` resource scopes.
pub(crate) fn grant_backend(requested: &ScopeSet) -> ScopeSet {
    requested
        .iter()
        .filter(|s| s.as_resource().is_some_and(|r| r.context == ScopeContext::System))
        .cloned()
        .collect()
}

/// True when every scope in `narrower` is in `wider` (a refresh may narrow the grant, never widen it).
pub(crate) fn is_subset(narrower: &ScopeSet, wider: &ScopeSet) -> bool {
    narrower.iter().all(|s| wider.contains(s))
}

/// One scope in words, for the consent page.
pub(crate) fn describe(scope: &Scope) -> String {
    match scope {
        Scope::Launch => "Open in the context of your current EHR session".to_owned(),
        Scope::LaunchPatient => "Know which patient you select".to_owned(),
        Scope::LaunchEncounter => "Know which encounter you select".to_owned(),
        Scope::OpenId | Scope::Profile => "Confirm your identity (sign you in)".to_owned(),
        Scope::FhirUser => "Know who you are: your FHIR user record".to_owned(),
        Scope::OfflineAccess => "Keep access after you close the app (offline access)".to_owned(),
        Scope::OnlineAccess => "Keep access while you are using the app (online access)".to_owned(),
        Scope::Resource(r) => describe_resource(r),
        Scope::Other(s) => format!("“{s}” (not supported by this server; it will not be granted)"),
        _ => scope.to_string(),
    }
}

fn describe_resource(r: &ResourceScope) -> String {
    let what = permissions_in_words(r.permissions);
    let kind = if r.resource_type == "*" {
        "all kinds of records".to_owned()
    } else {
        format!("{} records", r.resource_type)
    };
    let whose = match r.context {
        ScopeContext::Patient => "of the selected patient",
        ScopeContext::User => "you are allowed to see",
        ScopeContext::System => "of every patient (backend service)",
    };
    let constraints = if r.constraints.is_empty() {
        String::new()
    } else {
        let parts: Vec<String> = r.constraints.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        format!(", limited to {}", parts.join(" and "))
    };
    format!("{what} {kind} {whose}{constraints}")
}

fn permissions_in_words(p: Permissions) -> String {
    let mut words = Vec::new();
    if p.read {
        words.push("read");
    }
    if p.search {
        words.push("search");
    }
    if p.create {
        words.push("create");
    }
    if p.update {
        words.push("update");
    }
    if p.delete {
        words.push("delete");
    }
    let mut text = match words.split_last() {
        None => "use".to_owned(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    };
    if let Some(first) = text.get(0..1) {
        text = first.to_uppercase() + text.get(1..).unwrap_or_default();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interactive_grant_drops_unknown_and_system_scopes() {
        let requested =
            ScopeSet::parse("launch/patient patient/Patient.read system/Patient.rs made_up openid").unwrap();
        assert_eq!(
            grant_interactive(&requested).to_string(),
            "launch/patient patient/Patient.read openid"
        );
    }

    #[test]
    fn scopes_are_described_in_words() {
        let set = ScopeSet::parse("patient/Observation.rs?category=vital-signs user/*.cruds").unwrap();
        let words: Vec<String> = set.iter().map(describe).collect();
        assert_eq!(
            words[0],
            "Read and search Observation records of the selected patient, limited to category = vital-signs"
        );
        assert_eq!(
            words[1],
            "Read, search, create, update and delete all kinds of records you are allowed to see"
        );
    }
}
