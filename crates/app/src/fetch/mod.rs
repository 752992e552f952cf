//! Fetching the patient summary from the EHR: every section's search runs concurrently through one
//! [`FhirClient`] with the session's tokens; sections whose scope was not granted are not requested.
//! The signed-in user's name is read beside it ([`user`]).

use std::sync::Arc;
use std::time::Duration;

use fhir_client::r4::ResourceType;
use fhir_client::r4::{
    AllergyIntolerance, Condition, DiagnosticReport, Encounter, Immunization, MedicationRequest,
    MedicationStatement, Observation, Patient, Procedure, Resource, TextValue,
};
use fhir_client::search::SearchParams;
use fhir_client::{FhirClient, FhirError, RequestObserver, RetryPolicy};
use smart_launch::token::TokenSet;
use smart_launch::{Permissions, ScopeContext, ScopeSet};

use crate::launch_record::LaunchRecord;
use crate::reading::Reading;
use crate::state::AppState;
use crate::summary::{self, Section, Summary};
use crate::window::Window;

pub mod user;

/// Why the summary could not be shown at all.
#[derive(Debug)]
pub enum FetchFailure {
    /// The tokens are no longer usable (expired without a refresh token, refresh refused, 401 after
    /// refresh): the user has to launch again.
    Relaunch(FhirError),
    /// The EHR failed or could not be reached.
    Ehr(FhirError),
}

/// The summary, and the token set when it was renewed during the fetch (to store in the session).
#[derive(Debug)]
pub struct Fetched {
    /// What the page shows.
    pub summary: Summary,
    /// `Some` when the tokens were refreshed.
    pub renewed_tokens: Option<TokenSet>,
}

fn permitted(granted: &ScopeSet, resource_type: &str, needed: Permissions) -> bool {
    granted.permits(ScopeContext::Patient, resource_type, needed)
        || granted.permits(ScopeContext::User, resource_type, needed)
}

fn is_relaunch(error: &FhirError) -> bool {
    matches!(error, FhirError::Token(_) | FhirError::Unauthorized { .. })
}

/// What a section's search read: the resources, and whether the EHR had more pages than were read.
struct Paged<R> {
    resources: Vec<R>,
    /// What `_include` brought beside them.
    included: Vec<Resource>,
    /// The search's last page read had a `next` link (or a later page failed).
    more: bool,
    /// The server's `Bundle.total`, when it gave one.
    total: Option<u32>,
    /// What did not fit the R4 model in the pages read (already logged once).
    issues: Vec<fhir_client::r4::Issue>,
}

/// A search whose failure is shown in its section; `None` when the scope was not granted. Follows
/// `next` for at most `max_pages` pages; a page after the first that fails ends the reading with
/// what was read (and `more` set), so one bad page does not blank the section.
async fn section_search<R: ResourceType + Send + 'static>(
    client: &FhirClient,
    granted: &ScopeSet,
    type_name: &str,
    params: SearchParams,
    max_pages: usize,
) -> Option<Result<Paged<R>, FhirError>> {
    use futures::StreamExt as _;
    if !permitted(granted, type_name, Permissions::SEARCH) {
        return None;
    }
    let mut pages = std::pin::pin!(client.search_pages::<R>(params));
    let mut read = Paged {
        resources: Vec::new(),
        included: Vec::new(),
        more: false,
        total: None,
        issues: Vec::new(),
    };
    for n in 0..max_pages.max(1) {
        match pages.next().await {
            None => break,
            Some(Ok(page)) => {
                read.total = read.total.or(page.total);
                read.more = page.next.is_some();
                read.resources.extend(page.matches);
                read.included.extend(page.included);
                read.issues.extend(page.issues);
            }
            Some(Err(e)) if n == 0 => return Some(Err(e)),
            Some(Err(e)) => {
                tracing::warn!(error = %e, resource_type = type_name, "a later page of a summary search failed; showing what was read");
                read.more = true;
                break;
            }
        }
    }
    Some(Ok(read))
}

/// Adds what a section's search read (before the app filters it) to `reading`.
fn tally<R: ResourceType>(reading: &mut Reading, what: &str, result: &Option<Result<Paged<R>, FhirError>>) {
    let Some(Ok(paged)) = result else { return };
    reading.count(<R as fhir_client::r4::FromJson>::TYPE_NAME, paged.resources.len());
    for included in &paged.included {
        reading.count(included.resource_type(), 1);
    }
    reading.issues(what, &paged.issues);
}

