//! `--import DIR`: loading FHIR data from files — Bundles of type transaction, batch, collection or searchset
//! (Synthea's output is the common case), or single resources.
//!
//! Each file is loaded in one database transaction. `fullUrl`s such as `urn:uuid:…` are rewritten to the stored
//! `Type/id` wherever the file refers to them, and conditional references (`Practitioner?identifier=…`, which
//! Synthea uses for its practitioner and organization files) are resolved against what is already stored — so load
//! those files first: files named `hospitalInformation*` and `practitionerInformation*` are taken before the
//! others. A file already imported (same content) is skipped, so restarting with the same `--import` is harmless.
//!
//! What cannot be imported is skipped, never fatal: a file that is not JSON, JSON that is not a FHIR resource
//! (such as a package's `_package.json`), a server's answer rather than data (`transaction-response`,
//! `batch-response`, `history` Bundles), a resource of a type FHIR R4 does not have; inside a Bundle, an entry
//! that cannot be stored is left out and the rest loaded. Each is named with its reason in
//! [`ImportReport::rejected`], and logged at `warn`; the summary says what was loaded by type.

use crate::error::SandboxError;
use crate::registry;
use crate::store::normalize;
use crate::store::search::{self, Restriction, SearchRequest};
use crate::store::{NumberTexts, Sent, Store, put_resource, put_sent};
use rusqlite::{Connection, OptionalExtension};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

/// What an import loaded, and what it left out and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportReport {
    /// Files loaded (wholly or in part).
    pub files: usize,
    /// Files skipped because the same content was imported before.
    pub skipped: usize,
    /// Resources created or updated.
    pub resources: usize,
    /// Resources created or updated, by resource type.
    pub by_type: BTreeMap<String, usize>,
    /// Files, or entries of files, that could not be imported, with the reason.
    pub rejected: Vec<Rejected>,
}

/// A file, or an entry of a Bundle file, that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The file.
    pub path: PathBuf,
    /// The Bundle entry (0-based), when only that entry was left out.
    pub entry: Option<usize>,
    /// Why, as a sentence fragment ("it is a transaction-response Bundle, …").
    pub reason: String,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.entry {
            Some(i) => write!(f, "{} (entry {i}): {}", self.path.display(), self.reason),
            None => write!(f, "{}: {}", self.path.display(), self.reason),
        }
    }
}

impl fmt::Display for ImportReport {
    /// The one-paragraph summary printed at start: files, resources by type, what was skipped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} file(s) imported, {} resource(s)",
            self.files, self.resources
        )?;
        if !self.by_type.is_empty() {
            let types: Vec<String> = self.by_type.iter().map(|(t, n)| format!("{t} {n}")).collect();
            write!(f, " ({})", types.join(", "))?;
        }
        let rejected_files = self.rejected.iter().filter(|r| r.entry.is_none()).count();
        let rejected_entries = self.rejected.len() - rejected_files;
        write!(
            f,
            "; {} file(s) already imported; {rejected_files} file(s) and {rejected_entries} entr(y/ies) skipped",
            self.skipped
        )?;
        for rejected in &self.rejected {
            write!(f, "\n  skipped {rejected}")?;
        }
        Ok(())
    }
}

/// What one file gave.
enum FileOutcome {
    Loaded {
        by_type: BTreeMap<String, usize>,
        rejected: Vec<(usize, String)>,
    },
    AlreadyImported,
    Rejected(String),
}

