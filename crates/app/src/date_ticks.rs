//! Date-axis ticks at calendar boundaries, for the vital-sign charts.
//!
//! plotters' own date ticks fall at evenly spaced instants (every ~13 months over five years), so
//! a label "2019" could sit at some day in February 2020 and a year could be skipped. Here the
//! step is chosen by the span — days, months, quarters, half-years or years — and every tick is
//! the first instant of the period its label names: the tick labelled "2020" is 1 January 2020,
//! "Apr 2024" is 1 April 2024. Consecutive ticks are exactly one step apart, so no label is skipped.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

/// The distance between two ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Every `n` days, at midnight UTC.
    Days(u32),
    /// Every `n` months, on the first (3 = quarters from January, 6 = halves of the year).
    Months(u32),
    /// Every `n` years, on 1 January of years divisible by `n`.
    Years(u32),
}

/// The ticks of one date axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateTicks {
    /// The step between ticks.
    pub step: Step,
    /// The ticks, ascending, all inside the range they were made for.
    pub ticks: Vec<DateTime<Utc>>,
}

/// At most this many ticks fit a chart's width with their labels.
const MAX_TICKS: i64 = 8;

impl DateTicks {
    /// The ticks for an axis from `start` to `end` (inclusive).
    pub fn for_range(start: DateTime<Utc>, end: DateTime<Utc>) -> DateTicks {
        let step = step_for(end - start);
        let mut ticks = Vec::new();
        let mut tick = first_boundary(start, step);
        while tick <= end {
            ticks.push(tick);
            tick = advance(tick, step);
        }
        DateTicks { step, ticks }
    }

    /// The label of a tick: the period that starts there.
    pub fn label(&self, tick: &DateTime<Utc>) -> String {
        let format = match self.step {
            Step::Days(_) => "%-d %b",
            Step::Months(_) => "%b %Y",
            Step::Years(_) => "%Y",
        };
        tick.format(format).to_string()
    }
}

/// The step for a span: the finest calendar unit that keeps the ticks at [`MAX_TICKS`] or fewer.
fn step_for(span: Duration) -> Step {
    let days = span.num_days().max(0);
    if days <= 62 {
        // 1 day up to ~8 days, then 2, 3, … days so that at most eight ticks remain.
        let n = (days + MAX_TICKS - 1) / MAX_TICKS;
        return Step::Days(n.max(1) as u32);
    }
    let months = days / 30;
    if months <= 7 {
        return Step::Months(1);
    }
    if months <= 20 {
        return Step::Months(3);
    }
    if months <= 40 {
        return Step::Months(6);
    }
    let years = days / 365;
    let n = [1, 2, 5, 10, 20, 50, 100]
        .into_iter()
        .find(|n| years / n < MAX_TICKS)
        .unwrap_or(100);
    Step::Years(n as u32)
}

fn midnight(date: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN))
}

/// The first boundary of `step` at or after `t`.
fn first_boundary(t: DateTime<Utc>, step: Step) -> DateTime<Utc> {
    let date = t.date_naive();
    let candidate = match step {
        Step::Days(_) => midnight(date),
        Step::Months(n) => {
            let month0 = (date.month0() / n) * n;
            midnight(NaiveDate::from_ymd_opt(date.year(), month0 + 1, 1).unwrap_or(date))
        }
        Step::Years(n) => {
            let year = date.year().div_euclid(n as i32) * n as i32;
            midnight(NaiveDate::from_ymd_opt(year, 1, 1).unwrap_or(date))
        }
    };
    if candidate < t {
        advance(candidate, step)
    } else {
        candidate
    }
}

