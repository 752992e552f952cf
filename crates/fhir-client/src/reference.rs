//! FHIR references: parsed into (base, type, id, version), and resolved locally (contained
//! resources, Bundle entries) before anything goes over the network.

use crate::error::FhirError;
use crate::r4::{Bundle, Resource, TextValue};

/// What a reference string points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceTarget {
    /// `#id`: a resource contained in the referring resource (`#` alone is the container itself).
    Contained(String),
    /// `urn:uuid:…` / `urn:oid:…`: an entry of the same Bundle.
    Urn(String),
    /// `Type/id[/_history/vid]`, relative or absolute.
    Literal(LiteralReference),
}

/// A literal reference, `[base/]Type/id[/_history/version]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiteralReference {
    /// The server base for absolute references (`https://ehr.example/fhir`), `None` when relative.
    pub base: Option<String>,
    /// The resource type, e.g. `Patient`.
    pub resource_type: String,
    /// The logical id.
    pub id: String,
    /// The version id, for `…/_history/vid` references.
    pub version: Option<String>,
}

impl LiteralReference {
    /// `Type/id` (without base and version).
    pub fn relative(&self) -> String {
        format!("{}/{}", self.resource_type, self.id)
    }
}

/// Parse a reference string.
///
/// ```
/// use fhir_client::reference::{parse_reference, ReferenceTarget};
///
/// let ReferenceTarget::Literal(r) = parse_reference("https://ehr.example/fhir/Patient/123/_history/2")? else {
///     unreachable!()
/// };
/// assert_eq!(r.base.as_deref(), Some("https://ehr.example/fhir"));
/// assert_eq!((r.resource_type.as_str(), r.id.as_str(), r.version.as_deref()), ("Patient", "123", Some("2")));
/// # Ok::<(), fhir_client::FhirError>(())
/// ```
pub fn parse_reference(reference: &str) -> Result<ReferenceTarget, FhirError> {
    let fail = |reason: &str| FhirError::Reference {
        reference: reference.to_owned(),
        reason: reason.to_owned(),
    };
    let text = reference.trim();
    if let Some(id) = text.strip_prefix('#') {
        return Ok(ReferenceTarget::Contained(id.to_owned()));
    }
    if text.starts_with("urn:uuid:") || text.starts_with("urn:oid:") {
        return Ok(ReferenceTarget::Urn(text.to_owned()));
    }
    if text.contains('?') {
        return Err(fail(
            "it is a conditional (search) reference, which only a server can resolve",
        ));
    }
    let (base, path) = match text.find("://") {
        Some(scheme_end) => {
            let after_host = text[scheme_end + 3..].find('/').map(|i| i + scheme_end + 3);
            match after_host {
                Some(i) => (Some(&text[..i]), &text[i + 1..]),
                None => return Err(fail("the URL has no resource path")),
            }
        }
        None => (None, text),
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (type_at, version) = match segments.as_slice() {
        [.., _, _, "_history", version] => (segments.len() - 4, Some((*version).to_owned())),
        [.., _, _] => (segments.len() - 2, None),
        _ => return Err(fail("it is not of the form Type/id")),
    };
    let (resource_type, id) = (segments[type_at], segments[type_at + 1]);
    if !is_resource_type(resource_type) {
        return Err(fail("the part before the id is not a resource type"));
    }
    if !is_id(id) || version.as_deref().is_some_and(|v| !is_id(v)) {
        return Err(fail(
            "the id may only hold letters, digits, '-' and '.' (at most 64)",
        ));
    }
    let base = match base {
        Some(origin) => {
            let prefix = segments[..type_at].join("/");
            Some(if prefix.is_empty() {
                origin.to_owned()
            } else {
                format!("{origin}/{prefix}")
            })
        }
        None if type_at > 0 => return Err(fail("a relative reference must start with the resource type")),
        None => None,
    };
    Ok(ReferenceTarget::Literal(LiteralReference {
        base,
        resource_type: resource_type.to_owned(),
        id: id.to_owned(),
        version,
    }))
}

/// Whether `s` looks like a FHIR resource type name (`Observation`): a capital letter, then letters and digits.
pub(crate) fn is_resource_type(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// FHIR `id`: `[A-Za-z0-9\-\.]{1,64}`.
pub(crate) fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// The resource with id `id` among `contained` (pass the referring resource's `contained`).
pub fn find_contained(contained: &[Resource], id: &str) -> Option<Resource> {
    contained.iter().find(|r| r.id() == Some(id)).cloned()
}

/// Resolve `reference` among the entries of `bundle`, as the FHIR spec's Bundle rules say:
/// absolute URLs and URNs match an entry's `fullUrl`; a relative reference is made absolute
/// against the referring entry's `fullUrl` (`from_full_url`), or else matched on type and id.
pub fn find_in_bundle(bundle: &Bundle, reference: &str, from_full_url: Option<&str>) -> Option<Resource> {
    let wanted: Vec<String> = match parse_reference(reference).ok()? {
        ReferenceTarget::Contained(_) => return None,
        ReferenceTarget::Urn(urn) => vec![urn],
        ReferenceTarget::Literal(literal) => {
            let base = literal.base.clone().or_else(|| {
                let from = from_full_url?;
                match parse_reference(from).ok()? {
                    ReferenceTarget::Literal(LiteralReference { base, .. }) => base,
                    _ => None,
                }
            });
            let mut urls = vec![match &base {
                Some(base) => format!("{base}/{}", literal.relative()),
                None => literal.relative(),
            }];
            if let Some(version) = &literal.version {
                urls.push(format!("{}/_history/{version}", urls[0]));
            }
            urls
        }
    };
    let relative_only = !reference.contains(':') && from_full_url.is_none_or(|f| f.starts_with("urn:"));
    bundle
        .entry
        .iter()
        .filter_map(|entry| Some((entry.full_url.text(), entry.resource.as_ref()?)))
        .find(|(full_url, resource)| {
            if full_url.is_some_and(|u| wanted.iter().any(|w| w == u)) {
                return true;
            }
            // A relative reference in a Bundle without a RESTful base: match on type and id.
            relative_only && {
                let ty = resource.resource_type();
                let id = resource.id().unwrap_or_default();
                wanted.first().is_some_and(|w| *w == format!("{ty}/{id}"))
            }
        })
        .map(|(_, resource)| resource.clone())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn literal(s: &str) -> LiteralReference {
        match parse_reference(s).unwrap() {
            ReferenceTarget::Literal(l) => l,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn relative_absolute_and_versioned_references_parse() {
        let r = literal("Patient/example");
        assert_eq!(
            (r.base, r.resource_type.as_str(), r.id.as_str(), r.version),
            (None, "Patient", "example", None)
        );
        let r = literal("http://ehr.example/base/fhir/Observation/o-1/_history/3");
        assert_eq!(r.base.as_deref(), Some("http://ehr.example/base/fhir"));
        assert_eq!(r.version.as_deref(), Some("3"));
        let r = literal("https://ehr.example/Patient/1");
        assert_eq!(r.base.as_deref(), Some("https://ehr.example"));
        assert_eq!(
            parse_reference("#med1").unwrap(),
            ReferenceTarget::Contained("med1".into())
        );
        assert!(matches!(
            parse_reference("urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a").unwrap(),
            ReferenceTarget::Urn(_)
        ));
    }

    #[test]
    fn malformed_references_are_errors_not_panics() {
        for bad in [
            "",
            "Patient",
            "patient/1",
            "Patient/../../x",
            "Patient?name=x",
            "http://h",
            "a/Patient/1",
            "Patient/a b",
        ] {
            assert!(parse_reference(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn bundle_references_resolve_by_full_url_and_by_type_and_id() {
        let bundle: Bundle = crate::from_json(json!({
            "resourceType": "Bundle", "type": "collection",
            "entry": [
                {"fullUrl": "http://ehr.example/fhir/Patient/p1", "resource": {"resourceType": "Patient", "id": "p1"}},
                {"fullUrl": "urn:uuid:0b1c", "resource": {"resourceType": "Practitioner", "id": "x"}}
            ]
        }));
        let from = Some("http://ehr.example/fhir/Observation/o1");
        assert!(matches!(
            find_in_bundle(&bundle, "Patient/p1", from),
            Some(Resource::Patient(_))
        ));
        assert!(matches!(
            find_in_bundle(&bundle, "http://ehr.example/fhir/Patient/p1", None),
            Some(Resource::Patient(_))
        ));
        assert!(matches!(
            find_in_bundle(&bundle, "urn:uuid:0b1c", None),
            Some(Resource::Practitioner(_))
        ));
        assert!(
            find_in_bundle(
                &bundle,
                "Patient/p1",
                Some("http://other.example/fhir/Observation/o1")
            )
            .is_none()
        );
        assert!(matches!(
            find_in_bundle(&bundle, "Patient/p1", None),
            Some(Resource::Patient(_))
        ));
        assert!(find_in_bundle(&bundle, "Patient/p2", None).is_none());
    }

    #[test]
    fn contained_resources_are_found_by_id() {
        let contained: Vec<Resource> = vec![crate::from_json(
            json!({"resourceType": "Medication", "id": "med1"}),
        )];
        assert!(matches!(
            find_contained(&contained, "med1"),
            Some(Resource::Medication(_))
        ));
        assert!(find_contained(&contained, "med2").is_none());
    }
}
