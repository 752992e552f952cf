//! Request parameters of the OAuth endpoints, from a query string or a form body (RFC 6749 §3.1: empty values
//! count as absent, a parameter must not appear twice).

/// The parameters of one request.
#[derive(Debug, Default, Clone)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` text (a query string or a form body).
    pub(crate) fn parse(encoded: &[u8]) -> Result<Self, String> {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(encoded)
            .map(Params)
            .map_err(|e| format!("The request parameters could not be read ({e})."))
    }

    /// The value of a parameter; an empty value counts as absent.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// The first parameter (among `names`) that appears more than once.
    pub(crate) fn repeated<'a>(&self, names: &[&'a str]) -> Option<&'a str> {
        names
            .iter()
            .find(|name| self.0.iter().filter(|(k, _)| k == *name).count() > 1)
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_count_as_absent_and_repeats_are_found() {
        let p = Params::parse(b"a=&b=1&b=2&c=x%20y").unwrap();
        assert_eq!(p.get("a"), None);
        assert_eq!(p.get("c"), Some("x y"));
        assert_eq!(p.repeated(&["a", "b"]), Some("b"));
        assert_eq!(p.repeated(&["a", "c"]), None);
    }
}
