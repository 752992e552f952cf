//! Vital-sign charts, drawn server-side as SVG with `plotters`.
//!
//! A [`Chart`] is a title, a unit and one or more [`Series`] of dated measurements (blood pressure
//! has two: systolic and diastolic), with the reference [`Band`]s to shade behind them.
//! [`Chart::to_svg`] draws it: date ticks at calendar boundaries ([`crate::date_ticks`]), the latest
//! measurement of each line ringed and labelled. The page embeds the SVG inline with a text
//! alternative and the numbers as a table ([`Chart::rows`]), so it needs no JavaScript and reads
//! the same to a screen reader.

use chrono::{DateTime, Duration, Utc};
use plotters::coord::combinators::WithKeyPoints;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::date_ticks::DateTicks;

/// One line on a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend label (e.g. "Systolic").
    pub label: String,
    /// Measurements, in any order.
    pub points: Vec<(DateTime<Utc>, f64)>,
}

/// A chart of one vital sign over time.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// The vital sign (e.g. "Blood pressure").
    pub title: String,
    /// The unit of the y axis (e.g. "mmHg").
    pub unit: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Reference ranges shaded behind the lines.
    pub bands: Vec<Band>,
}

/// Where a reference band comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BandSource {
    /// The EHR's `Observation.referenceRange`.
    Ehr,
    /// The usual adult range for this vital sign (not the patient's own).
    UsualAdult,
}

/// A reference range for one line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    /// The line it belongs to (e.g. "Systolic").
    pub label: String,
    /// The lower limit, in the chart's unit.
    pub low: f64,
    /// The upper limit, in the chart's unit.
    pub high: f64,
    /// Where it comes from.
    pub source: BandSource,
}

impl Band {
    /// The band's caption, e.g. "Systolic: usual adult range 90–120 mmHg".
    pub fn caption(&self, unit: &str) -> String {
        let kind = match self.source {
            BandSource::Ehr => "reference range",
            BandSource::UsualAdult => "usual adult range",
        };
        format!(
            "{}: {kind} {}–{} {unit}",
            self.label,
            format_value(self.low),
            format_value(self.high)
        )
    }
}

/// The usual adult ranges of the charted vital signs, for when the EHR gives none: `(LOINC, low,
/// high)` in the charts' display units. Blood pressure 90–120 / 60–80 mmHg (AHA "normal" below
/// 120/80; below 90/60 is hypotension), heart rate 60–100 /min, respiratory rate 12–20 /min,
/// SpO2 95–100 %, body temperature 36.1–37.2 °C.
pub const USUAL_ADULT_RANGES: &[(&str, f64, f64)] = &[
    ("8480-6", 90.0, 120.0),
    ("8462-4", 60.0, 80.0),
    ("8867-4", 60.0, 100.0),
    ("9279-1", 12.0, 20.0),
    ("2708-6", 95.0, 100.0),
    ("59408-5", 95.0, 100.0),
    ("8310-5", 36.1, 37.2),
    ("8331-1", 36.1, 37.2),
];

/// The usual adult range for a LOINC code, as a band for the line `label`.
pub fn usual_adult_band(loinc: &str, label: &str) -> Option<Band> {
    USUAL_ADULT_RANGES
        .iter()
        .find(|(code, _, _)| *code == loinc)
        .map(|(_, low, high)| Band {
            label: label.to_owned(),
            low: *low,
            high: *high,
            source: BandSource::UsualAdult,
        })
}

/// A measurement for display: whole numbers without decimals, others with one (two below 10).
pub fn format_value(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else if v.abs() < 10.0 {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').to_owned()
    } else {
        format!("{v:.1}")
    }
}

/// A chart with its SVG drawn once (pages are rendered many times from a cached summary).
#[derive(Debug, Clone, PartialEq)]
pub struct DrawnChart {
    /// The data.
    pub chart: Chart,
    /// The SVG, `None` when there was nothing to draw, or why it could not be drawn.
    pub svg: Result<Option<String>, String>,
}

/// A chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("The chart could not be drawn: {0}.")]
pub struct ChartError(String);

/// Line colours, dark enough for contrast on white.
const COLOURS: [RGBColor; 3] = [
    RGBColor(11, 92, 173),
    RGBColor(164, 22, 26),
    RGBColor(30, 107, 52),
];

const WIDTH: u32 = 480;
const HEIGHT: u32 = 260;

impl Chart {
    /// Whether there is anything to draw.
    pub fn is_empty(&self) -> bool {
        self.series.iter().all(|s| s.points.is_empty())
    }

    /// The latest measurement of each series, for the text summary.
    pub fn latest(&self) -> Vec<(&str, DateTime<Utc>, f64)> {
        self.series
            .iter()
            .filter_map(|s| {
                s.points
                    .iter()
                    .max_by_key(|(t, _)| *t)
                    .map(|(t, v)| (s.label.as_str(), *t, *v))
            })
            .collect()
    }

