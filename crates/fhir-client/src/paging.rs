//! Search results as typed pages, and the rule for which `next` links may be followed.

use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use crate::error::{FhirError, coded_text};
use crate::r4::resources::{Bundle, OperationOutcome, Resource};

/// One page of search results, with the matches parsed into `R`.
#[derive(Debug, Clone)]
pub struct SearchPage<R> {
    /// The resources that matched (`search.mode = match`, or of type `R` when no mode is given).
    pub matches: Vec<R>,
    /// Resources added by `_include` / `_revinclude`.
    pub included: Vec<Resource>,
    /// OperationOutcomes the server added (warnings about the search).
    pub outcomes: Vec<OperationOutcome>,
    /// `Bundle.total`, when the server counted.
    pub total: Option<u32>,
    /// The `next` link, when there are more pages.
    pub next: Option<String>,
    /// The `self` link: the search as the server understood it.
    pub self_link: Option<String>,
}

impl<R: DeserializeOwned> SearchPage<R> {
    /// Split a searchset Bundle into typed matches, includes and outcomes. `type_name` is `R`'s
    /// resource type. An entry that is not valid FHIR is an error (naming its JSON path), never
    /// silently dropped.
    pub fn from_bundle(bundle: Bundle, type_name: &str, source: &Url) -> Result<Self, FhirError> {
        let link = |relation: &str| {
            bundle
                .link
                .iter()
                .find(|l| l.relation.0 == relation)
                .map(|l| l.url.0.clone())
        };
        let (next, self_link) = (link("next"), link("self"));
        let total = bundle.total.as_ref().map(|t| t.0);
        let mut page = SearchPage {
            matches: Vec::new(),
            included: Vec::new(),
            outcomes: Vec::new(),
            total,
            next,
            self_link,
        };
        for (i, entry) in bundle.entry.into_iter().enumerate() {
            let Some(resource) = entry.resource else { continue };
            let mode = entry
                .search
                .as_ref()
                .and_then(|s| s.mode.as_ref())
                .map(coded_text);
            let ty = resource
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let at = |e: serde_path_to_error::Error<serde_json::Error>| FhirError::InvalidBody {
                url: source.to_string(),
                expected: ty.clone(),
                path: format!("entry[{i}].resource.{}", e.path()),
                message: e.inner().to_string(),
                body: String::new(),
            };
            match mode.as_deref() {
                Some("outcome") => page
                    .outcomes
                    .push(serde_path_to_error::deserialize(resource).map_err(at)?),
                Some("include") => page
                    .included
                    .push(serde_path_to_error::deserialize(resource).map_err(at)?),
                Some("match") | None if ty == type_name => page
                    .matches
                    .push(serde_path_to_error::deserialize(resource).map_err(at)?),
                _ if ty == "OperationOutcome" => page
                    .outcomes
                    .push(serde_path_to_error::deserialize(resource).map_err(at)?),
                _ => page
                    .included
                    .push(serde_path_to_error::deserialize(resource).map_err(at)?),
            }
        }
        Ok(page)
    }
}

/// Whether `url` lies under `base` (same scheme, host and port, and a path inside the base's).
/// The SMART IG asks clients to send their token only to the FHIR server it was issued for.
pub(crate) fn is_under_base(url: &Url, base: &Url) -> bool {
    if url.origin() != base.origin() {
        return false;
    }
    let base_path = base.path().trim_end_matches('/');
    let path = url.path();
    path == base_path || path.starts_with(&format!("{base_path}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_links_under_the_base_are_followed() {
        let base = Url::parse("https://ehr.example/fhir/r4/").unwrap();
        let ok = [
            "https://ehr.example/fhir/r4?page=2",
            "https://ehr.example/fhir/r4/Observation?page=2",
            "https://ehr.example:443/fhir/r4/x",
        ];
        for link in ok {
            assert!(is_under_base(&Url::parse(link).unwrap(), &base), "{link}");
        }
        let refused = [
            "http://ehr.example/fhir/r4/Observation",
            "https://evil.example/fhir/r4/Observation",
            "https://ehr.example:8443/fhir/r4/Observation",
            "https://ehr.example/fhir/r4-other/Observation",
            "https://ehr.example/other",
            "https://ehr.example.evil.example/fhir/r4/Observation",
        ];
        for link in refused {
            assert!(!is_under_base(&Url::parse(link).unwrap(), &base), "{link}");
        }
    }
}
