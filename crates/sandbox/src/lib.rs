//! A SMART on FHIR sandbox EHR: a SMART App Launch 2.2 authorization server and a FHIR R4 server over SQLite,
//! filled with seeded synthetic patients, for developing and testing SMART apps offline.
//!
//! The crate has two halves that meet at two seams:
//! - [`store::Store`]: the SQLite database (FHIR resources, plus tables the authorization server owns);
//! - [`auth::AccessGrant`]: what a validated bearer token allows, produced by [`auth::AuthServer::check_bearer`]
//!   and enforced by the FHIR server.
//!
//! [`Sandbox::start`] binds a listener (port 0 works), opens the database (filling it on first use) and serves
//! both halves: the FHIR base is `http://{host}:{port}/fhir`, discovery is at
//! `{base}/.well-known/smart-configuration`, the EHR launch page at `/`. Browser apps may call it cross-origin
//! (CORS, see `auth/cors.rs`).
//!
//! A [`Persona`] makes it look like Cerner or Epic on the wire instead ([`SandboxConfig::with_persona`]): their
//! base paths, discovery documents, token responses, keys and FHIR quirks, each from the vendor's documentation.
//!
//! ```no_run
//! # async fn run() -> Result<(), sandbox::SandboxError> {
//! let config = sandbox::SandboxConfig { port: 0, patients: 5, ..Default::default() };
//! let running = sandbox::Sandbox::start(config).await?;
//! let client = "id=my_app,redirect=http://localhost:8000/cb".parse()?;
//! running.state.auth().register_client(client)?;
//! println!("FHIR base: {}", running.fhir_base);
//! running.shutdown().await;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod bulk;
pub mod config;
pub mod error;
pub mod fhir;
pub mod generate;
pub mod import;
mod pages;
pub mod persona;
pub mod serve;
mod server;
pub mod store;

pub use config::{ClientKeys, ClientSecret, ClientSpec, PkcePolicy, SandboxConfig, SimulatedFailure};
pub use error::{BearerError, SandboxError};
pub use persona::Persona;
pub use serve::ServerLimits;
pub use server::{RunningSandbox, Sandbox, SandboxState, router};
