//! What a token's scopes allow, turned into decisions the store can apply.
//!
//! `system/` and `user/` scopes see every patient (a `user/` scope of a signed-in *patient* sees only that
//! patient); `patient/` scopes see only the compartment of the patient in context, plus the shared resources
//! (practitioners, organizations, medications) every record points to. v2 constraints such as
//! `?category=…|vital-signs` become search conditions ANDed onto every query, and are checked on each read.
//!
//! Shared resources are read-only to a token confined to one patient: a `patient/Practitioner.u` scope (or a
//! signed-in patient's `user/` scope) would otherwise let one patient's app rename the practitioner every other
//! patient's record points to. Old versions are judged by their own content (the compartment and constraints they
//! had then), never by the current version's: a resource re-filed from one patient to another keeps each
//! patient's versions to that patient.

use super::outcome::OutcomeError;
use crate::auth::AccessGrant;
use crate::registry;
use crate::store::ResourceRow;
use crate::store::search::{self, Condition, Restriction};
use rusqlite::Connection;
use smart_launch::scope::{Permissions, ResourceScope, ScopeConstraints, ScopeContext};

/// A granted token, asked what it may do.
pub(crate) struct Access {
    grant: AccessGrant,
}

/// What one interaction on one type is allowed under.
#[derive(Debug, Clone)]
pub(crate) struct Decision {
    /// Confined to this patient's compartment.
    pub patient: Option<String>,
    /// Only resources matching one of these (AND of ORs) lists.
    pub any_of: Option<Vec<Vec<Vec<Condition>>>>,
}

impl Decision {
    pub(crate) fn restriction(&self) -> Restriction {
        Restriction {
            patient: self.patient.clone(),
            any_of: self.any_of.clone(),
        }
    }
}

fn verb(needed: Permissions) -> &'static str {
    if needed.create {
        "create"
    } else if needed.update {
        "update"
    } else if needed.delete {
        "delete"
    } else if needed.search {
        "search"
    } else {
        "read"
    }
}

impl Access {
    pub(crate) fn new(grant: AccessGrant) -> Self {
        Self { grant }
    }

    /// The contexts that allow `needed` on `resource_type`, most permissive first.
    pub(crate) fn decide(&self, resource_type: &str, needed: Permissions) -> Result<Decision, OutcomeError> {
        let scopes = &self.grant.scopes;
        let mut skipped_shared = false;
        for ctx in [ScopeContext::System, ScopeContext::User, ScopeContext::Patient] {
            let Some(constraints) = scopes.constraints_for(ctx, resource_type, needed) else {
                continue;
            };
            let patient = match ctx {
                ScopeContext::System => None,
                ScopeContext::User => self
                    .grant
                    .fhir_user
                    .as_deref()
                    .and_then(|u| u.strip_prefix("Patient/"))
                    .map(str::to_owned),
                ScopeContext::Patient => match &self.grant.patient {
                    Some(p) => Some(p.clone()),
                    None => {
                        return Err(OutcomeError::Forbidden(
                            "The token has only patient/ scopes but no patient in context, so it can read no patient data. \
                             Launch with `launch/patient` to pick a patient."
                                .into(),
                        ));
                    }
                },
            };
            let any_of = match constraints {
                ScopeConstraints::Unrestricted => None,
                ScopeConstraints::AnyOf(lists) => Some(
                    lists
                        .iter()
                        .map(|list| {
                            list.iter()
                                .map(|(k, v)| constraint(resource_type, k, v))
                                .collect()
                        })
                        .collect(),
                ),
            };
            if patient.is_some() && registry::is_shared(resource_type) && writes(needed) {
                // Shared records are everyone's: a token confined to one patient may read them, not change them.
                skipped_shared = true;
                continue;
            }
            return Ok(Decision { patient, any_of });
        }
        if skipped_shared {
            return Err(OutcomeError::Forbidden(format!(
                "{resource_type} resources are shared by every patient's record, so a token confined to one \
                 patient may read them but not {} them. Use a `user/` scope as a clinician (or a `system/` \
                 scope) to change them.",
                verb(needed)
            )));
        }
        let scope = self.scope_for(resource_type, needed);
        Err(OutcomeError::InsufficientScope {
            message: format!(
                "The token's scopes ({}) do not allow {} of {resource_type} resources. Ask for a scope such as \
                 `{scope}` when launching.",
                self.grant.scopes,
                verb(needed),
            ),
            scope: scope.to_string(),
        })
    }