/// The sentence for a section whose search stopped before the EHR's last page.
fn stopped_early<R>(
    title: &str,
    result: &Option<Result<Paged<R>, FhirError>>,
    window: Window,
) -> Option<String> {
    let Some(Ok(paged)) = result else { return None };
    if !paged.more {
        return None;
    }
    let of = paged.total.map(|t| format!(" of {t}")).unwrap_or_default();
    let hint = match window {
        Window::All => "",
        _ => " Choose a longer window to see older ones.",
    };
    Some(format!(
        "{title}: the newest {}{of} the EHR returned were read; it had more pages, which were not.{hint}",
        paged.resources.len()
    ))
}

fn to_section<R, T>(
    result: Option<Result<Paged<R>, FhirError>>,
    rows: impl FnOnce(&[R]) -> Vec<T>,
) -> Section<T> {
    to_section_with(result, |paged| rows(&paged.resources))
}

/// [`to_section`], the rows built from the whole read (its `_include`d resources too).
fn to_section_with<R, T>(
    result: Option<Result<Paged<R>, FhirError>>,
    rows: impl FnOnce(&Paged<R>) -> Vec<T>,
) -> Section<T> {
    match result {
        None => Section::NotShared,
        Some(Ok(paged)) => Section::Shown(rows(&paged)),
        Some(Err(FhirError::Forbidden { .. })) => Section::NotShared,
        Some(Err(e)) => {
            tracing::warn!(error = %e, "a summary section could not be fetched");
            Section::Failed(format!("This part could not be loaded from the EHR: {e}"))
        }
    }
}

fn has_category(o: &Observation, code: &str) -> bool {
    o.category
        .iter()
        .any(|c| c.coding.iter().any(|coding| coding.code.text() == Some(code)))
}

/// How many pages a dated section follows at most (vital signs: 5 × 200 measurements).
const MAX_PAGES: usize = 5;

/// Fetches the whole summary for a launch, dated sections bounded by `window`, reporting each FHIR request to
/// `observer` (the launch timeline's step E).
///
/// In order: a client with the session's tokens; every section read at once (`read_sections`); the failures
/// that leave no page to show (`Reads::page_failure`); the page assembled from what was read
/// (`Reads::into_summary`); the tokens, if they were renewed on the way.
pub async fn summary_observed(
    state: &AppState,
    record: &LaunchRecord,
    window: Window,
    observer: Option<Arc<dyn RequestObserver>>,
) -> Result<Fetched, FetchFailure> {
    let tokens = state
        .smart()
        .token_source_with_clock(record.tokens().clone(), state.clock().clone());
    let client = summary_client(state, &tokens, record, observer)?;
    let Some(patient_id) = record.context().patient.clone() else {
        return Ok(Fetched {
            summary: without_patient(record),
            renewed_tokens: None,
        });
    };
    let now = state.now();
    let mut reads = read_sections(&client, &record.tokens().scope, &patient_id, window, now).await;
    if let Some(failure) = reads.page_failure() {
        return Err(failure);
    }
    let summary = reads.into_summary(
        &patient_id,
        record.context().should_show_patient_banner(),
        window,
        now,
        state.config().lab_units,
    );
    let current = tokens.tokens().await;
    let renewed_tokens = (current.access_token != record.tokens().access_token).then_some(current);
    Ok(Fetched {
        summary,
        renewed_tokens,
    })
}

/// The FHIR client the page reads through: the session's tokens, the shared connection pool, one brief retry.
fn summary_client(
    state: &AppState,
    tokens: &Arc<smart_launch::RefreshingToken>,
    record: &LaunchRecord,
    observer: Option<Arc<dyn RequestObserver>>,
) -> Result<FhirClient, FetchFailure> {
    let mut builder = FhirClient::builder(record.fhir_base().as_str());
    if let Some(observer) = observer {
        builder = builder.observer(observer);
    }
    builder
        .token_source(tokens.clone())
        .pool(state.fhir_pool().clone())
        // The page waits for these: retry once, briefly, then show what failed.
        .retry_policy(RetryPolicy {
            max_attempts: 2,
            ..RetryPolicy::default()
        })
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(FetchFailure::Ehr)
}

/// One section's read: `None` when the token's scopes do not cover it.
type SectionRead<R> = Option<Result<Paged<R>, FhirError>>;

