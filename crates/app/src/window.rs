//! The summary's time window: last year, five years, or the whole record.
//!
//! The window is a plain query parameter on `/` (`?window=1y|5y|all`), chosen with ordinary links,
//! so it works without JavaScript and survives a reload. A search for dated resources asks the EHR
//! for `date=ge…` with `_sort=-date` (FHIR R4 search, §3.1.1.5.6 and §3.1.1.4.6), so the newest
//! come first and the pages the fetch follows are the ones the window needs.

use chrono::{DateTime, Duration, Months, Utc};

/// How far back the summary reaches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Window {
    /// The last twelve months.
    LastYear,
    /// The last five years (the default: enough for trends, small enough to fetch quickly).
    #[default]
    FiveYears,
    /// Everything the EHR returns (still bounded by the fetch's page limit).
    All,
}

impl Window {
    /// Every window, in the order the links show them.
    pub const ALL: [Window; 3] = [Window::LastYear, Window::FiveYears, Window::All];

    /// The window named by a `window` query value; unknown values give the default.
    pub fn from_query(value: Option<&str>) -> Window {
        match value.map(str::trim) {
            Some("1y") => Window::LastYear,
            Some("5y") => Window::FiveYears,
            Some("all") => Window::All,
            _ => Window::default(),
        }
    }

    /// The query value (`1y`, `5y`, `all`).
    pub fn query_value(self) -> &'static str {
        match self {
            Window::LastYear => "1y",
            Window::FiveYears => "5y",
            Window::All => "all",
        }
    }

    /// The link text.
    pub fn label(self) -> &'static str {
        match self {
            Window::LastYear => "Last year",
            Window::FiveYears => "5 years",
            Window::All => "All",
        }
    }

    /// The earliest instant inside the window, `None` for the whole record.
    pub fn since(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let months = match self {
            Window::LastYear => 12,
            Window::FiveYears => 60,
            Window::All => return None,
        };
        Some(
            now.checked_sub_months(Months::new(months))
                .unwrap_or(now - Duration::days(i64::from(months) * 30)),
        )
    }

    /// The search parameters that bound a dated search to the window (`date` is the parameter
    /// name: `date` for Observation and Encounter, `onset-date` for Condition, …), newest first.
    pub fn search_params(self, date_param: &str, now: DateTime<Utc>) -> Vec<(String, String)> {
        let mut params = vec![("_sort".to_owned(), format!("-{date_param}"))];
        if let Some(since) = self.since(now) {
            params.push((date_param.to_owned(), format!("ge{}", since.format("%Y-%m-%d"))));
        }
        params
    }

    /// Whether an instant is inside the window (for servers that ignore the `date` parameter).
    pub fn contains(self, at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.since(now).is_none_or(|since| at >= since)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn windows_parse_from_the_query_and_default_to_five_years() {
        for w in Window::ALL {
            assert_eq!(Window::from_query(Some(w.query_value())), w);
        }
        assert_eq!(Window::from_query(None), Window::FiveYears);
        assert_eq!(
            Window::from_query(Some("10y")),
            Window::FiveYears,
            "unknown: the default"
        );
    }

    #[test]
    fn a_window_bounds_the_search_by_date_newest_first() {
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 13, 0, 0).unwrap();
        assert_eq!(
            Window::LastYear.search_params("date", now),
            vec![
                ("_sort".to_owned(), "-date".to_owned()),
                ("date".to_owned(), "ge2025-12-02".to_owned())
            ]
        );
        assert_eq!(Window::FiveYears.search_params("date", now)[1].1, "ge2021-12-02");
        assert_eq!(Window::All.search_params("date", now).len(), 1, "no lower bound");
        let leap = Utc.with_ymd_and_hms(2024, 2, 29, 0, 0, 0).unwrap();
        assert_eq!(
            Window::LastYear.since(leap).unwrap().date_naive().to_string(),
            "2023-02-28"
        );
        assert!(Window::LastYear.contains(now - Duration::days(300), now));
        assert!(!Window::LastYear.contains(now - Duration::days(400), now));
        assert!(Window::All.contains(now - Duration::days(40_000), now));
    }
}
