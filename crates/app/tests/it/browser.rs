//! End to end in a real headless Chromium (Debian's `chromium` + `chromium-driver`), driven with
//! fantoccini: the start page, the sandbox's sign-in, patient picker and consent, then the patient
//! page with its charts. Screenshots go to `target/e2e-screenshots/`. Skips, saying why, only when
//! no browser is installed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};

use crate::common::TestEnv;

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("e2e-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A chromedriver child process on a free port, killed on drop.
struct Driver {
    child: tokio::process::Child,
    url: String,
}

impl Driver {
    async fn start(chromedriver: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http
                .get(format!("{url}/status"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Driver { child, url };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start");
    }
}

#[tokio::test]
async fn a_clinician_launches_the_app_in_chromium_and_sees_the_charts() {
    let (Some(chromium), Some(chromedriver)) = (
        find_program(&["chromium", "chromium-browser", "google-chrome"]),
        find_program(&["chromedriver"]),
    ) else {
        println!(
            "SKIPPED: no Chromium and chromedriver on PATH (install Debian's chromium and chromium-driver)"
        );
        return;
    };
    let env = TestEnv::start().await;
    let mut driver = Driver::start(&chromedriver).await;
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                "--window-size=1280,1600",
                format!("--user-data-dir={}", profile.path().display()),
            ]
        }),
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap();
    let shots = screenshot_dir();
    let mut shot = 0;
    let mut snap = async |client: &fantoccini::Client, name: &str| {
        shot += 1;
        let png = client.screenshot().await.unwrap();
        std::fs::write(shots.join(format!("{shot:02}-{name}.png")), png).unwrap();
    };

    client.goto(env.url("/").as_str()).await.unwrap();
    snap(&client, "start").await;
    client
        .find(Locator::Css("a[href='/authorize']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // The sandbox's pages: sign in, pick a patient, approve.
    let app_origin = env.app.url.origin();
    let mut arrived = false;
    for step in 0..6 {
        let url = client.current_url().await.unwrap();
        if url.origin() == app_origin {
            arrived = true;
            break;
        }
        let heading = match client.find(Locator::Css("h1")).await {
            Ok(h) => h
                .text()
                .await
                .unwrap_or_default()
                .to_lowercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect(),
            Err(_) => String::new(),
        };
        let name = if heading.trim_matches('-').is_empty() {
            format!("ehr-step-{step}")
        } else {
            heading
        };
        snap(&client, &name).await;
        let button = match client.find(Locator::Css("button[value='approve']")).await {
            Ok(b) => b,
            Err(_) => client
                .find(Locator::Css("form[method='post'] button[type='submit']"))
                .await
                .unwrap(),
        };
        button.click().await.unwrap();
    }
    assert!(arrived, "the EHR's pages did not lead back to the app");

    // The callback redirects to `/`; wait for the patient page to be there.
    if client
        .wait()
        .at_most(Duration::from_secs(90))
        .for_element(Locator::Css("figure.chart svg"))
        .await
        .is_err()
    {
        let url = client.current_url().await.unwrap();
        let source = client.source().await.unwrap_or_default();
        snap(&client, "no-patient-page").await;
        panic!("no patient page with charts at {url}: {source}");
    }
    let source = client.source().await.unwrap();
    assert!(
        source.contains("You are authorized and ready to make API requests for"),
        "{source}"
    );
    let name = client
        .find(Locator::Css("main p em"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!name.trim().is_empty(), "the patient's name is shown");
    let banner = client
        .find(Locator::Css(".banner .name"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(banner.trim(), name.trim());
    let charts = client.find_all(Locator::Css("figure.chart svg")).await.unwrap();
    assert!(!charts.is_empty(), "vital-sign charts are drawn");
    snap(&client, "patient").await;

    client.goto(env.url("/inspect").as_str()).await.unwrap();
    snap(&client, "inspect").await;

    client.close().await.unwrap();
    let _ = driver.child.kill().await;
    env.stop().await;
}