    /// The chart's numbers for a table: one row per time, newest first, one cell per series.
    pub fn rows(&self) -> Vec<(DateTime<Utc>, Vec<Option<f64>>)> {
        let mut times: Vec<DateTime<Utc>> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|(t, _)| *t))
            .collect();
        times.sort_by(|a, b| b.cmp(a));
        times.dedup();
        times
            .into_iter()
            .map(|t| {
                let cells = self
                    .series
                    .iter()
                    .map(|s| s.points.iter().find(|(at, _)| *at == t).map(|(_, v)| *v))
                    .collect();
                (t, cells)
            })
            .collect()
    }

    /// The x and y ranges, padded so that a single point or a flat line still gets a visible axis.
    fn ranges(&self) -> Option<(std::ops::Range<DateTime<Utc>>, std::ops::Range<f64>)> {
        let points = || {
            self.series
                .iter()
                .flat_map(|s| s.points.iter())
                .filter(|(_, v)| v.is_finite())
        };
        let first = points().map(|(t, _)| *t).min()?;
        let last = points().map(|(t, _)| *t).max()?;
        // The bands are part of the picture: a reading is read against them.
        let bands = self
            .bands
            .iter()
            .flat_map(|b| [b.low, b.high])
            .filter(|v| v.is_finite());
        let low = points()
            .map(|(_, v)| *v)
            .chain(bands.clone())
            .fold(f64::INFINITY, f64::min);
        let high = points()
            .map(|(_, v)| *v)
            .chain(bands)
            .fold(f64::NEG_INFINITY, f64::max);
        let span = last - first;
        let pad_t = if span < Duration::days(2) {
            Duration::days(1)
        } else {
            span / 20
        };
        let spread = high - low;
        let pad_v = if spread.abs() < f64::EPSILON {
            (high.abs() * 0.1).max(1.0)
        } else {
            spread * 0.1
        };
        Some((first - pad_t..last + pad_t, low - pad_v..high + pad_v))
    }

    /// Draws the chart now and keeps the result with it.
    pub fn draw(self) -> DrawnChart {
        let svg = self.to_svg().map_err(|e| e.to_string());
        DrawnChart { chart: self, svg }
    }

    /// Draws the chart as a standalone SVG document; `None` when there is nothing to draw. In order: the
    /// reference bands, the axes and grid, each line with its latest measurement, the legend.
    pub fn to_svg(&self) -> Result<Option<String>, ChartError> {
        let Some((x_range, y_range)) = self.ranges() else {
            return Ok(None);
        };
        let decimals = if y_range.end - y_range.start < 20.0 { 1 } else { 0 };
        let ticks = DateTicks::for_range(x_range.start, x_range.end);
        let (x_start, x_end) = (x_range.start, x_range.end);
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
            root.fill(&WHITE).map_err(draw_err)?;
            let mut chart = ChartBuilder::on(&root)
                .margin(12)
                .x_label_area_size(28)
                .y_label_area_size(48)
                .build_cartesian_2d(x_range.with_key_points(ticks.ticks.clone()), y_range)
                .map_err(draw_err)?;
            self.draw_bands(&mut chart, x_start, x_end)?;
            self.draw_mesh(&mut chart, &ticks, decimals)?;
            for (i, series) in self.series.iter().enumerate() {
                draw_line(&mut chart, series, COLOURS[i % COLOURS.len()])?;
            }
            if self.series.len() > 1 {
                draw_legend(&mut chart)?;
            }
            root.present().map_err(draw_err)?;
        }
        Ok(Some(svg))
    }

    /// The reference bands, shaded across the whole time axis in their line's colour.
    fn draw_bands(
        &self,
        chart: &mut Plot<'_, '_>,
        x_start: DateTime<Utc>,
        x_end: DateTime<Utc>,
    ) -> Result<(), ChartError> {
        for (i, band) in self.bands.iter().enumerate() {
            let colour = self.colour_of(&band.label, i);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x_start, band.low), (x_end, band.high)],
                    colour.mix(0.10).filled(),
                )))
                .map_err(draw_err)?;
        }
        Ok(())
    }

    /// The axes, their labels (dates at calendar boundaries, values with `decimals`) and the grid.
    fn draw_mesh(
        &self,
        chart: &mut Plot<'_, '_>,
        ticks: &DateTicks,
        decimals: usize,
    ) -> Result<(), ChartError> {
        chart
            .configure_mesh()
            .y_labels(6)
            // Major grid lines only: the minor ones add little and triple the SVG's size.
            .max_light_lines(1)
            .bold_line_style(RGBColor(228, 232, 237))
            .x_label_formatter(&|d: &DateTime<Utc>| ticks.label(d))
            .y_label_formatter(&|v: &f64| format!("{v:.decimals$}"))
            .y_desc(self.unit.as_str())
            .label_style(("sans-serif", 12).into_font().color(&RGBColor(60, 70, 82)))
            .draw()
            .map_err(draw_err)
    }
}

