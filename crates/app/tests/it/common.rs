//! Shared set-up: the test sandbox and the app on port 0, the app's launch walked in the shared
//! browser-like client ([`test_support::browser`]), the captured logs and the session database's rows.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use app::{AppConfig, RunningApp};
use sandbox::{ClientSpec, SandboxConfig};
pub use test_support::browser::{Browser, Page, click_through_ehr, ehr_entry, location, param, parse_forms};
use test_support::sandbox::TestSandbox;
use url::Url;

/// The client id the tests register with the sandbox.
pub const CLIENT_ID: &str = "app-under-test";

/// Options for [`TestEnv::start_with`].
#[derive(Clone)]
pub struct Options {
    /// Lifetime of the sandbox's access tokens.
    pub token_ttl: Duration,
    /// Changes to the client registration (a failure to simulate, a secret).
    pub client: fn(ClientSpec) -> ClientSpec,
    /// Changes to the app's configuration.
    pub config: fn(&mut AppConfig),
}

impl Default for Options {
    fn default() -> Self {
        Options {
            token_ttl: Duration::from_secs(300),
            client: |c| c,
            config: |_| {},
        }
    }
}

/// The test sandbox the app's tests launch from: three patients, after `configure`.
pub async fn start_sandbox(configure: impl FnOnce(&mut SandboxConfig)) -> TestSandbox {
    TestSandbox::start(|config| {
        config.patients = 3;
        configure(config);
    })
    .await
}

/// A sandbox and an app, both serving on 127.0.0.1 with port 0.
pub struct TestEnv {
    pub sandbox: TestSandbox,
    pub app: RunningApp,
    pub dir: tempfile::TempDir,
    pub options: Options,
    /// The app's clock: `clock.advance(…)` expires its tokens without waiting.
    pub clock: test_support::TestClock,
}

impl TestEnv {
    pub async fn start() -> TestEnv {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> TestEnv {
        let sandbox = start_sandbox(|config| config.token_ttl = options.token_ttl).await;
        Self::start_on(sandbox, options).await
    }

    /// The app, registered with `sandbox` (a persona's, say), on its own session database.
    pub async fn start_on(sandbox: TestSandbox, options: Options) -> TestEnv {
        init_logs();
        let dir = tempfile::tempdir().unwrap();
        let clock = test_support::TestClock::new();
        let app = start_app(&sandbox, &dir, &options, &clock).await;
        TestEnv {
            sandbox,
            app,
            dir,
            options,
            clock,
        }
    }

    /// Stops the app and starts it again on the same session database (a new port).
    pub async fn restart_app(&mut self) {
        let old = std::mem::replace(
            &mut self.app,
            start_app(&self.sandbox, &self.dir, &self.options, &self.clock).await,
        );
        old.shutdown().await;
    }

    pub fn url(&self, path: &str) -> Url {
        self.app.url.join(path).unwrap()
    }

    /// A URL on the sandbox's origin (its launch page, launcher…).
    pub fn sandbox_url(&self, path: &str) -> Url {
        Url::parse(&format!("http://{}", self.sandbox.addr))
            .unwrap()
            .join(path)
            .unwrap()
    }

    pub fn session_db(&self) -> std::path::PathBuf {
        self.dir.path().join("sessions.db")
    }

    pub async fn stop(self) {
        self.app.shutdown().await;
        self.sandbox.shutdown().await;
    }
}

async fn start_app(
    sandbox: &TestSandbox,
    dir: &tempfile::TempDir,
    options: &Options,
    clock: &test_support::TestClock,
) -> RunningApp {
    let mut config = AppConfig::for_issuer(
        sandbox.fhir_base.clone(),
        CLIENT_ID,
        dir.path().join("sessions.db"),
    );
    (options.config)(&mut config);
    let app = app::start_with(config, app::ServerLimits::default(), clock.clock())
        .await
        .unwrap();
    let spec =
        ClientSpec::public(CLIENT_ID, app.redirect_uri.clone()).with_launch_uri(app.launch_uri.clone());
    sandbox.register((options.client)(spec));
    app
}

/// The sandbox's launcher URL that EHR-launches the app for the first patient and clinician its launch page
/// (at `sandbox`, its origin) offers: the page's launcher form as a clinician sends it, for our client.
pub async fn launcher_url(browser: &Browser, sandbox: &Url) -> Url {
    let home = browser.get(sandbox.join("/").unwrap()).await;
    let form = home
        .forms()
        .into_iter()
        .find(|f| f.action == "/launcher")
        .expect("launcher form");
    let mut fields: Vec<(String, String)> = form
        .fields
        .into_iter()
        .filter(|(k, _)| k != "client_id" && k != "launch_uri")
        .collect();
    fields.push(("client_id".into(), CLIENT_ID.into()));
    let mut launcher = sandbox.join("/launcher").unwrap();
    launcher.query_pairs_mut().extend_pairs(fields);
    launcher
}

/// A complete standalone launch: `/`, authorize, the EHR's pages, callback, back at `/`.
pub async fn standalone_launch(env: &TestEnv, browser: &Browser) -> Page {
    standalone_launch_at(&env.app.url, browser).await
}

/// A complete standalone launch of the app at `app` (an instance, or a proxy in front of several).
pub async fn standalone_launch_at(app: &Url, browser: &Browser) -> Page {
    let start = browser.get(app.join("/").unwrap()).await;
    assert_eq!(start.status, 200, "{}", start.body);
    assert!(start.body.contains("href=\"/authorize\""), "{}", start.body);
    let app_origin = app.origin();
    let ehr = browser
        .navigate_until("GET", app.join("/authorize").unwrap(), None, |u| {
            u.origin() != app_origin
        })
        .await;
    let first_ehr_page = browser.get(location(&ehr)).await;
    let back = click_through_ehr(browser, first_ehr_page, "approve", &|u: &Url| {
        u.origin() == app_origin
    })
    .await;
    let callback = location(&back);
    assert_eq!(callback.path(), "/fhir-app/");
    browser.get(callback).await
}

// ---------------------------------------------------------------------------------------------
// Logs: every test's events go to one in-memory buffer, read by the log-hygiene test.

#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static LOGS: OnceLock<LogBuffer> = OnceLock::new();

/// Installs the global subscriber once: the app's and its libraries' events at every level.
pub fn init_logs() -> LogBuffer {
    LOGS.get_or_init(|| {
        let buffer = LogBuffer::default();
        let writer = buffer.clone();
        let filter = tracing_subscriber::EnvFilter::new("app=trace,smart_launch=trace,fhir_client=trace");
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        buffer
    })
    .clone()
}

/// Everything logged so far.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&init_logs().0.lock().unwrap()).into_owned()
}

