//! Fetching the patient summary from the EHR: every section's search runs concurrently through one
//! [`FhirClient`] with the session's tokens; sections whose scope was not granted are not requested.

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

use crate::launch::LaunchRecord;
use crate::reading::Reading;
use crate::state::AppState;
use crate::summary::{self, Section, Summary};
use crate::window::Window;

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

/// Fetches the whole summary for a launch, dated sections bounded by `window`.
pub async fn summary(
    state: &AppState,
    record: &LaunchRecord,
    window: Window,
) -> Result<Fetched, FetchFailure> {
    summary_observed(state, record, window, None).await
}

/// [`summary()`], reporting each FHIR request to `observer` (the launch timeline's step E).
pub async fn summary_observed(
    state: &AppState,
    record: &LaunchRecord,
    window: Window,
    observer: Option<Arc<dyn RequestObserver>>,
) -> Result<Fetched, FetchFailure> {
    let tokens = state
        .smart()
        .token_source_with_clock(record.tokens().clone(), state.clock().clone());
    let mut builder = FhirClient::builder(record.fhir_base().as_str());
    if let Some(observer) = observer {
        builder = builder.observer(observer);
    }
    let client = builder
        .token_source(tokens.clone())
        .pool(state.fhir_pool().clone())
        // The page waits for these: retry once, briefly, then show what failed.
        .retry_policy(RetryPolicy {
            max_attempts: 2,
            ..RetryPolicy::default()
        })
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(FetchFailure::Ehr)?;
    let granted = &record.tokens().scope;
    let lab_units = state.config().lab_units;
    let context = record.context();
    let Some(patient_id) = context.patient.clone() else {
        return Ok(Fetched {
            summary: without_patient(record),
            renewed_tokens: None,
        });
    };
    let by_patient = || SearchParams::new().patient(&patient_id);
    let now = state.now();
    // Newest first and no older than the window: the pages read are the ones the window needs.
    let dated = |params: SearchParams| {
        window
            .search_params("date", now)
            .into_iter()
            .fold(params, |p, (name, value)| p.raw(name, value))
    };

    let patient_read = async {
        if permitted(granted, "Patient", Permissions::READ) {
            Some(
                client
                    .read_with::<Patient>(&patient_id, fhir_client::r4::Mode::Tolerant)
                    .await,
            )
        } else {
            None
        }
    };
    let (
        (patient, vitals, labs, conditions, medications, allergies, immunizations, encounters),
        (statements, procedures, reports),
    ) = tokio::join!(
        async {
            tokio::join!(
                patient_read,
                section_search::<Observation>(
                    &client,
                    granted,
                    "Observation",
                    dated(by_patient().raw("category", "vital-signs").count(200)),
                    MAX_PAGES,
                ),
                section_search::<Observation>(
                    &client,
                    granted,
                    "Observation",
                    dated(by_patient().raw("category", "laboratory").count(50)),
                    1,
                ),
                section_search::<Condition>(&client, granted, "Condition", by_patient().count(100), 1),
                section_search::<MedicationRequest>(
                    &client,
                    granted,
                    "MedicationRequest",
                    by_patient().count(100),
                    1
                ),
                section_search::<AllergyIntolerance>(
                    &client,
                    granted,
                    "AllergyIntolerance",
                    by_patient().count(100),
                    1
                ),
                section_search::<Immunization>(&client, granted, "Immunization", by_patient().count(100), 1),
                section_search::<Encounter>(&client, granted, "Encounter", dated(by_patient().count(100)), 1),
            )
        },
        async {
            tokio::join!(
                // The sandbox, Cerner and Epic do not sort MedicationStatement by date: the rows are sorted here.
                section_search::<MedicationStatement>(
                    &client,
                    granted,
                    "MedicationStatement",
                    by_patient().count(100),
                    1
                ),
                section_search::<Procedure>(&client, granted, "Procedure", dated(by_patient().count(50)), 1),
                // Each report's results come in the same Bundle (`_include=DiagnosticReport:result`, FHIR R4
                // search §3.1.1.5.5, hl7.org/fhir/R4/search.html#include); the Observations are returned
                // only where the token also covers Observation.
                section_search::<DiagnosticReport>(
                    &client,
                    granted,
                    "DiagnosticReport",
                    dated(by_patient().include("DiagnosticReport:result").count(20)),
                    1
                ),
            )
        }
    );

    // The patient read decides whether there is a page at all; so does any relaunch-worthy failure.
    let mut reading = Reading::default();
    let patient = match patient {
        Some(Ok(read)) => {
            reading.count("Patient", 1);
            reading.issues("Patient read", &read.issues);
            Some(read.resource)
        }
        Some(Err(e)) if is_relaunch(&e) => return Err(FetchFailure::Relaunch(e)),
        Some(Err(e)) => return Err(FetchFailure::Ehr(e)),
        None => None,
    };
    for result in [&vitals, &labs].into_iter().flatten() {
        if let Err(e) = result
            && is_relaunch(e)
        {
            return Err(FetchFailure::Relaunch(clone_relaunch(e)));
        }
    }

    tally(&mut reading, "Observation search (vital signs)", &vitals);
    tally(&mut reading, "Observation search (laboratory)", &labs);
    tally(&mut reading, "Condition search", &conditions);
    tally(&mut reading, "MedicationRequest search", &medications);
    tally(&mut reading, "AllergyIntolerance search", &allergies);
    tally(&mut reading, "Immunization search", &immunizations);
    tally(&mut reading, "Encounter search", &encounters);
    tally(&mut reading, "MedicationStatement search", &statements);
    tally(&mut reading, "Procedure search", &procedures);
    tally(&mut reading, "DiagnosticReport search", &reports);

    let name = match &patient {
        Some(p) => fhir_client::name::patient_display_name(p),
        None => format!("patient {patient_id}"),
    };
    let banner = match (&patient, context.should_show_patient_banner()) {
        (Some(p), true) => Some(summary::banner(p, name.clone(), now.date_naive())),
        _ => None,
    };
    // Servers that ignore `date` still get the window: older resources are left out here.
    let mut vitals = vitals;
    if let Some(Ok(paged)) = &mut vitals {
        paged
            .resources
            .retain(|o| summary::observation_time(o).is_none_or(|at| window.contains(at, now)));
    }
    let other_vitals = match &vitals {
        Some(Ok(paged)) => summary::other_vital_rows(&vital_signs(&paged.resources)),
        _ => Vec::new(),
    };
    fn absence<R>(
        title: &str,
        result: &Option<Result<Paged<R>, FhirError>>,
        code: impl Fn(&R) -> Option<&fhir_client::r4::CodeableConcept>,
    ) -> Option<(String, crate::absence::Recorded)> {
        let Some(Ok(paged)) = result else { return None };
        summary::absence_in(&paged.resources, code).map(|r| (title.to_owned(), r))
    }
    use fhir_client::r4::MedicationRequestMedication as M;
    let absences: Vec<(String, crate::absence::Recorded)> = [
        absence("Allergies", &allergies, |a| a.code.as_deref()),
        absence("Active conditions", &conditions, |c| c.code.as_deref()),
        absence("Active medications", &medications, |m| {
            match m.medication.as_ref() {
                Some(M::CodeableConcept(c)) => Some(c),
                _ => None,
            }
        }),
        absence("Active medications", &statements, |m| {
            match m.medication.as_ref() {
                Some(fhir_client::r4::MedicationStatementMedication::CodeableConcept(c)) => Some(c),
                _ => None,
            }
        }),
        absence("Immunizations", &immunizations, |i| i.vaccine_code.as_deref()),
        absence("Procedures", &procedures, |p| p.code.as_deref()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let notes: Vec<String> = [
        stopped_early("Vital signs", &vitals, window),
        stopped_early("Recent labs", &labs, window),
        stopped_early("Conditions", &conditions, window),
        stopped_early("Medications", &medications, window),
        stopped_early("Allergies", &allergies, window),
        stopped_early("Immunizations", &immunizations, window),
        stopped_early("Encounters", &encounters, window),
        stopped_early("Reported medications", &statements, window),
        stopped_early("Procedures", &procedures, window),
        stopped_early("Diagnostic reports", &reports, window),
    ]
    .into_iter()
    .flatten()
    .collect();
    let summary = Summary {
        patient_name: name,
        banner,
        vitals: to_section(vitals, vital_charts),
        other_vitals,
        window,
        notes,
        absences,
        labs: to_section(labs, |labs| lab_rows(labs, lab_units)),
        resolved_conditions: match &conditions {
            Some(Ok(paged)) => summary::resolved_condition_rows(&paged.resources),
            _ => Vec::new(),
        },
        conditions: to_section(conditions, summary::condition_rows),
        medications: to_section(medications, summary::medication_rows),
        medication_statements: to_section(statements, summary::statement_rows),
        procedures: to_section(procedures, summary::procedure_rows),
        reports: to_section_with(reports, |paged| {
            summary::report_rows(&paged.resources, &paged.included, lab_units)
        }),
        allergies: to_section(allergies, summary::allergy_rows),
        immunizations: to_section(immunizations, summary::immunization_rows),
        encounters: to_section(encounters, summary::encounter_rows),
        reading,
    };
    let current = tokens.tokens().await;
    let renewed_tokens = (current.access_token != record.tokens().access_token).then_some(current);
    Ok(Fetched {
        summary,
        renewed_tokens,
    })
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
