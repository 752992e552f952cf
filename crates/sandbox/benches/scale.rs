//! The sandbox at scale: generation time, database size, and request latency over real HTTP.
//!
//! Run by hand, in release mode (it builds a large database; not part of CI):
//!
//! ```text
//! SANDBOX_BENCH_PATIENTS=10000 cargo bench -p sandbox --bench scale
//! ```
//!
//! It generates `SANDBOX_BENCH_PATIENTS` patients (default 10,000, seed 42) into a fresh SQLite file, starts the
//! sandbox on 127.0.0.1:0 over it, obtains a `user/*.rs` token through the real authorization pages, and times
//! sequential requests (one connection, keep-alive) for three searches, each over many different patients:
//! `Observation?patient=…&category=vital-signs`, `Patient?name=…` and `Patient/…/$everything`. The same searches
//! are also timed inside the store (no HTTP, no token check) to show where the time goes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use reqwest::{StatusCode, redirect::Policy};
use sandbox::store::Store;
use sandbox::store::search::{self, Restriction, SearchRequest};
use sandbox::{ClientSpec, Sandbox, SandboxConfig};
use serde_json::Value;
use std::time::{Duration, Instant};
use url::Url;

const REDIRECT: &str = "http://127.0.0.1:9/bench/callback";
const ROUNDS: usize = 300;

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    let p50 = percentile(&mut samples, 0.50);
    let p99 = percentile(&mut samples, 0.99);
    let max = *samples.last().unwrap();
    println!(
        "{name:<58} n={:<4} p50={:>8.2} ms  p99={:>8.2} ms  max={:>8.2} ms",
        samples.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
}

fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let patients: usize = std::env::var("SANDBOX_BENCH_PATIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    // SANDBOX_BENCH_DIR keeps the database for inspection; by default it goes to a temp dir removed at the end.
    let dir = tempfile::tempdir().unwrap();
    let db = match std::env::var_os("SANDBOX_BENCH_DIR") {
        Some(keep) => std::path::PathBuf::from(keep).join("scale.db"),
        None => dir.path().join("scale.db"),
    };
    let _ = std::fs::remove_file(&db);
    println!(
        "sandbox scale bench: {patients} patients, seed 42, database {}",
        db.display()
    );

    // 1. Generation.
    let started = Instant::now();
    let (store, inserted) = tokio::task::spawn_blocking({
        let db = db.clone();
        move || {
            let store = Store::open(&db).unwrap();
            let inserted = store.ensure_populated(patients, 42).unwrap();
            (store, inserted)
        }
    })
    .await
    .unwrap();
    let generation = started.elapsed();
    let size = file_size(&db) + file_size(&db.with_extension("db-wal"));
    println!(
        "generation: {inserted} resources in {:.1} s ({:.0} resources/s); database {:.1} MiB ({:.0} bytes/resource)",
        generation.as_secs_f64(),
        inserted as f64 / generation.as_secs_f64(),
        size as f64 / 1048576.0,
        size as f64 / inserted.max(1) as f64
    );
    for t in [
        "Patient",
        "Encounter",
        "Observation",
        "Condition",
        "MedicationRequest",
        "AllergyIntolerance",
        "Immunization",
    ] {
        println!("  {t:<20} {}", store.count(t).unwrap());
    }

    // Patient ids and name prefixes to query, spread over the population.
    let ids: Vec<String> = store
        .with_conn(|c| {
            let mut stmt = c.prepare("SELECT id FROM fhir_resources WHERE type = 'Patient' ORDER BY rid")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })
        .unwrap();
    let step = (ids.len() / ROUNDS).max(1);
    let sample: Vec<String> = ids.iter().step_by(step).take(ROUNDS).cloned().collect();
    // Three-letter prefixes of common generated family names (each matches a few percent of patients).
    let prefixes: Vec<String> = [
        "smi", "joh", "gar", "ngu", "pat", "kim", "lee", "wil", "mar", "tho", "rob", "tay", "and", "whi",
        "har",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();

    // 2. Store-level timings (what the server does per request, minus HTTP and the token check).
    let timed_store = |pairs_for: &dyn Fn(usize) -> (String, Vec<(String, String)>)| {
        let mut samples = Vec::new();
        for i in 0..ROUNDS {
            let (t, pairs) = pairs_for(i);
            let begin = Instant::now();
            let request = SearchRequest::parse(&t, &pairs).unwrap();
            store
                .with_reader(|conn| search::execute(conn, &request, &Restriction::none()).map(|r| r.total))
                .unwrap();
            samples.push(begin.elapsed());
        }
        samples
    };
    report(
        "store: Observation?patient=…&category=vital-signs",
        timed_store(&|i| {
            let p = sample[i % sample.len()].clone();
            (
                "Observation".into(),
                vec![("patient".into(), p), ("category".into(), "vital-signs".into())],
            )
        }),
    );
    report(
        "store: Patient?name=…",
        timed_store(&|i| {
            (
                "Patient".into(),
                vec![("name".into(), prefixes[i % prefixes.len()].clone())],
            )
        }),
    );

    // 3. Over HTTP, with a real token.
    let config = SandboxConfig {
        port: 0,
        patients,
        db: Some(db.clone()),
        clients: vec![ClientSpec::public("bench", Url::parse(REDIRECT).unwrap())],
        ..SandboxConfig::default()
    };
    let running = Sandbox::start(config).await.unwrap();
    let base = running.fhir_base.as_str().trim_end_matches('/').to_owned();
    let origin = format!("http://{}", running.addr);
    let token = user_token(&origin, &base).await;
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let timed_http = |path_for: Box<dyn Fn(usize) -> String>| {
        let http = http.clone();
        let token = token.clone();
        let base = base.clone();
        async move {
            let mut samples = Vec::new();
            let mut bytes = 0usize;
            for i in 0..ROUNDS {
                let url = format!("{base}/{}", path_for(i));
                let begin = Instant::now();
                let response = http.get(&url).bearer_auth(&token).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::OK, "{url}");
                let body = response.bytes().await.unwrap();
                samples.push(begin.elapsed());
                bytes += body.len();
            }
            (samples, bytes / ROUNDS)
        }
    };
    let s = sample.clone();
    let (samples, avg) = timed_http(Box::new(move |i| {
        format!("Observation?patient={}&category=vital-signs", s[i % s.len()])
    }))
    .await;
    report(
        &format!("http: Observation?patient=…&category=vital-signs ({avg} B)"),
        samples,
    );
    let p = prefixes.clone();
    let (samples, avg) = timed_http(Box::new(move |i| format!("Patient?name={}", p[i % p.len()]))).await;
    report(&format!("http: Patient?name=… ({avg} B)"), samples);
    let s = sample.clone();
    let (samples, avg) = timed_http(Box::new(move |i| {
        format!("Patient/{}/$everything", s[i % s.len()])
    }))
    .await;
    report(
        &format!("http: Patient/…/$everything (first page of 50, {avg} B)"),
        samples,
    );
    let s = sample.clone();
    let (samples, avg) = timed_http(Box::new(move |i| {
        format!("Patient/{}/$everything?_count=1000", s[i % s.len()])
    }))
    .await;
    report(
        &format!("http: Patient/…/$everything?_count=1000 (whole record, {avg} B)"),
        samples,
    );
    running.shutdown().await;
}

