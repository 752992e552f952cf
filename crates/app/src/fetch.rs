//! Fetching the patient summary from the EHR: every section's search runs concurrently through one
//! [`FhirClient`] with the session's tokens; sections whose scope was not granted are not requested.
//! Each section is read, parsed and turned into rows (or charts) in a task of its own, so the
//! runtime's threads share the parsing of a page's responses instead of taking them one by one.

use std::time::Duration;

use chrono::Utc;
use fhir_client::r4::resources::{Observation, Patient};
use fhir_client::r4::types::reference::ResourceType;
use fhir_client::search::SearchParams;
use fhir_client::{FhirClient, FhirError, RetryPolicy};
use serde::de::DeserializeOwned;
use smart_launch::token::TokenSet;
use smart_launch::{Permissions, ScopeContext, ScopeSet};
use tokio::task::JoinHandle;

use crate::launch::LaunchRecord;
use crate::state::AppState;
use crate::summary::{self, Section, Summary};

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

/// What a section's task hands back: `None` when the scope was not granted, else its rows or why the
/// search failed.
type SectionResult<T> = Option<Result<Vec<T>, FhirError>>;

/// Starts a section's search in its own task; the task also turns the resources into rows.
fn spawn_section<R, T>(
    client: &FhirClient,
    granted: &ScopeSet,
    type_name: &str,
    params: SearchParams,
    rows: fn(&[R]) -> Vec<T>,
) -> SectionTask<SectionResult<T>>
where
    R: ResourceType + DeserializeOwned + Send + 'static,
    T: Send + 'static,
{
    let permitted = permitted(granted, type_name, Permissions::SEARCH);
    let client = client.clone();
    SectionTask(tokio::spawn(async move {
        if !permitted {
            return None;
        }
        Some(client.search::<R>(&params).await.map(|page| rows(&page.matches)))
    }))
}

/// A task fetching part of the page, aborted when the page stops waiting for it (the browser left).
struct SectionTask<T>(JoinHandle<T>);

impl<T> Drop for SectionTask<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> SectionTask<T> {
    /// Waits for the task. A panic inside it is passed on, as if the section had run here.
    async fn join(mut self) -> T {
        match (&mut self.0).await {
            Ok(value) => value,
            // Only dropping `self` aborts the task, so while it is awaited a join error is a panic.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// The error of a section whose search failed.
fn section_error<T>(result: &SectionResult<T>) -> Option<&FhirError> {
    result.as_ref()?.as_ref().err()
}

fn to_section<T>(result: SectionResult<T>) -> Section<T> {
    match result {
        None => Section::NotShared,
        Some(Ok(rows)) => Section::Shown(rows),
        Some(Err(FhirError::Forbidden { .. })) => Section::NotShared,
        Some(Err(e)) => {
            tracing::warn!(error = %e, "a summary section could not be fetched");
            Section::Failed(format!("This part could not be loaded from the EHR: {e}"))
        }
    }
}

fn has_category(o: &Observation, code: &str) -> bool {
    o.category.iter().any(|c| {
        c.coding
            .iter()
            .any(|coding| coding.code.as_ref().is_some_and(|x| x.0 == code))
    })
}

/// Fetches the whole summary for a launch.
pub async fn summary(state: &AppState, record: &LaunchRecord) -> Result<Fetched, FetchFailure> {
    let tokens = state.smart().token_source(record.tokens().clone());
    let client = FhirClient::builder(record.fhir_base().as_str())
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
    let context = record.context();
    let Some(patient_id) = context.patient.clone() else {
        return Ok(Fetched {
            summary: without_patient(record),
            renewed_tokens: None,
        });
    };
    let by_patient = || SearchParams::new().patient(&patient_id);

    let patient_task = {
        let (client, patient_id) = (client.clone(), patient_id.clone());
        let permitted = permitted(granted, "Patient", Permissions::READ);
        SectionTask(tokio::spawn(async move {
            if permitted {
                Some(client.read::<Patient>(&patient_id).await)
            } else {
                None
            }
        }))
    };
    let vitals = spawn_section(
        &client,
        granted,
        "Observation",
        by_patient().raw("category", "vital-signs").count(200),
        vital_charts,
    );
    let labs = spawn_section(
        &client,
        granted,
        "Observation",
        by_patient().raw("category", "laboratory").count(50),
        lab_rows,
    );
    let conditions = spawn_section(
        &client,
        granted,
        "Condition",
        by_patient().count(100),
        summary::condition_rows,
    );
    let medications = spawn_section(
        &client,
        granted,
        "MedicationRequest",
        by_patient().count(100),
        summary::medication_rows,
    );
    let allergies = spawn_section(
        &client,
        granted,
        "AllergyIntolerance",
        by_patient().count(100),
        summary::allergy_rows,
    );
    let immunizations = spawn_section(
        &client,
        granted,
        "Immunization",
        by_patient().count(100),
        summary::immunization_rows,
    );
    let encounters = spawn_section(
        &client,
        granted,
        "Encounter",
        by_patient().count(100),
        summary::encounter_rows,
    );
    let (patient, vitals, labs, conditions, medications, allergies, immunizations, encounters) = tokio::join!(
        patient_task.join(),
        vitals.join(),
        labs.join(),
        conditions.join(),
        medications.join(),
        allergies.join(),
        immunizations.join(),
        encounters.join(),
    );

    // The patient read decides whether there is a page at all; so does any relaunch-worthy failure.
    let patient = match patient {
        Some(Ok(p)) => Some(p),
        Some(Err(e)) if is_relaunch(&e) => return Err(FetchFailure::Relaunch(e)),
        Some(Err(e)) => return Err(FetchFailure::Ehr(e)),
        None => None,
    };
    for error in [section_error(&vitals), section_error(&labs)]
        .into_iter()
        .flatten()
    {
        if is_relaunch(error) {
            return Err(FetchFailure::Relaunch(clone_relaunch(error)));
        }
    }

    let name = match &patient {
        Some(p) => fhir_client::name::patient_display_name(p),
        None => format!("patient {patient_id}"),
    };
    let banner = match (&patient, context.should_show_patient_banner()) {
        (Some(p), true) => Some(summary::banner(p, name.clone(), Utc::now().date_naive())),
        _ => None,
    };
    let summary = Summary {
        patient_name: name,
        banner,
        vitals: to_section(vitals),
        labs: to_section(labs),
        conditions: to_section(conditions),
        medications: to_section(medications),
        allergies: to_section(allergies),
        immunizations: to_section(immunizations),
        encounters: to_section(encounters),
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
    let vitals: Vec<&Observation> = observations
        .iter()
        .filter(|o| o.category.is_empty() || has_category(o, "vital-signs"))
        .collect();
    summary::vital_charts(&vitals)
        .into_iter()
        .map(crate::charts::Chart::draw)
        .collect()
}

/// The laboratory rows (other categories left out).
fn lab_rows(observations: &[Observation]) -> Vec<summary::LabRow> {
    let labs: Vec<&Observation> = observations
        .iter()
        .filter(|o| o.category.is_empty() || has_category(o, "laboratory"))
        .collect();
    summary::lab_rows(&labs)
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
        labs: none(),
        conditions: none(),
        medications: none(),
        allergies: none(),
        immunizations: none(),
        encounters: none(),
    }
}
