//! The server's own bounds: half-sent requests are disconnected after the header-read timeout, connections and
//! requests beyond their limits get 503 with `Retry-After`, a body that never arrives times out.

use crate::common::{self, TestSandbox};
use sandbox::{SandboxConfig, ServerLimits};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start_limited(limits: ServerLimits) -> TestSandbox {
    let config = |config: &mut SandboxConfig| {
        config.patients = 2;
        common::with_test_app(config);
    };
    TestSandbox::start_with_limits(config, limits).await
}

/// Reads until the server closes the connection (or 10 s pass, which fails the test): what it sent.
async fn read_to_close(socket: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf))
            .await
            .expect("the server kept the connection open");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Reads one response head.
async fn read_head(socket: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf))
            .await
            .expect("the server answered")
            .unwrap();
        assert!(
            n > 0,
            "closed before answering: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn half_sent_requests_are_closed_after_the_header_read_timeout() {
    let ts = start_limited(ServerLimits {
        header_read_timeout: Duration::from_millis(300),
        ..ServerLimits::default()
    })
    .await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let mut socket = TcpStream::connect(ts.running.addr).await.unwrap();
        socket
            .write_all(b"GET /fhir/metadata HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: application/fhir+json\r\n")
            .await
            .unwrap();
        sockets.push(socket);
    }
    // An idle connection (nothing sent) is closed too.
    sockets.push(TcpStream::connect(ts.running.addr).await.unwrap());
    for socket in &mut sockets {
        let answer = read_to_close(socket).await;
        assert!(!answer.contains("200 OK"), "{answer}");
    }
    // The server still answers whole requests.
    let mut socket = TcpStream::connect(ts.running.addr).await.unwrap();
    socket
        .write_all(b"GET /fhir/metadata HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    assert!(read_head(&mut socket).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn connections_beyond_the_limit_get_503_with_retry_after() {
    let ts = start_limited(ServerLimits {
        max_connections: 2,
        ..ServerLimits::default()
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut socket = TcpStream::connect(ts.running.addr).await.unwrap();
        socket
            .write_all(b"GET /fhir/metadata HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        assert!(read_head(&mut socket).await.starts_with("HTTP/1.1 200"));
        open.push(socket);
    }
    let mut third = TcpStream::connect(ts.running.addr).await.unwrap();
    let answer = read_to_close(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-content-type-options: nosniff"),
        "{answer}"
    );
    drop(open);
}

/// A valid access token of the test app on `ts`.
async fn token(ts: &TestSandbox) -> String {
    let tokens = common::launch_and_exchange(ts, "launch/patient patient/*.cruds").await;
    tokens["access_token"].as_str().unwrap().to_owned()
}

/// Sends the head of a POST announcing 100 bytes of body, and 10 of them.
async fn post_with_a_body_that_stalls(ts: &TestSandbox, token: &str) -> TcpStream {
    let mut socket = TcpStream::connect(ts.running.addr).await.unwrap();
    let head = format!(
        "POST /fhir/Observation HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {token}\r\n\
         content-type: application/fhir+json\r\ncontent-length: 100\r\n\r\n{{\"resource"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket
}

#[tokio::test]
async fn a_request_whose_body_never_arrives_times_out_with_503() {
    let ts = start_limited(ServerLimits {
        request_timeout: Duration::from_millis(300),
        ..ServerLimits::default()
    })
    .await;
    let token = token(&ts).await;
    let mut socket = post_with_a_body_that_stalls(&ts, &token).await;
    let head = read_head(&mut socket).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(head.to_ascii_lowercase().contains("retry-after: 1"), "{head}");
}

/// Sends a GET of the CapabilityStatement to `ts` on its own connection, in the background.
fn get_metadata(ts: &TestSandbox, accept: &'static str) -> tokio::task::JoinHandle<reqwest::Response> {
    let (http, url) = (ts.http.clone(), format!("{}/metadata", ts.aud()));
    tokio::spawn(async move { http.get(url).header("accept", accept).send().await.unwrap() })
}

/// Holds the only in-flight permit of `ts` with a POST whose body stalls, and returns it once a GET is seen
/// waiting behind it (still unanswered after `pending`): a GET answered sooner came before the POST had its
/// turn, and must have been answered 200.
async fn hold_the_only_turn(
    ts: &TestSandbox,
    token: &str,
    pending: Duration,
) -> (TcpStream, tokio::task::JoinHandle<reqwest::Response>) {
    let held = post_with_a_body_that_stalls(ts, token).await;
    for _ in 0..50 {
        let mut waiting = get_metadata(ts, "application/fhir+json");
        match tokio::time::timeout(pending, &mut waiting).await {
            Err(_) => return (held, waiting),
            Ok(answered) => {
                let status = answered.unwrap().status();
                assert_eq!(
                    status,
                    reqwest::StatusCode::OK,
                    "a request beyond the limit was not let wait"
                );
            }
        }
    }
    panic!("the stalled POST never took its turn");
}

#[tokio::test]
async fn a_request_beyond_the_in_flight_limit_waits_for_a_turn_and_is_answered() {
    let ts = start_limited(ServerLimits {
        max_in_flight: 1,
        in_flight_wait: Duration::from_secs(60),
        ..ServerLimits::default()
    })
    .await;
    let token = token(&ts).await;
    let (mut held, waiting) = hold_the_only_turn(&ts, &token, Duration::from_millis(300)).await;
    // The held request gets the rest of its body (not JSON: a 400), and frees its turn.
    held.write_all(&[b' '; 90]).await.unwrap();
    assert!(read_head(&mut held).await.starts_with("HTTP/1.1 4"));
    let answered = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the waiting request was answered once a turn was free")
        .unwrap();
    assert_eq!(answered.status(), reqwest::StatusCode::OK);
}

#[tokio::test]
async fn requests_beyond_the_in_flight_limit_get_503_with_retry_after() {
    let ts = start_limited(ServerLimits {
        max_in_flight: 1,
        in_flight_wait: Duration::from_millis(200),
        ..ServerLimits::default()
    })
    .await;
    let token = token(&ts).await;
    let _held = post_with_a_body_that_stalls(&ts, &token).await;
    // The held request has its turn once its head is read; until then a GET is answered at once (asked again).
    let mut refused = None;
    for _ in 0..50 {
        let response = get_metadata(&ts, "application/fhir+json").await.unwrap();
        if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            refused = Some(response);
            break;
        }
    }
    let refused = refused.expect("a request beyond the limit was refused once its wait was over");
    assert_eq!(refused.headers()["retry-after"], "1");
    // Answered outside the router, it still says nosniff, like every routed answer.
    assert_eq!(refused.headers()["x-content-type-options"], "nosniff");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["resourceType"], "OperationOutcome");
    assert_eq!(body["issue"][0]["code"], "transient");
    // A browser gets a page.
    let page = get_metadata(&ts, "text/html,application/xhtml+xml")
        .await
        .unwrap();
    assert_eq!(page.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("busy"));
}