/// Every token value stored in the app's session database (access, refresh, id tokens).
pub fn stored_tokens(env: &TestEnv) -> Vec<String> {
    tokens_in(&env.session_db())
}

/// The rows `sql` selects as (row key, sealed data) from the session database at `path`, opened with the key
/// kept beside it (stored data is encrypted at rest, bound to its row's key).
pub fn opened_rows(path: &std::path::Path, sql: &str) -> Vec<Vec<u8>> {
    let key = app::session::SessionKey::load_or_create(&app::session::key_file_beside(path)).unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let rows: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows.iter()
        .map(|(id, data)| key.open(id, data).expect("a stored row opens under the key"))
        .collect()
}

/// The sessions stored in the session database at `path`, opened with the key kept beside it.
pub fn session_rows(path: &std::path::Path) -> Vec<serde_json::Value> {
    opened_rows(path, "SELECT id_hash, data FROM sessions")
        .iter()
        .map(|plain| serde_json::from_slice(plain).unwrap())
        .collect()
}

/// Every token value stored in the session database at `path`.
pub fn tokens_in(path: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for data in session_rows(path) {
        let tokens = &data["launch"]["launch"]["tokens"];
        for key in ["access_token", "refresh_token", "id_token"] {
            if let Some(t) = tokens[key].as_str() {
                out.push(t.to_owned());
            }
        }
    }
    out
}

/// The refresh token stored for the (single) logged-in session.
pub fn stored_refresh_token(env: &TestEnv) -> Option<String> {
    stored_token(env, "refresh_token")
}

/// The access token stored for the (single) logged-in session.
pub fn stored_access_token(env: &TestEnv) -> Option<String> {
    stored_token(env, "access_token")
}

/// The token `key` (`access_token`, `refresh_token`) stored for the (single) logged-in session.
fn stored_token(env: &TestEnv, key: &str) -> Option<String> {
    session_rows(&env.session_db())
        .iter()
        .find_map(|d| d["launch"]["launch"]["tokens"][key].as_str().map(str::to_owned))
}
