//! Labs in the configured units (issue 15 point 2): a glucose the EHR sends in mmol/L reads in mg/dL
//! by default and a creatinine sent in mg/dL reads in µmol/L with `lab_units = si`, each with what
//! was sent beside it; a lab with no known molar mass stays as sent.

use app::config::AppConfig;
use app::units::LabUnits;
use serde_json::json;

use crate::common::{Browser, Options, TestEnv, standalone_launch};

/// Adds, for every sandbox patient, today's glucose in mmol/L (with its range), creatinine in
/// mg/dL and hemoglobin in g/dL, as an EHR would send them.
fn add_labs(env: &TestEnv) {
    let store = env.sandbox.running.state.store();
    let today = chrono::Utc::now().format("%Y-%m-%dT08:00:00Z").to_string();
    let lab = |id: String, patient: &str, loinc: &str, text: &str, value: f64, unit: &str| {
        json!({
            "resourceType": "Observation", "id": id, "status": "final",
            "category": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"
            }]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": loinc}], "text": text},
            "subject": {"reference": format!("Patient/{patient}")},
            "effectiveDateTime": today,
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
        })
    };
    for patient in store.find_patients("", 50).unwrap() {
        let p = patient["id"].as_str().unwrap();
        let mut glucose = lab(
            format!("glu-{p}"),
            p,
            "15074-8",
            "Glucose (test lab)",
            5.5,
            "mmol/L",
        );
        glucose["referenceRange"] = json!([{
            "low": {"value": 3.9, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
            "high": {"value": 5.5, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}
        }]);
        let creatinine = lab(
            format!("cre-{p}"),
            p,
            "2160-0",
            "Creatinine (test lab)",
            1.0,
            "mg/dL",
        );
        let hemoglobin = lab(
            format!("hgb-{p}"),
            p,
            "718-7",
            "Hemoglobin (test lab)",
            13.5,
            "g/dL",
        );
        for resource in [glucose, creatinine, hemoglobin] {
            store.import_value(resource).unwrap();
        }
    }
}

/// The text of the labs table row whose test is `name` (tags stripped), or "" when absent.
fn row(body: &str, name: &str) -> String {
    let Some(start) = body.find(&format!("<td>{name}</td>")) else {
        return String::new();
    };
    let rest = &body[start..];
    let end = rest.find("</tr>").unwrap_or(rest.len());
    let mut text = String::new();
    let mut in_tag = false;
    for c in rest[..end].chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn labs_read_in_mg_dl_by_default_with_what_was_sent_beside_them() {
    let env = TestEnv::start().await;
    add_labs(&env);
    let page = standalone_launch(&env, &Browser::new()).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let glucose = row(&page.body, "Glucose (test lab)");
    assert!(
        glucose.contains("99 mg/dL")
            && glucose.contains("as sent: 5.5 mmol/L (range 3.9–5.5 mmol/L)")
            && glucose.contains("70–99 mg/dL"),
        "glucose converted with its range, what was sent kept: {glucose:?}"
    );
    let creatinine = row(&page.body, "Creatinine (test lab)");
    assert!(
        creatinine.contains("1.0 mg/dL") && !creatinine.contains("as sent"),
        "already mg/dL: shown as sent, no note: {creatinine:?}"
    );
    let hemoglobin = row(&page.body, "Hemoglobin (test lab)");
    assert!(
        hemoglobin.contains("13.5 g/dL") && !hemoglobin.contains("as sent"),
        "no molar mass: as sent: {hemoglobin:?}"
    );
    env.stop().await;
}

#[tokio::test]
async fn with_lab_units_si_labs_read_in_mmol_and_umol_per_litre() {
    fn si(config: &mut AppConfig) {
        config.lab_units = LabUnits::Si;
    }
    let env = TestEnv::start_with(Options {
        config: si,
        ..Options::default()
    })
    .await;
    add_labs(&env);
    let page = standalone_launch(&env, &Browser::new()).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let glucose = row(&page.body, "Glucose (test lab)");
    assert!(
        glucose.contains("5.5 mmol/L") && !glucose.contains("as sent"),
        "already SI: {glucose:?}"
    );
    let creatinine = row(&page.body, "Creatinine (test lab)");
    assert!(
        creatinine.contains("88 µmol/L") && creatinine.contains("as sent: 1.0 mg/dL"),
        "creatinine in µmol/L: {creatinine:?}"
    );
    env.stop().await;
}
