//! `--import DIR`: loading FHIR data from files — Bundles of type transaction, batch, collection or searchset
//! (Synthea's output is the common case), or single resources.
//!
//! Each file is loaded in one database transaction. `fullUrl`s such as `urn:uuid:…` are rewritten to the stored
//! `Type/id` wherever the file refers to them, and conditional references (`Practitioner?identifier=…`, which
//! Synthea uses for its practitioner and organization files) are resolved against what is already stored — so load
//! those files first: files named `hospitalInformation*` and `practitionerInformation*` are taken before the
//! others. A file already imported (same content) is skipped, so restarting with the same `--import` is harmless.

use crate::error::SandboxError;
use crate::store::search::{self, Restriction, SearchRequest};
use crate::store::{Store, index, put_resource};
use rusqlite::{Connection, OptionalExtension};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What an import loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Files loaded.
    pub files: usize,
    /// Files skipped because the same content was imported before.
    pub skipped: usize,
    /// Resources created or updated.
    pub resources: usize,
}

impl Store {
    /// Imports every `.json` file under `path` (a directory, searched recursively, or one file).
    pub fn import_dir(&self, path: &Path) -> Result<ImportReport, SandboxError> {
        let mut files = Vec::new();
        collect_files(path, &mut files)?;
        files.sort_by_key(|f| {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let shared =
                name.starts_with("hospitalInformation") || name.starts_with("practitionerInformation");
            (!shared, f.clone())
        });
        let mut report = ImportReport::default();
        for file in files {
            let text = std::fs::read(&file).map_err(|source| SandboxError::Io {
                path: file.clone(),
                source,
            })?;
            let digest = format!("import:{:x}", Sha256::digest(&text));
            let loaded = self.write(|tx| {
                let seen: Option<String> = tx
                    .query_row("SELECT value FROM fhir_meta WHERE key = ?1", [&digest], |r| {
                        r.get(0)
                    })
                    .optional()?;
                if seen.is_some() {
                    return Ok(None);
                }
                let value: Value = serde_json::from_slice(&text).map_err(|e| SandboxError::Import {
                    path: file.clone(),
                    reason: format!("it is not JSON ({e})"),
                })?;
                let count = import_value(tx, value).map_err(|e| match e {
                    SandboxError::InvalidResource { reason } => SandboxError::Import {
                        path: file.clone(),
                        reason,
                    },
                    other => other,
                })?;
                tx.execute(
                    "INSERT INTO fhir_meta (key, value) VALUES (?1, ?2)",
                    [&digest, &file.display().to_string()],
                )?;
                Ok::<_, SandboxError>(Some(count))
            })?;
            match loaded {
                Some(count) => {
                    report.files += 1;
                    report.resources += count;
                }
                None => report.skipped += 1,
            }
        }
        tracing::info!(path = %path.display(), files = report.files, skipped = report.skipped, resources = report.resources, "imported FHIR data");
        Ok(report)
    }

    /// Imports one Bundle or resource given as JSON; returns how many resources were stored.
    pub fn import_value(&self, value: Value) -> Result<usize, SandboxError> {
        self.write(|tx| import_value(tx, value))
    }
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), SandboxError> {
    let meta = std::fs::metadata(path).map_err(|source| SandboxError::Io {
        path: path.to_owned(),
        source,
    })?;
    if meta.is_file() {
        out.push(path.to_owned());
        return Ok(());
    }
    let entries = std::fs::read_dir(path).map_err(|source| SandboxError::Io {
        path: path.to_owned(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| SandboxError::Io {
            path: path.to_owned(),
            source,
        })?;
        let p = entry.path();
        if p.is_dir() {
            collect_files(&p, out)?;
        } else if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
            out.push(p);
        }
    }
    Ok(())
}