/// The drawing area of a chart: dates (with the ticks' key points) across, values up.
type Plot<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<WithKeyPoints<RangedDateTime<DateTime<Utc>>>, RangedCoordf64>,
>;

/// One line in `colour`: its measurements joined in time order, each a dot, the latest ringed with its value
/// beside it; labelled for the legend.
fn draw_line(chart: &mut Plot<'_, '_>, series: &Series, colour: RGBColor) -> Result<(), ChartError> {
    let mut points: Vec<(DateTime<Utc>, f64)> = series
        .points
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite())
        .collect();
    points.sort_by_key(|(t, _)| *t);
    chart
        .draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(2)))
        .map_err(draw_err)?
        .label(series.label.as_str())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
    chart
        .draw_series(points.iter().map(|p| Circle::new(*p, 3, colour.filled())))
        .map_err(draw_err)?;
    // The latest measurement: ringed, with its value beside it.
    if let Some(&(t, v)) = points.last() {
        chart
            .draw_series(std::iter::once(Circle::new((t, v), 7, colour.stroke_width(2))))
            .map_err(draw_err)?;
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((t, v))
                    + Text::new(
                        format_value(v),
                        (-34, -20),
                        ("sans-serif", 12).into_font().color(&colour),
                    ),
            ))
            .map_err(draw_err)?;
    }
    Ok(())
}

/// The legend, top right (for charts of more than one line).
fn draw_legend<'a, 'b: 'a>(chart: &mut Plot<'a, 'b>) -> Result<(), ChartError> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 205, 212))
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(draw_err)
}

impl Chart {
    /// The colour of the line labelled `label` (a band takes its line's colour).
    fn colour_of(&self, label: &str, fallback: usize) -> RGBColor {
        let i = self
            .series
            .iter()
            .position(|s| s.label == label)
            .unwrap_or(fallback);
        COLOURS[i % COLOURS.len()]
    }
}

