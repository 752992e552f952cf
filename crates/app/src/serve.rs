//! Serving HTTP with bounds: at most [`ServerLimits::max_connections`] connections (one more is answered 503 with
//! `Retry-After` and closed), a request head read within [`ServerLimits::header_read_timeout`] (a client that
//! sends half a request, or keeps an idle connection, is disconnected), at most
//! [`ServerLimits::max_in_flight`] requests at once (one more waits up to [`ServerLimits::in_flight_wait`] for a
//! turn) and each answered within [`ServerLimits::request_timeout`] (503 with `Retry-After` beyond either), so a
//! flood of slow or half-sent requests cannot pile up. The connection cap bounds how many requests can wait.
//!
//! Defaults follow common practice: hyper's own header-read timeout is 30 s and nginx's `client_header_timeout`
//! 60 s; 10 s is ample for a browser. The sandbox has the same loop (`sandbox::serve`): the app does not depend
//! on the sandbox, and no crate below both knows about HTTP servers.

use std::{future::Future, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{Request, State},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use http::{HeaderValue, StatusCode, header};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use maud::html;
use tokio::{
    io::AsyncWriteExt,
    net::TcpListener,
    sync::{OwnedSemaphorePermit, Semaphore},
};

/// The default of [`ServerLimits::max_connections`].
pub const MAX_CONNECTIONS: usize = 1024;
/// The default of [`ServerLimits::max_in_flight`].
pub const MAX_IN_FLIGHT: usize = 256;
/// The default of [`ServerLimits::in_flight_wait`]: a burst of up to [`MAX_CONNECTIONS`] requests is queued
/// this long rather than refused at once, as nginx's `limit_req … burst` queues requests instead of rejecting them.
pub const IN_FLIGHT_WAIT: Duration = Duration::from_secs(5);
/// The default of [`ServerLimits::header_read_timeout`].
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The default of [`ServerLimits::request_timeout`].
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The `Retry-After` sent with a 503 for overload, in seconds.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// How much the server takes on at once, and how long it waits. Every field has a documented default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Open connections at most (default 1024); one more is answered 503 and closed.
    pub max_connections: usize,
    /// Requests being answered at once at most (default 256); one more waits for a turn.
    pub max_in_flight: usize,
    /// How long a request beyond [`ServerLimits::max_in_flight`] waits for a turn before it is answered 503 with
    /// `Retry-After` (default 5 s).
    pub in_flight_wait: Duration,
    /// Time for a client to send a whole request head, and the longest an idle keep-alive connection is kept
    /// (default 10 s).
    pub header_read_timeout: Duration,
    /// Time to answer one request, reading its body included (default 30 s); beyond it 503. A
    /// response that streams its body (an export file) is bounded only until its head is sent.
    pub request_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            max_in_flight: MAX_IN_FLIGHT,
            in_flight_wait: IN_FLIGHT_WAIT,
            header_read_timeout: HEADER_READ_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

/// The 503 answer for overload: a page saying `why`, with `Retry-After`. It is answered outside the router, so
/// it sets the headers the router's pages carry itself: `nosniff`, no framing, no caching, and a CSP that
/// allows only the stylesheet.
fn overloaded(why: &str) -> Response {
    let body = html! {
        section.card.error role="alert" {
            h1 { "The app is busy" }
            p { (why) }
        }
    };
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        crate::views::layout::page("The app is busy", None, body),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'self'; frame-ancestors 'none'"),
    );
    response
}

#[derive(Clone)]
struct Gate {
    in_flight: Arc<Semaphore>,
    wait: Duration,
    timeout: Duration,
}

/// A turn among the requests answered at once: at once when one is free, else the first to free up within
/// `wait` (the semaphore queues waiters in order), else none.
async fn turn(in_flight: &Arc<Semaphore>, wait: Duration) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = in_flight.clone().try_acquire_owned() {
        return Some(permit);
    }
    // The semaphore is never closed, so acquiring fails only by the timeout.
    tokio::time::timeout(wait, in_flight.clone().acquire_owned())
        .await
        .ok()
        .and_then(Result::ok)
}

async fn gate(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    let Some(_permit) = turn(&gate.in_flight, gate.wait).await else {
        return overloaded(&format!(
            "The app is answering as many requests as it takes at once and none finished within {} s; reload \
             the page in a second.",
            gate.wait.as_secs_f32()
        ));
    };
    match tokio::time::timeout(gate.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => overloaded(&format!(
            "The request was not answered within {} s (a body sent too slowly, or a server too busy); try \
                 again.",
            gate.timeout.as_secs_f32()
        )),
    }
}

/// `router` with the per-request bounds of `limits` (in-flight requests, request timeout) as its outermost layer.
pub fn bounded(router: Router, limits: &ServerLimits) -> Router {
    let state = Gate {
        in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
        wait: limits.in_flight_wait,
        timeout: limits.request_timeout,
    };
    router.layer(middleware::from_fn_with_state(state, gate))
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let router = bounded(router, &limits);
    // HTTP/1.1 only: telling HTTP/2's preface apart first would wait for bytes with no timeout at all, so an
    // idle connection would stay open for ever (and the sandbox is served without TLS, where HTTP/2 is rare).
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    // Refusing takes a task for a moment; past this many at once, extra connections are simply dropped.
    let refusals = Arc::new(Semaphore::new(limits.max_connections / 4 + 1));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, or a connection reset before it was accepted: wait a little, go on.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            if let Ok(refusal) = refusals.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    // In-flight requests are bounded by the request timeout; give them that long.
    let _ = tokio::time::timeout(limits.request_timeout, graceful.shutdown()).await;
}

/// Answers a connection beyond the limit with a 503 and closes it.
async fn refuse(mut stream: tokio::net::TcpStream) {
    let body = "The server has as many connections open as it takes; try again in a second.\n";
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: {RETRY_AFTER_SECONDS}\r\nx-content-type-options: nosniff\r\ncontent-type: text/plain; \
         charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
