//! How fast can a typed R4 parse of a search page be, and what holds ours back? Times the same
//! `Observation` searchset three ways and prints one JSON line (median milliseconds per parse):
//!
//! - `value_ms`: `serde_json::Value` (untyped; the baseline of the issue);
//! - `fhir_r4_ms`: every entry into our generated `fhir_r4::Observation` (tolerant reading, lossless: what
//!   `fhir_client` does with each entry of a page);
//! - `lean_ms`: a lean model of the same resource (plain serde derive; every Observation element, choice
//!   elements as one field per type, primitive extensions and rarely present elements boxed so that absent
//!   ones cost one pointer): what a model of our own, laid out for parsing, would give.
//!
//! Every way parses all entries and checks their count. The allocator is mimalloc, as in the binary.
//!
//! ```sh
//! model_ceiling BUNDLE.json [SECONDS_PER_WAY]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, dead_code)]

use std::hint::black_box;
use std::time::Duration;

mod timing;

use serde::Deserialize;
use serde_json::value::RawValue;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow)]
    resource: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawBundle<'a> {
    #[serde(borrow, default)]
    entry: Vec<Entry<'a>>,
}

/// A lean R4 model of `Observation` and the datatypes it uses.
mod lean {
    use serde::Deserialize;
    use serde_json::Value;

    type Ext = Option<Box<Element>>;

