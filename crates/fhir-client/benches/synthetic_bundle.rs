//! A deterministic, realistic searchset Bundle for parse benchmarks: Patients and their
//! Observations (vital signs with `valueQuantity`, blood pressure with components, labs with
//! reference ranges and interpretations), every decimal written with its precision. Shared by
//! `benches/parse.rs` and `examples/make_bench_bundle.rs`, so both see the same bytes.

use serde_json::{Value, json};

/// A small deterministic generator (SplitMix64): the same seed gives the same Bundle everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    /// A decimal in [lo, hi) written with `places` decimals (kept as written by the parser).
    fn decimal(&mut self, lo: f64, hi: f64, places: usize) -> Value {
        let x = lo + (hi - lo) * (self.below(1_000_000) as f64 / 1_000_000.0);
        serde_json::from_str(&format!("{x:.places$}")).unwrap_or(Value::Null)
    }
}

const GIVEN: &[&str] = &[
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Margaret", "Ken",
];
const FAMILY: &[&str] = &[
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus", "Hamilton",
];
const CITIES: &[&str] = &["Springfield", "Riverton", "Lakeside", "Fairview", "Georgetown"];

/// (LOINC code, display, unit, low, high, decimals) for single-value vital signs.
const VITALS: &[(&str, &str, &str, f64, f64, usize)] = &[
    ("29463-7", "Body weight", "kg", 40.0, 130.0, 1),
    ("8302-2", "Body height", "cm", 140.0, 200.0, 1),
    ("8867-4", "Heart rate", "/min", 50.0, 120.0, 0),
    ("8310-5", "Body temperature", "Cel", 35.5, 39.5, 1),
    (
        "59408-5",
        "Oxygen saturation in Arterial blood by Pulse oximetry",
        "%",
        88.0,
        100.0,
        0,
    ),
    ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", 17.0, 40.0, 2),
];

/// (LOINC code, display, unit, low, high, decimals, reference low, reference high) for labs.
type Lab = (
    &'static str,
    &'static str,
    &'static str,
    f64,
    f64,
    usize,
    f64,
    f64,
);
const LABS: &[Lab] = &[
    (
        "2339-0",
        "Glucose [Mass/volume] in Blood",
        "mg/dL",
        60.0,
        250.0,
        0,
        70.0,
        99.0,
    ),
    (
        "4548-4",
        "Hemoglobin A1c/Hemoglobin.total in Blood",
        "%",
        4.0,
        11.0,
        1,
        4.0,
        5.6,
    ),
    (
        "2093-3",
        "Cholesterol [Mass/volume] in Serum or Plasma",
        "mg/dL",
        120.0,
        300.0,
        0,
        0.0,
        200.0,
    ),
    (
        "2160-0",
        "Creatinine [Mass/volume] in Serum or Plasma",
        "mg/dL",
        0.40,
        2.50,
        2,
        0.60,
        1.20,
    ),
    (
        "718-7",
        "Hemoglobin [Mass/volume] in Blood",
        "g/dL",
        9.0,
        18.0,
        1,
        12.0,
        17.5,
    ),
];

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({"system": system, "code": code, "display": display})
}

fn category(code: &str, display: &str) -> Value {
    json!([{"coding": [coding("http://terminology.hl7.org/CodeSystem/observation-category", code, display)]}])
}

