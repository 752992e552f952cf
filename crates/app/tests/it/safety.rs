//! The app facing strangers: nothing stored for a page view, launches capped per session and short-lived,
//! pages that cannot be framed, half-sent requests disconnected.

use std::time::Duration;

use app::{AppConfig, ServerLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Browser, TestEnv};

fn set_cookie(page: &crate::common::Page) -> Option<String> {
    page.set_cookies()
        .into_iter()
        .find(|c| c.starts_with("smart_fhir_session="))
}

#[tokio::test]
async fn a_cookieless_page_view_junk_callback_or_launch_stores_nothing() {
    let env = TestEnv::start().await;
    let junk = [
        "/fhir-app/",
        "/fhir-app/?code=junk&state=junk",
        "/fhir-app/?state=junk&error=access_denied",
        "/fhir-app/?code=%00%ff&state=&state=x",
        "/launch",
        "/launch?iss=http://evil.example/fhir&launch=abc",
        "/launch?iss=not%20a%20url&launch=",
    ];
    let pages = ["/", "/index.html", "/logout", "/reset", "/inspect", "/", "/?x=1"];
    for path in pages.into_iter().chain(junk) {
        let page = Browser::new().request("GET", env.url(path), None).await;
        assert!(page.status < 500, "{path}: {}", page.status);
        assert!(
            set_cookie(&page).is_none(),
            "{path} set a cookie: {:?} status {}",
            set_cookie(&page),
            page.status
        );
    }
    // A forged POST from a stranger changes nothing and stores nothing either.
    let stranger = Browser::new();
    let start = stranger.request("GET", env.url("/"), None).await;
    let csrf = crate::common::parse_forms(&start.body)
        .into_iter()
        .find_map(|f| f.fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.clone()));
    if let Some(csrf) = csrf {
        let posted = stranger
            .request("POST", env.url("/logout"), Some(vec![("csrf".into(), csrf)]))
            .await;
        assert!(set_cookie(&posted).is_none());
    }
    let (sessions, pending) = env.app.state.sessions().row_counts().await.unwrap();
    assert_eq!((sessions, pending), (0, 0));
    env.stop().await;
}

#[tokio::test]
async fn launches_a_stranger_starts_are_capped_per_session_and_short_lived() {
    let env = TestEnv::start().await;
    let browser = Browser::new();
    for _ in 0..(app::session::MAX_PENDING_PER_SESSION + 7) {
        let page = browser.request("GET", env.url("/authorize"), None).await;
        // A redirect to the EHR, or the authorize-post form page that submits itself to it.
        let to_ehr = (300..400).contains(&page.status) || page.body.contains("data-auto-submit");
        assert!(to_ehr, "{}", page.status);
    }
    let (sessions, pending) = env.app.state.sessions().row_counts().await.unwrap();
    assert_eq!(sessions, 1, "one browser, one session");
    assert_eq!(pending, app::session::MAX_PENDING_PER_SESSION);
    // A session that only waits for a launch lives as long as the launch may wait, not the configured 12 h.
    let conn = rusqlite::Connection::open(env.session_db()).unwrap();
    let expires_at: i64 = conn
        .query_row("SELECT expires_at FROM sessions", [], |r| r.get(0))
        .unwrap();
    let limit = chrono::Utc::now().timestamp()
        + i64::try_from(app::session::PENDING_LAUNCH_TTL.as_secs()).unwrap()
        + 5;
    assert!(expires_at <= limit, "expires at {expires_at}, later than {limit}");
    env.stop().await;
}

#[tokio::test]
async fn the_apps_pages_cannot_be_framed() {
    let env = TestEnv::start().await;
    let page = Browser::new().request("GET", env.url("/"), None).await;
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers["x-frame-options"], "DENY");
    env.stop().await;
}

#[tokio::test]
async fn half_sent_requests_to_the_app_are_closed_after_the_header_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let config = AppConfig::for_issuer(
        url::Url::parse("http://127.0.0.1:9/fhir").unwrap(),
        "app",
        dir.path().join("sessions.db"),
    );
    let limits = ServerLimits {
        header_read_timeout: Duration::from_millis(300),
        max_connections: 4,
        ..ServerLimits::default()
    };
    let app = app::start_with_limits(config, limits).await.unwrap();
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        socket
            .write_all(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n")
            .await
            .unwrap();
        sockets.push(socket);
    }
    for socket in &mut sockets {
        let mut buf = [0u8; 1024];
        loop {
            let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf))
                .await
                .expect("the app kept a half-sent request open");
            match read {
                Ok(0) | Err(_) => break,
                Ok(n) => assert!(!String::from_utf8_lossy(&buf[..n]).contains("200 OK")),
            }
        }
    }
    // Over the connection limit: 503 with Retry-After.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(app.addr).await.unwrap());
    }
    let mut extra = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), extra.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    drop(held);
    app.shutdown().await;
}

