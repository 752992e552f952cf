//! The code tables the generator draws from: names, places, and the clinical vocabularies (LOINC, SNOMED CT,
//! RxNorm, CVX) with the display strings and units real EHRs send.

/// The LOINC code system URI.
pub const LOINC: &str = "http://loinc.org";
/// The SNOMED CT code system URI.
pub const SNOMED: &str = "http://snomed.info/sct";
/// The RxNorm code system URI.
pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
/// The CVX (vaccines administered) code system URI.
pub const CVX: &str = "http://hl7.org/fhir/sid/cvx";
/// The UCUM unit system URI.
pub const UCUM: &str = "http://unitsofmeasure.org";
/// The system of the sandbox's medical record numbers.
pub const MRN_SYSTEM: &str = "urn:oid:2.16.840.1.113883.3.787.0.0";
/// The US National Provider Identifier system.
pub const NPI_SYSTEM: &str = "http://hl7.org/fhir/sid/us-npi";
/// Observation categories (vital-signs, laboratory…).
pub const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
/// Observation interpretations (H, L, N).
pub const INTERPRETATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";

pub(crate) const FAMILY_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Kim",
    "Patel",
    "O'Brien",
    "Schmidt",
    "Müller",
    "Kowalski",
    "Nakamura",
    "Okafor",
    "Haddad",
    "Johansson",
];

pub(crate) const GIVEN_FEMALE: &[&str] = &[
    "Mary",
    "Patricia",
    "Jennifer",
    "Linda",
    "Elizabeth",
    "Barbara",
    "Susan",
    "Jessica",
    "Sarah",
    "Karen",
    "Lisa",
    "Nancy",
    "Betty",
    "Margaret",
    "Sandra",
    "Ashley",
    "Emily",
    "Donna",
    "Michelle",
    "Carol",
    "Amanda",
    "Melissa",
    "Deborah",
    "Stephanie",
    "Rebecca",
    "Sharon",
    "Laura",
    "Cynthia",
    "Amy",
    "Angela",
    "Emma",
    "Olivia",
    "Sophia",
    "Isabella",
    "Mia",
    "Chloé",
    "Zoë",
    "Aaliyah",
    "Priya",
    "Mei",
];

pub(crate) const GIVEN_MALE: &[&str] = &[
    "James",
    "Robert",
    "John",
    "Michael",
    "David",
    "William",
    "Richard",
    "Joseph",
    "Thomas",
    "Christopher",
    "Charles",
    "Daniel",
    "Matthew",
    "Anthony",
    "Mark",
    "Donald",
    "Steven",
    "Paul",
    "Andrew",
    "Joshua",
    "Kenneth",
    "Kevin",
    "Brian",
    "George",
    "Timothy",
    "Ronald",
    "Jason",
    "Edward",
    "Jeffrey",
    "Ryan",
    "Liam",
    "Noah",
    "Oliver",
    "Elijah",
    "Lucas",
    "José",
    "Mohammed",
    "Hiroshi",
    "Chidi",
    "Raj",
];

/// Street names for addresses.
pub(crate) const STREETS: &[&str] = &[
    "Main St",
    "Oak Ave",
    "Maple Dr",
    "Cedar Ln",
    "Elm St",
    "Washington Blvd",
    "Lakeview Rd",
    "Park Pl",
    "Hillcrest Ave",
    "Sunset Blvd",
    "River Rd",
    "Church St",
    "Highland Ave",
    "Mill Rd",
    "Forest Dr",
    "Pine St",
];

/// (city, state, ZIP prefix, phone area code)
pub(crate) const CITIES: &[(&str, &str, &str, &str)] = &[
    ("Boston", "MA", "021", "617"),
    ("Worcester", "MA", "016", "508"),
    ("Springfield", "MA", "011", "413"),
    ("Kansas City", "MO", "641", "816"),
    ("Columbus", "OH", "432", "614"),
    ("Madison", "WI", "537", "608"),
    ("Denver", "CO", "802", "303"),
    ("Austin", "TX", "787", "512"),
    ("Portland", "OR", "972", "503"),
    ("Raleigh", "NC", "276", "919"),
    ("Nashville", "TN", "372", "615"),
    ("Minneapolis", "MN", "554", "612"),
    ("Salt Lake City", "UT", "841", "801"),
    ("Albuquerque", "NM", "871", "505"),
];