fn quantity(value: Value, unit: &str) -> Value {
    json!({"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit})
}

fn date_time(rng: &mut Rng) -> String {
    format!(
        "20{:02}-{:02}-{:02}T{:02}:{:02}:{:02}+00:00",
        10 + rng.below(15),
        1 + rng.below(12),
        1 + rng.below(28),
        rng.below(24),
        rng.below(60),
        rng.below(60)
    )
}

fn patient(rng: &mut Rng, i: usize) -> Value {
    let given = rng.pick(GIVEN);
    let family = rng.pick(FAMILY);
    json!({
        "resourceType": "Patient",
        "id": format!("pat-{i}"),
        "meta": {"versionId": "1", "lastUpdated": "2024-05-01T12:00:00.000+00:00",
                 "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
        "extension": [{"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex", "valueCode": rng.pick(&["F", "M"])}],
        "identifier": [{"use": "usual",
                        "type": {"coding": [coding("http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "Medical Record Number")]},
                        "system": "urn:oid:1.2.36.146.595.217.0.1", "value": format!("MRN{:08}", rng.below(100_000_000))}],
        "active": true,
        "name": [{"use": "official", "family": family, "given": [given, rng.pick(GIVEN)], "prefix": [rng.pick(&["Mr.", "Ms.", "Dr."])]}],
        "telecom": [{"system": "phone", "value": format!("555-{:04}", rng.below(10_000)), "use": "home"}],
        "gender": rng.pick(&["male", "female", "other", "unknown"]),
        "birthDate": format!("19{:02}-{:02}-{:02}", 30 + rng.below(70), 1 + rng.below(12), 1 + rng.below(28)),
        "address": [{"use": "home", "line": [format!("{} Main St", 1 + rng.below(9999))], "city": rng.pick(CITIES),
                     "state": "MA", "postalCode": format!("0{:04}", rng.below(10_000)), "country": "US"}]
    })
}

fn observation(rng: &mut Rng, i: usize, patient: usize) -> Value {
    let mut obs = json!({
        "resourceType": "Observation",
        "id": format!("obs-{i}"),
        "meta": {"versionId": "1", "lastUpdated": "2024-05-01T12:00:00.000+00:00"},
        "status": "final",
        "subject": {"reference": format!("Patient/pat-{patient}")},
        "encounter": {"reference": format!("Encounter/enc-{}", rng.below(100_000))},
        "effectiveDateTime": date_time(rng),
        "issued": "2024-05-01T12:00:00.000+00:00",
        "performer": [{"reference": format!("Practitioner/prac-{}", rng.below(500)), "display": "Dr. Example"}]
    });
    match rng.below(10) {
        0..=4 => {
            let (code, display, unit, lo, hi, places) = VITALS[rng.below(VITALS.len() as u64) as usize];
            obs["category"] = category("vital-signs", "Vital Signs");
            obs["code"] = json!({"coding": [coding("http://loinc.org", code, display)], "text": display});
            obs["valueQuantity"] = quantity(rng.decimal(lo, hi, places), unit);
        }
        5..=6 => {
            obs["category"] = category("vital-signs", "Vital Signs");
            obs["code"] = json!({"coding": [coding("http://loinc.org", "85354-9", "Blood pressure panel with all children optional")],
                                 "text": "Blood pressure"});
            obs["component"] = json!([
                {"code": {"coding": [coding("http://loinc.org", "8480-6", "Systolic blood pressure")]},
                 "valueQuantity": quantity(rng.decimal(95.0, 180.0, 0), "mm[Hg]")},
                {"code": {"coding": [coding("http://loinc.org", "8462-4", "Diastolic blood pressure")]},
                 "valueQuantity": quantity(rng.decimal(55.0, 110.0, 0), "mm[Hg]")}
            ]);
        }
        _ => {
            let (code, display, unit, lo, hi, places, ref_lo, ref_hi) =
                LABS[rng.below(LABS.len() as u64) as usize];
            let value = rng.decimal(lo, hi, places);
            let x = value.as_f64().unwrap_or_default();
            let (flag, flag_display) = if x < ref_lo {
                ("L", "Low")
            } else if x > ref_hi {
                ("H", "High")
            } else {
                ("N", "Normal")
            };
            obs["category"] = category("laboratory", "Laboratory");
            obs["code"] = json!({"coding": [coding("http://loinc.org", code, display)], "text": display});
            obs["valueQuantity"] = quantity(value, unit);
            obs["interpretation"] = json!([{"coding": [coding("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", flag, flag_display)]}]);
            obs["referenceRange"] = json!([{"low": quantity(serde_json::from_str(&format!("{ref_lo:.places$}")).unwrap_or(Value::Null), unit),
                                            "high": quantity(serde_json::from_str(&format!("{ref_hi:.places$}")).unwrap_or(Value::Null), unit)}]);
        }
    }
    obs
}

/// A searchset Bundle of `observations` Observations (25 per Patient) with their Patients
/// included, serialized as JSON bytes. 40 000 Observations make about 46 MB.
pub fn searchset_bundle(observations: usize) -> Vec<u8> {
    let mut rng = Rng(0x5EED_F41B);
    let patients = observations.div_ceil(25).max(1);
    let base = "https://ehr.example/fhir";
    let mut entries = Vec::with_capacity(observations + patients);
    for i in 0..observations {
        let obs = observation(&mut rng, i, i % patients);
        entries.push(json!({"fullUrl": format!("{base}/Observation/obs-{i}"), "resource": obs, "search": {"mode": "match"}}));
    }
    for i in 0..patients {
        let p = patient(&mut rng, i);
        entries.push(json!({"fullUrl": format!("{base}/Patient/pat-{i}"), "resource": p, "search": {"mode": "include"}}));
    }
    let bundle = json!({
        "resourceType": "Bundle",
        "id": "bench-searchset",
        "meta": {"lastUpdated": "2024-05-01T12:00:00.000+00:00"},
        "type": "searchset",
        "total": observations,
        "link": [{"relation": "self", "url": format!("{base}/Observation?_include=Observation:patient&_count={observations}")}],
        "entry": entries
    });
    serde_json::to_vec(&bundle).unwrap_or_default()
}
