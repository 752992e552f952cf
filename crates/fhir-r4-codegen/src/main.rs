#![doc = include_str!("../README.md")]

mod emit;
mod extract;
mod model;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["extract", package, out] => extract::extract(Path::new(package))
            .and_then(|text| fs::write(out, text).map_err(|e| format!("cannot write {out}: {e}"))),
        ["generate", input, out] => generate(Path::new(input), Path::new(out)),
        _ => Err(
            "usage: fhir-r4-codegen extract <package-dir> <out.jsonl>\n       \
                  fhir-r4-codegen generate <extract.jsonl> <out-dir>"
                .to_string(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fhir-r4-codegen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes every generated module into `out` and formats them.
fn generate(input: &Path, out: &Path) -> Result<(), String> {
    let text = fs::read_to_string(input).map_err(|e| format!("cannot read {}: {e}", input.display()))?;
    let types = model::read_extract(&text)?;
    let outputs = model::build(&types)?;
    if out.exists() {
        let marker = fs::read_to_string(out.join("mod.rs")).unwrap_or_default();
        if !marker.starts_with("// @generated") {
            return Err(format!(
                "{} exists and is not a generated directory; not replacing it",
                out.display()
            ));
        }
        fs::remove_dir_all(out).map_err(|e| format!("cannot clear {}: {e}", out.display()))?;
    }
    fs::create_dir_all(out.join("resources")).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut files: Vec<(PathBuf, String)> = Vec::new();

    let mut root = emit::header("The generated R4 models: data types, resources and the `Resource` enum.");
    root.push_str(
        "mod datatypes;\nmod resource;\nmod resources;\n\n\
         pub use datatypes::*;\npub use resource::Resource;\npub use resources::*;\n",
    );
    files.push((out.join("mod.rs"), root));

    let mut datatypes =
        emit::header("The R4 complex data types (`Address` … `UsageContext`), with their nested elements.");
    datatypes.push_str(emit::USES);
    for t in outputs.iter().filter(|t| !t.is_resource) {
        for s in &t.structs {
            emit::emit_struct(&mut datatypes, s);
        }
    }
    files.push((out.join("datatypes.rs"), datatypes));

    let resources: Vec<_> = outputs.iter().filter(|t| t.is_resource).collect();
    let mut list = emit::header("One module per R4 resource type, re-exported flat.");
    for t in &resources {
        let m = model::module_name(&t.name);
        list.push_str(&format!("mod {m};\npub use {m}::*;\n"));
        let mut file = emit::header(&format!("The R4 `{}` resource and its nested elements.", t.name));
        file.push_str(emit::USES);
        for s in &t.structs {
            emit::emit_struct(&mut file, s);
        }
        files.push((out.join("resources").join(format!("{m}.rs")), file));
    }
    files.push((out.join("resources").join("mod.rs"), list));

    let mut enum_file =
        emit::header("The `Resource` enum: every R4 resource type, dispatched on `resourceType`.");
    enum_file.push_str(emit::USES);
    emit::emit_resource_enum(&mut enum_file, &resources);
    files.push((out.join("resource.rs"), enum_file));

    for (path, text) in &files {
        fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    rustfmt(&files.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>())?;
    let structs: usize = outputs.iter().map(|t| t.structs.len()).sum();
    eprintln!(
        "fhir-r4-codegen: {} resources, {} data types, {structs} structs in {} files",
        resources.len(),
        outputs.len() - resources.len(),
        files.len()
    );
    Ok(())
}

/// Formats the files with the workspace's rustfmt settings, so the output does not depend on where it is written.
fn rustfmt(files: &[PathBuf]) -> Result<(), String> {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rustfmt.toml");
    let status = Command::new("rustfmt")
        .arg("--edition")
        .arg("2024")
        .arg("--config-path")
        .arg(&config)
        .args(files)
        .status()
        .map_err(|e| format!("cannot run rustfmt: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("rustfmt failed ({status})"))
    }
}