/// A quantitative lab test with its reference range (`None` = unbounded on that side) and a typical value spread.
pub(crate) struct LabTest {
    pub code: &'static str,
    pub display: &'static str,
    pub unit: &'static str,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub mean: f64,
    pub sd: f64,
    pub decimals: u32,
}

pub(crate) const LABS: &[LabTest] = &[
    LabTest {
        code: "2339-0",
        display: "Glucose [Mass/volume] in Blood",
        unit: "mg/dL",
        low: Some(70.0),
        high: Some(99.0),
        mean: 95.0,
        sd: 18.0,
        decimals: 0,
    },
    LabTest {
        code: "4548-4",
        display: "Hemoglobin A1c/Hemoglobin.total in Blood",
        unit: "%",
        low: Some(4.0),
        high: Some(5.6),
        mean: 5.6,
        sd: 0.8,
        decimals: 1,
    },
    LabTest {
        code: "2160-0",
        display: "Creatinine [Mass/volume] in Serum or Plasma",
        unit: "mg/dL",
        low: Some(0.6),
        high: Some(1.3),
        mean: 1.0,
        sd: 0.25,
        decimals: 2,
    },
    LabTest {
        code: "2823-3",
        display: "Potassium [Moles/volume] in Serum or Plasma",
        unit: "mmol/L",
        low: Some(3.5),
        high: Some(5.1),
        mean: 4.3,
        sd: 0.45,
        decimals: 1,
    },
    LabTest {
        code: "2951-2",
        display: "Sodium [Moles/volume] in Serum or Plasma",
        unit: "mmol/L",
        low: Some(136.0),
        high: Some(145.0),
        mean: 140.0,
        sd: 2.8,
        decimals: 0,
    },
    LabTest {
        code: "718-7",
        display: "Hemoglobin [Mass/volume] in Blood",
        unit: "g/dL",
        low: Some(12.0),
        high: Some(17.5),
        mean: 14.2,
        sd: 1.5,
        decimals: 1,
    },
    LabTest {
        code: "6690-2",
        display: "Leukocytes [#/volume] in Blood by Automated count",
        unit: "10*3/uL",
        low: Some(4.5),
        high: Some(11.0),
        mean: 7.2,
        sd: 1.9,
        decimals: 1,
    },
    LabTest {
        code: "777-3",
        display: "Platelets [#/volume] in Blood by Automated count",
        unit: "10*3/uL",
        low: Some(150.0),
        high: Some(400.0),
        mean: 260.0,
        sd: 60.0,
        decimals: 0,
    },
    LabTest {
        code: "2093-3",
        display: "Cholesterol [Mass/volume] in Serum or Plasma",
        unit: "mg/dL",
        low: None,
        high: Some(200.0),
        mean: 190.0,
        sd: 35.0,
        decimals: 0,
    },
    LabTest {
        code: "2089-1",
        display: "Cholesterol in LDL [Mass/volume] in Serum or Plasma",
        unit: "mg/dL",
        low: None,
        high: Some(100.0),
        mean: 110.0,
        sd: 30.0,
        decimals: 0,
    },
    LabTest {
        code: "2085-9",
        display: "Cholesterol in HDL [Mass/volume] in Serum or Plasma",
        unit: "mg/dL",
        low: Some(40.0),
        high: None,
        mean: 52.0,
        sd: 12.0,
        decimals: 0,
    },
    LabTest {
        code: "2571-8",
        display: "Triglyceride [Mass/volume] in Serum or Plasma",
        unit: "mg/dL",
        low: None,
        high: Some(150.0),
        mean: 135.0,
        sd: 45.0,
        decimals: 0,
    },
];

