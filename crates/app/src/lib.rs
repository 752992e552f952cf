#![doc = include_str!("../README.md")]
//!
//! ## How the crate is laid out
//!
//! In layers, top to bottom: a module uses only the modules named after it here (checked over every
//! `use crate::` line: no cycle between the top-level modules, nor between their children).
//!
//! 1. HTTP: `server` (bind, build the state, serve in the background: [`start`]), `serve` (the accept loop within
//!    [`ServerLimits`]), `routes` (the [`router`], and one file per page with its handlers: `home`, `launch`,
//!    `inspect`, `timeline`, `logout`; the session layer, the CSRF check, the static assets), `request_log`.
//! 2. What the handlers ask of the EHR: `fetch` (the summary's reads, the signed-in user's name) and `revoke`
//!    (the tokens revoked at log-out).
//! 3. `state`: [`AppState`], what every handler shares (configuration, session store, SMART client, caches).
//! 4. `error`: [`AppError`], and the page each error becomes; [`StartError`].
//! 5. `views`: the HTML, rendered with maud: the page frame and each page. Views get their data as arguments.
//! 6. `config`: [`AppConfig`], loaded from file and environment, validated at start.
//! 7. `session`: server-side sessions in SQLite or Redis, sealed at rest; pending launches; refreshes once
//!    across instances.
//! 8. `launch_record`: what a launch left for the pages that show it (the completed launch, the timeline).
//! 9. The summary as data: `summary` (rows from R4 resources), `charts` and `date_ticks` (the vital-sign
//!    charts, drawn as SVG once per fetch), `absence` (recorded absences), `reading` (what did not fit R4),
//!    `units` (unit conversion, lab units), `window` (the time window), `style` (the EHR's look).

// 1. HTTP.
mod request_log;
mod routes;
mod serve;
mod server;

// 2. What the handlers ask of the EHR.
mod fetch;
mod revoke;

// 3. The shared state.
mod state;

// 4. Errors.
mod error;

// 5. HTML.
mod views;

// 6. Configuration (public: the binary and the tests build one).
pub mod config;

// 7. Sessions (public: the few items the binary and the tests name).
pub mod session;

// 8. The launch record.
mod launch_record;

// 9. The summary as data.
mod absence;
mod charts;
mod date_ticks;
mod reading;
mod style;
mod summary;
pub mod units;
mod window;

pub use config::{AppConfig, ConfigError};
pub use error::{AppError, StartError};
pub use routes::router;
pub use serve::ServerLimits;
pub use server::{RunningApp, start, start_with, start_with_limits};
pub use state::AppState;
