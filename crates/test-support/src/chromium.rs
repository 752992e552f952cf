//! A real headless Chromium for end-to-end tests (Debian's `chromium` + `chromium-driver`), driven through
//! chromedriver with fantoccini (re-exported as [`fantoccini`]). A test asks [`installed`] first and skips,
//! saying why, when no browser is there.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use fantoccini;

/// The first of `names` found on `PATH`.
pub fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Chromium (or Chrome) and chromedriver, when both are on `PATH`.
pub fn installed() -> Option<(PathBuf, PathBuf)> {
    Some((
        find_program(&["chromium", "chromium-browser", "google-chrome"])?,
        find_program(&["chromedriver"])?,
    ))
}

/// `<target>/e2e-screenshots/` (created): where end-to-end tests leave their screenshots.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("e2e-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A chromedriver child process on a free port, killed on drop.
pub struct Driver {
    /// The chromedriver process.
    pub child: tokio::process::Child,
    /// Where it listens (`http://127.0.0.1:PORT`).
    pub url: String,
}

impl Driver {
    /// Starts `chromedriver` and waits until it answers its status URL.
    pub async fn start(chromedriver: &Path) -> Driver {
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
            // A readiness poll, not a timing assert.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start");
    }

    /// A session of a headless `chromium` (1280×1600, no sync, updates or QUIC) with its profile in `profile`.
    pub async fn headless(&self, chromium: &Path, profile: &Path) -> fantoccini::Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                    "--window-size=1280,1600",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }),
        );
        // fantoccini's TLS stack needs a process-wide crypto provider chosen explicitly (ring, as reqwest uses).
        let _ = rustls::crypto::ring::default_provider().install_default();
        fantoccini::ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap()
    }
}
