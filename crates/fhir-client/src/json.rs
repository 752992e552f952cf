//! Untyped reads: a FHIR answer as the JSON the server sent (`serde_json::Value`), for tools that show or
//! store resources as they are (the `smart-fhir get` and `search` commands) rather than work with them.
//!
//! Requests go through the same machinery as the typed ones (token, refresh on 401, retries, errors with
//! the server's OperationOutcome), and paths and `next` links are refused unless they lie under the base,
//! so the access token never leaves this server.

use futures::stream::{self, Stream};
use reqwest::Method;
use serde_json::Value;
use url::Url;

use crate::FhirClient;
use crate::error::FhirError;
use crate::paging::is_under_base;
use crate::request::{Call, Interaction, body_excerpt};

impl FhirClient {
    /// `GET` `path` (relative to the base, e.g. `Patient/123`, `Observation?patient=123`, `metadata`) and
    /// return the JSON body as sent. An absolute URL is accepted only under the base.
    pub async fn get_json(&self, path: &str) -> Result<Value, FhirError> {
        let url = self.url_under_base(path)?;
        self.get_json_at(url, "read").await
    }

    /// A search of `resource_type` with `params` (name/value pairs, sent as given), page by page: each
    /// item is one searchset Bundle as sent, the first from `GET [base]/[type]?params`, the next ones
    /// from each Bundle's `next` link (refused with [`FhirError::ForeignUrl`] unless under the base).
    pub fn search_json_pages(
        &self,
        resource_type: &str,
        params: &[(String, String)],
    ) -> impl Stream<Item = Result<Value, FhirError>> + Send + 'static {
        let first = self.url_under_base(resource_type).map(|mut url| {
            if !params.is_empty() {
                url.query_pairs_mut().extend_pairs(params);
            }
            url
        });
        let client = self.clone();
        stream::unfold(Some(first), move |next| {
            let client = client.clone();
            async move {
                let url = match next? {
                    Ok(url) => url,
                    Err(e) => return Some((Err(e), None)),
                };
                match client.get_json_at(url, "search").await {
                    Ok(bundle) => {
                        let following = next_link(&bundle).map(|link| client.url_under_base(link));
                        Some((Ok(bundle), following))
                    }
                    Err(e) => Some((Err(e), None)),
                }
            }
        })
    }

    /// `path` resolved against the base, refused unless it lies under it.
    fn url_under_base(&self, path: &str) -> Result<Url, FhirError> {
        let base = self.base();
        let url = base
            .join(path.trim_start_matches('/'))
            .map_err(|e| FhirError::Reference {
                reference: path.to_owned(),
                reason: e.to_string(),
            })?;
        if is_under_base(&url, base) {
            Ok(url)
        } else {
            Err(FhirError::ForeignUrl {
                url: url.to_string(),
                base: base.to_string(),
            })
        }
    }

    async fn get_json_at(&self, url: Url, name: &'static str) -> Result<Value, FhirError> {
        // The first segment after the base, when it names a type (for the 403 message's scope).
        let resource_type = url
            .path()
            .strip_prefix(self.base().path())
            .and_then(|rest| rest.split('/').next())
            .filter(|t| t.starts_with(|c: char| c.is_ascii_uppercase()))
            .map(str::to_owned);
        let answer = self
            .transport()
            .execute(Call {
                method: Method::GET,
                url,
                body: None,
                headers: Vec::new(),
                interaction: Interaction {
                    name,
                    resource_type,
                    permission: if name == "search" { "s" } else { "r" },
                    idempotent: true,
                },
            })
            .await?;
        serde_json::from_slice(&answer.body).map_err(|e| FhirError::InvalidBody {
            url: answer.url.to_string(),
            expected: String::from("JSON"),
            path: String::from("."),
            message: e.to_string(),
            body: body_excerpt(&answer.body),
        })
    }
}

/// The `next` link of a Bundle as JSON.
fn next_link(bundle: &Value) -> Option<&str> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|link| link["relation"] == "next")?
        .get("url")?
        .as_str()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_outside_the_base_are_refused_before_any_request() {
        let client = FhirClient::open("http://127.0.0.1:9/fhir").unwrap();
        assert_eq!(
            client.url_under_base("Patient/1").unwrap().as_str(),
            "http://127.0.0.1:9/fhir/Patient/1"
        );
        assert_eq!(
            client.url_under_base("/Patient?name=x").unwrap().as_str(),
            "http://127.0.0.1:9/fhir/Patient?name=x"
        );
        for foreign in [
            "http://elsewhere.example/fhir/Patient",
            "../admin",
            "http://127.0.0.1:9/other",
        ] {
            assert!(
                matches!(client.url_under_base(foreign), Err(FhirError::ForeignUrl { .. })),
                "{foreign}"
            );
        }
    }

    #[test]
    fn the_next_link_is_found_among_the_bundles_links() {
        let bundle = json!({"resourceType": "Bundle", "link": [
            {"relation": "self", "url": "http://x/fhir/Patient"},
            {"relation": "next", "url": "http://x/fhir/Patient?page=2"}
        ]});
        assert_eq!(next_link(&bundle), Some("http://x/fhir/Patient?page=2"));
        assert_eq!(next_link(&json!({"resourceType": "Bundle"})), None);
    }
}
