//! Fetching the patient summary from the EHR: every section's search runs concurrently through one
//! [`FhirClient`] with the session's tokens; sections whose scope was not granted are not requested.

use std::time::Duration;

use chrono::Utc;
use fhir_client::r4::resources::{
    AllergyIntolerance, Condition, Encounter, Immunization, MedicationRequest, Observation, Patient,
};
use fhir_client::r4::types::reference::ResourceType;
use fhir_client::search::SearchParams;
use fhir_client::{FhirClient, FhirError, RetryPolicy};
use serde::de::DeserializeOwned;
use smart_launch::token::TokenSet;
use smart_launch::{Permissions, ScopeContext, ScopeSet};

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

/// A search whose failure is shown in its section; `None` when the scope was not granted.
async fn section_search<R: ResourceType + DeserializeOwned>(
    client: &FhirClient,
    granted: &ScopeSet,
    type_name: &str,
    params: SearchParams,
) -> Option<Result<Vec<R>, FhirError>> {
    if !permitted(granted, type_name, Permissions::SEARCH) {
        return None;
    }
    Some(client.search::<R>(&params).await.map(|page| page.matches))
}

fn to_section<R, T>(
    result: Option<Result<Vec<R>, FhirError>>,
    rows: impl FnOnce(&[R]) -> Vec<T>,
) -> Section<T> {
    match result {
        None => Section::NotShared,
        Some(Ok(resources)) => Section::Shown(rows(&resources)),
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

    let patient_read = async {
        if permitted(granted, "Patient", Permissions::READ) {
            Some(client.read::<Patient>(&patient_id).await)
        } else {
            None
        }
    };
    let (patient, vitals, labs, conditions, medications, allergies, immunizations, encounters) = tokio::join!(
        patient_read,
        section_search::<Observation>(
            &client,
            granted,
            "Observation",
            by_patient().raw("category", "vital-signs").count(200)
        ),
        section_search::<Observation>(
            &client,
            granted,
            "Observation",
            by_patient().raw("category", "laboratory").count(50)
        ),
        section_search::<Condition>(&client, granted, "Condition", by_patient().count(100)),
        section_search::<MedicationRequest>(&client, granted, "MedicationRequest", by_patient().count(100)),
        section_search::<AllergyIntolerance>(&client, granted, "AllergyIntolerance", by_patient().count(100)),
        section_search::<Immunization>(&client, granted, "Immunization", by_patient().count(100)),
        section_search::<Encounter>(&client, granted, "Encounter", by_patient().count(100)),
    );

    // The patient read decides whether there is a page at all; so does any relaunch-worthy failure.
    let patient = match patient {
        Some(Ok(p)) => Some(p),
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

    let name = match &patient {
        Some(p) => fhir_client::name::patient_display_name(p),
        None => format!("patient {patient_id}"),
    };
    let banner = match (&patient, context.should_show_patient_banner()) {
        (Some(p), true) => Some(summary::banner(p, name.clone(), Utc::now().date_naive())),
        _ => None,
    };
    let other_vitals = match &vitals {
        Some(Ok(observations)) => summary::other_vital_rows(&vital_signs(observations)),
        _ => Vec::new(),
    };
    let summary = Summary {
        patient_name: name,
        banner,
        vitals: to_section(vitals, vital_charts),
        other_vitals,
        labs: to_section(labs, lab_rows),
        conditions: to_section(conditions, summary::condition_rows),
        medications: to_section(medications, summary::medication_rows),
        allergies: to_section(allergies, summary::allergy_rows),
        immunizations: to_section(immunizations, summary::immunization_rows),
        encounters: to_section(encounters, summary::encounter_rows),
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
        other_vitals: Vec::new(),
        labs: none(),
        conditions: none(),
        medications: none(),
        allergies: none(),
        immunizations: none(),
        encounters: none(),
    }
}
