//! What the app recorded of a launch, for the pages that show it: [`LaunchRecord`], the completed launch the
//! session keeps (tokens, context, endpoints, the EHR's look, the signed-in user), and the [`timeline`] of the
//! last launch step by step (the `/inspect/timeline` page).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use smart_launch::{CompletedLaunch, LaunchContext, ScopeSet, SmartConfiguration, TokenSet};
use url::Url;

use crate::style::Theme;

pub mod timeline;

/// How the launch started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LaunchKind {
    /// From the app (`/authorize`).
    Standalone,
    /// From the EHR (`/launch?iss=…&launch=…`).
    Ehr,
}

/// A completed launch, stored server-side in the session (never in a cookie).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchRecord {
    /// Standalone or EHR launch.
    pub kind: LaunchKind,
    /// The tokens, context, id_token claims and scope comparison.
    pub launch: CompletedLaunch,
    /// The server's SMART configuration as discovered at launch time.
    pub endpoints: SmartConfiguration,
    /// The scopes the app asked for.
    pub requested: ScopeSet,
    /// The EHR's look, from `smart_style_url`.
    pub theme: Option<Theme>,
    /// When the code exchange completed.
    pub completed_at: DateTime<Utc>,
    /// The signed-in user as the EHR describes them (the `fhirUser` resource, read with the first summary).
    #[serde(default)]
    pub signed_in_user: Option<SignedInUser>,
}

/// The signed-in user: the `fhirUser` reference and the name its FHIR resource gives.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedInUser {
    /// `Practitioner/123`.
    pub reference: String,
    /// The display name (`Dr. Jane Smith`), when the resource could be read and has one.
    pub name: Option<String>,
}

impl SignedInUser {
    /// The name, else the reference.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.reference)
    }
}

impl LaunchRecord {
    /// The tokens.
    pub fn tokens(&self) -> &TokenSet {
        &self.launch.tokens
    }

    /// The launch context.
    pub fn context(&self) -> &LaunchContext {
        &self.launch.context
    }

    /// The FHIR base the tokens are for.
    pub fn fhir_base(&self) -> &Url {
        &self.launch.tokens.fhir_base
    }
}
