//! End-to-end tests of the `smart-fhir` binary: the real executable, started as a child process, reached over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod export;
mod login;

/// A child process killed when dropped, with the lines it printed on stdout.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_smart-fhir"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }

    /// Waits for a printed line containing `marker` and returns the text after it, trimmed.
    fn value_after(&self, marker: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(120))
                .unwrap_or_else(|_| panic!("the binary never printed {marker:?}"));
            if let Some(i) = line.find(marker) {
                return line[i + marker.len()..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_owned();
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `smart-fhir sandbox` on a free port over `dir/sandbox.db` with 3 patients and `extra` options; the process
/// and its FHIR base.
fn start_sandbox(dir: &std::path::Path, extra: &[&str]) -> (Running, String) {
    let db = dir.join("sandbox.db");
    let mut args = vec![
        "sandbox",
        "--port",
        "0",
        "--db",
        db.to_str().unwrap(),
        "--patients",
        "3",
    ];
    args.extend_from_slice(extra);
    let sandbox = Running::start(&args);
    let base = sandbox.value_after("FHIR base:");
    (sandbox, base)
}

#[test]
fn sandbox_subcommand_serves_discovery_and_an_r4_capability_statement() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sandbox.db");
    let (_sandbox, base) = start_sandbox(dir.path(), &[]);
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let http = http();
    let metadata: serde_json::Value = http
        .get(format!("{base}/metadata"))
        .header("Accept", "application/fhir+json")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(metadata["resourceType"], "CapabilityStatement");
    assert_eq!(metadata["fhirVersion"], "4.0.1");

    let smart: serde_json::Value = http
        .get(format!("{base}/.well-known/smart-configuration"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        smart["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );

    // No token, no data.
    let status = http.get(format!("{base}/Patient")).send().unwrap().status();
    assert_eq!(status, 401);
    assert!(db.exists(), "the database file was created");
}

#[test]
fn demo_serves_the_app_pointing_at_its_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let (sandbox_port, app_port) = (free_port(), free_port());
    let demo = Running::start(&[
        "demo",
        "--port",
        &sandbox_port.to_string(),
        "--app-port",
        &app_port.to_string(),
        "--db",
        dir.path().join("sandbox.db").to_str().unwrap(),
        "--session-db",
        dir.path().join("sessions.db").to_str().unwrap(),
        "--patients",
        "3",
    ]);
    let base = demo.value_after("FHIR base:");
    assert_eq!(base, format!("http://localhost:{sandbox_port}/fhir"));
    let app_url = demo.value_after("smart-fhir app:");
    assert_eq!(app_url, format!("http://localhost:{app_port}/"));

    let page = http().get(&app_url).send().unwrap();
    assert_eq!(page.status(), 200);
    let body = page.text().unwrap();
    assert!(
        body.to_lowercase().contains("authorize"),
        "the home page offers to authorize: {body}"
    );
}

#[test]
fn help_explains_every_subcommand() {
    let out = Command::new(env!("CARGO_BIN_EXE_smart-fhir"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for word in ["demo", "serve", "sandbox"] {
        assert!(help.contains(word), "--help mentions {word}: {help}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_smart-fhir"))
        .args(["sandbox", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--port",
        "--db",
        "--patients",
        "--seed",
        "--import",
        "--client",
        "--open-registration",
    ] {
        assert!(help.contains(flag), "sandbox --help mentions {flag}");
    }
}

#[test]
fn a_bad_profile_is_refused_with_a_message_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_smart-fhir"))
        .current_dir(dir.path())
        .args(["serve", "--profile", "no-such-ehr"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("no-such-ehr"), "{err}");
}
