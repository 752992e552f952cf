//! The sandbox's limits as plain data, at the bottom of the crate so that the configuration, the
//! authorization server, the Bulk Data server and the serving layer all read them without pointing at each other.
//! Every field has a documented default.

use std::path::PathBuf;
use std::time::Duration;

/// The `Retry-After` sent with a 503 for overload, in seconds.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// The default of [`AuthLimits::purge_interval`].
pub const PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// The default of [`AuthLimits::max_pending_per_client`].
pub const MAX_PENDING_PER_CLIENT: usize = 1_000;
/// The default of [`AuthLimits::max_pending`].
pub const MAX_PENDING: usize = 10_000;
/// The default of [`AuthLimits::max_launches_per_client`].
pub const MAX_LAUNCHES_PER_CLIENT: usize = 1_000;
/// The default of [`AuthLimits::max_launches`].
pub const MAX_LAUNCHES: usize = 10_000;
/// How much unauthenticated state the authorization server keeps, and how often it purges what expired. Every
/// field has a documented default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthLimits {
    /// How often expired pending authorizations, launches, `jti`s, and codes and tokens a day past their expiry
    /// are deleted (default [`PURGE_INTERVAL`]; also once at start).
    pub purge_interval: Duration,
    /// Pending authorizations kept per client at most (default [`MAX_PENDING_PER_CLIENT`]); beyond it the
    /// oldest of that client's are dropped.
    pub max_pending_per_client: usize,
    /// Pending authorizations kept at most over all clients (default [`MAX_PENDING`]): open registration
    /// accepts any client id, so the per-client cap alone does not bound the table.
    pub max_pending: usize,
    /// Unused EHR launches kept per client at most (default [`MAX_LAUNCHES_PER_CLIENT`]); beyond it the oldest
    /// are dropped.
    pub max_launches_per_client: usize,
    /// Unused EHR launches kept at most over all clients (default [`MAX_LAUNCHES`]).
    pub max_launches: usize,
}

impl Default for AuthLimits {
    fn default() -> Self {
        Self {
            purge_interval: PURGE_INTERVAL,
            max_pending_per_client: MAX_PENDING_PER_CLIENT,
            max_pending: MAX_PENDING,
            max_launches_per_client: MAX_LAUNCHES_PER_CLIENT,
            max_launches: MAX_LAUNCHES,
        }
    }
}

/// The limits of the Bulk Data server. `BulkConfig::default()` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct BulkConfig {
    /// Queued or running jobs one client may have at once; a further kick-off gets `429` (default 2).
    pub max_jobs_per_client: usize,
    /// Resources per NDJSON file; a type with more is split over several files (default 10,000).
    pub max_resources_per_file: usize,
    /// How long a finished job and its files are kept (default 24 hours).
    pub retention: Duration,
    /// Rows read per database task; a job gives the store's task permit back between chunks (default 500).
    pub batch: usize,
    /// The most rows a second one job writes, so that exports leave the machine to the FHIR API's reads
    /// (default 20,000: a 10,000-patient sandbox, 1.5 M resources, in about 80 s; 0: no limit).
    pub max_rows_per_second: u64,
    /// The `Retry-After` sent while a job runs and with a `429` (default 2 seconds).
    pub retry_after: Duration,
    /// Where job files go (default: `<database stem>-bulk` beside the database file).
    pub dir: Option<PathBuf>,
}

impl Default for BulkConfig {
    fn default() -> Self {
        Self {
            max_jobs_per_client: 2,
            max_resources_per_file: 10_000,
            retention: Duration::from_secs(24 * 60 * 60),
            batch: 500,
            max_rows_per_second: 20_000,
            retry_after: Duration::from_secs(2),
            dir: None,
        }
    }
}
