//! # app
//!
//! The smart-fhir web app: the seed Flask demo's pages (`/`, `/index.html`, `/fhir-app/`,
//! `/logout`, `/reset`) rebuilt on [`smart_launch`] and [`fhir_client`], plus EHR launch
//! (`/launch`), a patient summary with vital-sign charts, and a launch inspector (`/inspect`).
//! Sessions live server-side in SQLite; the browser only holds a random session id.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = app::AppConfig::load(None, Some("sandbox"))?;
//! let running = app::start(config).await?;
//! println!("open {}", running.url);
//! running.wait().await?;
//! # Ok(()) }
//! ```

pub mod absence;
pub mod charts;
pub mod config;
pub mod csrf;
pub mod date_ticks;
pub mod error;
pub mod fetch;
pub mod home;
pub mod inspect;
pub mod launch;
pub mod pages;
pub mod request_log;
pub mod routes;
pub mod serve;
pub mod server;
pub mod session;
pub mod state;
pub mod style;
pub mod summary;
pub mod units;
pub mod window;

pub use config::{AppConfig, ConfigError};
pub use error::AppError;
pub use routes::router;
pub use serve::ServerLimits;
pub use server::{RunningApp, StartError, start, start_with_limits};
pub use state::AppState;