/// A `user/*.rs` access token, obtained through the real pages: login as the first practitioner, approve.
async fn user_token(origin: &str, base: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let verifier = "bench-verifier-0123456789-0123456789-0123456789";
    let challenge = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
    };
    let query = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", "bench"),
        ("redirect_uri", REDIRECT),
        ("scope", "user/*.rs"),
        ("state", "bench-state"),
        ("aud", base),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ])
    .unwrap();
    let mut cookie: Option<String> = None;
    let mut response = http
        .get(format!("{origin}/auth/authorize?{query}"))
        .send()
        .await
        .unwrap();
    for _ in 0..10 {
        if let Some(c) = response.headers().get("set-cookie") {
            cookie = Some(c.to_str().unwrap().split(';').next().unwrap().to_owned());
        }
        let status = response.status();
        if status.is_redirection() {
            let to = response.headers()["location"].to_str().unwrap().to_owned();
            if to.starts_with(REDIRECT) {
                let code = Url::parse(&to)
                    .unwrap()
                    .query_pairs()
                    .find(|(k, _)| k == "code")
                    .unwrap()
                    .1
                    .into_owned();
                let tokens: Value = http
                    .post(format!("{origin}/auth/token"))
                    .form(&[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", REDIRECT),
                        ("code_verifier", verifier),
                        ("client_id", "bench"),
                    ])
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                return tokens["access_token"].as_str().unwrap().to_owned();
            }
            let url = if to.starts_with('/') {
                format!("{origin}{to}")
            } else {
                to
            };
            let mut request = http.get(url);
            if let Some(c) = &cookie {
                request = request.header("cookie", c);
            }
            response = request.send().await.unwrap();
            continue;
        }
        let html = response.text().await.unwrap();
        let action = between(&html, "method=\"post\" action=\"", "\"").unwrap();
        let mut form = vec![
            ("txn".to_owned(), field(&html, "txn").unwrap()),
            ("csrf".to_owned(), field(&html, "csrf").unwrap()),
        ];
        match action.as_str() {
            "/auth/authorize/login" => form.push(("user".into(), field(&html, "user").unwrap())),
            "/auth/authorize/consent" => form.push(("decision".into(), "approve".into())),
            other => form.push((
                other.rsplit('/').next().unwrap().to_owned(),
                field(&html, other.rsplit('/').next().unwrap()).unwrap(),
            )),
        }
        let mut request = http.post(format!("{origin}{action}")).form(&form);
        if let Some(c) = &cookie {
            request = request.header("cookie", c);
        }
        response = request.send().await.unwrap();
    }
    panic!("the authorization did not finish");
}

fn between(html: &str, start: &str, end: &str) -> Option<String> {
    let from = html.find(start)? + start.len();
    let to = html[from..].find(end)? + from;
    Some(html[from..to].to_owned())
}

fn field(html: &str, name: &str) -> Option<String> {
    between(html, &format!("name=\"{name}\" value=\""), "\"")
        .map(|v| v.replace("&amp;", "&").replace("&quot;", "\""))
}
