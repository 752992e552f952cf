//! Logging set-up: `tracing` to stderr, level from `RUST_LOG` (default `info`).
//!
//! Tokens, codes and secrets never reach a log line: the libraries log only their redacted types, and the app's
//! request log leaves out the query strings of the OAuth callback and launch URLs.

use tracing_subscriber::{EnvFilter, fmt};

use crate::cli::LogFormat;

/// Installs the global subscriber.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