/// The boundary one step after `t` (which is a boundary).
fn advance(t: DateTime<Utc>, step: Step) -> DateTime<Utc> {
    let date = t.date_naive();
    match step {
        Step::Days(n) => t + Duration::days(n.into()),
        Step::Months(n) => {
            let months = date.year() * 12 + date.month0() as i32 + n as i32;
            let next = NaiveDate::from_ymd_opt(months.div_euclid(12), months.rem_euclid(12) as u32 + 1, 1);
            next.map(midnight).unwrap_or(DateTime::<Utc>::MAX_UTC)
        }
        Step::Years(n) => NaiveDate::from_ymd_opt(date.year() + n as i32, 1, 1)
            .map(midnight)
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    /// Every tick in range, at a boundary of its step, exactly one step after the previous; no
    /// boundary missed at either end; a readable number of them.
    fn check(start: DateTime<Utc>, end: DateTime<Utc>, expected: Step) -> DateTicks {
        let ticks = DateTicks::for_range(start, end);
        assert_eq!(ticks.step, expected, "{start} to {end}");
        assert!(
            (3..=MAX_TICKS as usize).contains(&ticks.ticks.len()),
            "{} ticks: {:?}",
            ticks.ticks.len(),
            ticks.ticks
        );
        for t in &ticks.ticks {
            assert!(start <= *t && *t <= end, "{t} outside {start}..{end}");
            assert_eq!(t.time(), chrono::NaiveTime::MIN, "{t} is at midnight");
            match expected {
                Step::Days(_) => {}
                Step::Months(n) => assert!(t.day() == 1 && t.month0() % n == 0, "{t}"),
                Step::Years(n) => assert!(t.ordinal() == 1 && t.year() % n as i32 == 0, "{t}"),
            }
        }
        for pair in ticks.ticks.windows(2) {
            assert_eq!(
                advance(pair[0], expected),
                pair[1],
                "nothing skipped after {}",
                pair[0]
            );
        }
        let (first, last) = (ticks.ticks[0], *ticks.ticks.last().unwrap());
        assert!(
            first_boundary(start, expected) == first,
            "the first boundary is ticked"
        );
        assert!(advance(last, expected) > end, "the last boundary is ticked");
        ticks
    }

    #[test]
    fn three_days_tick_every_midnight() {
        let ticks = check(at(2024, 3, 1, 9), at(2024, 3, 4, 18), Step::Days(1));
        let labels: Vec<String> = ticks.ticks.iter().map(|t| ticks.label(t)).collect();
        assert_eq!(labels, ["2 Mar", "3 Mar", "4 Mar"]);
    }

    #[test]
    fn four_months_tick_every_first_of_the_month() {
        let ticks = check(at(2024, 1, 15, 0), at(2024, 5, 15, 0), Step::Months(1));
        let labels: Vec<String> = ticks.ticks.iter().map(|t| ticks.label(t)).collect();
        assert_eq!(labels, ["Feb 2024", "Mar 2024", "Apr 2024", "May 2024"]);
    }

    #[test]
    fn two_years_tick_every_half_year() {
        let ticks = check(at(2022, 11, 20, 0), at(2024, 11, 20, 0), Step::Months(6));
        let labels: Vec<String> = ticks.ticks.iter().map(|t| ticks.label(t)).collect();
        assert_eq!(labels, ["Jan 2023", "Jul 2023", "Jan 2024", "Jul 2024"]);
    }

    #[test]
    fn a_year_and_a_bit_ticks_every_quarter() {
        check(at(2023, 2, 10, 0), at(2024, 5, 1, 0), Step::Months(3));
    }

    #[test]
    fn twelve_years_tick_every_other_new_year() {
        let ticks = check(at(2012, 6, 1, 0), at(2024, 6, 1, 0), Step::Years(2));
        let labels: Vec<String> = ticks.ticks.iter().map(|t| ticks.label(t)).collect();
        assert_eq!(labels, ["2014", "2016", "2018", "2020", "2022", "2024"]);
    }

    #[test]
    fn five_years_label_each_year_at_its_first_day() {
        // The case: over 2019–2024 no year is skipped, and a reading of 8 January 2020
        // lies just right of the tick labelled 2020, which is 1 January 2020.
        let ticks = check(at(2019, 3, 1, 0), at(2024, 3, 1, 0), Step::Years(1));
        let labels: Vec<String> = ticks.ticks.iter().map(|t| ticks.label(t)).collect();
        assert_eq!(labels, ["2020", "2021", "2022", "2023", "2024"]);
        let reading = at(2020, 1, 8, 10);
        let left = ticks.ticks.iter().rev().find(|t| **t <= reading).unwrap();
        assert_eq!(ticks.label(left), "2020");
    }

    #[test]
    fn a_single_day_still_has_ticks() {
        let ticks = DateTicks::for_range(
            at(2024, 5, 1, 0) - Duration::days(1),
            at(2024, 5, 1, 0) + Duration::days(1),
        );
        assert_eq!(ticks.step, Step::Days(1));
        assert_eq!(ticks.ticks.len(), 3);
    }
}
