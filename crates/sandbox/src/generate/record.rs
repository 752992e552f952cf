//! Building one patient's record (and the practitioners and organization they see).

use super::vocabulary::{self as vocab, LabTest, Problem};
use super::{PractitionerInfo, anchor, concept, random_id, reference};
use chrono::{DateTime, Datelike, Duration, NaiveDate, SecondsFormat, Utc};
use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

const CONDITION_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
const CONDITION_VERIFICATION: &str = "http://terminology.hl7.org/CodeSystem/condition-ver-status";
const CONDITION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/condition-category";
const ALLERGY_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical";
const ALLERGY_VERIFICATION: &str = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const DIAGNOSTIC_SERVICE: &str = "http://terminology.hl7.org/CodeSystem/v2-0074";

/// The sandbox's one organization.
pub(crate) fn organization(id: &str) -> Value {
    json!({
        "resourceType": "Organization",
        "id": id,
        "active": true,
        "identifier": [{ "system": vocab::NPI_SYSTEM, "value": "1999999984" }],
        "type": [concept("http://terminology.hl7.org/CodeSystem/organization-type", "prov", "Healthcare Provider")],
        "name": "Sandbox General Hospital",
        "telecom": [{ "system": "phone", "value": "(617) 555-0100", "use": "work" }],
        "address": [{ "use": "work", "line": ["1 Hospital Way"], "city": "Boston", "state": "MA",
                      "postalCode": "02114", "country": "US" }]
    })
}

/// Practitioner number `index`.
pub(crate) fn practitioner(rng: &mut ChaCha8Rng, index: usize, organization_id: &str) -> PractitionerInfo {
    let id = random_id(rng);
    let female = rng.random_bool(0.5);
    let given = pick(
        rng,
        if female {
            vocab::GIVEN_FEMALE
        } else {
            vocab::GIVEN_MALE
        },
    );
    let family = pick(rng, vocab::FAMILY_NAMES);
    let specialty = vocab::SPECIALTIES[index % vocab::SPECIALTIES.len()];
    let npi = format!("1{:09}", rng.random_range(0..1_000_000_000u64));
    let (city, state, zip, area) = *pick(rng, vocab::CITIES);
    let resource = json!({
        "resourceType": "Practitioner",
        "id": id,
        "active": true,
        "identifier": [{ "system": vocab::NPI_SYSTEM, "value": npi }],
        "name": [{ "use": "official", "family": family, "given": [given], "prefix": ["Dr."] }],
        "telecom": [
            { "system": "phone", "value": format!("({area}) 555-{:04}", rng.random_range(100..200)), "use": "work" },
            { "system": "email", "value": format!("{}.{}@sandbox-general.example", ascii(given), ascii(family)),
              "use": "work" }
        ],
        "gender": if female { "female" } else { "male" },
        "address": [{ "use": "work", "line": [format!("{} {}", rng.random_range(1..500), pick(rng, vocab::STREETS))],
                      "city": city, "state": state, "postalCode": format!("{zip}{:02}", rng.random_range(0..100)),
                      "country": "US" }],
        "qualification": [{
            "code": { "text": format!("MD, {specialty}") },
            "issuer": { "reference": format!("Organization/{organization_id}") }
        }]
    });
    PractitionerInfo {
        display: format!("Dr. {given} {family}"),
        id,
        resource,
    }
}

/// Builds one patient's record from its own random stream.
pub(crate) struct RecordBuilder<'a> {
    rng: ChaCha8Rng,
    index: usize,
    unnamed: bool,
    organization_id: &'a str,
    practitioners: &'a [PractitionerInfo],
    patient_id: String,
    out: Vec<Value>,
    /// The lab panels drawn so far, for their DiagnosticReports (made after everything else, so that
    /// adding them left every earlier draw of the stream, and so every other resource, unchanged).
    panels: Vec<LabPanel>,
}

/// One panel of lab results taken at a visit: what its DiagnosticReport needs.
struct LabPanel {
    /// (LOINC code, display) of the panel.
    code: (&'static str, &'static str),
    encounter: String,
    practitioner: usize,
    taken: DateTime<Utc>,
    issued: DateTime<Utc>,
    /// The Observations' ids.
    results: Vec<String>,
}

/// A patient's physiology, so vital signs drift plausibly from visit to visit.
struct Body {
    birth: NaiveDate,
    adult_height_cm: f64,
    bmi: f64,
    systolic: f64,
    diastolic: f64,
    heart_rate: f64,
    spo2: f64,
}

