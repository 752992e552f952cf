//! Units of measure: what EHRs send, normalized to one display unit per chart.
//!
//! FHIR Quantities carry a UCUM code (`system = http://unitsofmeasure.org`, `code`) and a display
//! `unit`; EHRs fill one, the other or both, and not always with UCUM (`lbs`, `°F`, `beats/min`).
//! The Rust UCUM crates are young or unmaintained (`ucum` 0.1.0, partial, one release in 2020;
//! `ucum-units` 0.1.0, one release; `octofhir-ucum-core` 0.x with three breaking releases in a
//! week), and none knows the non-UCUM spellings EHRs send or the molar masses that lab conversion
//! needs, so this is a small, tested table of the units vital signs and common labs arrive in,
//! from the UCUM specification
//! (<https://ucum.org/ucum>: `[lb_av]` = 0.45359237 kg, `[in_i]` = 2.54 cm, `[degF]` = 5/9 K
//! from 459.67 °F below zero). A unit outside the table is [`None`]: the caller shows it as sent,
//! on its own, and never mixes it with converted values.
//!
//! Lab concentrations convert between mass (mg/dL) and substance (mmol/L) only for analytes whose
//! molar mass is known here (`Analyte`, found by LOINC code); the display side is a setting
//! ([`LabUnits`]), as labs are read in mg/dL in the US and in mmol/L in most other places.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a unit measures; only units of one kind convert into each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Body mass (kg).
    Mass,
    /// Body length (cm).
    Length,
    /// Temperature (°C).
    Temperature,
    /// Blood pressure (mmHg).
    Pressure,
    /// Beats or breaths per minute.
    Rate,
    /// Percent (SpO2).
    Percent,
    /// Body mass index (kg/m²).
    MassPerArea,
    /// Mass concentration (mg/dL).
    MassConcentration,
    /// Substance concentration (mmol/L).
    SubstanceConcentration,
}

/// One known unit: `value in base = value × factor + offset`.
struct Unit {
    /// The UCUM code and the spellings EHRs use for it.
    names: &'static [&'static str],
    kind: Kind,
    factor: f64,
    offset: f64,
}

const fn unit(names: &'static [&'static str], kind: Kind, factor: f64) -> Unit {
    Unit {
        names,
        kind,
        factor,
        offset: 0.0,
    }
}

/// The table: the first name is the UCUM code; the base unit of each kind has factor 1.
const UNITS: &[Unit] = &[
    unit(&["kg", "kilogram", "kilograms"], Kind::Mass, 1.0),
    unit(&["g", "gram", "grams"], Kind::Mass, 0.001),
    unit(
        &["[lb_av]", "lb", "lbs", "pound", "pounds"],
        Kind::Mass,
        0.453_592_37,
    ),
    unit(
        &["[oz_av]", "oz", "ounce", "ounces"],
        Kind::Mass,
        0.028_349_523_125,
    ),
    unit(&["cm", "centimeter", "centimetre"], Kind::Length, 1.0),
    unit(&["m", "meter", "metre"], Kind::Length, 100.0),
    unit(&["mm", "millimeter", "millimetre"], Kind::Length, 0.1),
    unit(&["[in_i]", "in", "inch", "inches", "[in_us]"], Kind::Length, 2.54),
    unit(&["[ft_i]", "ft", "foot", "feet"], Kind::Length, 30.48),
    unit(&["Cel", "°C", "degC", "C", "celsius"], Kind::Temperature, 1.0),
    Unit {
        names: &["[degF]", "°F", "degF", "F", "fahrenheit"],
        kind: Kind::Temperature,
        factor: 5.0 / 9.0,
        offset: -32.0 * 5.0 / 9.0,
    },
    Unit {
        names: &["K", "kelvin"],
        kind: Kind::Temperature,
        factor: 1.0,
        offset: -273.15,
    },
    unit(&["mm[Hg]", "mmHg", "mm Hg"], Kind::Pressure, 1.0),
    unit(&["kPa"], Kind::Pressure, 7.500_615_75),
    unit(
        &[
            "/min",
            "{beats}/min",
            "{breaths}/min",
            "beats/min",
            "breaths/min",
            "beats/minute",
            "breaths/minute",
            "bpm",
            "1/min",
            "{Beats}/min",
        ],
        Kind::Rate,
        1.0,
    ),
    unit(&["%", "percent", "%{Oxygen}"], Kind::Percent, 1.0),
    unit(&["kg/m2", "kg/m²", "kg/m^2"], Kind::MassPerArea, 1.0),
    unit(&["mg/dL", "mg/dl"], Kind::MassConcentration, 1.0),
    unit(&["g/dL", "g/dl"], Kind::MassConcentration, 1000.0),
    unit(&["g/L", "g/l"], Kind::MassConcentration, 100.0),
    unit(&["mg/L", "mg/l"], Kind::MassConcentration, 0.1),
    unit(&["mmol/L", "mmol/l"], Kind::SubstanceConcentration, 1.0),
    unit(
        &["umol/L", "µmol/L", "μmol/L", "umol/l"],
        Kind::SubstanceConcentration,
        0.001,
    ),
];

