//! Values in comparable form: text folded for matching, FHIR dates as the range of seconds they cover, and
//! instants as fixed-width text (so text order is time order).

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// Lowercase, with the common Latin accents folded, so `chloe` finds `Chloé`.
pub fn normalize(text: &str) -> String {
    text.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' => 'a',
            'ç' | 'ć' | 'č' => 'c',
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => 'e',
            'ì' | 'í' | 'î' | 'ï' | 'ī' => 'i',
            'ñ' | 'ń' | 'ň' => 'n',
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' => 'o',
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' => 'u',
            'ý' | 'ÿ' => 'y',
            'ś' | 'š' => 's',
            'ź' | 'ż' | 'ž' => 'z',
            'ł' => 'l',
            'ř' => 'r',
            other => other,
        })
        .collect()
}

/// The first and last second (Unix time) a FHIR date, dateTime or instant covers: `2020` is the whole year,
/// `2020-03-04T10:00` the whole minute. A dateTime without a zone is read as UTC. `None` when it is not a date.
pub fn date_range(text: &str) -> Option<(i64, i64)> {
    let text = text.trim();
    let year_only = |y: &str| y.len() == 4 && y.chars().all(|c| c.is_ascii_digit());
    match text.len() {
        4 if year_only(text) => {
            let y: i32 = text.parse().ok()?;
            span(
                NaiveDate::from_ymd_opt(y, 1, 1)?,
                NaiveDate::from_ymd_opt(y + 1, 1, 1)?,
            )
        }
        7 => {
            let (y, m) = text.split_once('-')?;
            if !year_only(y) || m.len() != 2 {
                return None;
            }
            let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
            let start = NaiveDate::from_ymd_opt(y, m, 1)?;
            let end = if m == 12 {
                NaiveDate::from_ymd_opt(y + 1, 1, 1)?
            } else {
                NaiveDate::from_ymd_opt(y, m + 1, 1)?
            };
            span(start, end)
        }
        10 => {
            let d = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
            span(d, d.succ_opt()?)
        }
        _ => {
            if let Ok(t) = DateTime::parse_from_rfc3339(text) {
                let s = t.timestamp();
                return Some((s, s));
            }
            // Minute precision, with or without a zone.
            let (local, zone) = split_zone(text);
            let offset = zone_offset(zone)?;
            for (format, width) in [
                ("%Y-%m-%dT%H:%M:%S%.f", 0),
                ("%Y-%m-%dT%H:%M:%S", 0),
                ("%Y-%m-%dT%H:%M", 59),
            ] {
                if let Ok(naive) = NaiveDateTime::parse_from_str(local, format) {
                    let s = Utc.from_utc_datetime(&naive).timestamp() - offset;
                    return Some((s, s + width));
                }
            }
            None
        }
    }
}

fn span(start: NaiveDate, end_exclusive: NaiveDate) -> Option<(i64, i64)> {
    let lo = start.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
    let hi = end_exclusive.and_hms_opt(0, 0, 0)?.and_utc().timestamp() - 1;
    Some((lo, hi))
}

fn split_zone(text: &str) -> (&str, &str) {
    if let Some(local) = text.strip_suffix('Z') {
        return (local, "Z");
    }
    // A zone is `+hh:mm` / `-hh:mm` after the time part.
    if let Some(t) = text.find('T')
        && let Some(pos) = text[t..].rfind(['+', '-'])
    {
        return (&text[..t + pos], &text[t + pos..]);
    }
    (text, "")
}

fn zone_offset(zone: &str) -> Option<i64> {
    if zone.is_empty() || zone == "Z" {
        return Some(0);
    }
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let (h, m) = zone.get(1..)?.split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    Some(sign * (h * 3600 + m * 60))
}

/// The `lastUpdated` text for an instant (fixed width, so text order is time order).
pub fn instant_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// [`instant_text`] of a Unix second (clamped to a representable time).
pub fn instant_text_from_secs(secs: i64) -> String {
    let secs = secs.clamp(-62_135_596_800, 253_402_300_799);
    instant_text(Utc.timestamp_opt(secs, 0).single().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_dates_cover_their_whole_period() {
        let (lo, hi) = date_range("2020").unwrap();
        assert_eq!(hi - lo + 1, 366 * 86_400);
        let (lo, hi) = date_range("2021-02").unwrap();
        assert_eq!(hi - lo + 1, 28 * 86_400);
        let (lo, hi) = date_range("2021-02-03").unwrap();
        assert_eq!(hi - lo + 1, 86_400);
        assert_eq!(
            date_range("2021-02-03T10:00:00Z"),
            date_range("2021-02-03T11:00:00+01:00")
        );
        let (lo, hi) = date_range("2021-02-03T10:00").unwrap();
        assert_eq!(hi - lo, 59);
        assert!(date_range("yesterday").is_none());
        assert!(date_range("2021-13").is_none());
    }

    #[test]
    fn accents_and_case_fold_away() {
        assert_eq!(normalize("Chloé MÜLLER"), "chloe muller");
    }

    #[test]
    fn instants_have_a_fixed_width() {
        assert_eq!(instant_text_from_secs(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(instant_text_from_secs(i64::MAX), "9999-12-31T23:59:59.000Z");
    }
}