impl Store {
    /// Imports every `.json` file under `path` (a directory, searched recursively, or one file). Fails only when
    /// `path` cannot be read or the database fails; files and entries that cannot be imported are reported in
    /// [`ImportReport::rejected`].
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
            match self.import_file(&file)? {
                FileOutcome::Loaded { by_type, rejected } => {
                    report.files += 1;
                    for (t, n) in by_type {
                        report.resources += n;
                        *report.by_type.entry(t).or_default() += n;
                    }
                    for (entry, reason) in rejected {
                        report.rejected.push(Rejected {
                            path: file.clone(),
                            entry: Some(entry),
                            reason,
                        });
                    }
                }
                FileOutcome::AlreadyImported => report.skipped += 1,
                FileOutcome::Rejected(reason) => report.rejected.push(Rejected {
                    path: file.clone(),
                    entry: None,
                    reason,
                }),
            }
        }
        for rejected in &report.rejected {
            tracing::warn!(file = %rejected.path.display(), entry = ?rejected.entry, reason = %rejected.reason, "skipped while importing");
        }
        tracing::info!(path = %path.display(), files = report.files, already_imported = report.skipped, resources = report.resources, by_type = ?report.by_type, rejected = report.rejected.len(), "imported FHIR data");
        Ok(report)
    }

    fn import_file(&self, file: &Path) -> Result<FileOutcome, SandboxError> {
        let text = std::fs::read(file).map_err(|source| SandboxError::Io {
            path: file.to_path_buf(),
            source,
        })?;
        let Sent {
            resource: value,
            numbers,
        } = match Sent::parse(&text) {
            Ok(sent) => sent,
            Err(e) => return Ok(FileOutcome::Rejected(format!("it is not JSON ({e})"))),
        };
        if let Err(reason) = importable(&value) {
            return Ok(FileOutcome::Rejected(reason));
        }
        let digest = format!("import:{:x}", Sha256::digest(&text));
        self.write(|tx| {
            let seen: Option<String> = tx
                .query_row("SELECT value FROM fhir_meta WHERE key = ?1", [&digest], |r| {
                    r.get(0)
                })
                .optional()?;
            if seen.is_some() {
                return Ok(FileOutcome::AlreadyImported);
            }
            let outcome = import_tolerant(tx, value, &numbers)?;
            if outcome.by_type.is_empty() && !outcome.rejected.is_empty() {
                let reasons: Vec<&str> = outcome.rejected.iter().map(|(_, r)| r.as_str()).collect();
                return Ok(FileOutcome::Rejected(format!(
                    "none of its entries could be imported ({})",
                    reasons.join("; ")
                )));
            }
            tx.execute(
                "INSERT INTO fhir_meta (key, value) VALUES (?1, ?2)",
                [&digest, &file.display().to_string()],
            )?;
            Ok::<_, SandboxError>(FileOutcome::Loaded {
                by_type: outcome.by_type,
                rejected: outcome.rejected,
            })
        })
    }

    /// Imports one Bundle or resource given as JSON; returns how many resources were stored. Unlike
    /// [`Store::import_dir`], anything that cannot be imported fails the whole call.
    pub fn import_value(&self, value: Value) -> Result<usize, SandboxError> {
        self.write(|tx| import_value(tx, value))
    }
}

/// Whether a file's JSON is data this importer takes; the reason when it is not.
fn importable(value: &Value) -> Result<(), String> {
    let Some(resource_type) = value.get("resourceType").and_then(Value::as_str) else {
        return Err("it is JSON but not a FHIR resource (it has no `resourceType`)".to_owned());
    };
    if !registry::is_known_type(resource_type) {
        return Err(format!("`{resource_type}` is not a FHIR R4 resource type"));
    }
    if resource_type != "Bundle" {
        return Ok(());
    }
    let kind = value.get("type").and_then(Value::as_str).unwrap_or_default();
    match kind {
        "transaction" | "batch" | "collection" | "searchset" | "document" | "message" => Ok(()),
        "transaction-response" | "batch-response" | "history" => Err(format!(
            "it is a `{kind}` Bundle: a server's answer about other data, not data to import"
        )),
        "" => Err("it is a Bundle without a `type`".to_owned()),
        other => Err(format!("it is a Bundle of unknown type `{other}`")),
    }
}

/// What a tolerant import of one file stored, and which entries it left out.
struct Tolerant {
    by_type: BTreeMap<String, usize>,
    rejected: Vec<(usize, String)>,
}

