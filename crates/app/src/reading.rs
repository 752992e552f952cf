//! What the summary's requests read, for the launch timeline's step F: how many resources of each
//! type came back (matches and `_include`s) and the problems met while reading them as R4 — each a
//! FHIR path and what did not fit, never a value (fhir-r4's [`Issue`] does not carry one).

use std::collections::BTreeMap;

use fhir_client::r4::Issue;

/// At most this many reading problems are kept (the rest are counted).
pub const MAX_READING_ISSUES: usize = 20;

/// What a page's FHIR reads got, bounded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reading {
    /// Resources read, by type.
    pub counts: BTreeMap<&'static str, usize>,
    /// Problems met while reading (`Patient read: Patient.telecom[0].rank: expected …`), at most
    /// [`MAX_READING_ISSUES`].
    pub issues: Vec<String>,
    /// Problems beyond [`MAX_READING_ISSUES`], counted only.
    pub issues_left_out: usize,
}

impl Reading {
    /// Counts `n` resources of `resource_type`.
    pub fn count(&mut self, resource_type: &'static str, n: usize) {
        if n > 0 {
            *self.counts.entry(resource_type).or_default() += n;
        }
    }

    /// Keeps the problems `what` (a read or a search, e.g. `Observation search`) met.
    pub fn issues<'a>(&mut self, what: &str, issues: impl IntoIterator<Item = &'a Issue>) {
        for issue in issues {
            if self.issues.len() < MAX_READING_ISSUES {
                self.issues.push(format!("{what}: {issue}"));
            } else {
                self.issues_left_out += 1;
            }
        }
    }

    /// The total number of resources read.
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_by_type_and_problems_are_bounded() {
        let mut reading = Reading::default();
        reading.count("Observation", 3);
        reading.count("Observation", 2);
        reading.count("Condition", 0);
        assert_eq!(reading.counts.get("Observation"), Some(&5));
        assert!(
            !reading.counts.contains_key("Condition"),
            "a type with none is not listed"
        );
        let issue = Issue {
            path: "Patient.telecom[0].rank".into(),
            kind: fhir_client::r4::IssueKind::UnknownMember,
        };
        let many = vec![issue; MAX_READING_ISSUES + 3];
        reading.issues("Patient read", &many);
        assert_eq!(reading.issues.len(), MAX_READING_ISSUES);
        assert_eq!(reading.issues_left_out, 3);
        assert!(
            reading.issues[0].starts_with("Patient read: Patient.telecom[0].rank: "),
            "{}",
            reading.issues[0]
        );
        assert_eq!(reading.total(), 5);
    }
}
