//! What a parsed search is: its conditions, sort keys, includes and paging, and the access rules that narrow it.

use crate::registry::{ParamKind, SearchParam};
use crate::store::write::ResourceRow;

/// The page size when `_count` is not given.
pub const DEFAULT_COUNT: usize = 50;
/// The largest page served: a larger `_count` is served as this many, with a `next` link (as HAPI clamps to its
/// maximum page size).
pub const MAX_COUNT: usize = 1000;
/// The most comma-separated values one search parameter may OR together (100); more is refused with a message
/// (SQLite would otherwise fail on the size of the query, ~1,000 values, with "Expression tree is too large").
pub const MAX_SEARCH_VALUES: usize = 100;
/// The most query parameters one search may carry, `_count`, `_sort` and the like included (50); more is refused.
pub const MAX_SEARCH_PARAMETERS: usize = 50;

/// A date-search prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// `eq` (the default): the resource's range lies within the value's.
    Eq,
    /// `ne`: not `eq`.
    Ne,
    /// `lt`: starts before the value.
    Lt,
    /// `gt`: ends after the value.
    Gt,
    /// `le`: `lt` or `eq`.
    Le,
    /// `ge`: `gt` or `eq`.
    Ge,
    /// `sa`: starts after the value ends.
    Sa,
    /// `eb`: ends before the value starts.
    Eb,
    /// `ap`: overlaps the value.
    Ap,
}

/// How a string parameter matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringMode {
    /// Starts with the value (case- and accent-insensitive); the default.
    Prefix,
    /// `:exact`: equals the value, case-sensitive.
    Exact,
    /// `:contains`: contains the value anywhere.
    Contains,
}

/// One search condition on one parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `_id`.
    Id(String),
    /// `_lastUpdated`.
    LastUpdated(Prefix, i64, i64),
    /// `patient` / `subject`: in this patient's compartment.
    Compartment(String),
    /// A string parameter.
    Text {
        /// The parameter.
        param: &'static str,
        /// How it matches.
        mode: StringMode,
        /// The value (normalized unless `:exact`).
        value: String,
    },
    /// A token parameter (`system|code`; `None` matches any), `negate` for `:not`.
    Token {
        /// The parameter.
        param: &'static str,
        /// The system (`Some("")` for `|code`: no system).
        system: Option<String>,
        /// The code (`None` for `system|`).
        code: Option<String>,
        /// `:not`.
        negate: bool,
    },
    /// A date parameter's range test.
    Date {
        /// The parameter.
        param: &'static str,
        /// The comparison.
        prefix: Prefix,
        /// The value's first second (Unix time).
        lo: i64,
        /// The value's last second.
        hi: i64,
    },
    /// A reference parameter: `Type/id`.
    Reference {
        /// The parameter.
        param: &'static str,
        /// `Type/id`.
        target: String,
    },
    /// `$everything`'s `start` / `end`: one of the resource's care dates (its values of the date parameters
    /// `params`) overlaps `[lo, hi]`, or the resource has no care date at all (undated resources stay in).
    CareDate {
        /// The date parameters that hold the type's care dates (none: every resource of the type is undated).
        params: &'static [&'static str],
        /// The range's first second (Unix time).
        lo: i64,
        /// The range's last second.
        hi: i64,
    },
    /// `$everything`'s `_since`: `meta.lastUpdated` is at or after this instant, written as
    /// [`crate::store::normalize::instant_text`] writes it (so text order is time order).
    UpdatedSince(String),
    /// Matches nothing (a reference to a type that cannot match, a constraint the server cannot evaluate).
    Never,
}

/// A sort key.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    /// `_id`, `_lastUpdated` or a parameter of the type.
    pub param: String,
    /// The parameter's kind (`None` for `_id` / `_lastUpdated`).
    pub(super) kind: Option<ParamKind>,
    /// Descending (`-date`).
    pub descending: bool,
}

/// An `_include`: follow `param` from the matches, optionally only to `target_type`.
#[derive(Debug, Clone, PartialEq)]
pub struct Include {
    /// The reference parameter.
    pub param: &'static SearchParam,
    /// Only include targets of this type.
    pub target_type: Option<String>,
}

/// A parsed search.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// The resource type searched.
    pub resource_type: String,
    /// AND of ORs.
    pub filters: Vec<Vec<Condition>>,
    /// Sort keys, most significant first.
    pub sort: Vec<SortKey>,
    /// Page size.
    pub count: usize,
    /// Matches skipped (paging).
    pub offset: usize,
    /// `_include`s.
    pub includes: Vec<Include>,
    /// `_summary=count` or `_count=0`: only the total is wanted.
    pub summary_count: bool,
    /// The query parameters that define the search (without `_count` / `_offset`), for `self` / `next` links.
    pub link_params: Vec<(String, String)>,
}

/// Access rules that narrow a search: the caller's patient compartment and the scopes' constraints.
#[derive(Debug, Clone, Default)]
pub struct Restriction {
    /// Only resources in this patient's compartment (shared types excepted).
    pub patient: Option<String>,
    /// Only resources matching one of these condition lists (each an AND of ORs); `None` = no constraint.
    pub any_of: Option<Vec<Vec<Vec<Condition>>>>,
}

impl Restriction {
    /// No restriction.
    pub fn none() -> Self {
        Self::default()
    }
}

/// One page of results.
#[derive(Debug)]
pub struct SearchResult {
    /// All matches (not just this page).
    pub total: usize,
    /// This page's matches.
    pub matches: Vec<ResourceRow>,
}
