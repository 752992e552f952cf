//! FHIR search: a query string parsed into a [`SearchRequest`], run as SQL over the index tables.
//!
//! Repeated parameters are ANDed, comma-separated values ORed. Access rules arrive as a [`Restriction`] (the
//! patient compartment and the scopes' `?category=…` constraints) and become part of the same SQL, so a page,
//! its `total` and its `next` link never count what the token may not see.
//!
//! The steps, each a module: [`SearchRequest::parse`] reads the query (`parse`), `plan` picks the condition that
//! drives the SQL, `sql` writes it, `run` executes it, and `matching` tests single resources (scope constraints on
//! reads, history and vread).

mod matching;
mod model;
mod parse;
mod plan;
mod run;
mod sql;

pub use matching::{row_matches, version_matches};
pub use model::{
    Condition, DEFAULT_COUNT, Include, MAX_COUNT, MAX_SEARCH_PARAMETERS, MAX_SEARCH_VALUES, Prefix,
    Restriction, SearchRequest, SearchResult, SortKey, StringMode,
};
pub use parse::parse_condition;
pub use run::{execute, includes, matching_rids};