fn lookup(unit: &str) -> Option<&'static Unit> {
    let unit = unit.trim();
    UNITS.iter().find(|u| u.names.contains(&unit)).or_else(|| {
        UNITS
            .iter()
            .find(|u| u.names.iter().any(|n| n.eq_ignore_ascii_case(unit)))
    })
}

/// What kind of quantity `unit` (a UCUM code or an EHR's spelling) measures, when it is known. Only the tests ask
/// (they check the table's lookup through it).
#[cfg(test)]
fn kind_of(unit: &str) -> Option<Kind> {
    lookup(unit).map(|u| u.kind)
}

/// `value` in `from`, converted to `to`; `None` when either unit is unknown or they measure
/// different things.
pub(crate) fn convert(value: f64, from: &str, to: &str) -> Option<f64> {
    let (from, to) = (lookup(from)?, lookup(to)?);
    if from.kind != to.kind {
        return None;
    }
    let base = value * from.factor + from.offset;
    Some((base - to.offset) / to.factor)
}

/// The unit of a Quantity to convert from: the UCUM `code` when the system is UCUM (or absent),
/// else the display `unit`.
pub(crate) fn quantity_unit<'a>(
    system: Option<&str>,
    code: Option<&'a str>,
    unit: Option<&'a str>,
) -> Option<&'a str> {
    let ucum = system.is_none_or(|s| s == "http://unitsofmeasure.org");
    code.filter(|c| ucum && !c.trim().is_empty() && lookup(c).is_some())
        .or(unit)
        .or(code)
        .filter(|u| !u.trim().is_empty())
}

/// Dated values, as a chart's line holds them.
pub(crate) type Points = Vec<(DateTime<Utc>, f64)>;

/// Dated measurements split by whether they could be put in one display unit.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Normalized {
    /// The measurements converted to the display unit.
    pub converted: Points,
    /// The others, grouped by the unit as sent (`""` when none was sent), in first-seen order.
    pub as_sent: Vec<(String, Points)>,
}

/// Puts `(time, value, unit as sent)` measurements into `display` where the unit converts, and
/// keeps the rest apart by their own unit, so that no axis ever mixes units.
pub(crate) fn normalize<'a>(
    measurements: impl IntoIterator<Item = (DateTime<Utc>, f64, Option<&'a str>)>,
    display: &str,
) -> Normalized {
    let mut out = Normalized::default();
    for (at, value, unit) in measurements {
        match unit.and_then(|u| convert(value, u, display)) {
            Some(v) => out.converted.push((at, v)),
            None => {
                let unit = unit.unwrap_or_default().trim().to_owned();
                match out.as_sent.iter_mut().find(|(u, _)| *u == unit) {
                    Some((_, points)) => points.push((at, value)),
                    None => out.as_sent.push((unit, vec![(at, value)])),
                }
            }
        }
    }
    out
}

/// Which units labs are shown in: a setting (`lab_units`), conventional by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabUnits {
    /// mg/dL, as in the US.
    #[default]
    Conventional,
    /// mmol/L (SI), as in most of the world.
    Si,
}

/// A lab analyte whose mass and substance concentrations convert into each other.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Analyte {
    /// Its name.
    pub name: &'static str,
    /// Its molar mass in g/mol.
    pub molar_mass: f64,
}

