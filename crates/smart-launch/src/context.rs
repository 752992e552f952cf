//! The launch context the token response carries: patient, encounter, `fhirContext`, banner and
//! style hints, intent, tenant, and whatever else the EHR sent.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::token::TokenResponse;

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
    /// The context carried by a token response.
    pub fn from_response(response: &TokenResponse) -> LaunchContext {
        LaunchContext {
            patient: response.patient.clone().filter(|p| !p.is_empty()),
            encounter: response.encounter.clone().filter(|e| !e.is_empty()),
            fhir_context: response.fhir_context.clone(),
            need_patient_banner: response.need_patient_banner,
            smart_style_url: response.smart_style_url.clone(),
            intent: response.intent.clone(),
            tenant: response.tenant.clone(),
            extras: response.extra.clone(),
        }
    }

    /// Whether to show a patient banner: the EHR's answer, or yes when it did not say.
    pub fn should_show_patient_banner(&self) -> bool {
        self.need_patient_banner.unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn context_is_typed_and_extras_kept() {
        let response: TokenResponse = serde_json::from_value(json!({
            "access_token": "a", "token_type": "bearer", "patient": "p1", "encounter": "",
            "need_patient_banner": "false", "smart_style_url": "https://ehr/style.json",
            "intent": "summary", "tenant": "t1", "__epic.dstu2.patient": "x"
        }))
        .unwrap();
        let ctx = LaunchContext::from_response(&response);
        assert_eq!(ctx.patient.as_deref(), Some("p1"));
        assert_eq!(ctx.encounter, None);
        assert!(!ctx.should_show_patient_banner());
        assert_eq!(ctx.intent.as_deref(), Some("summary"));
        assert_eq!(ctx.tenant.as_deref(), Some("t1"));
        assert_eq!(ctx.extras.get("__epic.dstu2.patient"), Some(&json!("x")));
        let back: LaunchContext = serde_json::from_value(serde_json::to_value(&ctx).unwrap()).unwrap();
        assert_eq!(back, ctx);
    }
}