fn draw_err(e: impl std::fmt::Display) -> ChartError {
    ChartError(e.to_string())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    /// A seeded pseudo-random walk: reproducible, no clock.
    fn generated(label: &str, n: usize, start: f64, seed: u64) -> Series {
        let mut state = seed;
        let mut value = start;
        let t0 = Utc.with_ymd_and_hms(2023, 1, 1, 9, 0, 0).unwrap();
        let points = (0..n)
            .map(|i| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                value += ((state >> 33) % 100) as f64 / 10.0 - 5.0;
                (t0 + Duration::days(30 * i as i64), value)
            })
            .collect();
        Series {
            label: label.to_owned(),
            points,
        }
    }

    /// The contents of the SVG's `<text>` elements, trimmed.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = &t[t.find('>')? + 1..t.find("</text>")?];
                Some(body.trim().to_owned())
            })
            .collect()
    }

    fn count(haystack: &str, needle: &str) -> usize {
        haystack.matches(needle).count()
    }

    #[test]
    fn blood_pressure_draws_two_lines_with_a_legend() {
        let chart = Chart {
            title: "Blood pressure".into(),
            unit: "mmHg".into(),
            series: vec![
                generated("Systolic", 12, 125.0, 1),
                generated("Diastolic", 12, 80.0, 2),
            ],
            bands: vec![],
        };
        let svg = chart.to_svg().unwrap().unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..60]);
        assert!(
            svg.len() < 20_000,
            "a chart stays small enough to inline ({} bytes)",
            svg.len()
        );
        assert!(svg.contains("mmHg"));
        assert!(svg.contains("Systolic") && svg.contains("Diastolic"));
        assert_eq!(
            count(&svg, "<circle"),
            24 + 2,
            "one marker per measurement, a ring on each latest"
        );
        assert!(count(&svg, "<polyline") >= 2);
        assert!(svg.contains("stroke=\"#0B5CAD\"") || svg.contains("#0B5CAD") || svg.contains("#0b5cad"));
    }

    #[test]
    fn a_single_measurement_and_a_flat_series_still_draw() {
        let t = Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap();
        let single = Chart {
            title: "Weight".into(),
            unit: "kg".into(),
            series: vec![Series {
                label: "Weight".into(),
                points: vec![(t, 70.5)],
            }],
            bands: vec![],
        };
        let svg = single.to_svg().unwrap().unwrap();
        assert_eq!(count(&svg, "<circle"), 1 + 1);
        let flat = Chart {
            title: "SpO2".into(),
            unit: "%".into(),
            series: vec![Series {
                label: "SpO2".into(),
                points: (0..5).map(|i| (t + Duration::days(i), 98.0)).collect(),
            }],
            bands: vec![],
        };
        assert_eq!(count(&flat.to_svg().unwrap().unwrap(), "<circle"), 5 + 1);
    }

    #[test]
    fn an_empty_chart_draws_nothing_and_non_finite_values_are_skipped() {
        let empty = Chart {
            title: "Heart rate".into(),
            unit: "/min".into(),
            series: vec![],
            bands: vec![],
        };
        assert!(empty.is_empty());
        assert!(empty.to_svg().unwrap().is_none());
        let t = Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap();
        let odd = Chart {
            title: "Temperature".into(),
            unit: "°C".into(),
            series: vec![Series {
                label: "Temperature".into(),
                points: vec![
                    (t, f64::NAN),
                    (t + Duration::days(1), 37.0),
                    (t + Duration::days(2), 36.6),
                ],
            }],
            bands: vec![],
        };
        assert_eq!(count(&odd.to_svg().unwrap().unwrap(), "<circle"), 2 + 1);
    }

    #[test]
    fn latest_values_are_reported_per_series() {
        let chart = Chart {
            title: "BMI".into(),
            unit: "kg/m2".into(),
            series: vec![generated("BMI", 6, 24.0, 7)],
            bands: vec![],
        };
        let latest = chart.latest();
        assert_eq!(latest.len(), 1);
        assert_eq!(latest[0].1, chart.series[0].points[5].0);
    }

    #[test]
    fn bands_are_shaded_and_widen_the_axis_and_the_latest_value_is_labelled() {
        let t = Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap();
        let series = Series {
            label: "Heart rate".into(),
            points: vec![(t, 72.0), (t + Duration::days(40), 77.0)],
        };
        let plain = Chart {
            title: "Heart rate".into(),
            unit: "/min".into(),
            series: vec![series.clone()],
            bands: vec![],
        };
        let banded = Chart {
            bands: vec![usual_adult_band("8867-4", "Heart rate").unwrap()],
            ..plain.clone()
        };
        let (plain_svg, banded_svg) = (
            plain.to_svg().unwrap().unwrap(),
            banded.to_svg().unwrap().unwrap(),
        );
        assert_eq!(
            count(&banded_svg, "<rect"),
            count(&plain_svg, "<rect") + 1,
            "one shaded band"
        );
        assert!(banded_svg.contains("opacity=\"0.1\""), "the band is translucent");
        // 60–100 is on the axis now: its labels reach below 65 and above 95.
        assert!(banded.ranges().unwrap().1.start < 60.0 && banded.ranges().unwrap().1.end > 100.0);
        assert!(plain.ranges().unwrap().1.start > 60.0);
        assert!(
            texts(&banded_svg).contains(&"77".to_owned()),
            "the latest value is written beside it"
        );
        assert_eq!(
            banded.bands[0].caption("/min"),
            "Heart rate: usual adult range 60–100 /min"
        );
        assert!(
            usual_adult_band("29463-7", "Weight").is_none(),
            "no usual range for weight"
        );
    }

    #[test]
    fn date_ticks_fall_on_new_year_and_say_the_year() {
        let t = Utc.with_ymd_and_hms(2019, 3, 1, 0, 0, 0).unwrap();
        let chart = Chart {
            title: "Weight".into(),
            unit: "kg".into(),
            series: vec![Series {
                label: "Weight".into(),
                points: (0..6)
                    .map(|i| (t + Duration::days(365 * i), 70.0 + i as f64))
                    .collect(),
            }],
            bands: vec![],
        };
        let svg = chart.to_svg().unwrap().unwrap();
        let years: Vec<String> = (2019..=2024).map(|y| y.to_string()).collect();
        let labels: Vec<String> = texts(&svg)
            .into_iter()
            .filter(|t| t.len() == 4 && t.starts_with("20"))
            .collect();
        assert_eq!(labels, years, "every year labelled once, in order");
    }

    #[test]
    fn rows_merge_series_by_time_newest_first() {
        let t = Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap();
        let chart = Chart {
            title: "Blood pressure".into(),
            unit: "mmHg".into(),
            series: vec![
                Series {
                    label: "Systolic".into(),
                    points: vec![(t, 120.0), (t + Duration::days(1), 130.0)],
                },
                Series {
                    label: "Diastolic".into(),
                    points: vec![(t, 80.0)],
                },
            ],
            bands: vec![],
        };
        assert_eq!(
            chart.rows(),
            vec![
                (t + Duration::days(1), vec![Some(130.0), None]),
                (t, vec![Some(120.0), Some(80.0)]),
            ]
        );
        assert_eq!(format_value(120.0), "120");
        assert_eq!(format_value(7.25), "7.25");
        assert_eq!(format_value(36.76), "36.8");
        assert_eq!(format_value(70.26), "70.3");
    }
}
