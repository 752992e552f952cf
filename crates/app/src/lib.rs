#![doc = include_str!("../README.md")]

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
pub mod reading;
pub mod request_log;
pub mod routes;
pub mod serve;
pub mod server;
pub mod session;
pub mod state;
pub mod style;
pub mod summary;
pub mod timeline;
pub mod units;
pub mod window;

pub use config::{AppConfig, ConfigError};
pub use error::AppError;
pub use routes::router;
pub use serve::ServerLimits;
pub use server::{RunningApp, StartError, start, start_with, start_with_limits};
pub use state::AppState;