/// Imports a resource or Bundle (`numbers`: the text of its numbers), leaving out (with a reason) each entry that
/// cannot be stored. Each entry is written under a savepoint, so a failed one leaves nothing behind.
fn import_tolerant(conn: &Connection, value: Value, numbers: &NumberTexts) -> Result<Tolerant, SandboxError> {
    let mut out = Tolerant {
        by_type: BTreeMap::new(),
        rejected: Vec::new(),
    };
    let now = normalize::instant_text(chrono::Utc::now());
    if value.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        let resource_type = value
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let sent = |resource| Sent {
            resource,
            numbers: numbers.clone(),
        };
        match with_id(value, None).and_then(|r| put_sent(conn, sent(r), &now)) {
            Ok(_) => *out.by_type.entry(resource_type).or_default() += 1,
            Err(SandboxError::InvalidResource { reason }) => out.rejected.push((0, reason)),
            Err(e) => return Err(e),
        }
        return Ok(out);
    }
    let (prepared, full_urls) = prepare_entries(&value, &mut out.rejected);
    for (index, method, url, resource) in prepared {
        conn.execute_batch("SAVEPOINT import_entry")?;
        let resource = resource.map(|resource| Sent {
            resource,
            numbers: numbers.within(&format!("/entry/{index}/resource")),
        });
        let result = store_entry(conn, &method, &url, resource, &full_urls, &now);
        match result {
            Ok(Some(resource_type)) => {
                conn.execute_batch("RELEASE import_entry")?;
                *out.by_type.entry(resource_type).or_default() += 1;
            }
            Ok(None) => conn.execute_batch("RELEASE import_entry")?,
            Err(SandboxError::InvalidResource { reason } | SandboxError::InvalidSearch { reason }) => {
                conn.execute_batch("ROLLBACK TO import_entry; RELEASE import_entry")?;
                out.rejected.push((index, reason));
            }
            Err(e) => {
                conn.execute_batch("ROLLBACK TO import_entry; RELEASE import_entry")?;
                return Err(e);
            }
        }
    }
    Ok(out)
}

/// One Bundle entry to store: its position, request method and URL, and the resource with its final id.
type PreparedEntry = (usize, String, String, Option<Value>);

/// First pass over a Bundle: every resource's id decided, so references between entries can be rewritten.
fn prepare_entries(
    bundle: &Value,
    rejected: &mut Vec<(usize, String)>,
) -> (Vec<PreparedEntry>, HashMap<String, String>) {
    let entries = bundle
        .get("entry")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut prepared = Vec::new();
    let mut full_urls = HashMap::new();
    for (index, entry) in entries.iter().enumerate() {
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
            prepared.push((index, method, url, None));
            continue;
        }
        let Some(resource) = entry.get("resource").cloned() else {
            continue;
        };
        let full_url = entry.get("fullUrl").and_then(Value::as_str);
        let hint = full_url
            .and_then(|u| u.strip_prefix("urn:uuid:"))
            .filter(|id| registry::is_valid_id(id));
        let resource = match with_id(resource, hint) {
            Ok(resource) => resource,
            Err(e) => {
                rejected.push((index, reason_of(e)));
                continue;
            }
        };
        match resource.get("resourceType").and_then(Value::as_str) {
            Some(t) if registry::is_known_type(t) => {}
            Some(t) => {
                rejected.push((index, format!("`{t}` is not a FHIR R4 resource type")));
                continue;
            }
            None => {
                rejected.push((index, "the entry's resource has no `resourceType`".to_owned()));
                continue;
            }
        }
        if let (Some(full_url), Some(t), Some(id)) = (
            full_url,
            resource.get("resourceType").and_then(Value::as_str),
            resource.get("id").and_then(Value::as_str),
        ) {
            full_urls.insert(full_url.to_owned(), format!("{t}/{id}"));
        }
        prepared.push((index, method, url, Some(resource)));
    }
    (prepared, full_urls)
}

fn reason_of(e: SandboxError) -> String {
    match e {
        SandboxError::InvalidResource { reason } => reason,
        other => other.to_string(),
    }
}

/// Stores one prepared entry; the resource type stored, or `None` for a delete.
fn store_entry(
    conn: &Connection,
    method: &str,
    url: &str,
    resource: Option<Sent>,
    full_urls: &HashMap<String, String>,
    now: &str,
) -> Result<Option<String>, SandboxError> {
    match resource {
        Some(mut sent) => {
            rewrite_references(&mut sent.resource, full_urls);
            resolve_conditional_references(conn, &mut sent.resource)?;
            let written = put_sent(conn, sent, now)?;
            Ok(Some(written.row.resource_type))
        }
        None if method == "DELETE" => {
            if let Some((t, id)) = registry::reference_target(url) {
                crate::store::delete_resource(conn, t, id, now)?;
            }
            Ok(None)
        }
        None => Ok(None),
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
    let now = normalize::instant_text(chrono::Utc::now());
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
            .filter(|id| registry::is_valid_id(id));
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
                if let Some((t, id)) = registry::reference_target(&url) {
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
        .is_some_and(registry::is_valid_id);
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
                    && registry::is_known_type(t)
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
