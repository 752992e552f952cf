//! The FHIR server's limits: what one request may make the server read, build, store or answer. Each is checked
//! before the work it bounds grows past it, and a request beyond one is answered with a 4xx OperationOutcome
//! naming the limit (413 for sizes, 400 for searches), never with an abort or a 500.
//!
//! Where the FHIR specification is silent, the values follow what the large servers do: Microsoft's FHIR server
//! takes at most 500 entries in a Bundle by default
//! (<https://learn.microsoft.com/en-au/answers/questions/120815/fhirbundleblobtrigger-processes-as-a-batch-instead>),
//! LinuxForHealth FHIR answers a Bundle beyond its entry limit with 400 and an OperationOutcome
//! (<https://github.com/LinuxForHealth/FHIR/issues/4184>), and HAPI clamps `_count` to its maximum page size
//! rather than failing (the page then links to the next one).

/// The largest request body read, in bytes (32 MiB: a transaction Bundle of a few thousand resources). Beyond it:
/// 413.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// The largest resource stored, in bytes of its JSON text (4 MiB), whether it arrives whole (create, update,
/// Bundle entry) or is built by a JSON Patch, which is checked as it grows, operation by operation. Beyond it: 413.
pub const MAX_RESOURCE_BYTES: usize = 4 * 1024 * 1024;

/// The most operations one JSON Patch document may hold (1,000). Beyond it: 413.
pub const MAX_PATCH_OPERATIONS: usize = 1_000;

/// The most entries a transaction or batch Bundle may hold (500, Microsoft's FHIR server's default). Beyond it:
/// 413, before any entry runs.
pub const MAX_BUNDLE_ENTRIES: usize = 500;

/// The largest answer the server builds, in bytes (16 MiB): a transaction or batch response (a transaction beyond
/// it is rolled back and refused with 413; in a batch, the entries that would pass it are not run and each says
/// so), and a search page (cut short, with a `next` link that continues where it stopped).
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// The search limits live with the search parser: the most values one parameter may OR together, the most
/// parameters one search may carry (both 400 beyond), and the largest page (`_count` above it is served as this
/// many, with a `next` link).
pub use crate::store::search::{MAX_COUNT, MAX_SEARCH_PARAMETERS, MAX_SEARCH_VALUES};
