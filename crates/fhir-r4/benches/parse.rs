//! Parse and serialize a 1,000-Observation searchset Bundle with the generated models, beside
//! `serde_json::Value` on the same bytes. The Bundle is generated here (deterministic: vital signs with
//! `valueQuantity`, blood pressure with components, labs with reference ranges), every decimal written with
//! its precision. `BENCH_OBSERVATIONS` changes the size.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fhir_r4::{Bundle, Mode, Observation, Patient};
use serde_json::Value;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `n` Observations as a searchset Bundle.
fn searchset(n: usize) -> String {
    const VITALS: &[(&str, &str, &str, f64, f64, usize)] = &[
        ("29463-7", "Body weight", "kg", 40.0, 130.0, 1),
        ("8302-2", "Body height", "cm", 140.0, 200.0, 1),
        ("8867-4", "Heart rate", "/min", 50.0, 120.0, 0),
        ("8310-5", "Body temperature", "Cel", 35.5, 39.5, 1),
        (
            "2339-0",
            "Glucose [Mass/volume] in Blood",
            "mg/dL",
            60.0,
            250.0,
            0,
        ),
        (
            "2160-0",
            "Creatinine [Mass/volume] in Serum or Plasma",
            "mg/dL",
            0.4,
            2.5,
            2,
        ),
    ];
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 1_000_000) as f64 / 1_000_000.0
    };
    let mut out = String::from(
        r#"{"resourceType":"Bundle","id":"bench","meta":{"lastUpdated":"2024-05-01T10:00:00Z"},"type":"searchset","total":"#,
    );
    let _ = write!(
        out,
        "{n},\"link\":[{{\"relation\":\"self\",\"url\":\"http://127.0.0.1/fhir/Observation?_count={n}\"}}],\"entry\":["
    );
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        let patient = i % 97;
        let day = 1 + i % 28;
        let _ = write!(
            out,
            r#"{{"fullUrl":"http://127.0.0.1/fhir/Observation/obs-{i}","resource":{{"resourceType":"Observation","id":"obs-{i}","meta":{{"versionId":"1","lastUpdated":"2024-04-{day:02}T08:30:00Z"}},"status":"final","category":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"{cat}","display":"{catd}"}}]}}],"#,
            cat = if i % 3 == 2 { "laboratory" } else { "vital-signs" },
            catd = if i % 3 == 2 { "Laboratory" } else { "Vital Signs" },
        );
        if i % 7 == 3 {
            let (sys, dia) = (100.0 + 50.0 * next(), 60.0 + 30.0 * next());
            let _ = write!(
                out,
                r#""code":{{"coding":[{{"system":"http://loinc.org","code":"85354-9","display":"Blood pressure panel with all children optional"}}],"text":"Blood pressure"}},"subject":{{"reference":"Patient/pat-{patient}"}},"effectiveDateTime":"2024-04-{day:02}T08:{m:02}:00Z","issued":"2024-04-{day:02}T09:00:00.000Z","component":[{{"code":{{"coding":[{{"system":"http://loinc.org","code":"8480-6","display":"Systolic blood pressure"}}]}},"valueQuantity":{{"value":{sys:.0},"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}}},{{"code":{{"coding":[{{"system":"http://loinc.org","code":"8462-4","display":"Diastolic blood pressure"}}]}},"valueQuantity":{{"value":{dia:.0},"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}}}]}},"search":{{"mode":"match"}}}}"#,
                m = i % 60,
            );
            continue;
        }
        let (code, display, unit, lo, hi, places) = VITALS[i % VITALS.len()];
        let v = lo + (hi - lo) * next();
        let _ = write!(
            out,
            r#""code":{{"coding":[{{"system":"http://loinc.org","code":"{code}","display":"{display}"}}],"text":"{display}"}},"subject":{{"reference":"Patient/pat-{patient}","display":"Patient {patient}"}},"effectiveDateTime":"2024-04-{day:02}T08:{m:02}:00Z","issued":"2024-04-{day:02}T09:00:00.000Z","performer":[{{"reference":"Practitioner/prac-{p}"}}],"valueQuantity":{{"value":{v:.places$},"unit":"{unit}","system":"http://unitsofmeasure.org","code":"{unit}"}}"#,
            m = i % 60,
            p = i % 5,
        );
        if i % 3 == 2 {
            let _ = write!(
                out,
                r#","interpretation":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"N","display":"Normal"}}]}}],"referenceRange":[{{"low":{{"value":{lo:.places$},"unit":"{unit}"}},"high":{{"value":{hi:.places$},"unit":"{unit}"}}}}]"#
            );
        }
        out.push_str(r#"},"search":{"mode":"match"}}"#);
    }
    out.push_str("]}");
    out
}

fn bench(c: &mut Criterion) {
    let n = std::env::var("BENCH_OBSERVATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let bytes = searchset(n).into_bytes();
    let (bundle, issues) = fhir_r4::from_slice::<Bundle>(&bytes, Mode::Strict).expect("the searchset reads");
    assert!(issues.is_empty() && bundle.entry.len() == n);
    let value: Value = serde_json::from_slice(&bytes).unwrap();
    eprintln!(
        "searchset: {n} Observations, {} bytes; size_of Observation {} B, Patient {} B, Bundle {} B",
        bytes.len(),
        size_of::<Observation>(),
        size_of::<Patient>(),
        size_of::<Bundle>()
    );

    // The machine is shared: beside criterion's figures, the best of 30 interleaved runs of each, whose ratio
    // load moves least.
    let best = |f: &dyn Fn()| {
        let start = Instant::now();
        f();
        start.elapsed()
    };
    let (mut typed, mut tree, mut typed_out, mut tree_out) =
        (Duration::MAX, Duration::MAX, Duration::MAX, Duration::MAX);
    for _ in 0..30 {
        typed = typed.min(best(&|| {
            drop(fhir_r4::from_slice::<Bundle>(&bytes, Mode::Tolerant).unwrap())
        }));
        tree = tree.min(best(&|| drop(serde_json::from_slice::<Value>(&bytes).unwrap())));
        typed_out = typed_out.min(best(&|| drop(fhir_r4::to_vec(&bundle))));
        tree_out = tree_out.min(best(&|| drop(serde_json::to_vec(&value).unwrap())));
    }
    eprintln!(
        "best of 30: parse fhir_r4 {typed:?}, serde_json::Value {tree:?} ({:.2}x); serialize fhir_r4 {typed_out:?}, Value {tree_out:?} ({:.2}x)",
        tree.as_secs_f64() / typed.as_secs_f64(),
        tree_out.as_secs_f64() / typed_out.as_secs_f64()
    );

    let mut group = c.benchmark_group("searchset");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("parse serde_json::Value", |b| {
        b.iter(|| serde_json::from_slice::<Value>(&bytes).unwrap())
    });
    group.bench_function("parse fhir_r4::Bundle", |b| {
        b.iter(|| fhir_r4::from_slice::<Bundle>(&bytes, Mode::Tolerant).unwrap())
    });
    group.bench_function("serialize serde_json::Value", |b| {
        b.iter(|| serde_json::to_vec(&value).unwrap())
    });
    group.bench_function("serialize fhir_r4::Bundle", |b| {
        b.iter(|| fhir_r4::to_vec(&bundle))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