struct Visit {
    id: String,
    start: DateTime<Utc>,
    practitioner: usize,
}

/// How a patient's record is kept, chosen by the patient's index (not drawn from the stream, so the
/// other patients' records are unchanged): real records span decades and change units when the
/// clinic changes systems, and apps must chart them right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum History {
    /// 4–10 visits over up to six years, metric units (most patients).
    Usual,
    /// 20–36 visits over up to fifteen years; the older half of the vital signs in US customary units
    /// (`[lb_av]`, `[in_i]`, `[degF]`), as a clinic that moved from a US system would have them.
    LongWithUsUnits,
    /// The usual visits, with glucose and cholesterol reported in mmol/L (their "Moles/volume" LOINC codes), as
    /// labs outside the US do.
    SiLabs,
}

impl History {
    /// The kind of record patient `index` gets: every fourth from the second is long, every fourth from the
    /// fourth has SI labs.
    pub(crate) fn for_index(index: usize) -> History {
        match index % 4 {
            1 => History::LongWithUsUnits,
            3 => History::SiLabs,
            _ => History::Usual,
        }
    }
}

/// Labs that a [`History::SiLabs`] record reports in mmol/L: `(mass LOINC, moles LOINC, display, g/mol)`.
const SI_LABS: &[(&str, &str, &str, f64)] = &[
    ("2339-0", "15074-8", "Glucose [Moles/volume] in Blood", 180.156),
    (
        "2093-3",
        "14647-2",
        "Cholesterol [Moles/volume] in Serum or Plasma",
        386.654,
    ),
];

impl<'a> RecordBuilder<'a> {
    pub(crate) fn new(
        mut rng: ChaCha8Rng,
        index: usize,
        unnamed: bool,
        organization_id: &'a str,
        practitioners: &'a [PractitionerInfo],
    ) -> Self {
        let patient_id = random_id(&mut rng);
        Self {
            rng,
            index,
            unnamed,
            organization_id,
            practitioners,
            patient_id,
            out: Vec::new(),
            panels: Vec::new(),
        }
    }

    pub(crate) fn build(mut self) -> Vec<Value> {
        let end = anchor();
        let age_years = self.age();
        let birth = end.date_naive() - Duration::days(age_years * 365 + self.rng.random_range(0..365));
        let female = self.rng.random_bool(0.52);
        let gp = self.rng.random_range(0..self.practitioners.len().max(1));
        let patient = self.patient(female, birth, gp);
        self.out.push(patient);

        let problems = self.choose_problems(age_years);
        let mut body = self.body(female, birth, &problems);
        let history = History::for_index(self.index);
        let visits = self.visits(birth, gp, history);
        self.conditions_and_medications(&problems, &visits);
        let us_units_until = match history {
            History::LongWithUsUnits => visits.len() / 2,
            _ => 0,
        };
        for (n, visit) in visits.iter().enumerate() {
            self.vital_signs(&mut body, visit, &problems, n < us_units_until);
            if n == 0 || self.rng.random_bool(0.45) {
                self.labs(visit, &problems, history == History::SiLabs);
            }
            if self.rng.random_bool(0.35) {
                self.immunization(visit, age_at(birth, visit.start));
            }
        }
        self.allergies(&visits);
        // Drawn last, so the resources above are the same as before these were generated.
        self.diagnostic_reports();
        self.procedures(&visits);
        self.medication_statements(&visits);
        self.out
    }

    fn age(&mut self) -> i64 {
        // More adults than children, few past ninety.
        match self.rng.random_range(0..100) {
            0..12 => self.rng.random_range(1..18),
            12..85 => self.rng.random_range(18..70),
            _ => self.rng.random_range(70..95),
        }
    }

