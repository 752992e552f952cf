//! `smart-fhir keygen` and `smart-fhir export`, run as the real binary against the real sandbox binary.

use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smart-fhir"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `keygen` into `dir/name`, returning the printed JWKS.
fn keygen(dir: &Path, name: &str, alg: &str) -> serde_json::Value {
    let key = dir.join(name);
    let out = run(&["keygen", "--alg", alg, "--out", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("keygen prints the JWKS as JSON")
}

#[test]
fn keygen_writes_a_private_key_for_the_owner_alone_and_prints_its_public_jwks() {
    let dir = tempfile::tempdir().unwrap();
    for (alg, kty) in [("ES384", "EC"), ("RS384", "RSA")] {
        let jwks = keygen(dir.path(), &format!("{alg}.pem"), alg);
        let jwk = &jwks["keys"][0];
        assert_eq!(jwk["kty"], kty);
        assert_eq!(jwk["alg"], alg);
        assert!(jwk.get("d").is_none(), "no private part in the JWKS");
        let path = dir.path().join(format!("{alg}.pem"));
        let pem = std::fs::read_to_string(&path).unwrap();
        assert!(pem.contains("PRIVATE KEY"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        // An existing key is never overwritten.
        let again = run(&["keygen", "--alg", alg, "--out", path.to_str().unwrap()]);
        assert!(!again.status.success());
        assert!(
            text(&again.stderr).contains("never overwritten"),
            "{}",
            text(&again.stderr)
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), pem);
    }
}

#[test]
fn export_downloads_the_sandbox_as_a_registered_backend_service_and_fails_clearly_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = keygen(dir.path(), "key.pem", "ES384");
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks.to_string()).unwrap();
    let client = format!(
        "id=exporter,redirect=http://127.0.0.1:9/unused,jwks={}",
        jwks_path.display()
    );
    // Paced to 5 resources a second: the job is still running at the CLI's first status check, whose
    // X-Progress it must show.
    let (_sandbox, base) = super::start_sandbox(
        dir.path(),
        &["--client", &client, "--export-rows-per-second", "5"],
    );
    let key = dir.path().join("key.pem");
    let out_dir = dir.path().join("out");
    let export = |client_id: &str, extra: &[&str]| {
        let mut args = vec![
            "export",
            "--fhir-base",
            &base,
            "--client-id",
            client_id,
            "--private-key",
            key.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&args)
    };

    let out = export("exporter", &["--type", "Patient,Condition"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("resume with --status http"), "{stderr}");
    assert!(stderr.contains("Patient 3 resources"), "{stderr}");
    let shown = [
        "exporting: Queued.",
        "exporting: Starting.",
        "exporting: Exporting ",
    ];
    assert!(
        stderr.lines().any(|l| shown.iter().any(|s| l.starts_with(s))),
        "the server's X-Progress is shown while the job runs: {stderr}"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("manifest.json")).unwrap()).unwrap();
    let types: Vec<&str> = manifest["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"Patient") && types.iter().all(|t| ["Patient", "Condition"].contains(t)),
        "{types:?}"
    );
    let patients = std::fs::read_to_string(out_dir.join("Patient.000.ndjson")).unwrap();
    assert_eq!(patients.lines().count(), 3);
    assert!(text(&out.stdout).contains("Exported"), "{}", text(&out.stdout));

    // The status URL printed at kick-off resumes the job in a later run, and --cancel deletes it.
    let status = stderr
        .split_whitespace()
        .skip_while(|w| *w != "--status")
        .nth(1)
        .expect("the status URL is printed")
        .to_owned();
    let resumed_dir = dir.path().join("resumed");
    let resumed = run(&[
        "export",
        "--fhir-base",
        &base,
        "--client-id",
        "exporter",
        "--private-key",
        key.to_str().unwrap(),
        "--out",
        resumed_dir.to_str().unwrap(),
        "--status",
        &status,
    ]);
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    assert!(
        !text(&resumed.stderr).contains("Export started"),
        "no second kick-off"
    );
    assert_eq!(
        std::fs::read_to_string(resumed_dir.join("Patient.000.ndjson")).unwrap(),
        patients
    );
    let cancelled = export("exporter", &["--status", &status, "--cancel"]);
    assert!(cancelled.status.success(), "{}", text(&cancelled.stderr));
    assert!(
        text(&cancelled.stdout).contains("Cancelled"),
        "{}",
        text(&cancelled.stdout)
    );
    let gone = export("exporter", &["--status", &status]);
    assert!(!gone.status.success());
    let message = text(&gone.stderr);
    assert!(
        message.contains("404") && message.contains("the server says"),
        "{message}"
    );

    // An unregistered client: a non-zero exit and a message saying what failed.
    let refused = export("nobody", &[]);
    assert!(!refused.status.success());
    let message = text(&refused.stderr);
    assert!(
        message.contains("backend-services authorization") || message.contains("could not be started"),
        "{message}"
    );

    // A bad level is refused by the argument parser with the accepted forms.
    let bad = export("exporter", &["--level", "ward:3"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("system, patient or group:ID"),
        "{}",
        text(&bad.stderr)
    );
}
