//! Bundles the server answers with: searchset pages (with `self` / `next` / `previous` links and `total`) and
//! histories. Stored resources are spliced in as raw JSON, never parsed again.

use super::limits::MAX_RESPONSE_BYTES;
use crate::store::ResourceRow;
use serde::Serialize;
use serde_json::value::RawValue;

/// Where a page sits in its search.
pub(crate) struct Page<'a> {
    /// The FHIR base.
    pub base: &'a str,
    /// The path after the base (`Observation`, `Patient/1/$everything`).
    pub path: String,
    /// The parameters that define the search.
    pub link_params: &'a [(String, String)],
    /// Page size.
    pub count: usize,
    /// This page's offset.
    pub offset: usize,
    /// All matches.
    pub total: usize,
}

impl Page<'_> {
    fn url(&self, offset: usize) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.link_params {
            query.append_pair(k, v);
        }
        query.append_pair("_count", &self.count.to_string());
        if offset > 0 {
            query.append_pair("_offset", &offset.to_string());
        }
        format!("{}/{}?{}", self.base, self.path, query.finish())
    }
}

#[derive(Serialize)]
struct Link {
    relation: &'static str,
    url: String,
}

#[derive(Serialize)]
struct SearchInfo {
    mode: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry<'a> {
    full_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    search: Option<SearchInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<serde_json::Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Bundle<'a> {
    resource_type: &'static str,
    id: String,
    meta: serde_json::Value,
    #[serde(rename = "type")]
    kind: &'static str,
    total: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    link: Vec<Link>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    entry: Vec<Entry<'a>>,
}

fn raw(row: &ResourceRow) -> Option<Box<RawValue>> {
    row.json
        .as_ref()
        .and_then(|j| RawValue::from_string(j.clone()).ok())
}

fn meta() -> serde_json::Value {
    serde_json::json!({ "lastUpdated": crate::store::normalize::instant_text(chrono::Utc::now()) })
}

/// How many of `rows`, from the first, fit in `budget` bytes of resource text (at least one when `at_least_one`,
/// so a page always moves forward).
fn fitting(rows: &[ResourceRow], budget: &mut usize, at_least_one: bool) -> usize {
    let mut kept = 0;
    for row in rows {
        let size = row.json.as_ref().map_or(0, String::len) + 256;
        if size > *budget && !(at_least_one && kept == 0) {
            break;
        }
        *budget = budget.saturating_sub(size);
        kept += 1;
    }
    kept
}

/// A searchset Bundle: `matches` (mode `match`) then `included` (mode `include`). A page whose resources would
/// pass [`MAX_RESPONSE_BYTES`] is cut short: it holds the matches that fit (at least one), and its `next` link
/// continues right after them; includes that do not fit are left out.
pub(crate) fn searchset(page: &Page<'_>, matches: &[ResourceRow], included: &[ResourceRow]) -> String {
    let mut budget = MAX_RESPONSE_BYTES;
    let shown = fitting(matches, &mut budget, true);
    let (matches, included) = (
        &matches[..shown],
        &included[..fitting(included, &mut budget, false)],
    );
    let raws: Vec<(Option<Box<RawValue>>, &ResourceRow, &'static str)> = matches
        .iter()
        .map(|r| (raw(r), r, "match"))
        .chain(included.iter().map(|r| (raw(r), r, "include")))
        .collect();
    // A page cut short for size moves on by what it showed, not by `_count`.
    let step = if shown < page.count && page.offset + shown < page.total {
        shown
    } else {
        page.count
    };
    let mut link = vec![Link {
        relation: "self",
        url: page.url(page.offset),
    }];
    if page.offset + step < page.total && step > 0 {
        link.push(Link {
            relation: "next",
            url: page.url(page.offset + step),
        });
    }
    if page.offset > 0 {
        link.push(Link {
            relation: "previous",
            url: page.url(page.offset.saturating_sub(page.count)),
        });
    }
    let bundle = Bundle {
        resource_type: "Bundle",
        id: uuid::Uuid::new_v4().to_string(),
        meta: meta(),
        kind: "searchset",
        total: page.total,
        link,
        entry: raws
            .iter()
            .map(|(raw, row, mode)| Entry {
                full_url: format!("{}/{}", page.base, row.reference()),
                resource: raw.as_deref(),
                search: Some(SearchInfo { mode }),
                request: None,
                response: None,
            })
            .collect(),
    };
    serde_json::to_string(&bundle).unwrap_or_default()
}

/// A history Bundle of one resource, newest version first.
pub(crate) fn history(base: &str, rows: &[ResourceRow]) -> String {
    let raws: Vec<Option<Box<RawValue>>> = rows.iter().map(raw).collect();
    let bundle = Bundle {
        resource_type: "Bundle",
        id: uuid::Uuid::new_v4().to_string(),
        meta: meta(),
        kind: "history",
        total: rows.len(),
        link: rows
            .first()
            .map(|r| {
                vec![Link {
                    relation: "self",
                    url: format!("{base}/{}/_history", r.reference()),
                }]
            })
            .unwrap_or_default(),
        entry: rows
            .iter()
            .zip(&raws)
            .map(|(row, raw)| {
                let (method, status) = match (row.deleted, row.version) {
                    (true, _) => ("DELETE", "204 No Content"),
                    (false, 1) => ("POST", "201 Created"),
                    (false, _) => ("PUT", "200 OK"),
                };
                Entry {
                    full_url: format!("{base}/{}", row.reference()),
                    resource: raw.as_deref(),
                    search: None,
                    request: Some(serde_json::json!({
                        "method": method,
                        "url": if method == "POST" { row.resource_type.clone() } else { row.reference() }
                    })),
                    response: Some(serde_json::json!({
                        "status": status, "etag": row.etag(), "lastModified": row.last_updated
                    })),
                }
            })
            .collect(),
    };
    serde_json::to_string(&bundle).unwrap_or_default()
}