    fn patient(&mut self, female: bool, birth: NaiveDate, gp: usize) -> Value {
        let (city, state, zip, area) = *pick(&mut self.rng, vocab::CITIES);
        let family = *pick(&mut self.rng, vocab::FAMILY_NAMES);
        let given_pool = if female {
            vocab::GIVEN_FEMALE
        } else {
            vocab::GIVEN_MALE
        };
        let given = *pick(&mut self.rng, given_pool);
        let middle = self
            .rng
            .random_bool(0.4)
            .then(|| *pick(&mut self.rng, given_pool));
        let mut patient = json!({
            "resourceType": "Patient",
            "id": self.patient_id,
            "identifier": [{
                "use": "usual",
                "type": concept("http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "Medical Record Number"),
                "system": vocab::MRN_SYSTEM,
                "value": format!("{:08}", 20_000_000 + self.index)
            }],
            "active": true,
            "gender": if female { "female" } else { "male" },
            "birthDate": birth.format("%Y-%m-%d").to_string(),
            "address": [{
                "use": "home",
                "line": [format!("{} {}", self.rng.random_range(1..9000), pick(&mut self.rng, vocab::STREETS))],
                "city": city, "state": state,
                "postalCode": format!("{zip}{:02}", self.rng.random_range(0..100)), "country": "US"
            }],
            "communication": [{
                "language": concept("urn:ietf:bcp:47", "en-US", "English (United States)"),
                "preferred": true
            }],
            "generalPractitioner": [self.practitioner_ref(gp)],
            "managingOrganization": reference("Organization", self.organization_id)
        });
        let married = self.rng.random_bool(0.5);
        patient["maritalStatus"] = concept(
            "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
            if married { "M" } else { "S" },
            if married { "Married" } else { "Never Married" },
        );
        if !self.unnamed {
            let mut givens = vec![given];
            givens.extend(middle);
            let mut name = json!({ "use": "official", "family": family, "given": givens });
            if self.rng.random_bool(0.3) {
                name["prefix"] = json!([if female { "Ms." } else { "Mr." }]);
            }
            patient["name"] = json!([name]);
            patient["telecom"] = json!([
                { "system": "phone", "value": format!("({area}) 555-{:04}", self.rng.random_range(100..200)),
                  "use": if self.rng.random_bool(0.6) { "mobile" } else { "home" } },
                { "system": "email", "value": format!("{}.{}{}@example.com", ascii(given), ascii(family), self.index) }
            ]);
        }
        patient
    }

    fn choose_problems(&mut self, age: i64) -> Vec<&'static Problem> {
        let age = u32::try_from(age).unwrap_or(0);
        let eligible: Vec<&Problem> = vocab::PROBLEMS
            .iter()
            .filter(|p| p.chronic && p.min_age <= age)
            .collect();
        let chronic = match age {
            0..18 => self.rng.random_range(0..=1),
            18..50 => self.rng.random_range(0..=2),
            _ => self.rng.random_range(1..=4),
        };
        let mut chosen: Vec<&'static Problem> = Vec::new();
        for _ in 0..chronic {
            if let Some(p) = eligible.choose(&mut self.rng)
                && !chosen.iter().any(|c| c.code == p.code)
            {
                chosen.push(p);
            }
        }
        chosen
    }

    fn body(&mut self, female: bool, birth: NaiveDate, problems: &[&Problem]) -> Body {
        let has = |code: &str| problems.iter().any(|p| p.code == code);
        let adult_height_cm = if female {
            normal(&mut self.rng, 162.0, 6.5)
        } else {
            normal(&mut self.rng, 176.0, 7.0)
        };
        let obese_bias = if has("44054006") { 5.0 } else { 0.0 };
        Body {
            birth,
            adult_height_cm,
            bmi: normal(&mut self.rng, 26.5 + obese_bias, 4.0).clamp(17.0, 45.0),
            systolic: normal(&mut self.rng, if has("38341003") { 142.0 } else { 118.0 }, 7.0),
            diastolic: normal(&mut self.rng, if has("38341003") { 88.0 } else { 75.0 }, 5.0),
            heart_rate: normal(&mut self.rng, 72.0, 7.0),
            spo2: if has("13645005") { 93.0 } else { 98.0 },
        }
    }

    fn visits(&mut self, birth: NaiveDate, gp: usize, history: History) -> Vec<Visit> {
        let end = anchor();
        let (years, count) = match history {
            History::LongWithUsUnits => (15, self.rng.random_range(20..=36)),
            _ => (6, self.rng.random_range(4..=10)),
        };
        let earliest = (end - Duration::days(years * 365))
            .max(birth.and_hms_opt(12, 0, 0).map(|t| t.and_utc()).unwrap_or(end) + Duration::days(30));
        let span_days = (end - earliest).num_days().max(2);
        let mut days: Vec<i64> = (0..count).map(|_| self.rng.random_range(1..span_days)).collect();
        days.sort_unstable();
        days.dedup();
        days.into_iter()
            .map(|d| {
                let start =
                    earliest + Duration::days(d) + Duration::minutes(self.rng.random_range(0..8 * 60));
                let practitioner = if self.rng.random_bool(0.7) {
                    gp
                } else {
                    self.rng.random_range(0..self.practitioners.len().max(1))
                };
                let visit = Visit {
                    id: random_id(&mut self.rng),
                    start,
                    practitioner,
                };
                let minutes = self.rng.random_range(15..60);
                let (code, display) = *pick(&mut self.rng, vocab::ENCOUNTER_TYPES);
                let encounter = json!({
                    "resourceType": "Encounter",
                    "id": visit.id,
                    "status": "finished",
                    "class": { "system": ACT_CODE, "code": "AMB", "display": "ambulatory" },
                    "type": [concept(vocab::SNOMED, code, display)],
                    "subject": self.patient_ref(),
                    "participant": [{
                        "type": [concept("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "PPRF",
                                         "primary performer")],
                        "individual": self.practitioner_ref(practitioner)
                    }],
                    "period": { "start": instant(start), "end": instant(start + Duration::minutes(minutes)) },
                    "serviceProvider": reference("Organization", self.organization_id)
                });
                self.out.push(encounter);
                visit
            })
            .collect()
    }

