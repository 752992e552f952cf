//! Search parameters: typed builders for the common ones, raw pairs for everything else.

use std::fmt;

/// The parameters of a FHIR search, in order. Values are escaped as the FHIR search syntax
/// requires (`\,` `\|` `\$` `\\`) by the typed builders; [`SearchParams::raw`] takes them as is.
///
/// ```
/// use fhir_client::search::{Prefix, SearchParams, Token};
///
/// let params = SearchParams::new()
///     .patient("123")
///     .token("category", Token::new("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs"))
///     .date("date", Prefix::Ge, "2024-01-01")
///     .count(50)
///     .sort_desc("date");
/// assert_eq!(
///     params.to_query(),
///     "patient=123&category=http%3A%2F%2Fterminology.hl7.org%2FCodeSystem%2Fobservation-category%7Cvital-signs\
///      &date=ge2024-01-01&_count=50&_sort=-date"
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchParams {
    pairs: Vec<(String, String)>,
}

impl SearchParams {
    /// No parameters.
    pub fn new() -> Self {
        SearchParams::default()
    }

    /// Add a parameter exactly as given (no escaping), e.g. `("code:in", "http://…")`.
    pub fn raw(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.pairs.push((name.into(), value.into()));
        self
    }

    /// A string parameter (the value is escaped).
    pub fn string(self, name: &str, value: &str) -> Self {
        self.raw(name, escape(value))
    }

    /// `patient=<id>` (a bare id or `Patient/<id>`).
    pub fn patient(self, id: &str) -> Self {
        self.raw("patient", escape(id))
    }

    /// `subject=<reference>`.
    pub fn subject(self, reference: &str) -> Self {
        self.raw("subject", escape(reference))
    }

    /// `_id=<id>`.
    pub fn id(self, id: &str) -> Self {
        self.raw("_id", escape(id))
    }

    /// A token parameter, e.g. `code=http://loinc.org|8867-4`.
    pub fn token(self, name: &str, token: Token) -> Self {
        self.raw(name, token.to_string())
    }

    /// A token parameter matching any of `tokens` (joined with `,`, meaning OR).
    pub fn any_token(self, name: &str, tokens: impl IntoIterator<Item = Token>) -> Self {
        let joined: Vec<String> = tokens.into_iter().map(|t| t.to_string()).collect();
        self.raw(name, joined.join(","))
    }

    /// A date (or number / quantity) parameter with a comparison prefix, e.g. `date=ge2024-01-01`.
    pub fn date(self, name: &str, prefix: Prefix, value: &str) -> Self {
        self.raw(name, format!("{prefix}{}", escape(value)))
    }

    /// `_count=<n>`: the page size asked for.
    pub fn count(self, n: u32) -> Self {
        self.raw("_count", n.to_string())
    }

    /// `_sort=<param>` ascending.
    pub fn sort(self, param: &str) -> Self {
        self.raw("_sort", param)
    }

    /// `_sort=-<param>` descending.
    pub fn sort_desc(self, param: &str) -> Self {
        self.raw("_sort", format!("-{param}"))
    }

    /// `_include=<Type:param>`, e.g. `Observation:patient`.
    pub fn include(self, include: &str) -> Self {
        self.raw("_include", include)
    }

    /// `_revinclude=<Type:param>`.
    pub fn revinclude(self, include: &str) -> Self {
        self.raw("_revinclude", include)
    }

    /// The parameters, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The parameters as an `application/x-www-form-urlencoded` string (query or POST body).
    pub fn to_query(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.pairs)
            .finish()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for SearchParams {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        SearchParams {
            pairs: iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        }
    }
}

/// A token search value: `system|code`, `|code` (no system), or `code` (any system).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    system: Option<String>,
    code: String,
}

impl Token {
    /// `system|code`.
    pub fn new(system: &str, code: &str) -> Self {
        Token {
            system: Some(system.to_owned()),
            code: code.to_owned(),
        }
    }

    /// `code` in any system.
    pub fn code(code: &str) -> Self {
        Token {
            system: None,
            code: code.to_owned(),
        }
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.system {
            Some(system) => write!(f, "{}|{}", escape(system), escape(&self.code)),
            None => f.write_str(&escape(&self.code)),
        }
    }
}

/// A comparison prefix for date, number and quantity parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// `eq`: equal (the default).
    Eq,
    /// `ne`: not equal.
    Ne,
    /// `gt`: greater than.
    Gt,
    /// `lt`: less than.
    Lt,
    /// `ge`: greater or equal.
    Ge,
    /// `le`: less or equal.
    Le,
    /// `sa`: starts after.
    Sa,
    /// `eb`: ends before.
    Eb,
    /// `ap`: approximately.
    Ap,
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Prefix::Eq => "eq",
            Prefix::Ne => "ne",
            Prefix::Gt => "gt",
            Prefix::Lt => "lt",
            Prefix::Ge => "ge",
            Prefix::Le => "le",
            Prefix::Sa => "sa",
            Prefix::Eb => "eb",
            Prefix::Ap => "ap",
        })
    }
}

/// Escape the characters FHIR search gives a meaning to (`\`, `,`, `|`, `$`).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '|' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_inside_values_are_escaped() {
        let params = SearchParams::new()
            .string("name", "Smith, Jr|x$y\\")
            .token("code", Token::code("a,b"));
        assert_eq!(params.pairs()[0].1, "Smith\\, Jr\\|x\\$y\\\\");
        assert_eq!(params.pairs()[1].1, "a\\,b");
    }

    #[test]
    fn tokens_can_be_ored_and_raw_pairs_kept() {
        let params = SearchParams::new()
            .any_token(
                "code",
                [Token::new("http://loinc.org", "8867-4"), Token::code("x")],
            )
            .raw("code:text", "heart rate");
        assert_eq!(
            params.to_query(),
            "code=http%3A%2F%2Floinc.org%7C8867-4%2Cx&code%3Atext=heart+rate"
        );
    }
}
