//! `smart-fhir login`, `get`, `search` and `logout` as the real binary against the real sandbox binary: the
//! login is driven through the sandbox's sign-in, patient picker and consent pages by an HTTP client, with
//! `HOME` and `XDG_DATA_HOME` in a temp dir.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use super::http;

/// The sandbox's public client for the terminal, registered with the loopback redirect on no particular port.
const CLIENT: &str = "id=smart-fhir-cli,redirect=http://127.0.0.1/callback";
const SCOPE: &str = "openid fhirUser offline_access launch/patient patient/*.rs";

/// The user's home and data directory for one test.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_smart-fhir"));
        command
            .args(args)
            .env("RUST_LOG", "warn")
            .env("HOME", self.dir.path())
            .env("XDG_DATA_HOME", self.dir.path().join("data"));
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("the binary runs")
    }

    fn login_file(&self) -> PathBuf {
        self.dir.path().join("data/smart-fhir/login.json")
    }

    fn stored(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.login_file()).unwrap()).unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The value of the first `name="…" value="…"` on a page.
fn field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].replace("&amp;", "&").replace("&quot;", "\""))
}

/// The action of the page's POST form.
fn post_action(html: &str) -> Option<String> {
    let marker = "method=\"post\" action=\"";
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// A browser's visit: from the printed sign-in URL through the sandbox's pages (first user, first patient,
/// approve) to the redirect back to the loopback `/callback`, which it then follows; that answer is returned.
fn sign_in_through_the_pages(sign_in: &str) -> reqwest::blocking::Response {
    let http = http();
    let origin = {
        let url = url::Url::parse(sign_in).unwrap();
        format!("{}://{}", url.scheme(), url.host_str().unwrap()) + &format!(":{}", url.port().unwrap())
    };
    let absolute = |to: &str| {
        if to.starts_with('/') {
            format!("{origin}{to}")
        } else {
            to.to_owned()
        }
    };
    let mut cookie: Option<String> = None;
    let send = |request: reqwest::blocking::RequestBuilder, cookie: &mut Option<String>| {
        let request = match cookie.as_deref() {
            Some(c) => request.header("cookie", c),
            None => request,
        };
        let response = request.send().unwrap();
        if let Some(set) = response.headers().get("set-cookie") {
            *cookie = Some(set.to_str().unwrap().split(';').next().unwrap().to_owned());
        }
        response
    };
    let mut response = send(http.get(sign_in), &mut cookie);
    for _ in 0..12 {
        if response.status().is_redirection() {
            let to = response.headers()["location"].to_str().unwrap().to_owned();
            if to.starts_with("http://127.0.0.1:") && to.contains("/callback?") {
                // The browser lands on the terminal's loopback listener.
                return http.get(&to).send().unwrap();
            }
            response = send(http.get(absolute(&to)), &mut cookie);
            continue;
        }
        assert_eq!(response.status(), 200);
        let html = response.text().unwrap();
        let action = post_action(&html).unwrap_or_else(|| panic!("no form on the page: {html}"));
        let mut form = vec![
            ("txn".to_owned(), field(&html, "txn").unwrap()),
            ("csrf".to_owned(), field(&html, "csrf").unwrap()),
        ];
        let choice = match action.as_str() {
            "/auth/authorize/login" => ("user", field(&html, "user").unwrap()),
            "/auth/authorize/patient" => ("patient", field(&html, "patient").unwrap()),
            "/auth/authorize/encounter" => ("encounter", field(&html, "encounter").unwrap()),
            "/auth/authorize/consent" => ("decision", "approve".to_owned()),
            other => panic!("unexpected form action {other}"),
        };
        form.push((choice.0.to_owned(), choice.1));
        response = send(http.post(absolute(&action)).form(&form), &mut cookie);
    }
    panic!("the sandbox's pages did not lead back to the terminal");
}

/// `smart-fhir login` run to the end with the pages walked; its output.
fn login(home: &Home, base: &str) -> Output {
    let mut child = home
        .command(&[
            "login",
            "--fhir-base",
            base,
            "--client-id",
            "smart-fhir-cli",
            "--scope",
            SCOPE,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut printed = String::new();
    let sign_in = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "login ended without a URL: {printed}"
        );
        printed.push_str(&line);
        if let Some(url) = line.trim().strip_prefix("http") {
            break format!("http{url}");
        }
    };
    let landed = sign_in_through_the_pages(&sign_in);
    assert_eq!(landed.status(), 200);
    assert!(landed.text().unwrap().contains("Signed in"));
    let mut output = child.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    output.stderr = format!("{printed}{rest}").into_bytes();
    output
}

#[test]
fn login_stores_tokens_for_the_user_alone_and_get_search_and_logout_use_them() {
    let home = Home::new();
    let (_sandbox, base) = super::start_sandbox(home.dir.path(), &["--client", CLIENT]);

    let out = login(&home, &base);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Logged in to"), "{stdout}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&home.login_file()), 0o600);
        assert_eq!(mode(home.login_file().parent().unwrap()), 0o700);
    }
    let stored = home.stored();
    let patient = stored["patient"]
        .as_str()
        .expect("the launch chose a patient")
        .to_owned();
    let redirect = stored["redirect_uri"].as_str().unwrap();
    assert!(
        redirect.starts_with("http://127.0.0.1:") && redirect.ends_with("/callback"),
        "{redirect}"
    );
    assert!(
        !stdout.contains(stored["tokens"]["access_token"].as_str().unwrap()),
        "no token on screen"
    );

    // get: the JSON of one read.
    let got = home.run(&["get", &format!("Patient/{patient}")]);
    assert!(got.status.success(), "{}", text(&got.stderr));
    let resource: Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(resource["resourceType"], "Patient");
    assert_eq!(resource["id"], patient.as_str());

    // search: the first page's Bundle, or with --all every match as NDJSON across pages.
    let first = home.run(&[
        "search",
        "Observation",
        &format!("patient={patient}"),
        "_count=1000",
    ]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let bundle: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    let in_one_page = bundle["entry"].as_array().unwrap().len();
    assert!(
        in_one_page > 3,
        "the sandbox's patients have observations: {in_one_page}"
    );
    let all = home.run(&[
        "search",
        "Observation",
        &format!("patient={patient}"),
        "_count=3",
        "--all",
    ]);
    assert!(all.status.success(), "{}", text(&all.stderr));
    let lines: Vec<Value> = text(&all.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), in_one_page, "every page followed");
    assert!(lines.iter().all(|r| r["resourceType"] == "Observation"));

    // An error of the server: a readable message with the OperationOutcome, and a non-zero exit.
    let missing = home.run(&["get", "Patient/no-such-patient"]);
    assert!(!missing.status.success());
    let message = text(&missing.stderr);
    assert!(
        message.contains("not found") && message.contains("the server says"),
        "{message}"
    );
    assert!(missing.stdout.is_empty());

    // An expired access token is refreshed with the stored refresh token, and the new set is kept.
    let mut expired = home.stored();
    let old_access = expired["tokens"]["access_token"].as_str().unwrap().to_owned();
    expired["tokens"]["expires_at"] = Value::from("2000-01-01T00:00:00Z");
    std::fs::write(home.login_file(), expired.to_string()).unwrap();
    let refreshed = home.run(&["get", &format!("Patient/{patient}")]);
    assert!(refreshed.status.success(), "{}", text(&refreshed.stderr));
    let renewed = home.stored();
    assert_ne!(renewed["tokens"]["access_token"].as_str().unwrap(), old_access);
    assert_ne!(renewed["tokens"]["expires_at"], "2000-01-01T00:00:00Z");

    // logout revokes the grant at the sandbox and deletes the file.
    let refresh_token = renewed["tokens"]["refresh_token"].as_str().unwrap().to_owned();
    let out = home.run(&["logout"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("revoked"), "{}", text(&out.stdout));
    assert!(!home.login_file().exists());
    let smart: Value = http()
        .get(format!("{base}/.well-known/smart-configuration"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let after = http()
        .post(smart["token_endpoint"].as_str().unwrap())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
            ("client_id", "smart-fhir-cli"),
        ])
        .send()
        .unwrap();
    assert_eq!(after.status(), 400, "the revoked refresh token no longer works");
    let not_logged_in = home.run(&["get", "metadata"]);
    assert!(!not_logged_in.status.success());
    assert!(
        text(&not_logged_in.stderr).contains("Not logged in"),
        "{}",
        text(&not_logged_in.stderr)
    );
}

#[test]
fn search_refuses_malformed_arguments_with_the_expected_forms() {
    let home = Home::new();
    let bad = home.run(&["search", "Observation", "patient"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("is not name=value"),
        "{}",
        text(&bad.stderr)
    );
    let bad_type = home.run(&["search", "../Patient"]);
    assert!(!bad_type.status.success());
    assert!(
        text(&bad_type.stderr).contains("is not a FHIR resource type"),
        "{}",
        text(&bad_type.stderr)
    );
}
