#![doc = include_str!("../README.md")]

// The crate's map: one line per module, what it is for.
pub mod auth; // the SMART authorization server: authorize, login, consent, token, introspect, revoke, JWKS
pub mod bulk; // Bulk Data $export of the server, every patient or a Group, as NDJSON files
pub mod config; // SandboxConfig and the registered clients
pub mod error; // SandboxError and BearerError, the crate's errors
pub mod fhir; // the FHIR R4 REST API: read, search, write, patch, transaction, $everything, metadata
pub mod generate; // the seeded synthetic-patient generator
pub mod import; // `--import DIR`: FHIR Bundles and resources from files into the store
pub mod limits; // the limits every layer reads: the authorization server's, Bulk Data's, the overload Retry-After
pub mod persona; // vendor behaviour to reproduce: smart, cerner, epic
pub mod registry; // one entry per resource type: search parameters, compartment, care dates, generator
pub mod serve; // serving HTTP with bounds: connections, header and request timeouts, graceful shutdown
mod server; // starting the sandbox: shared state, the router mounting both halves, the server task
pub mod store; // the SQLite database: resources, history, the search index and search

pub use config::{ClientKeys, ClientSecret, ClientSpec, PkcePolicy, SandboxConfig, SimulatedFailure};
pub use error::{BearerError, SandboxError};
pub use persona::Persona;
pub use serve::ServerLimits;
pub use server::{RunningSandbox, Sandbox, SandboxState, router};