/// Everything the page reads, as each read ended.
struct Reads {
    patient: Option<Result<fhir_client::Read<Patient>, FhirError>>,
    vitals: SectionRead<Observation>,
    labs: SectionRead<Observation>,
    conditions: SectionRead<Condition>,
    medications: SectionRead<MedicationRequest>,
    allergies: SectionRead<AllergyIntolerance>,
    immunizations: SectionRead<Immunization>,
    encounters: SectionRead<Encounter>,
    statements: SectionRead<MedicationStatement>,
    procedures: SectionRead<Procedure>,
    reports: SectionRead<DiagnosticReport>,
}

/// Reads the patient and every section at once; dated sections are newest first and no older than `window`,
/// so the pages read are the ones the window needs.
async fn read_sections(
    client: &FhirClient,
    granted: &ScopeSet,
    patient_id: &str,
    window: Window,
    now: chrono::DateTime<chrono::Utc>,
) -> Reads {
    let by_patient = || SearchParams::new().patient(patient_id);
    let dated = |params: SearchParams| {
        window
            .search_params("date", now)
            .into_iter()
            .fold(params, |p, (name, value)| p.raw(name, value))
    };
    let observations =
        |category: &str, count: u32| dated(by_patient().raw("category", category).count(count));
    let (
        (patient, vitals, labs, conditions, medications, allergies, immunizations, encounters),
        (statements, procedures, reports),
    ) = tokio::join!(
        async {
            tokio::join!(
                read_patient(client, granted, patient_id),
                section_search(
                    client,
                    granted,
                    "Observation",
                    observations("vital-signs", 200),
                    MAX_PAGES
                ),
                section_search(client, granted, "Observation", observations("laboratory", 50), 1),
                section_search(client, granted, "Condition", by_patient().count(100), 1),
                section_search(client, granted, "MedicationRequest", by_patient().count(100), 1),
                section_search(client, granted, "AllergyIntolerance", by_patient().count(100), 1),
                section_search(client, granted, "Immunization", by_patient().count(100), 1),
                section_search(client, granted, "Encounter", dated(by_patient().count(100)), 1),
            )
        },
        async {
            tokio::join!(
                // The sandbox, Cerner and Epic do not sort MedicationStatement by date: the rows are sorted here.
                section_search(client, granted, "MedicationStatement", by_patient().count(100), 1),
                section_search(client, granted, "Procedure", dated(by_patient().count(50)), 1),
                // Each report's results come in the same Bundle (`_include=DiagnosticReport:result`, FHIR R4
                // search §3.1.1.5.5, hl7.org/fhir/R4/search.html#include); the Observations are returned
                // only where the token also covers Observation.
                section_search(
                    client,
                    granted,
                    "DiagnosticReport",
                    dated(by_patient().include("DiagnosticReport:result").count(20)),
                    1
                ),
            )
        }
    );
    Reads {
        patient,
        vitals,
        labs,
        conditions,
        medications,
        allergies,
        immunizations,
        encounters,
        statements,
        procedures,
        reports,
    }
}

/// The patient, read tolerantly; `None` when the token's scopes do not cover it.
async fn read_patient(
    client: &FhirClient,
    granted: &ScopeSet,
    patient_id: &str,
) -> Option<Result<fhir_client::Read<Patient>, FhirError>> {
    if permitted(granted, "Patient", Permissions::READ) {
        Some(
            client
                .read_with::<Patient>(patient_id, fhir_client::r4::Mode::Tolerant)
                .await,
        )
    } else {
        None
    }
}

impl Reads {
    /// What leaves no page to show: the patient read failing, or any read saying the user must launch again.
    fn page_failure(&mut self) -> Option<FetchFailure> {
        match self.patient.take() {
            Some(Err(e)) if is_relaunch(&e) => return Some(FetchFailure::Relaunch(e)),
            Some(Err(e)) => return Some(FetchFailure::Ehr(e)),
            other => self.patient = other,
        }
        [&self.vitals, &self.labs]
            .into_iter()
            .flatten()
            .find_map(|result| match result {
                Err(e) if is_relaunch(e) => Some(FetchFailure::Relaunch(clone_relaunch(e))),
                _ => None,
            })
    }