    /// The scope that would allow `needed` on `resource_type`, in the context this token works in: `patient/`
    /// with a patient in context, `user/` with a signed-in user, else `system/` (a backend service).
    fn scope_for(&self, resource_type: &str, needed: Permissions) -> ResourceScope {
        let context = if self.grant.patient.is_some() {
            ScopeContext::Patient
        } else if self.grant.fhir_user.is_some() {
            ScopeContext::User
        } else {
            ScopeContext::System
        };
        ResourceScope::new(context, resource_type, needed)
    }

    /// Checks that the token may perform `needed` on the stored `row`: the scope, the compartment and the
    /// constraints.
    pub(crate) fn check_row(
        &self,
        conn: &Connection,
        row: &ResourceRow,
        needed: Permissions,
    ) -> Result<(), OutcomeError> {
        if needed == Permissions::READ && self.is_signed_in_user(row) {
            return Ok(());
        }
        let decision = self.decide(&row.resource_type, needed)?;
        self.check_compartment(&decision, row)?;
        if let Some(any_of) = &decision.any_of
            && !search::row_matches(conn, row.rid, &row.resource_type, any_of)?
        {
            return Err(OutcomeError::Forbidden(format!(
                "{} does not match the constraints of the token's scopes ({}).",
                row.reference(),
                self.grant.scopes
            )));
        }
        Ok(())
    }

    /// Checks that the token may perform `needed` on `row`, any version of a resource (current or historical): the
    /// scope, the compartment the version itself belongs to, and the scopes' constraints evaluated on the
    /// version's own content. A deletion marker carries no content: it is judged by its compartment alone.
    pub(crate) fn check_version(&self, row: &ResourceRow, needed: Permissions) -> Result<(), OutcomeError> {
        let decision = self.decide(&row.resource_type, needed)?;
        self.check_compartment(&decision, row)?;
        if let Some(any_of) = &decision.any_of
            && !row.deleted
        {
            let matches = row
                .resource()
                .is_some_and(|resource| search::version_matches(row, &resource, any_of));
            if !matches {
                return Err(OutcomeError::Forbidden(format!(
                    "Version {} of {} does not match the constraints of the token's scopes ({}).",
                    row.version,
                    row.reference(),
                    self.grant.scopes
                )));
            }
        }
        Ok(())
    }

    /// Checks that `row` lies in the compartment `decision` confines the token to (for a deleted resource, the
    /// compartment it was in when it was deleted).
    pub(crate) fn check_compartment(
        &self,
        decision: &Decision,
        row: &ResourceRow,
    ) -> Result<(), OutcomeError> {
        if let Some(patient) = &decision.patient
            && !registry::is_shared(&row.resource_type)
            && row.patient.as_deref() != Some(patient.as_str())
        {
            return Err(OutcomeError::Forbidden(format!(
                "{} (version {}) is outside the compartment of the patient this token is for; its patient/ \
                 scopes do not reach it.",
                row.reference(),
                row.version
            )));
        }
        Ok(())
    }

    /// True when `row` is the signed-in user's own resource and the token was granted `openid fhirUser`: SMART
    /// App Launch 2.2 has the app read the `fhirUser` URL with the access token, so that read is allowed even when
    /// no resource scope covers the user's type (a patient app with only `patient/Observation.rs`, a clinician's
    /// `Practitioner`).
    fn is_signed_in_user(&self, row: &ResourceRow) -> bool {
        use smart_launch::scope::Scope;
        self.grant.scopes.has_openid()
            && self.grant.scopes.contains(&Scope::FhirUser)
            && self.grant.fhir_user.as_deref() == Some(row.reference().as_str())
    }

    /// True when [`Access::check_row`] would pass (for `_include`d and `$everything` resources, which are
    /// silently left out rather than failing the request).
    pub(crate) fn may(
        &self,
        conn: &Connection,
        row: &ResourceRow,
        needed: Permissions,
    ) -> Result<bool, OutcomeError> {
        match self.check_row(conn, row, needed) {
            Ok(()) => Ok(true),
            Err(OutcomeError::Forbidden(_) | OutcomeError::InsufficientScope { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// True when `needed` changes data.
fn writes(needed: Permissions) -> bool {
    needed.create || needed.update || needed.delete
}

/// A scope constraint as search conditions; one the server cannot evaluate matches nothing (fail closed).
fn constraint(resource_type: &str, key: &str, value: &str) -> Vec<Condition> {
    let (name, modifier) = match key.split_once(':') {
        Some((n, m)) => (n, Some(m)),
        None => (key, None),
    };
    search::parse_condition(resource_type, name, modifier, value).unwrap_or_else(|_| vec![Condition::Never])
}
