//! Search results as typed pages, and the rule for which `next` links may be followed.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;
use url::Url;

use crate::error::FhirError;
use crate::r4::resources::{OperationOutcome, Resource};
use crate::request::{ResourceTypeTag, body_excerpt};

/// A searchset Bundle as read straight from the response bytes: only what paging needs is built,
/// each entry's resource stays a slice of the body until it is parsed into its own type (one pass
/// per resource, no intermediate JSON tree).
#[derive(Deserialize)]
struct RawBundle<'a> {
    #[serde(rename = "resourceType", borrow)]
    resource_type: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    link: Vec<RawLink<'a>>,
    #[serde(default)]
    total: Option<Value>,
    #[serde(default, borrow)]
    entry: Vec<RawEntry<'a>>,
}

#[derive(Deserialize)]
struct RawLink<'a> {
    #[serde(borrow)]
    relation: Option<Cow<'a, str>>,
    #[serde(borrow)]
    url: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawEntry<'a> {
    #[serde(borrow)]
    resource: Option<&'a RawValue>,
    #[serde(borrow)]
    search: Option<RawSearch<'a>>,
}

#[derive(Deserialize)]
struct RawSearch<'a> {
    #[serde(borrow)]
    mode: Option<Cow<'a, str>>,
}

impl<'a> RawBundle<'a> {
    /// Parse `body`, which must be a Bundle.
    fn parse(body: &'a [u8], source: &Url) -> Result<Self, FhirError> {
        let bundle: RawBundle<'a> = serde_json::from_slice(body).map_err(|e| FhirError::InvalidBody {
            url: source.to_string(),
            expected: String::from("Bundle"),
            path: String::from("."),
            message: e.to_string(),
            body: body_excerpt(body),
        })?;
        match bundle.resource_type.as_deref() {
            Some("Bundle") => Ok(bundle),
            found => Err(FhirError::UnexpectedResourceType {
                url: source.to_string(),
                expected: String::from("Bundle"),
                found: found.unwrap_or("JSON document without resourceType").to_owned(),
            }),
        }
    }

    fn link(&self, relation: &str) -> Option<String> {
        self.link
            .iter()
            .find(|l| l.relation.as_deref() == Some(relation))
            .and_then(|l| l.url.as_deref())
            .map(str::to_owned)
    }

    fn total(&self) -> Option<u32> {
        match self.total.as_ref()? {
            Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            // Some servers send numbers as strings.
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

/// Parse one entry's resource (a slice of the Bundle's bytes) as `T`, naming the JSON path of the
/// first problem when it is not valid.
fn parse_entry<T: DeserializeOwned>(
    raw: &RawValue,
    index: usize,
    ty: &str,
    source: &Url,
) -> Result<T, FhirError> {
    if let Ok(value) = serde_json::from_str(raw.get()) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    let error = match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    Err(FhirError::InvalidBody {
        url: source.to_string(),
        expected: ty.to_owned(),
        path: format!("entry[{index}].resource.{}", error.path()),
        message: error.inner().to_string(),
        body: String::new(),
    })
}

/// The value of the top-level `"resourceType"` member of a JSON object's text, found by a byte scan
/// (strings and nesting tracked, nothing built). `None` when the member is absent or is not a plain
/// string without escapes (the caller then asks serde).
fn scan_resource_type(text: &str) -> Option<&str> {
    const KEY: &[u8] = b"\"resourceType\"";
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                if depth == 1 && bytes[i..].starts_with(KEY) {
                    let rest = bytes[i + KEY.len()..]
                        .iter()
                        .position(|b| !b" \t\r\n:".contains(b))?;
                    let start = i + KEY.len() + rest;
                    if bytes.get(start) != Some(&b'"') {
                        return None;
                    }
                    let len = bytes[start + 1..].iter().position(|&b| b == b'"' || b == b'\\')?;
                    return (bytes[start + 1 + len] == b'"').then(|| &text[start + 1..start + 1 + len]);
                }
                // Skip the string, escapes included.
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The `resourceType` of one entry's resource.
fn entry_type<'a>(raw: &'a RawValue, index: usize, source: &Url) -> Result<Cow<'a, str>, FhirError> {
    if let Some(found) = scan_resource_type(raw.get()) {
        return Ok(Cow::Borrowed(found));
    }
    serde_json::from_str::<ResourceTypeTag<'a>>(raw.get())
        .map_err(|e| e.to_string())
        .and_then(|tag| {
            tag.resource_type
                .ok_or_else(|| String::from("the resource has no resourceType"))
        })
        .map_err(|message| FhirError::InvalidBody {
            url: source.to_string(),
            expected: String::from("FHIR resource"),
            path: format!("entry[{index}].resource"),
            message,
            body: String::new(),
        })
}

/// Every resource of a Bundle (`Patient/$everything`, a history or a transaction response), typed,
/// and the Bundle's `next` link.
pub(crate) fn resources_from_slice(
    body: &[u8],
    source: &Url,
) -> Result<(Vec<Resource>, Option<String>), FhirError> {
    let bundle = RawBundle::parse(body, source)?;
    let next = bundle.link("next");
    let resources = bundle
        .entry
        .iter()
        .enumerate()
        .filter_map(|(i, entry)| entry.resource.map(|raw| (i, raw)))
        .map(|(i, raw)| parse_entry::<Resource>(raw, i, "FHIR resource", source))
        .collect::<Result<_, _>>()?;
    Ok((resources, next))
}

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
    /// Parse a searchset Bundle straight from the response bytes: typed matches, includes and
    /// outcomes, without building the Bundle as JSON first. `type_name` is `R`'s resource type.
    /// An entry that is not valid FHIR is an error (naming its JSON path), never silently dropped.
    pub fn from_slice(body: &[u8], type_name: &str, source: &Url) -> Result<Self, FhirError> {
        let bundle = RawBundle::parse(body, source)?;
        let mut page = SearchPage {
            matches: Vec::with_capacity(bundle.entry.len()),
            included: Vec::new(),
            outcomes: Vec::new(),
            total: bundle.total(),
            next: bundle.link("next"),
            self_link: bundle.link("self"),
        };
        for (i, entry) in bundle.entry.iter().enumerate() {
            let Some(raw) = entry.resource else { continue };
            let ty = entry_type(raw, i, source)?;
            let mode = entry.search.as_ref().and_then(|s| s.mode.as_deref());
            match mode {
                Some("outcome") => page.outcomes.push(parse_entry(raw, i, &ty, source)?),
                Some("include") => page.included.push(parse_entry(raw, i, &ty, source)?),
                Some("match") | None if ty == type_name => {
                    page.matches.push(parse_entry(raw, i, &ty, source)?)
                }
                _ if ty == "OperationOutcome" => page.outcomes.push(parse_entry(raw, i, &ty, source)?),
                _ => page.included.push(parse_entry(raw, i, &ty, source)?),
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
    fn the_top_level_resource_type_is_found_by_scanning() {
        let cases = [
            (r#"{"resourceType":"Patient","id":"p"}"#, Some("Patient")),
            (
                r#"{ "id" : "x", "resourceType" : "Observation" }"#,
                Some("Observation"),
            ),
            // Nested resources and strings that look like the key do not count.
            (
                r#"{"contained":[{"resourceType":"Medication"}],"note":[{"text":"\"resourceType\":\"X\""}],"resourceType":"MedicationRequest"}"#,
                Some("MedicationRequest"),
            ),
            (r#"{"a":{"resourceType":"Inner"}}"#, None),
            (r#"{"resourceType":5}"#, None),
            (r#"{"resourceType":"Pat\u0069ent"}"#, None),
            (r#"{"resourceType":"#, None),
        ];
        for (text, expected) in cases {
            assert_eq!(scan_resource_type(text), expected, "{text}");
        }
    }

    #[test]
    fn a_page_is_typed_straight_from_the_bytes() {
        let body = br#"{"resourceType":"Bundle","type":"searchset","total":"2",
            "link":[{"relation":"self","url":"http://x/fhir/Observation"},{"relation":"next","url":"http://x/fhir/Observation?page=2"}],
            "entry":[
              {"resource":{"status":"final","code":{"text":"t"},"resourceType":"Observation","id":"o1"},"search":{"mode":"match"}},
              {"resource":{"resourceType":"Patient","id":"p1"},"search":{"mode":"include"}},
              {"resource":{"resourceType":"OperationOutcome","issue":[{"severity":"warning","code":"informational"}]}},
              {"fullUrl":"http://x/fhir/Observation/o2","resource":{"resourceType":"Observation","id":"o2","status":"final","code":{"text":"u"}}}
            ]}"#;
        let source = Url::parse("http://x/fhir/Observation").unwrap();
        let page = SearchPage::<crate::r4::resources::Observation>::from_slice(body, "Observation", &source)
            .unwrap();
        assert_eq!(page.matches.len(), 2);
        assert_eq!(page.included.len(), 1);
        assert_eq!(page.outcomes.len(), 1);
        assert_eq!(page.total, Some(2));
        assert_eq!(page.next.as_deref(), Some("http://x/fhir/Observation?page=2"));
        assert_eq!(page.self_link.as_deref(), Some("http://x/fhir/Observation"));

        let bad = br#"{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation","status":"final","code":{"text":"t"},"valueQuantity":{"value":"x"}}}]}"#;
        match SearchPage::<crate::r4::resources::Observation>::from_slice(bad, "Observation", &source) {
            Err(FhirError::InvalidBody { path, .. }) => {
                assert!(path.starts_with("entry[0].resource"), "{path}")
            }
            other => panic!("expected InvalidBody, got {other:?}"),
        }
        let not_a_bundle = br#"{"resourceType":"Patient","id":"p"}"#;
        assert!(matches!(
            SearchPage::<crate::r4::resources::Observation>::from_slice(not_a_bundle, "Observation", &source),
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
