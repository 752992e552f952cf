#![doc = include_str!("../README.md")]

pub mod auth;
pub mod bulk;
pub mod config;
pub mod error;
pub mod fhir;
pub mod generate;
pub mod import;
pub mod persona;
pub mod registry;
pub mod serve;
mod server;
pub mod store;

pub use config::{ClientKeys, ClientSecret, ClientSpec, PkcePolicy, SandboxConfig, SimulatedFailure};
pub use error::{BearerError, SandboxError};
pub use persona::Persona;
pub use serve::ServerLimits;
pub use server::{RunningSandbox, Sandbox, SandboxState, router};
