//! Reading modes, the issues a read reports (each with its FHIR path) and the crate's error type.

use std::fmt;

/// How strictly [`from_slice`](crate::from_slice) reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The JSON must fit the model exactly: any unknown member, wrong-typed value, coercion or unknown
    /// `resourceType` fails the read with [`Error::Invalid`] listing every issue. Missing required elements are
    /// a matter of conformance, not of fit: they are reported as issues in both modes and fail neither (the
    /// official example `Questionnaire-qs1` lacks 32 nested `linkId`s, and it still reads and round-trips).
    Strict,
    /// The default for what an EHR sends: unambiguous coercions (`"1"` → integer, `"true"` → boolean) are made,
    /// anything else the model cannot hold is kept as an unknown member, and all of it is reported as issues.
    #[default]
    Tolerant,
}

/// One problem found while reading, with the FHIR path where it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// Where: the JSON path from the root type, e.g. `Patient.telecom[0].rank`.
    pub path: String,
    /// What.
    pub kind: IssueKind,
}

/// What kind of problem an [`Issue`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssueKind {
    /// A member the model does not know; kept as an unknown member.
    UnknownMember,
    /// A value of the wrong JSON type; kept as an unknown member under its name.
    WrongType {
        /// What the model expected, e.g. `"an integer"`.
        expected: &'static str,
        /// What the JSON held, e.g. `"a string"`.
        found: &'static str,
    },
    /// A value of the wrong JSON type that converts without doubt (`"1"` for an integer); read converted.
    Coerced {
        /// What the model expected.
        expected: &'static str,
        /// What the JSON held.
        found: &'static str,
    },
    /// A required element (minimum cardinality 1) is absent.
    MissingRequired,
    /// An object in a resource position has no `resourceType` string.
    MissingResourceType,
    /// A `resourceType` that names no R4 resource; the object is kept as an unknown member.
    UnknownResourceType(String),
    /// A `resourceType` other than the one the type being read has.
    ResourceTypeMismatch {
        /// The type being read.
        expected: &'static str,
        /// The `resourceType` found.
        found: String,
    },
}

impl IssueKind {
    /// Whether the value still fits the model: only a missing required element is a conformance problem that
    /// [`Mode::Strict`] reports without failing.
    pub fn fits_the_model(&self) -> bool {
        matches!(self, IssueKind::MissingRequired)
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path)?;
        match &self.kind {
            IssueKind::UnknownMember => write!(f, "not an R4 element here (kept as an unknown member)"),
            IssueKind::WrongType { expected, found } => {
                write!(
                    f,
                    "expected {expected}, found {found} (kept as an unknown member)"
                )
            }
            IssueKind::Coerced { expected, found } => {
                write!(f, "expected {expected}, found {found} (converted)")
            }
            IssueKind::MissingRequired => write!(f, "required element missing"),
            IssueKind::MissingResourceType => write!(f, "no resourceType (kept as an unknown member)"),
            IssueKind::UnknownResourceType(t) => {
                write!(
                    f,
                    "resourceType {t:?} is not an R4 resource (kept as an unknown member)"
                )
            }
            IssueKind::ResourceTypeMismatch { expected, found } => {
                write!(f, "resourceType is {found:?}, expected {expected:?}")
            }
        }
    }
}

/// Why a read failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not valid UTF-8.
    NotUtf8 {
        /// The offset of the first invalid byte.
        offset: usize,
    },
    /// The text is not valid JSON.
    Syntax {
        /// What is wrong, e.g. `"expected ',' or '}'"`.
        message: &'static str,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column (in bytes) of the problem.
        column: usize,
        /// The FHIR path being read when it was found.
        path: String,
    },
    /// The JSON nests deeper than the reader allows (a guard against stack exhaustion).
    TooDeep {
        /// The FHIR path where the limit was reached.
        path: String,
    },
    /// The document is valid JSON but not the expected type: not an object, another `resourceType`, or a
    /// `resourceType` no R4 resource has.
    NotThisType {
        /// The type asked for, e.g. `"Patient"` or `"Resource"`.
        expected: &'static str,
        /// What was found instead.
        found: String,
    },
    /// Strict mode found issues that do not fit the model; every issue is listed.
    Invalid {
        /// Every issue, in document order.
        issues: Vec<Issue>,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotUtf8 { offset } => {
                write!(f, "the FHIR JSON is not UTF-8 (invalid byte at offset {offset})")
            }
            Error::Syntax {
                message,
                line,
                column,
                path,
            } => {
                write!(
                    f,
                    "the FHIR JSON is malformed at line {line}, column {column} ({path}): {message}"
                )
            }
            Error::TooDeep { path } => write!(f, "the FHIR JSON nests too deeply at {path}"),
            Error::NotThisType { expected, found } => write!(f, "expected a FHIR {expected}, found {found}"),
            Error::Invalid { issues } => {
                write!(f, "the FHIR JSON does not conform ({} issues): ", issues.len())?;
                for (i, issue) in issues.iter().enumerate().take(5) {
                    if i > 0 {
                        write!(f, "; ")?;
                    }
                    write!(f, "{issue}")?;
                }
                if issues.len() > 5 {
                    write!(f, "; …")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Error {}
