//! Search results as typed pages, and the rule for which `next` links may be followed.

use url::Url;

use crate::error::FhirError;
use crate::model::{self, Read};
use crate::r4::{Bundle, Mode, OperationOutcome, Resource, ResourceType};

/// Every resource of a Bundle (`Patient/$everything`, a history or a transaction response), typed,
/// and the Bundle's `next` link. Read tolerantly: an element that does not fit is kept aside as an
/// unknown member and logged once (see [`crate::model`]).
pub(crate) fn resources_from_slice(
    body: &[u8],
    source: &Url,
) -> Result<(Vec<Resource>, Option<String>), FhirError> {
    let Read { resource: bundle, .. } = model::read::<Bundle>(body, source, Mode::Tolerant)?;
    let next = bundle.link_url("next").map(str::to_owned);
    let resources = bundle.entry.into_iter().filter_map(|e| e.resource).collect();
    Ok((resources, next))
}

/// One page of search results, with the matches typed as `R`.
#[derive(Debug, Clone)]
pub struct SearchPage<R> {
    /// The resources that matched (`search.mode = match`, or of type `R` when no mode is given).
    pub matches: Vec<R>,
    /// Resources added by `_include` / `_revinclude`.
    pub included: Vec<Resource>,
    /// OperationOutcomes the server added (warnings about the search; Epic sends one with an
    /// empty result).
    pub outcomes: Vec<OperationOutcome>,
    /// `Bundle.total`, when the server counted.
    pub total: Option<u32>,
    /// The `next` link, when there are more pages.
    pub next: Option<String>,
    /// The `self` link: the search as the server understood it.
    pub self_link: Option<String>,
    /// What did not fit the R4 model anywhere in the Bundle, each with its FHIR path from the
    /// Bundle (`Bundle.entry[3].resource.valueQuantity.value`); already logged once at `warn`.
    pub issues: Vec<crate::r4::Issue>,
}

impl<R: ResourceType> SearchPage<R> {
    /// Reads a searchset Bundle in `mode`: typed matches, includes and outcomes. In
    /// [`Mode::Tolerant`] (what the client uses) one entry that does not fit never fails the page:
    /// its offending elements are kept aside as unknown members and reported in
    /// [`SearchPage::issues`]. In [`Mode::Strict`] the first problem fails the page, naming its path.
    pub fn from_slice(body: &[u8], source: &Url, mode: Mode) -> Result<Self, FhirError> {
        let Read {
            resource: bundle,
            issues,
        } = model::read::<Bundle>(body, source, mode)?;
        let mut page = SearchPage {
            matches: Vec::with_capacity(bundle.entry.len()),
            included: Vec::new(),
            outcomes: Vec::new(),
            total: bundle.total.as_ref().and_then(|t| t.value()).copied(),
            next: bundle.link_url("next").map(str::to_owned),
            self_link: bundle.link_url("self").map(str::to_owned),
            issues,
        };
        for entry in bundle.entry {
            let Some(resource) = entry.resource else { continue };
            let mode = entry
                .search
                .as_ref()
                .and_then(|s| s.mode.as_ref())
                .and_then(|m| m.as_str());
            let resource = match mode {
                Some("match") | None => match R::from_resource(resource) {
                    Ok(matched) => {
                        page.matches.push(matched);
                        continue;
                    }
                    Err(other) => other,
                },
                _ => resource,
            };
            match OperationOutcome::from_resource(resource) {
                Ok(outcome) => page.outcomes.push(outcome),
                Err(other) => page.included.push(other),
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
    use crate::r4::Observation;

    #[test]
    fn a_page_is_typed_with_includes_outcomes_and_links() {
        let body = br#"{"resourceType":"Bundle","type":"searchset","total":"2",
            "link":[{"relation":"self","url":"http://x/fhir/Observation"},{"relation":"next","url":"http://x/fhir/Observation?page=2"}],
            "entry":[
              {"resource":{"status":"final","code":{"text":"t"},"resourceType":"Observation","id":"o1"},"search":{"mode":"match"}},
              {"resource":{"resourceType":"Patient","id":"p1"},"search":{"mode":"include"}},
              {"resource":{"resourceType":"OperationOutcome","issue":[{"severity":"warning","code":"informational"}]}},
              {"fullUrl":"http://x/fhir/Observation/o2","resource":{"resourceType":"Observation","id":"o2","status":"final","code":{"text":"u"}}}
            ]}"#;
        let source = Url::parse("http://x/fhir/Observation").unwrap();
        let page = SearchPage::<Observation>::from_slice(body, &source, Mode::Tolerant).unwrap();
        assert_eq!(page.matches.len(), 2);
        assert_eq!(page.included.len(), 1);
        assert_eq!(page.outcomes.len(), 1);
        assert_eq!(page.total, Some(2), "a total sent as a string is read");
        assert_eq!(page.next.as_deref(), Some("http://x/fhir/Observation?page=2"));
        assert_eq!(page.self_link.as_deref(), Some("http://x/fhir/Observation"));
    }

    #[test]
    fn one_broken_entry_does_not_fail_the_page_unless_reading_strictly() {
        let body = br#"{"resourceType":"Bundle","type":"searchset","entry":[
              {"resource":{"resourceType":"Observation","id":"a","status":"final","code":{"text":"Pulse"},"valueQuantity":{"value":72,"unit":"/min"}},"search":{"mode":"match"}},
              {"resource":{"resourceType":"Observation","id":"b","status":"final","code":{"text":"Pulse"},"valueQuantity":{"value":"high","unit":"/min"}},"search":{"mode":"match"}}
            ]}"#;
        let source = Url::parse("http://x/fhir/Observation").unwrap();
        let page = SearchPage::<Observation>::from_slice(body, &source, Mode::Tolerant).unwrap();
        let ids: Vec<_> = page
            .matches
            .iter()
            .map(|o| o.id.clone().unwrap_or_default())
            .collect();
        assert_eq!(ids, ["a", "b"]);
        let paths: Vec<_> = page.issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(paths, ["Bundle.entry[1].resource.valueQuantity.value"]);
        // The unreadable value is kept as received, so writing the resource back loses nothing.
        let written = crate::r4::to_string(&page.matches[1]);
        assert!(written.contains(r#""value":"high""#), "{written}");

        match SearchPage::<Observation>::from_slice(body, &source, Mode::Strict) {
            Err(FhirError::InvalidBody { path, .. }) => {
                assert_eq!(path, "Bundle.entry[1].resource.valueQuantity.value")
            }
            other => panic!("expected InvalidBody, got {other:?}"),
        }
        let not_a_bundle = br#"{"resourceType":"Patient","id":"p"}"#;
        assert!(matches!(
            SearchPage::<Observation>::from_slice(not_a_bundle, &source, Mode::Tolerant),
            Err(FhirError::UnexpectedResourceType { .. })
        ));
    }

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
