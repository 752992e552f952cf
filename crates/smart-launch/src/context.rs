//! The launch context the token response carries: patient, encounter, `fhirContext`, banner and
//! style hints, intent, tenant, and whatever else the EHR sent.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One `fhirContext` entry (SMART 2.1 object form; 2.0 reference strings are read into `reference`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FhirContextItem {
    /// A relative reference such as `Encounter/123`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// A canonical URL (for definitional resources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canonical: Option<String>,
    /// A logical identifier (FHIR `Identifier`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Value>,
    /// The resource type, when given.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// The role of the resource in the launch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Other keys, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The launch context, typed, with the raw extras kept.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LaunchContext {
    /// The patient in context (a Patient id).
    pub patient: Option<String>,
    /// The encounter in context (an Encounter id).
    pub encounter: Option<String>,
    /// Further resources in context.
    pub fhir_context: Vec<FhirContextItem>,
    /// Whether the app must show a patient banner (the EHR does not).
    pub need_patient_banner: Option<bool>,
    /// The EHR's style sheet for apps.
    pub smart_style_url: Option<String>,
    /// The launch intent (e.g. `reconcile-medications`).
    pub intent: Option<String>,
    /// The EHR tenant.
    pub tenant: Option<String>,
    /// Every other key of the token response that is not a token field (vendor keys included).
    pub extras: Map<String, Value>,
}

impl LaunchContext {
    /// Whether to show a patient banner: the EHR's answer, or yes when it did not say.
    pub fn should_show_patient_banner(&self) -> bool {
        self.need_patient_banner.unwrap_or(true)
    }
}
