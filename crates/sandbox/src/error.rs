//! The sandbox's error types: [`SandboxError`] for starting and running the sandbox, [`BearerError`] for a
//! bearer token the authorization server does not accept.

use std::path::PathBuf;

/// Something went wrong starting or running the sandbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The SQLite database failed.
    #[error(
        "The sandbox database failed: {source}. Check that the database file is writable, or start with a new `--db` file."
    )]
    Database {
        /// The SQLite error.
        #[from]
        source: rusqlite::Error,
    },
    /// The database file was deleted or replaced while the sandbox ran: writing on would go into an unlinked file
    /// and be lost, so nothing is written.
    #[error(
        "The sandbox database file {path} was deleted or replaced while the sandbox ran; nothing more is written to it. Restart the sandbox."
    )]
    DatabaseGone {
        /// The database file.
        path: PathBuf,
    },
    /// A file could not be read or written.
    #[error("Could not use the file {path}: {source}.")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// The listener could not be bound.
    #[error(
        "Could not listen on {addr}: {source}. Pick another port with `--port`, or stop the program using it."
    )]
    Bind {
        /// The address we tried.
        addr: String,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// A configuration value is wrong.
    #[error("The sandbox setting `{key}` is invalid: {reason}.")]
    InvalidConfig {
        /// The setting's name (as on the command line).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `--client` specification could not be understood.
    #[error(
        "The client specification `{spec}` is invalid: {reason}. Write it as `id=my_app,redirect=http://localhost:8000/callback[,secret=…][,jwks=FILE|jwks_url=URL][,launch=URL][,pkce=optional][,fail=…]`."
    )]
    InvalidClientSpec {
        /// The specification as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A JSON value could not be read or written.
    #[error("A JSON document could not be processed: {source}.")]
    Json {
        /// The serde error.
        #[from]
        source: serde_json::Error,
    },
    /// A FHIR resource or Bundle was rejected.
    #[error("The FHIR resource is invalid: {reason}.")]
    InvalidResource {
        /// What is wrong with it.
        reason: String,
    },
    /// A FHIR search could not be understood (unknown parameter, bad value, unsupported modifier).
    #[error("The search is invalid: {reason}.")]
    InvalidSearch {
        /// What is wrong with it.
        reason: String,
    },
    /// A conditional write (`If-Match`) named a version that is no longer current.
    #[error(
        "{resource} is at version {current}, not {expected}: read it again and retry the update with its current ETag."
    )]
    VersionConflict {
        /// `Type/id`.
        resource: String,
        /// The version the request expected.
        expected: String,
        /// The version stored.
        current: i64,
    },
    /// Importing FHIR data failed.
    #[error("Could not import {path}: {reason}.")]
    Import {
        /// The file or directory being imported.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The sandbox's signing key could not be created or loaded.
    #[error(
        "The sandbox signing key is unusable: {reason}. Start with a new `--db` file to generate a fresh key."
    )]
    SigningKey {
        /// What went wrong.
        reason: String,
    },
    /// Something unexpected failed inside the sandbox.
    #[error("The sandbox failed unexpectedly: {reason}.")]
    Internal {
        /// What went wrong.
        reason: String,
    },
}

impl SandboxError {
    /// True when the sandbox cannot store or read anything until it is restarted (its database file is gone):
    /// answered 503 with [`DATABASE_GONE_ADVICE`], not 500.
    pub(crate) fn is_database_gone(&self) -> bool {
        matches!(self, SandboxError::DatabaseGone { .. })
    }
}

/// What a user is told when the database file is gone (the path stays in the log).
pub(crate) const DATABASE_GONE_ADVICE: &str = "The sandbox cannot store anything: its database file is gone. Restart the sandbox; the server log has the details.";

/// Why a request's bearer token was not accepted (rendered by the FHIR server as 401 with `WWW-Authenticate`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BearerError {
    /// The request carried no `Authorization` header.
    #[error(
        "The request has no access token. Send `Authorization: Bearer <token>` obtained from the sandbox's token endpoint."
    )]
    Missing,
    /// The `Authorization` header is not a bearer token.
    #[error("The Authorization header is not a bearer token. Send `Authorization: Bearer <token>`.")]
    Malformed,
    /// The token is not one the sandbox issued.
    #[error("The access token is not known to this sandbox. Obtain a new one by launching the app again.")]
    Unknown,
    /// The token has expired.
    #[error("The access token has expired. Refresh it or launch the app again.")]
    Expired,
    /// The token was revoked.
    #[error("The access token was revoked. Launch the app again.")]
    Revoked,
    /// The token could not be checked.
    #[error("The access token could not be checked: {0}")]
    Internal(#[from] SandboxError),
}

impl BearerError {
    /// The value of the `WWW-Authenticate` header for a 401 response (RFC 6750 §3).
    pub fn www_authenticate(&self) -> String {
        let (error, description) = match self {
            BearerError::Missing => return bearer_challenge(&[]),
            BearerError::Malformed => (
                "invalid_request",
                "The Authorization header is not a bearer token",
            ),
            BearerError::Unknown | BearerError::Internal(_) => {
                ("invalid_token", "The access token is not valid")
            }
            BearerError::Expired => ("invalid_token", "The access token expired"),
            BearerError::Revoked => ("invalid_token", "The access token was revoked"),
        };
        bearer_challenge(&[("error", error), ("error_description", description)])
    }

    /// The HTTP status this error should be answered with: 401, or 500 when the check itself failed (503 when
    /// the database file is gone).
    pub fn status(&self) -> http::StatusCode {
        match self {
            BearerError::Internal(e) if e.is_database_gone() => http::StatusCode::SERVICE_UNAVAILABLE,
            BearerError::Internal(_) => http::StatusCode::INTERNAL_SERVER_ERROR,
            _ => http::StatusCode::UNAUTHORIZED,
        }
    }
}

/// A `Bearer` challenge of this server (RFC 6750 §3): its realm, then each `name="value"` given, in order.
pub(crate) fn bearer_challenge(params: &[(&str, &str)]) -> String {
    let params: String = params
        .iter()
        .map(|(name, value)| format!(r#", {name}="{value}""#))
        .collect();
    format!(r#"Bearer realm="smart-fhir-sandbox"{params}"#)
}
