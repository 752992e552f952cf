//! Vital-sign charts, drawn server-side as SVG with `plotters`.
//!
//! A [`Chart`] is a title, a unit and one or more [`Series`] of dated measurements (blood pressure
//! has two: systolic and diastolic). [`Chart::to_svg`] draws it; the page embeds the SVG inline with
//! a text alternative, so it needs no JavaScript and reads the same to a screen reader.

use chrono::{DateTime, Duration, Utc};
use plotters::prelude::*;

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
        let low = points().map(|(_, v)| *v).fold(f64::INFINITY, f64::min);
        let high = points().map(|(_, v)| *v).fold(f64::NEG_INFINITY, f64::max);
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

    /// Draws the chart as a standalone SVG document; `None` when there is nothing to draw.
    pub fn to_svg(&self) -> Result<Option<String>, ChartError> {
        let Some((x_range, y_range)) = self.ranges() else {
            return Ok(None);
        };
        let decimals = if y_range.end - y_range.start < 20.0 { 1 } else { 0 };
        let span_days = (x_range.end - x_range.start).num_days();
        let date_format = if span_days > 540 {
            "%Y"
        } else if span_days > 60 {
            "%b %Y"
        } else {
            "%d %b"
        };
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
            root.fill(&WHITE).map_err(draw_err)?;
            let mut chart = ChartBuilder::on(&root)
                .margin(12)
                .x_label_area_size(28)
                .y_label_area_size(48)
                .build_cartesian_2d(x_range, y_range)
                .map_err(draw_err)?;
            chart
                .configure_mesh()
                .x_labels(5)
                .y_labels(6)
                // Major grid lines only: the minor ones add little and triple the SVG's size.
                .max_light_lines(1)
                .bold_line_style(RGBColor(228, 232, 237))
                .x_label_formatter(&|d: &DateTime<Utc>| d.format(date_format).to_string())
                .y_label_formatter(&|v: &f64| format!("{v:.decimals$}"))
                .y_desc(self.unit.as_str())
                .label_style(("sans-serif", 12).into_font().color(&RGBColor(60, 70, 82)))
                .draw()
                .map_err(draw_err)?;
            for (i, series) in self.series.iter().enumerate() {
                let colour = COLOURS[i % COLOURS.len()];
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
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                    });
                chart
                    .draw_series(points.iter().map(|p| Circle::new(*p, 3, colour.filled())))
                    .map_err(draw_err)?;
            }
            if self.series.len() > 1 {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperRight)
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(200, 205, 212))
                    .label_font(("sans-serif", 12))
                    .draw()
                    .map_err(draw_err)?;
            }
            root.present().map_err(draw_err)?;
        }
        Ok(Some(svg))
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
        assert_eq!(count(&svg, "<circle"), 24, "one marker per measurement");
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
        };
        let svg = single.to_svg().unwrap().unwrap();
        assert_eq!(count(&svg, "<circle"), 1);
        let flat = Chart {
            title: "SpO2".into(),
            unit: "%".into(),
            series: vec![Series {
                label: "SpO2".into(),
                points: (0..5).map(|i| (t + Duration::days(i), 98.0)).collect(),
            }],
        };
        assert_eq!(count(&flat.to_svg().unwrap().unwrap(), "<circle"), 5);
    }

    #[test]
    fn an_empty_chart_draws_nothing_and_non_finite_values_are_skipped() {
        let empty = Chart {
            title: "Heart rate".into(),
            unit: "/min".into(),
            series: vec![],
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
        };
        assert_eq!(count(&odd.to_svg().unwrap().unwrap(), "<circle"), 2);
    }

    #[test]
    fn latest_values_are_reported_per_series() {
        let chart = Chart {
            title: "BMI".into(),
            unit: "kg/m2".into(),
            series: vec![generated("BMI", 6, 24.0, 7)],
        };
        let latest = chart.latest();
        assert_eq!(latest.len(), 1);
        assert_eq!(latest[0].1, chart.series[0].points[5].0);
    }
}
