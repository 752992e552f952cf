//! Why a summary section is empty, as the International Patient Summary requires it be said.
//!
//! IPS distinguishes "the record says there are none" (an AllergyIntolerance coded *No known
//! allergy*, SNOMED CT 716186003, or IPS's `no-known-allergies`) from "the record says nothing is
//! known" (`no-allergy-info`) — and an app must also tell both apart from "the EHR returned
//! nothing" (which proves nothing) and "this app was not given access". The codes are those of the
//! IPS CodeSystem `absent-unknown-uv-ips`
//! (<https://hl7.org/fhir/uv/ips/CodeSystem-absent-unknown-uv-ips.html>) and the SNOMED CT
//! concepts IPS's value sets allow beside them.

/// IPS's code system for absent and unknown data.
pub const IPS_ABSENT_UNKNOWN: &str = "http://hl7.org/fhir/uv/ips/CodeSystem/absent-unknown-uv-ips";

/// SNOMED CT's system URI.
pub const SNOMED: &str = "http://snomed.info/sct";

/// What a record coded as an absence says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The EHR recorded that there are none ("No known allergies"); the text is what it says.
    KnownNone(&'static str),
    /// The EHR recorded that nothing is known ("No information about allergies").
    NoInformation(&'static str),
}

impl Recorded {
    /// The sentence the page shows.
    pub fn sentence(self) -> String {
        match self {
            Recorded::KnownNone(what) => format!("The EHR records: {what}."),
            Recorded::NoInformation(what) => format!("The EHR records: {what} (not the same as none)."),
        }
    }
}

/// Why a section shows no rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Empty {
    /// The EHR recorded an absence (or that nothing is known).
    Recorded(Recorded),
    /// The search answered with no resources: nothing is known from that.
    NothingReturned,
    /// The granted scopes do not cover the section's resource type.
    NotShared,
}

impl Empty {
    /// The sentence the page shows for a section titled `section`.
    pub fn sentence(&self, section: &str) -> String {
        match self {
            Empty::Recorded(r) => r.sentence(),
            Empty::NothingReturned => format!(
                "The EHR returned no {} — that does not mean there are none.",
                section.to_lowercase()
            ),
            Empty::NotShared => format!("{section} not shared with this app."),
        }
    }
}

const IPS_CODES: &[(&str, Recorded)] = &[
    ("no-known-allergies", Recorded::KnownNone("No known allergies")),
    (
        "no-known-medication-allergies",
        Recorded::KnownNone("No known medication allergies"),
    ),
    (
        "no-known-environmental-allergies",
        Recorded::KnownNone("No known environmental allergies"),
    ),
    (
        "no-known-food-allergies",
        Recorded::KnownNone("No known food allergies"),
    ),
    (
        "no-allergy-info",
        Recorded::NoInformation("No information about allergies"),
    ),
    ("no-known-problems", Recorded::KnownNone("No known problems")),
    (
        "no-problem-info",
        Recorded::NoInformation("No information about problems"),
    ),
    (
        "no-known-medications",
        Recorded::KnownNone("No known medications"),
    ),
    (
        "no-medication-info",
        Recorded::NoInformation("No information about medications"),
    ),
    (
        "no-known-immunizations",
        Recorded::KnownNone("No known immunizations"),
    ),
    (
        "no-immunization-info",
        Recorded::NoInformation("No information about immunizations"),
    ),
    ("no-known-procedures", Recorded::KnownNone("No known procedures")),
    (
        "no-procedure-info",
        Recorded::NoInformation("No information about procedures"),
    ),
    ("no-known-devices", Recorded::KnownNone("No known devices")),
    (
        "no-device-info",
        Recorded::NoInformation("No information about devices"),
    ),
];

const SNOMED_CODES: &[(&str, Recorded)] = &[
    ("716186003", Recorded::KnownNone("No known allergies")),
    ("409137002", Recorded::KnownNone("No known drug allergies")),
    ("429625007", Recorded::KnownNone("No known food allergies")),
    (
        "428607008",
        Recorded::KnownNone("No known environmental allergies"),
    ),
    (
        "160245001",
        Recorded::KnownNone("No current problems or disability"),
    ),
];

/// The absence a coding records, if it is one: `(system, code)` pairs from a resource's `code`.
/// A code without a system is matched against both lists (vendors drop the system).
pub fn recorded<'a>(codings: impl IntoIterator<Item = (Option<&'a str>, &'a str)>) -> Option<Recorded> {
    codings.into_iter().find_map(|(system, code)| {
        let ips = system.is_none_or(|s| s == IPS_ABSENT_UNKNOWN);
        let snomed = system.is_none_or(|s| s == SNOMED);
        let find = |table: &[(&str, Recorded)]| table.iter().find(|(c, _)| *c == code).map(|(_, r)| *r);
        ips.then(|| find(IPS_CODES))
            .flatten()
            .or_else(|| snomed.then(|| find(SNOMED_CODES)).flatten())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_known_allergy_is_a_recorded_absence() {
        assert_eq!(
            recorded([(Some(SNOMED), "716186003")]),
            Some(Recorded::KnownNone("No known allergies"))
        );
        assert_eq!(
            recorded([
                (Some("http://www.nlm.nih.gov/research/umls/rxnorm"), "7980"),
                (Some(IPS_ABSENT_UNKNOWN), "no-allergy-info")
            ]),
            Some(Recorded::NoInformation("No information about allergies"))
        );
        assert_eq!(
            recorded([(None, "no-known-problems")]),
            Some(Recorded::KnownNone("No known problems"))
        );
    }

    #[test]
    fn real_codes_and_codes_from_other_systems_are_not_absences() {
        assert_eq!(
            recorded([(Some(SNOMED), "91936005")]),
            None,
            "allergy to penicillin"
        );
        assert_eq!(
            recorded([(Some("http://loinc.org"), "716186003")]),
            None,
            "the same digits in another system"
        );
        assert_eq!(recorded(std::iter::empty()), None);
    }

    #[test]
    fn each_kind_of_empty_says_something_different() {
        let sentences = [
            Empty::Recorded(Recorded::KnownNone("No known allergies")).sentence("Allergies"),
            Empty::Recorded(Recorded::NoInformation("No information about allergies")).sentence("Allergies"),
            Empty::NothingReturned.sentence("Allergies"),
            Empty::NotShared.sentence("Allergies"),
        ];
        assert_eq!(sentences[0], "The EHR records: No known allergies.");
        assert!(
            sentences[2].contains("does not mean there are none"),
            "{}",
            sentences[2]
        );
        assert_eq!(sentences[3], "Allergies not shared with this app.");
        let distinct: std::collections::BTreeSet<&String> = sentences.iter().collect();
        assert_eq!(distinct.len(), 4);
    }
}
