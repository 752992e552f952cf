//! How fast can a typed R4 parse of a search page be, and what holds ours back? Times the same
//! `Observation` searchset four ways and prints one JSON line (median milliseconds per parse):
//!
//! - `value_ms`: `serde_json::Value` (untyped; the baseline of the issue);
//! - `fhir_derive_ms`: every entry into the `fhir` crate's `Observation` with its own `Deserialize` (what
//!   `fhir_client` does; the choice elements go through `#[serde(flatten)]` and a shadow struct);
//! - `fhir_in_place_ms`: the same `fhir` crate `Observation`, filled in place in the page's `Vec` by a visitor
//!   written for it (no flatten buffering, no shadow struct, no moves of the 5 KB value): the best a parse into
//!   these types can do;
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
use serde::de::DeserializeSeed;
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

/// The `fhir` crate's `Observation`, filled in place by a visitor written for it.
mod in_place {
    use std::borrow::Cow;
    use std::fmt;

    use fhir::r4::choice::Primitive;
    use fhir::r4::resources::observation::{Observation, ObservationEffective as E, ObservationValue as V};
    use fhir::r4::types::Element;
    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
    use serde::{Deserialize, Deserializer};

    /// A key, borrowed from the input when it has no escapes.
    struct Key<'a>(Cow<'a, str>);

    impl<'de> Deserialize<'de> for Key<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct K;
            impl<'de> Visitor<'de> for K {
                type Value = Key<'de>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a JSON key")
                }
                fn visit_borrowed_str<Er: de::Error>(self, v: &'de str) -> Result<Key<'de>, Er> {
                    Ok(Key(Cow::Borrowed(v)))
                }
                fn visit_str<Er: de::Error>(self, v: &str) -> Result<Key<'de>, Er> {
                    Ok(Key(Cow::Owned(v.to_owned())))
                }
            }
            d.deserialize_str(K)
        }
    }

    /// Fills the `Observation` it points at.
    pub struct Fill<'a>(pub &'a mut Observation);

    impl<'de> DeserializeSeed<'de> for Fill<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }

    fn with_ext<T>(value: Option<T>, ext: Option<Element>) -> Option<Primitive<T>> {
        value.map(|value| Primitive {
            value,
            extension: ext,
        })
    }

    impl<'de> Visitor<'de> for Fill<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an R4 Observation")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let o = self.0;
            let (mut status, mut code) = (false, false);
            let (mut eff_dt, mut eff_instant, mut eff_ext) = (None, None, None);
            let (mut v_str, mut v_bool, mut v_int, mut v_time, mut v_dt, mut v_ext) =
                (None, None, None, None, None, None);
            while let Some(Key(k)) = map.next_key::<Key>()? {
                match &*k {
                    "resourceType" => {
                        let Key(t) = map.next_value()?;
                        if t != "Observation" {
                            return Err(de::Error::custom(format!("a {t}, not an Observation")));
                        }
                    }
                    "id" => o.id = map.next_value()?,
                    "meta" => o.meta = map.next_value()?,
                    "implicitRules" => o.implicit_rules = map.next_value()?,
                    "_implicitRules" => o.implicit_rules_ext = map.next_value()?,
                    "language" => o.language = map.next_value()?,
                    "_language" => o.language_ext = map.next_value()?,
                    "text" => o.text = map.next_value()?,
                    "contained" => o.contained = map.next_value()?,
                    "extension" => o.extension = map.next_value()?,
                    "modifierExtension" => o.modifier_extension = map.next_value()?,
                    "identifier" => o.identifier = map.next_value()?,
                    "basedOn" => o.based_on = map.next_value()?,
                    "partOf" => o.part_of = map.next_value()?,
                    "status" => {
                        o.status = map.next_value()?;
                        status = true;
                    }
                    "_status" => o.status_ext = map.next_value()?,
                    "category" => o.category = map.next_value()?,
                    "code" => {
                        o.code = map.next_value()?;
                        code = true;
                    }
                    "subject" => o.subject = map.next_value()?,
                    "focus" => o.focus = map.next_value()?,
                    "encounter" => o.encounter = map.next_value()?,
                    "effectiveDateTime" => eff_dt = Some(map.next_value()?),
                    "effectiveInstant" => eff_instant = Some(map.next_value()?),
                    "_effectiveDateTime" | "_effectiveInstant" => eff_ext = map.next_value()?,
                    "effectivePeriod" => o.effective = Some(E::Period(map.next_value()?)),
                    "effectiveTiming" => o.effective = Some(E::Timing(map.next_value()?)),
                    "issued" => o.issued = map.next_value()?,
                    "_issued" => o.issued_ext = map.next_value()?,
                    "performer" => o.performer = map.next_value()?,
                    "valueQuantity" => o.value = Some(V::Quantity(map.next_value()?)),
                    "valueCodeableConcept" => o.value = Some(V::CodeableConcept(map.next_value()?)),
                    "valueRange" => o.value = Some(V::Range(map.next_value()?)),
                    "valueRatio" => o.value = Some(V::Ratio(map.next_value()?)),
                    "valueSampledData" => o.value = Some(V::SampledData(map.next_value()?)),
                    "valuePeriod" => o.value = Some(V::Period(map.next_value()?)),
                    "valueString" => v_str = Some(map.next_value()?),
                    "valueBoolean" => v_bool = Some(map.next_value()?),
                    "valueInteger" => v_int = Some(map.next_value()?),
                    "valueTime" => v_time = Some(map.next_value()?),
                    "valueDateTime" => v_dt = Some(map.next_value()?),
                    "_valueString" | "_valueBoolean" | "_valueInteger" | "_valueTime" | "_valueDateTime" => {
                        v_ext = map.next_value()?
                    }
                    "dataAbsentReason" => o.data_absent_reason = map.next_value()?,
                    "interpretation" => o.interpretation = map.next_value()?,
                    "note" => o.note = map.next_value()?,
                    "bodySite" => o.body_site = map.next_value()?,
                    "method" => o.method = map.next_value()?,
                    "specimen" => o.specimen = map.next_value()?,
                    "device" => o.device = map.next_value()?,
                    "referenceRange" => o.reference_range = map.next_value()?,
                    "hasMember" => o.has_member = map.next_value()?,
                    "derivedFrom" => o.derived_from = map.next_value()?,
                    "component" => o.component = map.next_value()?,
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            if let Some(p) = with_ext(eff_dt, eff_ext.clone()) {
                o.effective = Some(E::DateTime(p));
            } else if let Some(p) = with_ext(eff_instant, eff_ext) {
                o.effective = Some(E::Instant(p));
            }
            if let Some(p) = with_ext(v_str, v_ext.clone()) {
                o.value = Some(V::String(p));
            } else if let Some(p) = with_ext(v_bool, v_ext.clone()) {
                o.value = Some(V::Boolean(p));
            } else if let Some(p) = with_ext(v_int, v_ext.clone()) {
                o.value = Some(V::Integer(p));
            } else if let Some(p) = with_ext(v_time, v_ext.clone()) {
                o.value = Some(V::Time(p));
            } else if let Some(p) = with_ext(v_dt, v_ext) {
                o.value = Some(V::DateTime(p));
            }
            if !status || !code {
                return Err(de::Error::custom("an Observation needs status and code"));
            }
            Ok(())
        }
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

fn fhir_derive(bytes: &[u8]) -> usize {
    let all: Vec<fhir::r4::resources::Observation> = entries(bytes)
        .into_iter()
        .map(|raw| serde_json::from_str(raw.get()).expect("a valid R4 Observation"))
        .collect();
    let n = all.len();
    black_box(all);
    n
}

fn fhir_in_place(bytes: &[u8]) -> usize {
    let raws = entries(bytes);
    let mut all: Vec<fhir::r4::resources::Observation> = Vec::with_capacity(raws.len());
    for raw in raws {
        all.push(Default::default());
        let slot = all.last_mut().expect("just pushed");
        let mut de = serde_json::Deserializer::from_str(raw.get());
        in_place::Fill(slot)
            .deserialize(&mut de)
            .expect("a valid R4 Observation");
    }
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
    for way in [fhir_derive, fhir_in_place, lean] {
        assert_eq!(way(&bytes), n, "every way parses every entry");
    }
    let budget = Duration::from_secs_f64(seconds);
    let value_ms = time(budget, || {
        let v: serde_json::Value = serde_json::from_slice(black_box(&bytes)).unwrap();
        v["entry"].as_array().map_or(0, Vec::len)
    });
    let fhir_derive_ms = time(budget, || fhir_derive(black_box(&bytes)));
    let fhir_in_place_ms = time(budget, || fhir_in_place(black_box(&bytes)));
    let lean_ms = time(budget, || lean(black_box(&bytes)));
    println!(
        "{}",
        serde_json::json!({
            "file": path, "bytes": bytes.len(), "entries": n,
            "value_ms": value_ms, "fhir_derive_ms": fhir_derive_ms, "fhir_in_place_ms": fhir_in_place_ms,
            "lean_ms": lean_ms,
            "size_of": {
                "fhir_observation": std::mem::size_of::<fhir::r4::resources::Observation>(),
                "lean_observation": std::mem::size_of::<lean::Observation>(),
            },
            "allocator": "mimalloc",
        })
    );
}