/// A chronic or acute problem, with the RxNorm medications that treat it (may be empty).
pub(crate) struct Problem {
    pub code: &'static str,
    pub display: &'static str,
    pub chronic: bool,
    pub min_age: u32,
    pub medications: &'static [(&'static str, &'static str)],
}

pub(crate) const PROBLEMS: &[Problem] = &[
    Problem {
        code: "38341003",
        display: "Hypertensive disorder, systemic arterial (disorder)",
        chronic: true,
        min_age: 25,
        medications: &[
            ("314076", "lisinopril 10 MG Oral Tablet"),
            ("310798", "hydrochlorothiazide 25 MG Oral Tablet"),
            ("308136", "amlodipine 2.5 MG Oral Tablet"),
        ],
    },
    Problem {
        code: "44054006",
        display: "Diabetes mellitus type 2 (disorder)",
        chronic: true,
        min_age: 30,
        medications: &[(
            "860975",
            "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet",
        )],
    },
    Problem {
        code: "55822004",
        display: "Hyperlipidemia (disorder)",
        chronic: true,
        min_age: 30,
        medications: &[
            ("259255", "atorvastatin 80 MG Oral Tablet"),
            ("312961", "simvastatin 20 MG Oral Tablet"),
        ],
    },
    Problem {
        code: "195967001",
        display: "Asthma (disorder)",
        chronic: true,
        min_age: 3,
        medications: &[(
            "745679",
            "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler",
        )],
    },
    Problem {
        code: "35489007",
        display: "Depressive disorder (disorder)",
        chronic: true,
        min_age: 14,
        medications: &[("312938", "sertraline 100 MG Oral Tablet")],
    },
    Problem {
        code: "13645005",
        display: "Chronic obstructive lung disease (disorder)",
        chronic: true,
        min_age: 45,
        medications: &[(
            "745679",
            "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler",
        )],
    },
    Problem {
        code: "709044004",
        display: "Chronic kidney disease (disorder)",
        chronic: true,
        min_age: 45,
        medications: &[],
    },
    Problem {
        code: "271737000",
        display: "Anemia (disorder)",
        chronic: true,
        min_age: 0,
        medications: &[],
    },
    Problem {
        code: "69896004",
        display: "Rheumatoid arthritis (disorder)",
        chronic: true,
        min_age: 30,
        medications: &[("313782", "acetaminophen 325 MG Oral Tablet")],
    },
    Problem {
        code: "444814009",
        display: "Viral sinusitis (disorder)",
        chronic: false,
        min_age: 0,
        medications: &[("313782", "acetaminophen 325 MG Oral Tablet")],
    },
    Problem {
        code: "10509002",
        display: "Acute bronchitis (disorder)",
        chronic: false,
        min_age: 0,
        medications: &[("308182", "amoxicillin 250 MG Oral Capsule")],
    },
    Problem {
        code: "43878008",
        display: "Streptococcal sore throat (disorder)",
        chronic: false,
        min_age: 2,
        medications: &[("834060", "penicillin V potassium 250 MG Oral Tablet")],
    },
    Problem {
        code: "65363002",
        display: "Otitis media (disorder)",
        chronic: false,
        min_age: 0,
        medications: &[("308182", "amoxicillin 250 MG Oral Capsule")],
    },
    Problem {
        code: "62106007",
        display: "Concussion with no loss of consciousness (disorder)",
        chronic: false,
        min_age: 5,
        medications: &[("310965", "ibuprofen 200 MG Oral Tablet")],
    },
];

/// (SNOMED substance code, display, AllergyIntolerance category)
pub(crate) const ALLERGENS: &[(&str, &str, &str)] = &[
    ("764146007", "Penicillin", "medication"),
    ("387207008", "Ibuprofen", "medication"),
    ("387406002", "Sulfamethoxazole", "medication"),
    ("762952008", "Peanut", "food"),
    ("227493005", "Cashew nuts", "food"),
    ("102263004", "Eggs (edible)", "food"),
    ("3718001", "Cow's milk", "food"),
    ("256277009", "Grass pollen", "environment"),
    ("260147004", "House dust mite", "environment"),
    ("111088007", "Latex", "environment"),
];

