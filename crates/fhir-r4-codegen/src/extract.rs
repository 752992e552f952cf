//! The extract: the few facts the generator needs from the `hl7.fhir.r4.core` package's StructureDefinitions,
//! written as JSON lines in a fixed order so that the same package always gives the same bytes.
//!
//! One line per type (`{"type":…,"kind":…,"abstract":…,"definition":…}`), followed by one line per element of its
//! snapshot (`{"path":…,"min":…,"max":…,"types":[…],"ref":…,"short":…}`). Only the base definitions
//! (`derivation = specialization`) of primitive types, complex types and resources are kept; profiles are not.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use serde_json::Value;

/// Reads every `StructureDefinition-*.json` in `package_dir` and returns the extract's text.
pub fn extract(package_dir: &Path) -> Result<String, String> {
    let mut names: Vec<_> = fs::read_dir(package_dir)
        .map_err(|e| format!("cannot list {}: {e}", package_dir.display()))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("StructureDefinition-") && n.ends_with(".json"))
        })
        .collect();
    names.sort();
    let mut types = Vec::new();
    for path in names {
        let text = fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let sd: Value =
            serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
        if sd["derivation"] != "specialization" {
            continue;
        }
        let kind = sd["kind"].as_str().unwrap_or_default();
        if !matches!(kind, "primitive-type" | "complex-type" | "resource") {
            continue;
        }
        let name = sd["type"]
            .as_str()
            .ok_or_else(|| format!("{}: no type", path.display()))?;
        types.push((name.to_string(), sd));
    }
    types.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    for (name, sd) in &types {
        let kind = sd["kind"].as_str().unwrap_or_default();
        let abstract_ = sd["abstract"].as_bool().unwrap_or(false);
        let definition = sd["description"].as_str().unwrap_or_default();
        let _ = writeln!(
            out,
            "{{\"type\":{},\"kind\":{},\"abstract\":{},\"definition\":{}}}",
            q(name),
            q(kind),
            abstract_,
            q(definition)
        );
        if kind == "primitive-type" {
            continue;
        }
        let elements = sd["snapshot"]["element"]
            .as_array()
            .ok_or_else(|| format!("{name}: no snapshot"))?;
        for e in elements {
            let path = e["path"]
                .as_str()
                .ok_or_else(|| format!("{name}: element without a path"))?;
            let min = e["min"].as_u64().unwrap_or(0);
            let max = e["max"].as_str().unwrap_or("1");
            let mut line = format!("{{\"path\":{},\"min\":{min},\"max\":{}", q(path), q(max));
            if let Some(types) = e["type"].as_array() {
                let codes: Vec<String> = types.iter().filter_map(|t| t["code"].as_str()).map(q).collect();
                let _ = write!(line, ",\"types\":[{}]", codes.join(","));
            }
            if let Some(r) = e["contentReference"].as_str() {
                let _ = write!(line, ",\"ref\":{}", q(r));
            }
            let short = e["short"].as_str().unwrap_or_default();
            let _ = writeln!(line, ",\"short\":{}}}", q(short));
            out.push_str(&line);
        }
    }
    Ok(out)
}

/// A JSON string literal.
fn q(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}
