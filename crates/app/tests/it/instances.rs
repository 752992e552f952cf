//! Several app instances sharing sessions through a real `redis-server`, behind a round-robin proxy (test code):
//! every request of a browser goes to the next instance, so a launch started on one is called back on another,
//! a refresh forced on all of them at once reaches the EHR once, and a log-out on one is seen by all. Each
//! instance runs on its own runtime and thread, so killing one drops its sockets and tasks at once, as a killed
//! process would. The same behaviours are checked on the SQLite store where they apply (one instance).
//!
//! Without `redis-server` on the PATH the Redis tests skip, saying why; under `CI=true` they fail instead.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use app::AppConfig;
use app::session::{RedisUrl, SessionKey};
use sandbox::ClientSpec;
use test_support::sandbox::TestSandbox;
use url::Url;

use crate::common::{
    Browser, CLIENT_ID, Page, captured_logs, click_through_ehr, init_logs, location, start_sandbox,
};

/// The key every instance shares.
const KEY: &str = "4b1d2f3e5a6c7b8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d";

/// The words of the signed-in summary page.
const SIGNED_IN: &str = "You are authorized";

/// A `redis-server` on a free port, keeping its data in `dir` only when told to save; killed on drop.
struct RedisServer {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl RedisServer {
    /// Starts one, or `None` (saying why) when the binary is absent — which fails the test under `CI=true`.
    fn start(dir: &std::path::Path) -> Option<RedisServer> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "redis-server is not installed (.ci/run installs it): the Redis tests cannot run under CI=true"
            );
            eprintln!("skipped: redis-server is not installed (apt-get install redis-server)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Some(RedisServer::on_port(port, dir.to_owned()))
    }