    /// What was read, counted by type, with what did not fit the model (the launch timeline shows it).
    fn reading(&self) -> Reading {
        let mut reading = Reading::default();
        if let Some(Ok(read)) = &self.patient {
            reading.count("Patient", 1);
            reading.issues("Patient read", &read.issues);
        }
        tally(&mut reading, "Observation search (vital signs)", &self.vitals);
        tally(&mut reading, "Observation search (laboratory)", &self.labs);
        tally(&mut reading, "Condition search", &self.conditions);
        tally(&mut reading, "MedicationRequest search", &self.medications);
        tally(&mut reading, "AllergyIntolerance search", &self.allergies);
        tally(&mut reading, "Immunization search", &self.immunizations);
        tally(&mut reading, "Encounter search", &self.encounters);
        tally(&mut reading, "MedicationStatement search", &self.statements);
        tally(&mut reading, "Procedure search", &self.procedures);
        tally(&mut reading, "DiagnosticReport search", &self.reports);
        reading
    }

    /// The sections whose EHR recorded that there is nothing ("no known allergies"), with what it recorded.
    fn absences(&self) -> Vec<(String, crate::absence::Recorded)> {
        fn absence<R>(
            title: &str,
            result: &SectionRead<R>,
            code: impl Fn(&R) -> Option<&fhir_client::r4::CodeableConcept>,
        ) -> Option<(String, crate::absence::Recorded)> {
            let Some(Ok(paged)) = result else { return None };
            summary::absence_in(&paged.resources, code).map(|r| (title.to_owned(), r))
        }
        use fhir_client::r4::MedicationRequestMedication as M;
        use fhir_client::r4::MedicationStatementMedication as S;
        [
            absence("Allergies", &self.allergies, |a| a.code.as_deref()),
            absence("Active conditions", &self.conditions, |c| c.code.as_deref()),
            absence("Active medications", &self.medications, |m| {
                match m.medication.as_ref() {
                    Some(M::CodeableConcept(c)) => Some(c),
                    _ => None,
                }
            }),
            absence("Active medications", &self.statements, |m| {
                match m.medication.as_ref() {
                    Some(S::CodeableConcept(c)) => Some(c),
                    _ => None,
                }
            }),
            absence("Immunizations", &self.immunizations, |i| {
                i.vaccine_code.as_deref()
            }),
            absence("Procedures", &self.procedures, |p| p.code.as_deref()),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// A sentence for each section whose search stopped before the EHR's last page.
    fn notes(&self, window: Window) -> Vec<String> {
        [
            stopped_early("Vital signs", &self.vitals, window),
            stopped_early("Recent labs", &self.labs, window),
            stopped_early("Conditions", &self.conditions, window),
            stopped_early("Medications", &self.medications, window),
            stopped_early("Allergies", &self.allergies, window),
            stopped_early("Immunizations", &self.immunizations, window),
            stopped_early("Encounters", &self.encounters, window),
            stopped_early("Reported medications", &self.statements, window),
            stopped_early("Procedures", &self.procedures, window),
            stopped_early("Diagnostic reports", &self.reports, window),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The page: the banner (when the launch asks for one), each section's rows or why it has none.
    fn into_summary(
        mut self,
        patient_id: &str,
        show_banner: bool,
        window: Window,
        now: chrono::DateTime<chrono::Utc>,
        lab_units: crate::units::LabUnits,
    ) -> Summary {
        let reading = self.reading();
        let absences = self.absences();
        let notes = self.notes(window);
        let patient = match self.patient.take() {
            Some(Ok(read)) => Some(read.resource),
            _ => None,
        };
        let name = match &patient {
            Some(p) => fhir_client::name::patient_display_name(p),
            None => format!("patient {patient_id}"),
        };
        let banner = match (&patient, show_banner) {
            (Some(p), true) => Some(summary::banner(p, name.clone(), now.date_naive())),
            _ => None,
        };
        // Servers that ignore `date` still get the window: older resources are left out here.
        if let Some(Ok(paged)) = &mut self.vitals {
            paged
                .resources
                .retain(|o| summary::observation_time(o).is_none_or(|at| window.contains(at, now)));
        }
        let other_vitals = match &self.vitals {
            Some(Ok(paged)) => summary::other_vital_rows(&vital_signs(&paged.resources)),
            _ => Vec::new(),
        };
        let resolved_conditions = match &self.conditions {
            Some(Ok(paged)) => summary::resolved_condition_rows(&paged.resources),
            _ => Vec::new(),
        };
        Summary {
            patient_name: name,
            banner,
            vitals: to_section(self.vitals, vital_charts),
            other_vitals,
            window,
            notes,
            absences,
            labs: to_section(self.labs, |labs| lab_rows(labs, lab_units)),
            resolved_conditions,
            conditions: to_section(self.conditions, summary::condition_rows),
            medications: to_section(self.medications, summary::medication_rows),
            medication_statements: to_section(self.statements, summary::statement_rows),
            procedures: to_section(self.procedures, summary::procedure_rows),
            reports: to_section_with(self.reports, |paged| {
                summary::report_rows(&paged.resources, &paged.included, lab_units)
            }),
            allergies: to_section(self.allergies, summary::allergy_rows),
            immunizations: to_section(self.immunizations, summary::immunization_rows),
            encounters: to_section(self.encounters, summary::encounter_rows),
            reading,
        }
    }
}

/// The vital-sign charts, drawn (the search may return other categories: they are left out).
fn vital_charts(observations: &[Observation]) -> Vec<crate::charts::DrawnChart> {
    summary::vital_charts(&vital_signs(observations))
        .into_iter()
        .map(crate::charts::Chart::draw)
        .collect()
}

/// The vital signs among a search's Observations (the search may return other categories).
fn vital_signs(observations: &[Observation]) -> Vec<&Observation> {
    observations
        .iter()
        .filter(|o| o.category.is_empty() || has_category(o, "vital-signs"))
        .collect()
}

/// The laboratory rows (other categories left out).
fn lab_rows(observations: &[Observation], lab_units: crate::units::LabUnits) -> Vec<summary::LabRow> {
    // Whatever the server returned for `category=laboratory`, except what is plainly coded as
    // another category: Cerner's labs carry `category` as a data-absent-reason extension only
    // (fhir.cerner.com, Observation R4, "Laboratory" examples), and must not be dropped.
    let coded = |o: &Observation| {
        o.category
            .iter()
            .any(|c| c.coding.iter().any(|x| x.code.is_some()))
    };
    let labs: Vec<&Observation> = observations
        .iter()
        .filter(|o| !coded(o) || has_category(o, "laboratory"))
        .collect();
    summary::lab_rows(&labs, lab_units)
}

/// The relaunch errors carry no data worth keeping beyond their message.
fn clone_relaunch(e: &FhirError) -> FhirError {
    match e {
        FhirError::Unauthorized { url, .. } => FhirError::Unauthorized {
            url: url.clone(),
            outcome: None,
        },
        other => FhirError::Token(smart_launch::Error::Config {
            reason: other.to_string(),
        }),
    }
}

/// A launch without a patient in context (a user-level launch): nothing patient-specific to show.
fn without_patient(record: &LaunchRecord) -> Summary {
    let who = record
        .launch
        .fhir_user
        .as_ref()
        .map(|u| u.reference())
        .unwrap_or_else(|| "the signed-in user (no patient was selected)".to_owned());
    fn none<T>() -> Section<T> {
        Section::Failed(
            "The EHR did not select a patient for this launch; change patient to pick one.".to_owned(),
        )
    }
    Summary {
        patient_name: who,
        banner: None,
        vitals: none(),
        other_vitals: Vec::new(),
        window: Window::default(),
        notes: Vec::new(),
        absences: Vec::new(),
        labs: none(),
        conditions: none(),
        resolved_conditions: Vec::new(),
        medications: none(),
        medication_statements: none(),
        procedures: none(),
        reports: none(),
        allergies: none(),
        immunizations: none(),
        encounters: none(),
        reading: Reading::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(n: usize, more: bool, total: Option<u32>) -> Option<Result<Paged<u8>, FhirError>> {
        Some(Ok(Paged {
            resources: vec![0; n],
            included: Vec::new(),
            more,
            total,
            issues: Vec::new(),
        }))
    }

    #[test]
    fn a_section_with_more_pages_says_how_many_were_read() {
        assert_eq!(
            stopped_early("Recent labs", &read(50, true, Some(132)), Window::FiveYears).as_deref(),
            Some(
                "Recent labs: the newest 50 of 132 the EHR returned were read; it had more pages, which were not. \
                 Choose a longer window to see older ones."
            )
        );
        let all = stopped_early("Vital signs", &read(1000, true, None), Window::All).unwrap();
        assert!(all.starts_with("Vital signs: the newest 1000 the EHR"), "{all}");
        assert!(!all.contains("longer window"), "there is none longer than all");
        assert_eq!(
            stopped_early("Allergies", &read(3, false, Some(3)), Window::All),
            None
        );
        assert_eq!(
            stopped_early::<u8>("Allergies", &None, Window::All),
            None,
            "not shared"
        );
    }
}