    fn conditions_and_medications(&mut self, chronic: &[&'static Problem], visits: &[Visit]) {
        let Some(first) = visits.first() else { return };
        for problem in chronic {
            let onset = first.start - Duration::days(self.rng.random_range(30..2000));
            self.condition(problem, onset, None, first, "problem-list-item");
        }
        // Acute episodes, each diagnosed at a visit and resolved ten days later.
        let acute: Vec<&'static Problem> = vocab::PROBLEMS.iter().filter(|p| !p.chronic).collect();
        for _ in 0..self.rng.random_range(0..=2) {
            let Some(visit) = visits.choose(&mut self.rng) else {
                break;
            };
            let Some(problem) = acute.choose(&mut self.rng).copied() else {
                break;
            };
            self.condition(
                problem,
                visit.start,
                Some(visit.start + Duration::days(10)),
                visit,
                "encounter-diagnosis",
            );
        }
    }

    fn condition(
        &mut self,
        problem: &'static Problem,
        onset: DateTime<Utc>,
        abatement: Option<DateTime<Utc>>,
        visit: &Visit,
        category: &str,
    ) {
        let id = random_id(&mut self.rng);
        let (status, status_display) = if abatement.is_some() {
            ("resolved", "Resolved")
        } else {
            ("active", "Active")
        };
        let mut condition = json!({
            "resourceType": "Condition",
            "id": id,
            "clinicalStatus": concept(CONDITION_CLINICAL, status, status_display),
            "verificationStatus": concept(CONDITION_VERIFICATION, "confirmed", "Confirmed"),
            "category": [concept(CONDITION_CATEGORY, category,
                if category == "problem-list-item" { "Problem List Item" } else { "Encounter Diagnosis" })],
            "code": concept(vocab::SNOMED, problem.code, problem.display),
            "subject": self.patient_ref(),
            "encounter": reference("Encounter", &visit.id),
            "onsetDateTime": instant(onset),
            "recordedDate": instant(visit.start),
            "recorder": self.practitioner_ref(visit.practitioner)
        });
        if let Some(end) = abatement {
            condition["abatementDateTime"] = json!(instant(end));
        }
        self.out.push(condition);
        if let Some((code, display)) = problem.medications.choose(&mut self.rng) {
            let med_id = random_id(&mut self.rng);
            let per_day = if problem.chronic {
                "once daily"
            } else {
                "every 6 hours as needed, for 7 days"
            };
            let request = json!({
                "resourceType": "MedicationRequest",
                "id": med_id,
                "status": if abatement.is_some() { "completed" } else { "active" },
                "intent": "order",
                "medicationCodeableConcept": concept(vocab::RXNORM, code, display),
                "subject": self.patient_ref(),
                "encounter": reference("Encounter", &visit.id),
                "authoredOn": instant(visit.start),
                "requester": self.practitioner_ref(visit.practitioner),
                "reasonReference": [reference("Condition", &id)],
                "dosageInstruction": [{ "text": format!("Take 1 by mouth {per_day}."), "timing": {
                    "repeat": { "frequency": 1, "period": 1, "periodUnit": "d" } } }]
            });
            self.out.push(request);
        }
    }

    fn vital_signs(&mut self, body: &mut Body, visit: &Visit, problems: &[&Problem], us_units: bool) {
        let vitals = self.draw_vitals(body, visit, problems);
        self.record_vitals(visit, &vitals, us_units);
    }

    /// The visit's measurements, drawn in a fixed order (the order decides the generated record for a seed).
    fn draw_vitals(&mut self, body: &mut Body, visit: &Visit, problems: &[&Problem]) -> Vitals {
        let age = age_at(body.birth, visit.start);
        let height = growth_height(body, age);
        // Weight follows the BMI, which wanders a little between visits.
        body.bmi = (body.bmi + normal(&mut self.rng, 0.0, 0.4)).clamp(14.0, 48.0);
        let child_bmi = if age < 18 {
            16.0 + f64::from(age) * 0.3
        } else {
            body.bmi
        };
        let weight = child_bmi * (height / 100.0).powi(2);
        let febrile = problems.iter().any(|p| !p.chronic) && self.rng.random_bool(0.2);
        let child_hr = if age < 12 { 15.0 } else { 0.0 };
        let systolic = normal(
            &mut self.rng,
            body.systolic - if age < 18 { 12.0 } else { 0.0 },
            6.0,
        )
        .round();
        let diastolic = normal(
            &mut self.rng,
            body.diastolic - if age < 18 { 8.0 } else { 0.0 },
            4.0,
        )
        .round();
        let hr = normal(&mut self.rng, body.heart_rate + child_hr, 5.0).round();
        let temp = normal(&mut self.rng, if febrile { 38.4 } else { 36.8 }, 0.25);
        let spo2 = normal(&mut self.rng, body.spo2, 0.8).clamp(85.0, 100.0).round();
        Vitals {
            systolic,
            diastolic,
            hr,
            weight,
            height,
            child_bmi,
            temp,
            spo2,
        }
    }

    /// The measurements as vital-signs Observations, in metric or US customary units.
    fn record_vitals(&mut self, visit: &Visit, vitals: &Vitals, us_units: bool) {
        let &Vitals {
            systolic,
            diastolic,
            hr,
            weight,
            height,
            child_bmi,
            temp,
            spo2,
        } = vitals;
        let bp = json!({
            "component": [
                component("8480-6", "Systolic blood pressure", systolic, 0, "mm[Hg]"),
                component("8462-4", "Diastolic blood pressure", diastolic, 0, "mm[Hg]")
            ]
        });
        self.vital(
            visit,
            "85354-9",
            "Blood pressure panel with all children optional",
            bp,
        );
        self.vital(
            visit,
            "8867-4",
            "Heart rate",
            value(hr, 0, "beats/minute", "/min"),
        );
        // US customary units as UCUM has them: 1 [lb_av] = 0.45359237 kg, 1 [in_i] = 2.54 cm,
        // °F = °C × 9/5 + 32 (https://ucum.org/ucum, §4.3 and table 20).
        let (weight, height, temp, (w_unit, w_ucum), (h_unit, h_ucum), (t_unit, t_ucum)) = if us_units {
            (
                weight / 0.453_592_37,
                height / 2.54,
                temp * 9.0 / 5.0 + 32.0,
                ("lb", "[lb_av]"),
                ("in", "[in_i]"),
                ("°F", "[degF]"),
            )
        } else {
            (weight, height, temp, ("kg", "kg"), ("cm", "cm"), ("Cel", "Cel"))
        };
        self.vital(visit, "29463-7", "Body weight", value(weight, 1, w_unit, w_ucum));
        self.vital(visit, "8302-2", "Body height", value(height, 1, h_unit, h_ucum));
        self.vital(
            visit,
            "39156-5",
            "Body mass index (BMI) [Ratio]",
            value(child_bmi, 1, "kg/m2", "kg/m2"),
        );
        self.vital(
            visit,
            "8310-5",
            "Body temperature",
            value(temp, 1, t_unit, t_ucum),
        );
        self.vital(
            visit,
            "59408-5",
            "Oxygen saturation in Arterial blood by Pulse oximetry",
            value(spo2, 0, "%", "%"),
        );
    }

    fn vital(&mut self, visit: &Visit, code: &str, display: &str, measurement: Value) {
        let mut obs = self.observation(visit, "vital-signs", "Vital Signs", code, display);
        merge(&mut obs, measurement);
        self.out.push(obs);
    }

    fn labs(&mut self, visit: &Visit, problems: &[&Problem], si: bool) {
        let has = |code: &str| problems.iter().any(|p| p.code == code);
        let mut panel: Vec<&'static str> = vec!["2339-0", "2160-0", "2823-3", "2951-2"];
        if self.rng.random_bool(0.5) {
            panel.extend(["718-7", "6690-2", "777-3"]);
        }
        if has("55822004") || self.rng.random_bool(0.3) {
            panel.extend(["2093-3", "2089-1", "2085-9", "2571-8"]);
        }
        if has("44054006") {
            panel.push("4548-4");
        }
        let taken = visit.start + Duration::minutes(self.rng.random_range(5..40));
        for code in panel {
            let Some(test) = vocab::LABS.iter().find(|t| t.code == code) else {
                continue;
            };
            let mean = match code {
                "2339-0" if has("44054006") => 155.0,
                "4548-4" if has("44054006") => 7.6,
                "2160-0" if has("709044004") => 2.1,
                "2093-3" if has("55822004") => 245.0,
                "2089-1" if has("55822004") => 165.0,
                "718-7" if has("271737000") => 10.4,
                _ => test.mean,
            };
            let v = round(normal(&mut self.rng, mean, test.sd).max(0.1), test.decimals);
            let si_test = SI_LABS.iter().find(|(mass, ..)| si && *mass == code).map(
                |&(_, moles, display, molar_mass)| {
                    // mmol/L = mg/dL × 10 ÷ g/mol.
                    let to_si = |mg_dl: f64| round(mg_dl * 10.0 / molar_mass, 1);
                    (
                        LabTest {
                            code: moles,
                            display,
                            unit: "mmol/L",
                            low: test.low.map(to_si),
                            high: test.high.map(to_si),
                            mean: to_si(test.mean),
                            sd: test.sd * 10.0 / molar_mass,
                            decimals: 1,
                        },
                        to_si(v),
                    )
                },
            );
            let (test, v) = match &si_test {
                Some((t, v)) => (t, *v),
                None => (test, v),
            };
            let mut obs = self.observation(visit, "laboratory", "Laboratory", test.code, test.display);
            obs["effectiveDateTime"] = json!(instant(taken));
            merge(&mut obs, lab_value(test, v));
            let id = obs["id"].as_str().unwrap_or_default().to_owned();
            let panel = vocab::LAB_PANELS
                .iter()
                .find(|(_, _, members)| members.contains(&code))
                .map_or(("11502-2", "Laboratory report"), |(c, d, _)| (*c, *d));
            match self
                .panels
                .iter_mut()
                .find(|p| p.encounter == visit.id && p.code == panel)
            {
                Some(p) => p.results.push(id),
                None => self.panels.push(LabPanel {
                    code: panel,
                    encounter: visit.id.clone(),
                    practitioner: visit.practitioner,
                    taken,
                    issued: visit.start + Duration::minutes(90),
                    results: vec![id],
                }),
            }
            self.out.push(obs);
        }
    }

    /// One DiagnosticReport per lab panel, its `result`s the panel's Observations (US Core's
    /// DiagnosticReport for laboratory results: category `LAB` from v2-0074, a LOINC panel code,
    /// `effective[x]`, `issued`; hl7.org/fhir/us/core/StructureDefinition-us-core-diagnosticreport-lab).
    fn diagnostic_reports(&mut self) {
        for panel in std::mem::take(&mut self.panels) {
            let report = json!({
                "resourceType": "DiagnosticReport",
                "id": random_id(&mut self.rng),
                "status": "final",
                "category": [concept(DIAGNOSTIC_SERVICE, "LAB", "Laboratory")],
                "code": concept(vocab::LOINC, panel.code.0, panel.code.1),
                "subject": self.patient_ref(),
                "encounter": reference("Encounter", &panel.encounter),
                "effectiveDateTime": instant(panel.taken),
                "issued": instant_millis(panel.issued),
                "performer": [self.practitioner_ref(panel.practitioner)],
                "result": panel.results.iter().map(|id| reference("Observation", id)).collect::<Vec<_>>()
            });
            self.out.push(report);
        }
    }

    /// Zero to three procedures, each done at a visit; an older one recorded without its encounter.
    fn procedures(&mut self, visits: &[Visit]) {
        for _ in 0..self.rng.random_range(0..=3) {
            let Some(visit) = visits.choose(&mut self.rng) else {
                return;
            };
            let (code, display) = *pick(&mut self.rng, vocab::PROCEDURES);
            let start = visit.start + Duration::minutes(self.rng.random_range(10..40));
            let end = start + Duration::minutes(self.rng.random_range(15..90));
            let procedure = json!({
                "resourceType": "Procedure",
                "id": random_id(&mut self.rng),
                "status": "completed",
                "code": concept(vocab::SNOMED, code, display),
                "subject": self.patient_ref(),
                "encounter": reference("Encounter", &visit.id),
                "performedPeriod": { "start": instant(start), "end": instant(end) },
                "performer": [{ "actor": self.practitioner_ref(visit.practitioner) }]
            });
            self.out.push(procedure);
        }
    }

    /// Zero to two medications the patient reports taking (over the counter, from elsewhere):
    /// MedicationStatements whose information source is the patient, as IPS's medication summary
    /// lists beside the orders (hl7.org/fhir/uv/ips, Medication Summary section).
    fn medication_statements(&mut self, visits: &[Visit]) {
        let Some(last) = visits.last() else { return };
        for _ in 0..self.rng.random_range(0..=2) {
            let (code, display, dosage) = *pick(&mut self.rng, vocab::REPORTED_MEDICATIONS);
            let since = last.start - Duration::days(self.rng.random_range(30..900));
            let statement = json!({
                "resourceType": "MedicationStatement",
                "id": random_id(&mut self.rng),
                "status": "active",
                "medicationCodeableConcept": concept(vocab::RXNORM, code, display),
                "subject": self.patient_ref(),
                "context": reference("Encounter", &last.id),
                "effectivePeriod": { "start": instant(since) },
                "dateAsserted": instant(last.start),
                "informationSource": self.patient_ref(),
                "dosage": [{ "text": dosage }]
            });
            self.out.push(statement);
        }
    }

    fn observation(
        &mut self,
        visit: &Visit,
        category: &str,
        category_display: &str,
        code: &str,
        display: &str,
    ) -> Value {
        json!({
            "resourceType": "Observation",
            "id": random_id(&mut self.rng),
            "status": "final",
            "category": [{ "coding": [{ "system": vocab::OBSERVATION_CATEGORY, "code": category,
                                        "display": category_display }], "text": category_display }],
            "code": concept(vocab::LOINC, code, display),
            "subject": self.patient_ref(),
            "encounter": reference("Encounter", &visit.id),
            "effectiveDateTime": instant(visit.start + Duration::minutes(5)),
            "issued": instant_millis(visit.start + Duration::minutes(90)),
            "performer": [self.practitioner_ref(visit.practitioner)]
        })
    }

    fn immunization(&mut self, visit: &Visit, age: u32) {
        let eligible: Vec<&(&str, &str, u32)> = vocab::VACCINES.iter().filter(|v| v.2 <= age).collect();
        let Some((code, display, _)) = eligible.choose(&mut self.rng).copied() else {
            return;
        };
        let immunization = json!({
            "resourceType": "Immunization",
            "id": random_id(&mut self.rng),
            "status": "completed",
            "vaccineCode": concept(vocab::CVX, code, display),
            "patient": self.patient_ref(),
            "encounter": reference("Encounter", &visit.id),
            "occurrenceDateTime": instant(visit.start + Duration::minutes(20)),
            "primarySource": true,
            "lotNumber": format!("{}{:05}", ["EL", "FK", "AB", "UT"][self.rng.random_range(0..4)],
                                 self.rng.random_range(0..100_000)),
            "performer": [{ "actor": self.practitioner_ref(visit.practitioner) }]
        });
        self.out.push(immunization);
    }

    fn allergies(&mut self, visits: &[Visit]) {
        let count = match self.rng.random_range(0..100) {
            0..60 => 0,
            60..85 => 1,
            85..95 => 2,
            _ => 3,
        };
        let Some(first) = visits.first() else { return };
        if count == 0 && self.index.is_multiple_of(2) {
            // Half the patients without allergies have that recorded, as the International Patient
            // Summary does it: an AllergyIntolerance coded SNOMED CT 716186003 "No known allergy"
            // (hl7.org/fhir/uv/ips, Allergies and Intolerances section); the others have nothing.
            let none = json!({
                "resourceType": "AllergyIntolerance",
                "id": random_id(&mut self.rng),
                "clinicalStatus": concept(ALLERGY_CLINICAL, "active", "Active"),
                "verificationStatus": concept(ALLERGY_VERIFICATION, "confirmed", "Confirmed"),
                "code": concept(vocab::SNOMED, "716186003", "No known allergy"),
                "patient": self.patient_ref(),
                "recordedDate": instant(first.start)
            });
            self.out.push(none);
            return;
        }
        let mut used: Vec<&str> = Vec::new();
        for _ in 0..count {
            let (code, display, category) = *pick(&mut self.rng, vocab::ALLERGENS);
            if used.contains(&code) {
                continue;
            }
            used.push(code);
            let (r_code, r_display) = *pick(&mut self.rng, vocab::REACTIONS);
            let severe = r_code == "39579001";
            let criticality = if severe {
                "high"
            } else {
                ["low", "low", "high", "unable-to-assess"][self.rng.random_range(0..4)]
            };
            let allergy = json!({
                "resourceType": "AllergyIntolerance",
                "id": random_id(&mut self.rng),
                "clinicalStatus": concept(ALLERGY_CLINICAL, "active", "Active"),
                "verificationStatus": concept(ALLERGY_VERIFICATION, "confirmed", "Confirmed"),
                "type": "allergy",
                "category": [category],
                "criticality": criticality,
                "code": concept(vocab::SNOMED, code, display),
                "patient": self.patient_ref(),
                "recordedDate": instant(first.start),
                "reaction": [{
                    "manifestation": [concept(vocab::SNOMED, r_code, r_display)],
                    "severity": if severe { "severe" } else if self.rng.random_bool(0.5) { "moderate" } else { "mild" }
                }]
            });
            self.out.push(allergy);
        }
    }

    fn patient_ref(&self) -> Value {
        reference("Patient", &self.patient_id)
    }

    fn practitioner_ref(&self, index: usize) -> Value {
        match self.practitioners.get(index) {
            Some(p) => json!({ "reference": format!("Practitioner/{}", p.id), "display": p.display }),
            None => json!({ "display": "Unknown practitioner" }),
        }
    }
}

fn growth_height(body: &Body, age: u32) -> f64 {
    if age >= 18 {
        return body.adult_height_cm;
    }
    // A rough growth curve: ~75 cm at one, then linear to the adult height at eighteen.
    let start = 75.0;
    start + (body.adult_height_cm - start) * f64::from(age.max(1) - 1) / 17.0
}

fn age_at(birth: NaiveDate, at: DateTime<Utc>) -> u32 {
    let today = at.date_naive();
    let mut years = today.year() - birth.year();
    if (today.month(), today.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    u32::try_from(years).unwrap_or(0)
}

fn lab_value(test: &LabTest, v: f64) -> Value {
    let mut range = serde_json::Map::new();
    if let Some(low) = test.low {
        range.insert("low".into(), quantity(low, test.decimals, test.unit, test.unit));
    }
    if let Some(high) = test.high {
        range.insert("high".into(), quantity(high, test.decimals, test.unit, test.unit));
    }
    let (flag, flag_display) = match (test.low, test.high) {
        (Some(low), _) if v < low => ("L", "Low"),
        (_, Some(high)) if v > high => ("H", "High"),
        _ => ("N", "Normal"),
    };
    json!({
        "valueQuantity": quantity(v, test.decimals, test.unit, test.unit),
        "interpretation": [concept(vocab::INTERPRETATION, flag, flag_display)],
        "referenceRange": [Value::Object(range)]
    })
}

fn component(code: &str, display: &str, v: f64, decimals: u32, unit: &str) -> Value {
    json!({ "code": concept(vocab::LOINC, code, display), "valueQuantity": quantity(v, decimals, unit, unit) })
}

fn value(v: f64, decimals: u32, unit: &str, ucum: &str) -> Value {
    json!({ "valueQuantity": quantity(v, decimals, unit, ucum) })
}

fn quantity(v: f64, decimals: u32, unit: &str, ucum: &str) -> Value {
    json!({ "value": number(v, decimals), "unit": unit, "system": vocab::UCUM, "code": ucum })
}

fn number(v: f64, decimals: u32) -> Value {
    let v = round(v, decimals);
    if decimals == 0 {
        // Whole-number vitals are sent as integers, as EHRs do.
        json!(v as i64)
    } else {
        json!(v)
    }
}

fn round(v: f64, decimals: u32) -> f64 {
    let f = 10f64.powi(decimals as i32);
    (v * f).round() / f
}

fn merge(target: &mut Value, extra: Value) {
    if let (Some(t), Value::Object(e)) = (target.as_object_mut(), extra) {
        t.extend(e);
    }
}

fn normal(rng: &mut ChaCha8Rng, mean: f64, sd: f64) -> f64 {
    // Box–Muller: two uniforms give one standard normal.
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    mean + sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn pick<'t, T>(rng: &mut ChaCha8Rng, items: &'t [T]) -> &'t T {
    // The tables are constant and non-empty; index arithmetic keeps this panic-free regardless.
    &items[rng
        .random_range(0..items.len().max(1))
        .min(items.len().saturating_sub(1))]
}

fn ascii(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase()
}

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn instant_millis(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
/// One visit's vital signs, metric, as drawn.
struct Vitals {
    systolic: f64,
    diastolic: f64,
    hr: f64,
    weight: f64,
    height: f64,
    child_bmi: f64,
    temp: f64,
    spo2: f64,
}