    fn on_port(port: u16, dir: std::path::PathBuf) -> RedisServer {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--dir", dir.to_str().unwrap(), "--dbfilename", "dump.rdb"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Killed and waited for on drop, whatever happens next.
        let server = RedisServer { child, port, dir };
        // Wait until it answers (a readiness poll, not a timing assert).
        for _ in 0..400 {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::{Read as _, Write as _};
                let mut buf = [0u8; 7];
                if s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
                {
                    return server;
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not start on port {port}");
    }

    fn url(&self) -> RedisUrl {
        RedisUrl::parse(&format!("redis://127.0.0.1:{}/0", self.port)).unwrap()
    }

    /// Runs `redis-cli` against it; its output.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Everything Redis holds, as a dump would show it: `KEYS *`, then each key's value and its `DUMP`.
    fn dump(&self) -> String {
        let mut dump = String::new();
        for key in self.cli(&["KEYS", "*"]).lines().filter(|k| !k.is_empty()) {
            dump.push_str(key);
            dump.push('\n');
            let value = match self.cli(&["TYPE", key]).trim() {
                "hash" => self.cli(&["HGETALL", key]),
                "list" => self.cli(&["LRANGE", key, "0", "-1"]),
                _ => self.cli(&["GET", key]),
            };
            dump.push_str(&value);
            dump.push_str(&self.cli(&["DUMP", key]));
        }
        dump
    }

    /// Stops it after writing its data to `dir` (so a restart on the same port finds it again).
    fn shutdown_saving(&mut self) {
        let _ = self.cli(&["SHUTDOWN", "SAVE"]);
        let _ = self.child.wait();
    }

    /// Starts it again on the same port and directory.
    fn restart(&mut self) {
        let again = RedisServer::on_port(self.port, self.dir.clone());
        *self = again;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One app instance on its own runtime and thread: [`Instance::kill`] shuts the runtime down without waiting,
/// closing its sockets mid-request.
struct Instance {
    /// The instance's own address (behind the proxy).
    url: Url,
    redirect_uri: Url,
    launch_uri: Url,
    kill: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Instance {
    fn start(config: AppConfig) -> Instance {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let app = runtime.block_on(app::start(config)).unwrap();
            // Its own address: `app.url` is the public URL, the proxy's.
            let own = Url::parse(&format!("http://{}/", app.addr)).unwrap();
            ready_tx
                .send((own, app.redirect_uri.clone(), app.launch_uri.clone()))
                .unwrap();
            let _ = runtime.block_on(kill_rx);
            // Dropped without a graceful shutdown: every task and socket of the instance ends here.
            runtime.shutdown_background();
            drop(app);
        });
        let (url, redirect_uri, launch_uri) = ready_rx.recv().unwrap();
        Instance {
            url,
            redirect_uri,
            launch_uri,
            kill: Some(kill_tx),
            thread: Some(thread),
        }
    }

    /// Ends the instance at once: its runtime is dropped with every task and socket, nothing is flushed.
    fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A round-robin HTTP proxy: each request goes to the next instance; one that fails (refused, reset mid-answer)
/// is skipped and the request sent to the next, as a load balancer's health check would.
struct Proxy {
    url: Url,
    backends: Arc<std::sync::Mutex<Vec<Url>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start() -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let backends: Arc<std::sync::Mutex<Vec<Url>>> = Arc::default();
        let next = Arc::new(AtomicUsize::new(0));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let shared = backends.clone();
        let handler = move |request: axum::extract::Request| {
            let (backends, next, client) = (shared.clone(), next.clone(), client.clone());
            async move { forward(request, &backends, &next, &client).await }
        };
        let router = axum::Router::new().fallback(handler);
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Proxy { url, backends, task }
    }

    fn set_backends(&self, instances: &[Instance]) {
        *self.backends.lock().unwrap() = instances
            .iter()
            .filter(|i| i.kill.is_some())
            .map(|i| i.url.clone())
            .collect();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    request: axum::extract::Request,
    backends: &std::sync::Mutex<Vec<Url>>,
    next: &AtomicUsize,
    client: &reqwest::Client,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    // While no instance answers (one killed, its successor starting), wait a little, as a load balancer queues.
    for _ in 0..400 {
        let targets = backends.lock().unwrap().clone();
        if let Some(response) = forward_once(&parts, &body, &targets, next, client).await {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    axum::response::Response::builder()
        .status(502)
        .body(axum::body::Body::from("no instance answered"))
        .unwrap()
}

/// Tries each instance once, from the next in turn; `None` when none answered.
async fn forward_once(
    parts: &http::request::Parts,
    body: &axum::body::Bytes,
    targets: &[Url],
    next: &AtomicUsize,
    client: &reqwest::Client,
) -> Option<axum::response::Response> {
    for _ in 0..targets.len() {
        let target = &targets[next.fetch_add(1, Ordering::Relaxed) % targets.len()];
        let url = target
            .join(parts.uri.path_and_query().map_or("/", |p| p.as_str()))
            .unwrap();
        let mut headers = parts.headers.clone();
        headers.remove(http::header::HOST);
        let sent = client
            .request(parts.method.clone(), url)
            .headers(headers)
            .body(body.clone())
            .send()
            .await;
        let Ok(response) = sent else { continue };
        let status = response.status();
        let headers = response.headers().clone();
        let Ok(bytes) = response.bytes().await else {
            continue;
        };
        let mut out = axum::response::Response::builder().status(status);
        for (name, value) in &headers {
            if name != http::header::TRANSFER_ENCODING && name != http::header::CONNECTION {
                out = out.header(name, value);
            }
        }
        return Some(out.body(axum::body::Body::from(bytes)).unwrap());
    }
    None
}

/// A sandbox, the instances (on Redis when `redis` is given, else one SQLite file) and the proxy in front.
struct Cluster {
    sandbox: TestSandbox,
    instances: Vec<Instance>,
    proxy: Proxy,
    redis: Option<RedisServer>,
    configure: fn(&mut AppConfig),
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(dir: tempfile::TempDir, redis: Option<RedisServer>, count: usize) -> Cluster {
        Self::start_with(dir, redis, count, |_| {}).await
    }

    async fn start_with(
        dir: tempfile::TempDir,
        redis: Option<RedisServer>,
        count: usize,
        configure: fn(&mut AppConfig),
    ) -> Cluster {
        init_logs();
        let sandbox = start_sandbox(|_| {}).await;
        let proxy = Proxy::start().await;
        let mut cluster = Cluster {
            sandbox,
            instances: Vec::new(),
            proxy,
            redis,
            configure,
            dir,
        };
        for _ in 0..count {
            cluster.add_instance();
        }
        let first = &cluster.instances[0];
        let spec = ClientSpec::public(CLIENT_ID, first.redirect_uri.clone())
            .with_launch_uri(first.launch_uri.clone());
        cluster.sandbox.register(spec);
        cluster
    }

    /// Starts one more instance (on the same store) and puts it behind the proxy.
    fn add_instance(&mut self) {
        let mut config = AppConfig::for_issuer(
            self.sandbox.fhir_base.clone(),
            CLIENT_ID,
            self.dir.path().join("sessions").join("sessions.db"),
        );
        config.public_url = Some(self.proxy.url.clone());
        config.session_key = Some(SessionKey::from_hex(KEY).unwrap());
        config.session_store = self.redis.as_ref().map(RedisServer::url);
        (self.configure)(&mut config);
        self.instances.push(Instance::start(config));
        self.proxy.set_backends(&self.instances);
    }

    fn kill(&mut self, index: usize) {
        self.instances[index].kill();
        self.proxy.set_backends(&self.instances);
    }

    fn url(&self, path: &str) -> Url {
        self.proxy.url.join(path).unwrap()
    }

    /// The sandbox's own record of refreshes: for each token family, how many of its refresh tokens were
    /// rotated (one per refresh) and how many revoked (a reuse revokes the whole family).
    fn refreshes_at_the_sandbox(&self) -> Vec<(i64, i64)> {
        let conn = rusqlite::Connection::open(self.sandbox.dir.path().join("sandbox.db")).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT SUM(kind = 'refresh' AND state = 2), SUM(kind = 'refresh' AND state = 1)
                 FROM auth_tokens WHERE family IN (SELECT family FROM auth_tokens WHERE kind = 'refresh')
                 GROUP BY family",
            )
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// The access tokens the store holds for signed-in sessions (opened with the shared key).
    fn stored_access_tokens(&self) -> Vec<String> {
        self.stored_sessions()
            .iter()
            .filter_map(|s| {
                s["launch"]["launch"]["tokens"]["access_token"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    }

    /// Every token (access, refresh, id) of the stored sessions.
    fn stored_tokens(&self) -> Vec<String> {
        let mut out = Vec::new();
        for session in self.stored_sessions() {
            for key in ["access_token", "refresh_token", "id_token"] {
                if let Some(t) = session["launch"]["launch"]["tokens"][key].as_str() {
                    out.push(t.to_owned());
                }
            }
        }
        out
    }

    fn stored_sessions(&self) -> Vec<serde_json::Value> {
        let key = SessionKey::from_hex(KEY).unwrap();
        let Some(redis) = &self.redis else {
            let conn =
                rusqlite::Connection::open(self.dir.path().join("sessions").join("sessions.db")).unwrap();
            let mut stmt = conn.prepare("SELECT id_hash, data FROM sessions").unwrap();
            let rows: Vec<(String, String)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            return rows
                .iter()
                .map(|(hash, data)| serde_json::from_slice(&key.open(hash, data).unwrap()).unwrap())
                .collect();
        };
        redis
            .cli(&["KEYS", "smart-fhir:session:*"])
            .lines()
            .filter(|k| !k.is_empty())
            .filter_map(|k| {
                let sealed = redis.cli(&["HGET", k, "d"]);
                let hash = k.trim_start_matches("smart-fhir:session:");
                let plain = key.open(hash, sealed.trim())?;
                serde_json::from_slice(&plain).ok()
            })
            .collect()
    }

    /// Revokes an access token at the sandbox (RFC 7009), so the next FHIR request with it gets a 401 and
    /// makes the app refresh: a refresh forced without waiting for the token to expire.
    async fn revoke_at_the_sandbox(&self, access_token: &str) {
        let status = reqwest::Client::new()
            .post(format!("http://{}/auth/revoke", self.sandbox.addr))
            .form(&[
                ("token", access_token),
                ("token_type_hint", "access_token"),
                ("client_id", CLIENT_ID),
            ])
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }

    async fn stop(mut self) {
        for instance in &mut self.instances {
            instance.kill();
        }
        self.sandbox.shutdown().await;
    }
}

fn csrf_of(page: &Page) -> String {
    page.forms()
        .iter()
        .flat_map(|f| f.fields.iter())
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.clone())
        .expect("no csrf field")
}

/// A standalone launch through the proxy.
async fn standalone(cluster: &Cluster, browser: &Browser) {
    let home = crate::common::standalone_launch_at(&cluster.proxy.url, browser).await;
    assert!(home.body.contains(SIGNED_IN), "{}", home.body);
}

/// An EHR launch from the sandbox's launcher to the app behind the proxy.
async fn ehr_launch(cluster: &Cluster, browser: &Browser) {
    let sandbox = Url::parse(&format!("http://{}/", cluster.sandbox.addr)).unwrap();
    let launcher = crate::common::launcher_url(browser, &sandbox).await;
    let app_origin = cluster.proxy.url.origin();
    let to_app = browser
        .navigate_until("GET", launcher, None, |u| u.origin() == app_origin)
        .await;
    let launch_url = location(&to_app);
    assert_eq!(launch_url.path(), "/launch");
    let first_ehr_page = browser
        .navigate_until("GET", launch_url, None, |u| u.origin() != app_origin)
        .await;
    let first_ehr_page = browser.get(location(&first_ehr_page)).await;
    let back = click_through_ehr(browser, first_ehr_page, "approve", &|u: &Url| {
        u.origin() == app_origin
    })
    .await;
    let page = browser.get(location(&back)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(SIGNED_IN), "{}", page.body);
}

/// Logs out (POST /logout with the page's CSRF token) through the proxy.
async fn log_out(cluster: &Cluster, browser: &Browser, path: &str) {
    let page = browser.get(cluster.url(path)).await;
    let done = browser
        .navigate(
            "POST",
            cluster.url(path),
            Some(vec![("csrf".into(), csrf_of(&page))]),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
}

/// Every instance serves `browser`'s session signed in (or, when `signed_in` is false, signed out).
async fn every_instance_says(cluster: &Cluster, browser: &Browser, signed_in: bool) {
    for instance in cluster.instances.iter().filter(|i| i.kill.is_some()) {
        let page = browser.get(instance.url.join("/").unwrap()).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(
            page.body.contains(SIGNED_IN),
            signed_in,
            "{}: {}",
            instance.url,
            page.body
        );
    }
}

fn redis_or_skip(dir: &tempfile::TempDir) -> Option<RedisServer> {
    RedisServer::start(dir.path())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_launches_sessions_and_logouts_through_redis() {
    let dir = tempfile::tempdir().unwrap();
    let Some(redis) = redis_or_skip(&dir) else { return };
    let cluster = Cluster::start(dir, Some(redis), 3).await;
    // Each launch's requests land on different instances: /authorize on one, the callback on the next.
    let (standalone_user, ehr_user) = (Browser::new(), Browser::new());
    standalone(&cluster, &standalone_user).await;
    ehr_launch(&cluster, &ehr_user).await;
    // Every instance serves both sessions, and caches their summaries.
    every_instance_says(&cluster, &standalone_user, true).await;
    every_instance_says(&cluster, &ehr_user, true).await;

    // Log out through one instance and reset through another: no instance serves either session after,
    // though each had its summary cached.
    log_out(&cluster, &standalone_user, "/logout").await;
    log_out(&cluster, &ehr_user, "/reset").await;
    every_instance_says(&cluster, &standalone_user, false).await;
    every_instance_says(&cluster, &ehr_user, false).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_of_redis_shows_no_access_or_refresh_token() {
    let dir = tempfile::tempdir().unwrap();
    let Some(redis) = redis_or_skip(&dir) else { return };
    let cluster = Cluster::start_with(dir, Some(redis), 3, |c| c.summary_cache = Duration::ZERO).await;
    let browser = Browser::new();
    standalone(&cluster, &browser).await;
    // A refresh too, so that its shared result is in Redis as well.
    for token in cluster.stored_access_tokens() {
        cluster.revoke_at_the_sandbox(&token).await;
    }
    every_instance_says(&cluster, &browser, true).await;
    let tokens = cluster.stored_tokens();
    assert!(
        tokens.len() >= 2,
        "the session holds access and refresh tokens: {tokens:?}"
    );
    let redis = cluster.redis.as_ref().unwrap();
    let dump = redis.dump();
    assert!(dump.contains("smart-fhir:refresh-result:"), "{dump}");
    for token in &tokens {
        assert!(!dump.contains(token.as_str()), "a token is readable in Redis");
    }
    for word in ["access_token", "refresh_token", "patient"] {
        assert!(!dump.contains(word), "{word} readable in Redis");
    }
    cluster.stop().await;
}

/// Forces a refresh of every signed-in session (its access token revoked at the EHR), then asks every instance
/// for each session's page at once; every page is signed in, and each family was refreshed once at the sandbox.
async fn refresh_everywhere_at_once(cluster: &Cluster, browsers: &[Browser], asks_per_instance: usize) {
    for token in cluster.stored_access_tokens() {
        cluster.revoke_at_the_sandbox(&token).await;
    }
    let mut asks = Vec::new();
    for browser in browsers {
        for instance in &cluster.instances {
            for _ in 0..asks_per_instance {
                asks.push(browser.request("GET", instance.url.join("/").unwrap(), None));
            }
        }
    }
    let pages = futures::future::join_all(asks).await;
    for page in &pages {
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains(SIGNED_IN), "{}", page.body);
    }
    let families = cluster.refreshes_at_the_sandbox();
    assert_eq!(families.len(), browsers.len(), "{families:?}");
    for (rotated, revoked) in families {
        assert_eq!(rotated, 1, "one refresh per family at the sandbox");
        assert_eq!(
            revoked, 0,
            "no family revoked (no invalid_grant from a reused refresh token)"
        );
    }
    assert!(
        !captured_logs().contains("rotated refresh token reused"),
        "the sandbox saw a rotated refresh token reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_forced_on_three_instances_at_once_reach_the_ehr_once_per_family() {
    let dir = tempfile::tempdir().unwrap();
    let Some(redis) = redis_or_skip(&dir) else { return };
    let cluster = Cluster::start_with(dir, Some(redis), 3, |c| c.summary_cache = Duration::ZERO).await;
    let browsers = [Browser::new(), Browser::new(), Browser::new()];
    for browser in &browsers {
        standalone(&cluster, browser).await;
    }
    refresh_everywhere_at_once(&cluster, &browsers, 2).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_forced_on_one_sqlite_instance_at_once_reach_the_ehr_once_per_family() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start_with(dir, None, 1, |c| c.summary_cache = Duration::ZERO).await;
    let browsers = [Browser::new(), Browser::new()];
    for browser in &browsers {
        standalone(&cluster, browser).await;
    }
    refresh_everywhere_at_once(&cluster, &browsers, 4).await;
    cluster.stop().await;
}

/// Signs in `n` browsers, then loads the app through the proxy while `kill` ends one instance; every request
/// is answered and every session is still signed in afterwards.
async fn kill_mid_load(mut cluster: Cluster, n: usize, after_kill: fn(&mut Cluster)) -> Cluster {
    let browsers: Vec<Arc<Browser>> = (0..n).map(|_| Arc::new(Browser::new())).collect();
    for browser in &browsers {
        standalone(&cluster, browser).await;
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = browsers
        .iter()
        .map(|browser| {
            let (browser, stop, served, url) =
                (browser.clone(), stop.clone(), served.clone(), cluster.url("/"));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let page = browser.request("GET", url.clone(), None).await;
                    assert_eq!(page.status, 200, "{}", page.body);
                    assert!(page.body.contains(SIGNED_IN), "session lost: {}", page.body);
                    served.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Mid-load: once every browser has been served a few pages.
    while served.load(Ordering::Relaxed) < 3 * n {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let index = cluster.instances.len() - 1;
    tokio::task::block_in_place(|| cluster.kill(index));
    after_kill(&mut cluster);
    let before = served.load(Ordering::Relaxed);
    while served.load(Ordering::Relaxed) < before + 3 * n {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    for browser in &browsers {
        let page = browser.get(cluster.url("/")).await;
        assert!(page.body.contains(SIGNED_IN), "session lost: {}", page.body);
    }
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_of_three_redis_instances_mid_load_loses_no_session() {
    let dir = tempfile::tempdir().unwrap();
    let Some(redis) = redis_or_skip(&dir) else { return };
    let cluster = Cluster::start(dir, Some(redis), 3).await;
    let cluster = kill_mid_load(cluster, 4, |_| {}).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_sqlite_instance_mid_load_and_starting_another_loses_no_session() {
    let dir = tempfile::tempdir().unwrap();
    // Two instances on one SQLite file only one at a time: the first is killed, the second started after.
    let cluster = Cluster::start(dir, None, 1).await;
    let cluster = kill_mid_load(cluster, 3, |c| c.add_instance()).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_answers_503_with_one_warning_and_the_app_recovers_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let Some(redis) = redis_or_skip(&dir) else { return };
    let mut cluster = Cluster::start(dir, Some(redis), 3).await;
    let browser = Browser::new();
    standalone(&cluster, &browser).await;
    let warned_before = captured_logs()
        .matches("the Redis session store is unavailable")
        .count();

    cluster.redis.as_mut().unwrap().shutdown_saving();
    for _ in 0..3 {
        for instance in &cluster.instances {
            let page = browser
                .request("GET", instance.url.join("/").unwrap(), None)
                .await;
            assert_eq!(page.status, 503, "{}", page.body);
            assert!(page.body.contains("session store"), "{}", page.body);
            assert!(page.headers.contains_key(reqwest::header::RETRY_AFTER));
        }
    }
    let logs = captured_logs();
    let warned = logs.matches("the Redis session store is unavailable").count() - warned_before;
    assert_eq!(warned, 3, "one warning per instance for nine refused requests");
    assert!(logs.contains("request refused: the session store is unavailable"));

    // Redis is back with what it saved: every instance serves the session again, without a restart.
    cluster.redis.as_mut().unwrap().restart();
    every_instance_says(&cluster, &browser, true).await;
    assert!(captured_logs().contains("the Redis session store is available again"));
    cluster.stop().await;
}