    #[derive(Deserialize, Default)]
    pub struct Element {
        pub id: Option<String>,
        #[serde(default)]
        pub extension: Vec<Extension>,
    }
    #[derive(Deserialize)]
    pub struct Extension {
        pub url: String,
        #[serde(flatten)]
        pub value: serde_json::Map<String, Value>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Meta {
        pub id: Option<String>,
        pub version_id: Option<String>,
        pub last_updated: Option<String>,
        pub source: Option<String>,
        #[serde(default)]
        pub profile: Vec<String>,
        #[serde(default)]
        pub security: Vec<Coding>,
        #[serde(default)]
        pub tag: Vec<Coding>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Coding {
        pub id: Option<String>,
        pub system: Option<String>,
        #[serde(rename = "_system")]
        pub system_ext: Ext,
        pub version: Option<String>,
        #[serde(rename = "_version")]
        pub version_ext: Ext,
        pub code: Option<String>,
        #[serde(rename = "_code")]
        pub code_ext: Ext,
        pub display: Option<String>,
        #[serde(rename = "_display")]
        pub display_ext: Ext,
        pub user_selected: Option<bool>,
        #[serde(rename = "_userSelected")]
        pub user_selected_ext: Ext,
    }
    #[derive(Deserialize)]
    pub struct CodeableConcept {
        pub id: Option<String>,
        #[serde(default)]
        pub coding: Vec<Coding>,
        pub text: Option<String>,
        #[serde(rename = "_text")]
        pub text_ext: Ext,
    }
    #[derive(Deserialize)]
    pub struct Reference {
        pub id: Option<String>,
        pub reference: Option<String>,
        #[serde(rename = "_reference")]
        pub reference_ext: Ext,
        #[serde(rename = "type")]
        pub kind: Option<String>,
        pub identifier: Option<Box<Identifier>>,
        pub display: Option<String>,
        #[serde(rename = "_display")]
        pub display_ext: Ext,
    }
    #[derive(Deserialize)]
    pub struct Identifier {
        pub id: Option<String>,
        #[serde(rename = "use")]
        pub use_: Option<String>,
        #[serde(rename = "type")]
        pub kind: Option<Box<CodeableConcept>>,
        pub system: Option<String>,
        pub value: Option<String>,
        pub period: Option<Box<Period>>,
        pub assigner: Option<Box<Reference>>,
    }
    #[derive(Deserialize)]
    pub struct Quantity {
        pub id: Option<String>,
        pub value: Option<serde_json::Number>,
        #[serde(rename = "_value")]
        pub value_ext: Ext,
        pub comparator: Option<String>,
        pub unit: Option<String>,
        pub system: Option<String>,
        pub code: Option<String>,
    }
    #[derive(Deserialize)]
    pub struct Period {
        pub id: Option<String>,
        pub start: Option<String>,
        pub end: Option<String>,
    }
    #[derive(Deserialize)]
    pub struct Range {
        pub id: Option<String>,
        pub low: Option<Quantity>,
        pub high: Option<Quantity>,
    }
    #[derive(Deserialize)]
    pub struct Ratio {
        pub id: Option<String>,
        pub numerator: Option<Quantity>,
        pub denominator: Option<Quantity>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ReferenceRange {
        pub id: Option<String>,
        pub low: Option<Box<Quantity>>,
        pub high: Option<Box<Quantity>>,
        #[serde(rename = "type")]
        pub kind: Option<Box<CodeableConcept>>,
        #[serde(default)]
        pub applies_to: Vec<CodeableConcept>,
        pub age: Option<Box<Range>>,
        pub text: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Component {
        pub id: Option<String>,
        #[serde(default)]
        pub extension: Vec<Extension>,
        pub code: CodeableConcept,
        pub value_quantity: Option<Box<Quantity>>,
        pub value_codeable_concept: Option<Box<CodeableConcept>>,
        pub value_string: Option<String>,
        pub value_boolean: Option<bool>,
        pub value_integer: Option<i32>,
        pub value_range: Option<Box<Range>>,
        pub value_ratio: Option<Box<Ratio>>,
        pub value_sampled_data: Option<Box<Value>>,
        pub value_time: Option<String>,
        pub value_date_time: Option<String>,
        pub value_period: Option<Box<Period>>,
        pub data_absent_reason: Option<Box<CodeableConcept>>,
        #[serde(default)]
        pub interpretation: Vec<CodeableConcept>,
        #[serde(default)]
        pub reference_range: Vec<ReferenceRange>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Observation {
        pub id: Option<String>,
        pub meta: Option<Box<Meta>>,
        pub implicit_rules: Option<String>,
        #[serde(rename = "_implicitRules")]
        pub implicit_rules_ext: Ext,
        pub language: Option<String>,
        #[serde(rename = "_language")]
        pub language_ext: Ext,
        pub text: Option<Box<Value>>,
        #[serde(default)]
        pub contained: Vec<Value>,
        #[serde(default)]
        pub extension: Vec<Extension>,
        #[serde(default)]
        pub modifier_extension: Vec<Extension>,
        #[serde(default)]
        pub identifier: Vec<Identifier>,
        #[serde(default)]
        pub based_on: Vec<Reference>,
        #[serde(default)]
        pub part_of: Vec<Reference>,
        pub status: String,
        #[serde(rename = "_status")]
        pub status_ext: Ext,
        #[serde(default)]
        pub category: Vec<CodeableConcept>,
        pub code: CodeableConcept,
        pub subject: Option<Box<Reference>>,
        #[serde(default)]
        pub focus: Vec<Reference>,
        pub encounter: Option<Box<Reference>>,
        pub effective_date_time: Option<String>,
        #[serde(rename = "_effectiveDateTime")]
        pub effective_date_time_ext: Ext,
        pub effective_period: Option<Box<Period>>,
        pub effective_timing: Option<Box<Value>>,
        pub effective_instant: Option<String>,
        pub issued: Option<String>,
        #[serde(rename = "_issued")]
        pub issued_ext: Ext,
        #[serde(default)]
        pub performer: Vec<Reference>,
        pub value_quantity: Option<Box<Quantity>>,
        pub value_codeable_concept: Option<Box<CodeableConcept>>,
        pub value_string: Option<String>,
        pub value_boolean: Option<bool>,
        pub value_integer: Option<i32>,
        pub value_range: Option<Box<Range>>,
        pub value_ratio: Option<Box<Ratio>>,
        pub value_sampled_data: Option<Box<Value>>,
        pub value_time: Option<String>,
        pub value_date_time: Option<String>,
        pub value_period: Option<Box<Period>>,
        pub data_absent_reason: Option<Box<CodeableConcept>>,
        #[serde(default)]
        pub interpretation: Vec<CodeableConcept>,
        #[serde(default)]
        pub note: Vec<Value>,
        pub body_site: Option<Box<CodeableConcept>>,
        pub method: Option<Box<CodeableConcept>>,
        pub specimen: Option<Box<Reference>>,
        pub device: Option<Box<Reference>>,
        #[serde(default)]
        pub reference_range: Vec<ReferenceRange>,
        #[serde(default)]
        pub has_member: Vec<Reference>,
        #[serde(default)]
        pub derived_from: Vec<Reference>,
        #[serde(default)]
        pub component: Vec<Component>,
    }
}


/// Median milliseconds per call of `f` (its result kept from the optimiser).
fn time(budget: Duration, mut f: impl FnMut() -> usize) -> f64 {
    timing::median_ns(budget, || {
        black_box(f());
    }) / 1e6
}

fn entries(bytes: &[u8]) -> Vec<&RawValue> {
    let bundle: RawBundle = serde_json::from_slice(bytes).expect("the file is a FHIR Bundle");
    bundle.entry.into_iter().filter_map(|e| e.resource).collect()
}

fn fhir_r4(bytes: &[u8]) -> usize {
    let all: Vec<fhir_client::r4::Observation> = entries(bytes)
        .into_iter()
        .map(|raw| {
            fhir_client::r4::from_str(raw.get(), fhir_client::r4::Mode::Tolerant)
                .expect("an R4 Observation")
                .0
        })
        .collect();
    let n = all.len();
    black_box(all);
    n
}

fn lean(bytes: &[u8]) -> usize {
    let all: Vec<lean::Observation> = entries(bytes)
        .into_iter()
        .map(|raw| serde_json::from_str(raw.get()).expect("a valid R4 Observation"))
        .collect();
    let n = all.len();
    black_box(all);
    n
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: model_ceiling BUNDLE.json [SECONDS_PER_WAY]");
    let seconds: f64 = args
        .next()
        .map_or(3.0, |s| s.parse().expect("SECONDS_PER_WAY is a number"));
    let bytes = std::fs::read(&path).expect("the Bundle file can be read");
    let n = entries(&bytes).len();
    for way in [fhir_r4, lean] {
        assert_eq!(way(&bytes), n, "every way parses every entry");
    }
    let budget = Duration::from_secs_f64(seconds);
    let value_ms = time(budget, || {
        let v: serde_json::Value = serde_json::from_slice(black_box(&bytes)).unwrap();
        v["entry"].as_array().map_or(0, Vec::len)
    });
    let fhir_r4_ms = time(budget, || fhir_r4(black_box(&bytes)));
    let lean_ms = time(budget, || lean(black_box(&bytes)));
    println!(
        "{}",
        serde_json::json!({
            "file": path, "bytes": bytes.len(), "entries": n,
            "value_ms": value_ms, "fhir_r4_ms": fhir_r4_ms,
            "lean_ms": lean_ms,
            "size_of": {
                "fhir_r4_observation": std::mem::size_of::<fhir_client::r4::Observation>(),
                "lean_observation": std::mem::size_of::<lean::Observation>(),
            },
            "allocator": "mimalloc",
        })
    );
}