fn import_value(conn: &Connection, value: Value) -> Result<usize, SandboxError> {
    let now = index::instant_text(chrono::Utc::now());
    if value.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        let resource = with_id(value, None)?;
        put_resource(conn, resource, &now)?;
        return Ok(1);
    }
    let kind = value.get("type").and_then(Value::as_str).unwrap_or_default();
    if !matches!(
        kind,
        "transaction" | "batch" | "collection" | "searchset" | "document" | "message" | "history"
    ) {
        return Err(SandboxError::InvalidResource {
            reason: format!("it is a Bundle of unknown type `{kind}`"),
        });
    }
    let entries = value
        .get("entry")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // First pass: decide every resource's id, so references between entries can be rewritten.
    let mut prepared = Vec::new();
    let mut full_urls = HashMap::new();
    for entry in entries {
        let method = entry
            .pointer("/request/method")
            .and_then(Value::as_str)
            .unwrap_or("PUT")
            .to_owned();
        let url = entry
            .pointer("/request/url")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if method == "DELETE" {
            prepared.push((method, url, None));
            continue;
        }
        let Some(resource) = entry.get("resource").cloned() else {
            continue;
        };
        let full_url = entry.get("fullUrl").and_then(Value::as_str);
        let hint = full_url
            .and_then(|u| u.strip_prefix("urn:uuid:"))
            .filter(|id| index::is_valid_id(id));
        let resource = with_id(resource, hint)?;
        if let (Some(full_url), Some(t), Some(id)) = (
            full_url,
            resource.get("resourceType").and_then(Value::as_str),
            resource.get("id").and_then(Value::as_str),
        ) {
            full_urls.insert(full_url.to_owned(), format!("{t}/{id}"));
        }
        prepared.push((method, url, Some(resource)));
    }
    let mut count = 0;
    for (method, url, resource) in prepared {
        match resource {
            Some(mut resource) => {
                rewrite_references(&mut resource, &full_urls);
                resolve_conditional_references(conn, &mut resource)?;
                put_resource(conn, resource, &now)?;
                count += 1;
            }
            None if method == "DELETE" => {
                if let Some((t, id)) = index::reference_target(&url) {
                    crate::store::delete_resource(conn, t, id, &now)?;
                }
            }
            None => {}
        }
    }
    Ok(count)
}

/// Gives a resource an id: its own, else the `urn:uuid` of its entry, else a new UUID.
fn with_id(mut resource: Value, hint: Option<&str>) -> Result<Value, SandboxError> {
    let Some(map) = resource.as_object_mut() else {
        return Err(SandboxError::InvalidResource {
            reason: "an entry's resource is not a JSON object".into(),
        });
    };
    let has_id = map
        .get("id")
        .and_then(Value::as_str)
        .is_some_and(index::is_valid_id);
    if !has_id {
        let id = hint
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        map.insert("id".into(), Value::String(id));
    }
    Ok(resource)
}

/// Replaces every `reference` whose value is a key of `map` (a `fullUrl`) by the mapped `Type/id`.
pub(crate) fn rewrite_references(value: &mut Value, map: &HashMap<String, String>) {
    match value {
        Value::Object(obj) => {
            for (key, v) in obj.iter_mut() {
                if key == "reference"
                    && let Value::String(reference) = v
                    && let Some(target) = map.get(reference.as_str())
                {
                    *reference = target.clone();
                } else {
                    rewrite_references(v, map);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rewrite_references(i, map)),
        _ => {}
    }
}

/// Resolves `Type?param=value` references against the store; unresolvable ones are left as they are.
fn resolve_conditional_references(conn: &Connection, value: &mut Value) -> Result<(), SandboxError> {
    match value {
        Value::Object(obj) => {
            for (key, v) in obj.iter_mut() {
                if key == "reference"
                    && let Value::String(reference) = v
                    && let Some((t, query)) = reference.split_once('?')
                    && index::is_known_type(t)
                {
                    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
                        .into_owned()
                        .collect();
                    let Ok(request) = SearchRequest::parse(t, &pairs) else {
                        continue;
                    };
                    let result = search::execute(conn, &request, &Restriction::none())?;
                    if let [only] = result.matches.as_slice() {
                        *reference = only.reference();
                    }
                } else {
                    resolve_conditional_references(conn, v)?;
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                resolve_conditional_references(conn, item)?;
            }
        }
        _ => {}
    }
    Ok(())
}