/// (SNOMED code, display) of allergic reactions.
pub(crate) const REACTIONS: &[(&str, &str)] = &[
    ("247472004", "Wheal (finding)"),
    ("271807003", "Eruption of skin (disorder)"),
    ("39579001", "Anaphylaxis (disorder)"),
    ("267036007", "Dyspnea (finding)"),
    ("49727002", "Cough (finding)"),
    ("422587007", "Nausea (finding)"),
];

/// (CVX code, display, minimum age in years)
pub(crate) const VACCINES: &[(&str, &str, u32)] = &[
    ("140", "Influenza, seasonal, injectable, preservative free", 0),
    (
        "208",
        "SARS-COV-2 (COVID-19) vaccine, mRNA, spike protein, LNP, preservative free, 30 mcg/0.3mL dose",
        12,
    ),
    ("115", "Tdap", 11),
    ("113", "Td (adult) preservative free", 18),
    ("133", "Pneumococcal conjugate PCV 13", 65),
    ("43", "Hep B, adult", 19),
    ("08", "Hep B, adolescent or pediatric", 0),
    ("62", "HPV, quadrivalent", 9),
    ("187", "zoster vaccine recombinant", 50),
    ("03", "MMR", 1),
    ("21", "varicella", 1),
];

/// (SNOMED code, display) of encounter types.
pub(crate) const ENCOUNTER_TYPES: &[(&str, &str)] = &[
    ("185349003", "Encounter for check up (procedure)"),
    ("162673000", "General examination of patient (procedure)"),
    ("185345009", "Encounter for symptom (procedure)"),
    ("390906007", "Follow-up encounter (procedure)"),
];

/// Practitioner specialties (the qualification text).
pub(crate) const SPECIALTIES: &[&str] = &[
    "Family Medicine",
    "Internal Medicine",
    "Pediatrics",
    "Cardiology",
    "Endocrinology",
    "Pulmonology",
    "Nephrology",
];

/// Lab panels, `(LOINC code, display, member LOINC codes)`: the DiagnosticReport each lab result is
/// reported under (a result in none goes under LOINC 11502-2 "Laboratory report").
pub(crate) const LAB_PANELS: &[(&str, &str, &[&str])] = &[
    (
        "51990-0",
        "Basic metabolic panel - Blood",
        &["2339-0", "15074-8", "2160-0", "2823-3", "2951-2"],
    ),
    (
        "58410-2",
        "CBC panel - Blood by Automated count",
        &["718-7", "6690-2", "777-3"],
    ),
    (
        "57698-3",
        "Lipid panel with direct LDL - Serum or Plasma",
        &["2093-3", "14647-2", "2089-1", "2085-9", "2571-8"],
    ),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", &["4548-4"]),
];

/// (SNOMED CT code, display) of procedures done at a visit.
pub(crate) const PROCEDURES: &[(&str, &str)] = &[
    ("29303009", "Electrocardiographic procedure"),
    ("117015009", "Throat culture"),
    ("288086009", "Suture open wound"),
    ("73761001", "Colonoscopy"),
    ("430193006", "Medication reconciliation"),
    ("76601001", "Intramuscular injection"),
];

/// (RxNorm code, display, dosage text) of medications patients report taking.
pub(crate) const REPORTED_MEDICATIONS: &[(&str, &str, &str)] = &[
    ("243670", "aspirin 81 MG Oral Tablet", "1 tablet by mouth daily"),
    (
        "313782",
        "acetaminophen 325 MG Oral Tablet",
        "2 tablets as needed for pain, at most 8 a day",
    ),
    (
        "310965",
        "ibuprofen 200 MG Oral Tablet",
        "1–2 tablets as needed for pain",
    ),
    (
        "311372",
        "loratadine 10 MG Oral Tablet",
        "1 tablet daily in hay-fever season",
    ),
    (
        "1049630",
        "diphenhydramine hydrochloride 25 MG Oral Tablet",
        "1 tablet at night as needed",
    ),
];
