//! Shared set-up: a sandbox EHR and the app on port 0, a cookie-keeping browser that follows
//! redirects by hand, and a small HTML form reader to click through the sandbox's pages.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use app::{AppConfig, RunningApp};
use reqwest::cookie::Jar;
use sandbox::{ClientSpec, RunningSandbox, SandboxConfig};
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

/// A sandbox and an app, both serving on 127.0.0.1 with port 0.
pub struct TestEnv {
    pub sandbox: RunningSandbox,
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
        init_logs();
        let dir = tempfile::tempdir().unwrap();
        let sandbox = sandbox::Sandbox::start(SandboxConfig {
            host: "127.0.0.1".into(),
            port: 0,
            db: Some(dir.path().join("sandbox.db")),
            patients: 3,
            token_ttl: options.token_ttl,
            issuer_key_pem: Some(test_support::ISSUER_KEY_PEM.to_owned()),
            ..SandboxConfig::default()
        })
        .await
        .unwrap();
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
    sandbox: &RunningSandbox,
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
    sandbox
        .state
        .auth()
        .register_client((options.client)(spec))
        .unwrap();
    app
}

/// A response as the tests see it.
#[derive(Debug)]
pub struct Page {
    pub url: Url,
    pub status: u16,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Page {
    pub fn forms(&self) -> Vec<Form> {
        parse_forms(&self.body)
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

/// A browser: one cookie jar, redirects followed by hand (every hop recorded).
pub struct Browser {
    pub client: reqwest::Client,
    /// Every URL visited, in order.
    pub visited: Mutex<Vec<Url>>,
}

impl Browser {
    pub fn new() -> Browser {
        let jar = Arc::new(Jar::default());
        Self::with_jar(jar)
    }

    pub fn with_jar(jar: Arc<Jar>) -> Browser {
        let client = reqwest::Client::builder()
            .cookie_provider(jar)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Browser {
            client,
            visited: Mutex::new(Vec::new()),
        }
    }

    /// One request, no redirect following.
    pub async fn request(&self, method: &str, url: Url, form: Option<Vec<(String, String)>>) -> Page {
        self.visited.lock().unwrap().push(url.clone());
        let mut request = self.client.request(method.parse().unwrap(), url.clone());
        if let Some(form) = form {
            request = request.form(&form);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        Page {
            url,
            status,
            body,
            headers,
        }
    }

    /// Follows redirects (at most 20), stopping early at a URL for which `stop` is true.
    pub async fn navigate_until(
        &self,
        method: &str,
        url: Url,
        form: Option<Vec<(String, String)>>,
        stop: impl Fn(&Url) -> bool,
    ) -> Page {
        let mut page = self.request(method, url, form).await;
        for _ in 0..20 {
            if let Some(post) = auto_submitted_form(&page) {
                // The app's authorize-post page: a browser's script submits it at once.
                page = self
                    .request("POST", page.url.join(&post.action).unwrap(), Some(post.fields))
                    .await;
                continue;
            }
            if !(300..400).contains(&page.status) {
                return page;
            }
            let location = page
                .headers
                .get(reqwest::header::LOCATION)
                .unwrap()
                .to_str()
                .unwrap();
            let next = page.url.join(location).unwrap();
            if stop(&next) {
                return page;
            }
            page = self.request("GET", next, None).await;
        }
        panic!("too many redirects, last at {}", page.url);
    }

    pub async fn navigate(&self, method: &str, url: Url, form: Option<Vec<(String, String)>>) -> Page {
        self.navigate_until(method, url, form, |_| false).await
    }

    pub async fn get(&self, url: Url) -> Page {
        self.navigate("GET", url, None).await
    }

    /// Submits `form` (its pre-filled fields, the first choice of each radio group, and the button whose
    /// value is `button`, when given) and follows redirects.
    pub async fn submit_until(
        &self,
        page: &Page,
        form: &Form,
        button: Option<&str>,
        stop: impl Fn(&Url) -> bool,
    ) -> Page {
        let action = page.url.join(&form.action).unwrap();
        let mut fields = form.fields.clone();
        if let Some(value) = button {
            let b = form
                .buttons
                .iter()
                .find(|(_, v)| v == value)
                .expect("no such button");
            fields.push(b.clone());
        }
        if form.method == "POST" {
            self.navigate_until("POST", action, Some(fields), stop).await
        } else {
            let mut url = action;
            url.query_pairs_mut().extend_pairs(fields);
            self.navigate_until("GET", url, None, stop).await
        }
    }
}

/// The form a page's script submits on load (`data-auto-submit`), as a browser would send it.
fn auto_submitted_form(page: &Page) -> Option<Form> {
    if page.status != 200 || !page.body.contains("data-auto-submit") {
        return None;
    }
    page.forms().into_iter().find(|f| f.method == "POST")
}

/// An HTML form: its action, method, the fields a person would send, and its named buttons.
#[derive(Debug, Clone)]
pub struct Form {
    pub action: String,
    pub method: String,
    pub fields: Vec<(String, String)>,
    pub buttons: Vec<(String, String)>,
}

fn attributes(tag: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = tag.trim_start_matches('<');
    rest = rest.split_once(char::is_whitespace).map(|(_, r)| r).unwrap_or("");
    loop {
        rest = rest.trim_start();
        if rest.is_empty() || rest.starts_with('>') || rest.starts_with("/>") {
            return out;
        }
        let name_end = rest
            .find(|c: char| c == '=' || c.is_whitespace() || c == '>')
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = &rest[name_end..];
        if let Some(after) = rest.strip_prefix('=') {
            let (value, remaining) = if let Some(q) = after.strip_prefix('"') {
                let end = q.find('"').unwrap();
                (&q[..end], &q[end + 1..])
            } else {
                let end = after
                    .find(|c: char| c.is_whitespace() || c == '>')
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            out.push((name, unescape(value)));
            rest = remaining;
        } else {
            out.push((name, String::new()));
        }
    }
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// The forms of a page (inputs, first-checked radios, selects' selected or first option, buttons).
pub fn parse_forms(html: &str) -> Vec<Form> {
    let mut forms = Vec::new();
    let lower = html.to_ascii_lowercase();
    let mut from = 0;
    while let Some(start) = lower[from..].find("<form").map(|i| i + from) {
        let end = lower[start..]
            .find("</form>")
            .map(|i| i + start)
            .unwrap_or(html.len());
        let inner = &html[start..end];
        let open_end = inner.find('>').unwrap();
        let attrs = attributes(&inner[..=open_end]);
        let mut form = Form {
            action: attr(&attrs, "action").unwrap_or("").to_owned(),
            method: attr(&attrs, "method").unwrap_or("get").to_ascii_uppercase(),
            fields: Vec::new(),
            buttons: Vec::new(),
        };
        let mut radios_seen: Vec<String> = Vec::new();
        let mut pos = open_end;
        while let Some(i) = inner[pos..].find('<').map(|i| i + pos) {
            let close = inner[i..].find('>').map(|c| c + i).unwrap_or(inner.len() - 1);
            let tag = &inner[i..=close];
            let tag_lower = tag.to_ascii_lowercase();
            let a = attributes(tag);
            if tag_lower.starts_with("<input") {
                let kind = attr(&a, "type").unwrap_or("text").to_ascii_lowercase();
                let name = attr(&a, "name").map(str::to_owned);
                let value = attr(&a, "value").unwrap_or("").to_owned();
                match (kind.as_str(), name) {
                    ("submit", Some(name)) => form.buttons.push((name, value)),
                    ("radio", Some(name)) => {
                        // The first radio of each group unless a later one is checked.
                        if attr(&a, "checked").is_some() {
                            form.fields.retain(|(n, _)| n != &name);
                            form.fields.push((name.clone(), value));
                            radios_seen.push(name);
                        } else if !radios_seen.contains(&name) && !form.fields.iter().any(|(n, _)| n == &name)
                        {
                            form.fields.push((name, value));
                        }
                    }
                    ("checkbox", Some(name)) if attr(&a, "checked").is_some() => {
                        form.fields.push((name, value))
                    }
                    ("checkbox", _) => {}
                    (_, Some(name)) => form.fields.push((name, value)),
                    _ => {}
                }
            } else if tag_lower.starts_with("<button") {
                if let (Some(name), Some(value)) = (attr(&a, "name"), attr(&a, "value")) {
                    form.buttons.push((name.to_owned(), value.to_owned()));
                }
            } else if tag_lower.starts_with("<select")
                && let Some(name) = attr(&a, "name")
            {
                let select_end = inner[close..]
                    .to_ascii_lowercase()
                    .find("</select>")
                    .map(|e| e + close)
                    .unwrap_or(inner.len());
                let options = &inner[close..select_end];
                let mut first = None;
                let mut selected = None;
                for piece in options.split("<option").skip(1) {
                    let tag_end = piece.find('>').unwrap_or(piece.len());
                    let oa = attributes(&format!("<option{}", &piece[..=tag_end.min(piece.len() - 1)]));
                    let value = attr(&oa, "value").unwrap_or("").to_owned();
                    if first.is_none() {
                        first = Some(value.clone());
                    }
                    if attr(&oa, "selected").is_some() {
                        selected = Some(value);
                    }
                }
                if let Some(v) = selected.or(first) {
                    form.fields.push((name.to_owned(), v));
                }
            }
            pos = close + 1;
        }
        forms.push(form);
        from = end.max(start + 5);
    }
    forms
}

/// Clicks through the sandbox's sign-in, patient picker, optional encounter picker and consent,
/// answering consent with `decision` ("approve" or "deny"). Starts from an EHR page and returns the
/// first page that is not on the sandbox's origin (normally the app's callback result), or stops
/// just before the app's callback when `stop_at_callback` is true (then `Page.url` is the last
/// sandbox URL and the callback URL is the last entry in `browser.visited` plus the Location header).
pub async fn click_through_ehr(
    browser: &Browser,
    mut page: Page,
    decision: &str,
    stop: &dyn Fn(&Url) -> bool,
) -> Page {
    let ehr_origin = page.url.origin();
    for _ in 0..8 {
        if page.url.origin() != ehr_origin || (300..400).contains(&page.status) {
            return page;
        }
        assert_eq!(
            page.status, 200,
            "the EHR answered {}: {}",
            page.status, page.body
        );
        let forms = page.forms();
        let form = forms
            .iter()
            .find(|f| f.method == "POST")
            .unwrap_or_else(|| panic!("no POST form on {}: {}", page.url, page.body))
            .clone();
        let button = form
            .buttons
            .iter()
            .any(|(n, _)| n == "decision")
            .then_some(decision);
        page = browser.submit_until(&page, &form, button, stop).await;
    }
    panic!(
        "the EHR's pages did not lead back to the app; last at {}",
        page.url
    );
}

/// Where the browser goes from the app's answer to `/authorize` or `/launch`: the redirect's target,
/// or, for the authorize-post form page, where the EHR sends it after the POST.
pub async fn ehr_entry(browser: &Browser, page: &Page) -> Url {
    match auto_submitted_form(page) {
        Some(form) => {
            let action = page.url.join(&form.action).unwrap();
            location(&browser.request("POST", action, Some(form.fields)).await)
        }
        None => location(page),
    }
}

/// The URL in a redirect's Location header.
pub fn location(page: &Page) -> Url {
    let loc = page
        .headers
        .get(reqwest::header::LOCATION)
        .expect("not a redirect")
        .to_str()
        .unwrap();
    page.url.join(loc).unwrap()
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