/// Analytes by LOINC code (mass and substance codes alike). Molar masses: glucose C6H12O6
/// 180.156, cholesterol C27H46O 386.654 (total, HDL and LDL are reported as cholesterol),
/// triglycerides as triolein 885.43, creatinine 113.12.
const ANALYTES: &[(&[&str], Analyte)] = &[
    (
        &["2339-0", "2345-7", "41653-7", "15074-8", "14749-6", "1558-6"],
        Analyte {
            name: "glucose",
            molar_mass: 180.156,
        },
    ),
    (
        &[
            "2093-3", "14647-2", "2085-9", "14646-4", "18262-6", "13457-7", "2089-1", "22748-8",
        ],
        Analyte {
            name: "cholesterol",
            molar_mass: 386.654,
        },
    ),
    (
        &["2571-8", "14927-8", "3043-7"],
        Analyte {
            name: "triglycerides",
            molar_mass: 885.43,
        },
    ),
    (
        &["2160-0", "14682-9", "38483-4"],
        Analyte {
            name: "creatinine",
            molar_mass: 113.12,
        },
    ),
];

/// The analyte a LOINC code reports, when its molar mass is known.
pub(crate) fn analyte(loinc: &str) -> Option<Analyte> {
    ANALYTES
        .iter()
        .find(|(codes, _)| codes.contains(&loinc))
        .map(|(_, a)| *a)
}

/// A lab value in the configured units: `(value, unit)`, for analytes with a known molar mass
/// reported as a mass or substance concentration; `None` otherwise (the value is shown as sent).
pub(crate) fn lab_value(
    value: f64,
    unit: &str,
    loinc: Option<&str>,
    wanted: LabUnits,
) -> Option<(f64, &'static str)> {
    let from = lookup(unit)?;
    let analyte = loinc.and_then(analyte)?;
    // mg/dL = mmol/L × g/mol ÷ 10 (mmol/L × mg/mmol = mg/L, ÷ 10 for dL).
    let mg_per_dl = match from.kind {
        Kind::MassConcentration => convert(value, unit, "mg/dL")?,
        Kind::SubstanceConcentration => convert(value, unit, "mmol/L")? * analyte.molar_mass / 10.0,
        _ => return None,
    };
    Some(match wanted {
        LabUnits::Conventional => (mg_per_dl, "mg/dL"),
        // Creatinine is read in µmol/L where labs are SI (its mmol/L values are around 0.09).
        LabUnits::Si if analyte.name == "creatinine" => (mg_per_dl * 10_000.0 / analyte.molar_mass, "µmol/L"),
        LabUnits::Si => (mg_per_dl * 10.0 / analyte.molar_mass, "mmol/L"),
    })
}

impl LabUnits {
    /// Reads the `lab_units` setting: `conventional` (or `mg/dL`, `us`) and `si` (or `mmol/L`).
    pub fn parse(text: &str) -> Option<LabUnits> {
        match text.trim().to_ascii_lowercase().as_str() {
            "conventional" | "us" | "mg/dl" => Some(LabUnits::Conventional),
            "si" | "mmol/l" => Some(LabUnits::Si),
            _ => None,
        }
    }
}

/// How many decimals a lab value is shown with in `unit`: whole mg/dL and µmol/L, creatinine's mg/dL to
/// two places (1.02), mmol/L to one (5.5) as labs report them.
fn lab_decimals(analyte: Analyte, unit: &str) -> usize {
    match unit {
        "mg/dL" if analyte.name == "creatinine" => 2,
        "mmol/L" => 1,
        _ => 0,
    }
}

/// A lab value in the configured units, rounded for display, and that unit: `("99", "mg/dL")`, when it
/// converts and is not in that unit already; `None` keeps the value as sent.
fn lab_number(
    value: f64,
    unit: &str,
    loinc: Option<&str>,
    wanted: LabUnits,
) -> Option<(String, &'static str)> {
    let (converted, to) = lab_value(value, unit, loinc, wanted)?;
    let same_unit = lookup(unit)
        .zip(lookup(to))
        .is_some_and(|(a, b)| std::ptr::eq(a, b));
    if same_unit {
        return None;
    }
    let decimals = loinc.and_then(analyte).map_or(1, |a| lab_decimals(a, to));
    Some((format!("{converted:.decimals$}"), to))
}

/// A lab quantity's value in the configured units, as text with its unit (`"99 mg/dL"`), when it
/// converts and is not in that unit already; `None` keeps the value as sent.
pub(crate) fn lab_text(value: f64, unit: &str, loinc: Option<&str>, wanted: LabUnits) -> Option<String> {
    lab_number(value, unit, loinc, wanted).map(|(number, to)| format!("{number} {to}"))
}