#[tokio::test]
async fn an_error_redirect_without_state_shows_no_text_the_sender_chose() {
    let env = TestEnv::start().await;
    let mut callback = env.app.redirect_uri.clone();
    callback
        .query_pairs_mut()
        .append_pair("error", "Your-account-is-locked")
        .append_pair("error_description", "Call +1-555-0100 now to unlock your records")
        .append_pair("error_uri", "https://evil.example/help");
    let page = Browser::new().request("GET", callback, None).await;
    assert_eq!(page.status, 400, "{}", page.body);
    for planted in ["Your-account-is-locked", "555-0100", "evil.example"] {
        assert!(!page.body.contains(planted), "{planted} shown: {}", page.body);
    }
    // A registered error code is still named.
    let mut denied = env.app.redirect_uri.clone();
    denied
        .query_pairs_mut()
        .append_pair("error", "access_denied")
        .append_pair("error_description", "Planted words");
    let page = Browser::new().request("GET", denied, None).await;
    assert!(!page.body.contains("Planted words"), "{}", page.body);
    env.stop().await;
}

#[tokio::test]
async fn every_answer_of_the_app_says_nosniff() {
    let env = TestEnv::start().await;
    for path in ["/", "/health", "/no/such/page", "/inspect", "/launch"] {
        let page = Browser::new().request("GET", env.url(path), None).await;
        assert_eq!(
            page.headers
                .get("x-content-type-options")
                .map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{path} {}",
            page.status
        );
    }
    env.stop().await;
}

/// An app against an EHR that is never reached (nothing here launches), within `limits`.
async fn start_limited(dir: &tempfile::TempDir, limits: ServerLimits) -> app::RunningApp {
    let config = AppConfig::for_issuer(
        url::Url::parse("http://127.0.0.1:9/fhir").unwrap(),
        "app",
        dir.path().join("sessions.db"),
    );
    app::start_with_limits(config, limits).await.unwrap()
}

/// Sends the head of a log-out POST announcing 100 bytes of form body, and 10 of them: the request holds its
/// turn until the rest comes.
async fn post_with_a_body_that_stalls(app: &app::RunningApp) -> tokio::net::TcpStream {
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    socket
        .write_all(
            b"POST /logout HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/x-www-form-urlencoded\r\n\
              content-length: 100\r\n\r\ncsrf=abcde",
        )
        .await
        .unwrap();
    socket
}

fn get_health(app: &app::RunningApp) -> tokio::task::JoinHandle<reqwest::Response> {
    let url = format!("http://{}/health", app.addr);
    tokio::spawn(async move { reqwest::get(url).await.unwrap() })
}

#[tokio::test]
async fn a_request_beyond_the_apps_in_flight_limit_waits_for_a_turn_and_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let limits = ServerLimits {
        max_in_flight: 1,
        in_flight_wait: Duration::from_secs(60),
        ..ServerLimits::default()
    };
    let app = start_limited(&dir, limits).await;
    let mut held = post_with_a_body_that_stalls(&app).await;
    // A GET answered at once came before the POST had its turn (and must be a 200); one still unanswered after
    // 300 ms waits behind it.
    let mut waiting = None;
    for _ in 0..50 {
        let mut get = get_health(&app);
        match tokio::time::timeout(Duration::from_millis(300), &mut get).await {
            Err(_) => {
                waiting = Some(get);
                break;
            }
            Ok(answered) => assert_eq!(
                answered.unwrap().status(),
                200,
                "a request beyond the limit was not let wait"
            ),
        }
    }
    let waiting = waiting.expect("the stalled POST never took its turn");
    held.write_all(&[b'x'; 90]).await.unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the waiting request was answered once a turn was free")
        .unwrap();
    assert_eq!(answered.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn requests_beyond_the_apps_in_flight_limit_get_a_503_page_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let limits = ServerLimits {
        max_in_flight: 1,
        in_flight_wait: Duration::from_millis(200),
        ..ServerLimits::default()
    };
    let app = start_limited(&dir, limits).await;
    let held = post_with_a_body_that_stalls(&app).await;
    let mut refused = None;
    for _ in 0..50 {
        let response = get_health(&app).await.unwrap();
        if response.status() == 503 {
            refused = Some(response);
            break;
        }
    }
    let refused = refused.expect("a request beyond the limit was refused once its wait was over");
    let headers = refused.headers().clone();
    assert_eq!(headers["retry-after"], "1");
    // Answered outside the router, it still carries the pages' protections.
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
    let body = refused.text().await.unwrap();
    assert!(body.contains("The app is busy"), "{body}");
    drop(held);
    app.shutdown().await;
}

#[tokio::test]
async fn expired_sessions_and_pending_launches_are_purged() {
    let env = TestEnv::start().await;
    let page = Browser::new().request("GET", env.url("/authorize"), None).await;
    assert!(page.status < 500, "{}", page.status);
    assert_eq!(env.app.state.sessions().row_counts().await.unwrap(), (1, 1));
    // Time passes: the session expired and the launch is older than PENDING_LAUNCH_TTL.
    let now = chrono::Utc::now().timestamp();
    let launch_ttl = i64::try_from(app::session::PENDING_LAUNCH_TTL.as_secs()).unwrap();
    let conn = rusqlite::Connection::open(env.session_db()).unwrap();
    conn.execute("UPDATE sessions SET expires_at = ?1", [now - 1])
        .unwrap();
    conn.execute(
        "UPDATE pending_launches SET created_at = ?1",
        [now - launch_ttl - 1],
    )
    .unwrap();
    // What the server's timer runs every PURGE_INTERVAL.
    env.app.state.sessions().purge().await.unwrap();
    assert_eq!(env.app.state.sessions().row_counts().await.unwrap(), (0, 0));
    env.stop().await;
}
