//! The plan of a search's SQL: which condition, if any, drives the query.

use super::model::{Condition, Restriction, StringMode};

/// The filter group that selects the candidate rows (`rid IN …`), the others then being checked per candidate
/// row (`EXISTS …`): one selective index condition, standing alone in its group. None when a patient or an id
/// already anchors the query.
pub(super) fn driver(filters: &[Vec<Condition>], restriction: &Restriction) -> Option<usize> {
    let anchored = restriction.patient.is_some()
        || filters.iter().any(|g| {
            g.iter()
                .all(|c| matches!(c, Condition::Compartment(_) | Condition::Id(_)))
        });
    if anchored {
        return None;
    }
    filters.iter().position(|g| g.len() == 1 && is_driver(&g[0]))
}

/// True for a condition an index lookup answers selectively.
fn is_driver(c: &Condition) -> bool {
    matches!(
        c,
        Condition::Text {
            mode: StringMode::Prefix | StringMode::Exact,
            ..
        } | Condition::Token {
            negate: false,
            code: Some(_),
            ..
        } | Condition::Reference { .. }
    )
}