/// A reference range in the configured units (`"70–99 mg/dL"`, `"≥ 1.0 mmol/L"`), when its bounds
/// convert; `None` keeps the range as sent.
pub(crate) fn lab_range_text(
    low: Option<f64>,
    high: Option<f64>,
    unit: &str,
    loinc: Option<&str>,
    wanted: LabUnits,
) -> Option<String> {
    let number = |v: f64| lab_number(v, unit, loinc, wanted);
    match (low.map(number), high.map(number)) {
        (Some(Some((l, _))), Some(Some((h, to)))) => Some(format!("{l}–{h} {to}")),
        (Some(Some((l, to))), None) => Some(format!("≥ {l} {to}")),
        (None, Some(Some((h, to)))) => Some(format!("≤ {h} {to}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6 * b.abs().max(1.0)
    }

    #[test]
    fn vital_units_ehrs_send_convert_to_the_chart_units() {
        assert!(close(convert(154.0, "[lb_av]", "kg").unwrap(), 69.853_225));
        assert!(close(convert(154.0, "lbs", "kg").unwrap(), 69.853_225));
        assert!(close(convert(70.0, "[in_i]", "cm").unwrap(), 177.8));
        assert!(close(convert(1.78, "m", "cm").unwrap(), 178.0));
        assert!(close(convert(98.6, "[degF]", "Cel").unwrap(), 37.0));
        assert!(close(convert(98.6, "°F", "°C").unwrap(), 37.0));
        assert!(close(convert(32.0, "[degF]", "Cel").unwrap(), 0.0));
        assert!(close(convert(310.15, "K", "Cel").unwrap(), 37.0));
        assert!(close(convert(37.0, "Cel", "[degF]").unwrap(), 98.6));
        assert!(close(convert(16.0, "kPa", "mm[Hg]").unwrap(), 120.009_852));
        assert!(close(convert(72.0, "{beats}/min", "/min").unwrap(), 72.0));
        assert!(close(convert(3500.0, "g", "kg").unwrap(), 3.5));
    }

    #[test]
    fn a_series_in_pounds_and_kilograms_goes_on_one_axis_and_unknown_units_stay_apart() {
        use chrono::TimeZone;
        let t = |d| Utc.with_ymd_and_hms(2024, 1, d, 0, 0, 0).unwrap();
        let n = normalize(
            [
                (t(1), 154.0, Some("[lb_av]")),
                (t(2), 70.0, Some("kg")),
                (t(3), 11.0, Some("[stone_av]")),
                (t(4), 69.0, None),
                (t(5), 11.1, Some("[stone_av]")),
            ],
            "kg",
        );
        assert_eq!(n.converted.len(), 2);
        assert!(close(n.converted[0].1, 69.853_225) && n.converted[1].1 == 70.0);
        assert_eq!(
            n.as_sent,
            vec![
                ("[stone_av]".to_owned(), vec![(t(3), 11.0), (t(5), 11.1)]),
                (String::new(), vec![(t(4), 69.0)]),
            ],
            "shown as sent, each unit on its own"
        );
    }

    #[test]
    fn different_kinds_and_unknown_units_do_not_convert() {
        assert_eq!(convert(70.0, "kg", "cm"), None);
        assert_eq!(
            convert(70.0, "stone", "kg"),
            None,
            "not in the table: shown as sent"
        );
        assert_eq!(convert(98.0, "%", "/min"), None);
        assert_eq!(kind_of("{score}"), None);
        assert_eq!(
            kind_of("MM[HG]"),
            Some(Kind::Pressure),
            "case is forgiven when unambiguous"
        );
    }

    #[test]
    fn the_ucum_code_is_preferred_over_the_display_unit() {
        let ucum = Some("http://unitsofmeasure.org");
        assert_eq!(quantity_unit(ucum, Some("[lb_av]"), Some("lb")), Some("[lb_av]"));
        assert_eq!(
            quantity_unit(None, Some("[degF]"), Some("degrees F")),
            Some("[degF]")
        );
        assert_eq!(
            quantity_unit(Some("urn:vendor"), Some("LBS"), Some("lb")),
            Some("lb"),
            "a vendor code system's code is not UCUM"
        );
        assert_eq!(quantity_unit(ucum, Some("{odd}"), Some("stone")), Some("stone"));
        assert_eq!(quantity_unit(ucum, None, None), None);
    }

    #[test]
    fn glucose_and_cholesterol_convert_with_their_molar_mass() {
        let (v, u) = lab_value(5.5, "mmol/L", Some("15074-8"), LabUnits::Conventional).unwrap();
        assert_eq!(u, "mg/dL");
        assert!(close(v, 99.0858), "{v}");
        let (v, u) = lab_value(99.0, "mg/dL", Some("2345-7"), LabUnits::Si).unwrap();
        assert_eq!(u, "mmol/L");
        assert!(close(v, 5.495_237), "{v}");
        let (v, _) = lab_value(5.0, "mmol/L", Some("2093-3"), LabUnits::Conventional).unwrap();
        assert!(close(v, 193.327), "{v}");
        let (v, _) = lab_value(88.4, "umol/L", Some("2160-0"), LabUnits::Conventional).unwrap();
        assert!(close(v, 0.999_981), "creatinine 88.4 µmol/L ≈ 1 mg/dL: {v}");
    }

    #[test]
    fn lab_text_rounds_as_labs_report_and_leaves_the_wanted_unit_alone() {
        let glucose = Some("15074-8");
        assert_eq!(
            lab_text(5.5, "mmol/L", glucose, LabUnits::Conventional).as_deref(),
            Some("99 mg/dL")
        );
        assert_eq!(
            lab_text(99.0, "mg/dL", glucose, LabUnits::Si).as_deref(),
            Some("5.5 mmol/L")
        );
        assert_eq!(
            lab_text(99.0, "mg/dL", glucose, LabUnits::Conventional),
            None,
            "already mg/dL"
        );
        assert_eq!(
            lab_text(99.0, "mg/dl", glucose, LabUnits::Conventional),
            None,
            "a spelling of mg/dL"
        );
        let creatinine = Some("2160-0");
        assert_eq!(
            lab_text(88.4, "umol/L", creatinine, LabUnits::Conventional).as_deref(),
            Some("1.00 mg/dL")
        );
        assert_eq!(
            lab_text(1.0, "mg/dL", creatinine, LabUnits::Si).as_deref(),
            Some("88 µmol/L")
        );
        assert_eq!(
            lab_text(1.1, "g/L", Some("2093-3"), LabUnits::Conventional).as_deref(),
            Some("110 mg/dL")
        );
        assert_eq!(
            lab_text(13.5, "g/dL", Some("718-7"), LabUnits::Si),
            None,
            "hemoglobin stays as sent"
        );
    }

    #[test]
    fn lab_ranges_convert_bound_by_bound() {
        let glucose = Some("2345-7");
        assert_eq!(
            lab_range_text(Some(3.9), Some(5.5), "mmol/L", glucose, LabUnits::Conventional).as_deref(),
            Some("70–99 mg/dL")
        );
        assert_eq!(
            lab_range_text(None, Some(200.0), "mg/dL", Some("2093-3"), LabUnits::Si).as_deref(),
            Some("≤ 5.2 mmol/L")
        );
        assert_eq!(
            lab_range_text(Some(3.9), Some(5.5), "mmol/L", glucose, LabUnits::Si),
            None,
            "already in the wanted unit"
        );
        assert_eq!(
            lab_range_text(None, None, "mmol/L", glucose, LabUnits::Conventional),
            None
        );
        assert_eq!(LabUnits::parse(" SI "), Some(LabUnits::Si));
        assert_eq!(LabUnits::parse("mg/dL"), Some(LabUnits::Conventional));
        assert_eq!(LabUnits::parse("metric"), None);
    }

    #[test]
    fn labs_without_a_known_molar_mass_stay_as_sent() {
        assert_eq!(
            lab_value(13.5, "g/dL", Some("718-7"), LabUnits::Si),
            None,
            "hemoglobin: no molar mass here"
        );
        assert_eq!(
            lab_value(4.2, "mmol/L", None, LabUnits::Conventional),
            None,
            "no code, no analyte"
        );
        assert_eq!(
            lab_value(7.0, "10*3/uL", Some("2345-7"), LabUnits::Si),
            None,
            "not a concentration we know"
        );
        let (v, u) = lab_value(1.0, "g/L", Some("2345-7"), LabUnits::Conventional).unwrap();
        assert_eq!((u, close(v, 100.0)), ("mg/dL", true), "within its kind too");
    }
}
