//! One log line per request: a request id, the method, the path (never the query string, which
//! carries OAuth codes, `state` and launch ids), the status and the latency.
//!
//! The id is also sent back in `x-request-id` so a user can quote it, and every event a handler logs
//! is inside the request's span. Unexpected errors ([`crate::error::InternalErrorDetail`]) are logged
//! here, once, at `error` level; a 503 of a session-store outage ([`crate::error::StoreOutage`]) at `info`,
//! since the store warns once per outage.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use tracing::Instrument;

use crate::error::{InternalErrorDetail, StoreOutage};

/// The response header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

fn new_request_id() -> String {
    use rand::RngCore as _;
    format!("{:016x}", rand::rng().next_u64())
}

/// Middleware: wraps the request in a span and logs its outcome.
pub async fn log_requests(request: Request, next: Next) -> Response {
    let id = new_request_id();
    let method = request.method().clone();
    // The path only: query strings of /fhir-app/ and /launch carry codes and launch ids.
    let path = request.uri().path().to_owned();
    let span = tracing::info_span!("request", id = %id, method = %method, path = %path);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = response.status().as_u16();
    let _entered = span.enter();
    if let Some(detail) = response.extensions_mut().remove::<InternalErrorDetail>() {
        if status == 500 {
            tracing::error!(status, latency_ms, detail = %detail.0, "request failed");
        } else {
            tracing::warn!(status, latency_ms, detail = %detail.0, "request failed upstream");
        }
    } else if response.extensions().get::<StoreOutage>().is_some() {
        // The store said so once, at `warn`, when the outage began.
        tracing::info!(
            status,
            latency_ms,
            "request refused: the session store is unavailable"
        );
    } else if status >= 500 {
        tracing::warn!(status, latency_ms, "request finished");
    } else {
        tracing::info!(status, latency_ms, "request finished");
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}
