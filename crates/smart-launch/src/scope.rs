//! SMART scopes, v1 and v2: parsing, printing, v1→v2 mapping, authorization checks and the
//! comparison of granted against requested scopes.
//!
//! ```
//! use smart_launch::scope::{Permissions, ScopeContext, ScopeSet};
//!
//! let granted: ScopeSet = "launch/patient openid patient/Observation.rs?category=vital-signs patient/Patient.read"
//!     .parse()?;
//! assert!(granted.permits(ScopeContext::Patient, "Patient", Permissions::READ));
//! assert!(granted.permits(ScopeContext::Patient, "Observation", Permissions::SEARCH));
//! assert!(!granted.permits(ScopeContext::Patient, "Observation", Permissions::CREATE));
//! # Ok::<(), smart_launch::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// One scope token.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scope {
    /// `launch`: an EHR launch; the `launch` parameter gives the context.
    Launch,
    /// `launch/patient`: ask for a patient to be selected (standalone launch).
    LaunchPatient,
    /// `launch/encounter`: ask for an encounter to be selected.
    LaunchEncounter,
    /// `openid`: ask for an id_token.
    OpenId,
    /// `fhirUser`: ask for the `fhirUser` claim in the id_token.
    FhirUser,
    /// `profile`: the older (SMART v1) way to ask for the user's identity.
    Profile,
    /// `offline_access`: ask for a refresh token that outlives the session.
    OfflineAccess,
    /// `online_access`: ask for a refresh token valid while the user is online.
    OnlineAccess,
    /// A clinical-data scope such as `patient/Observation.rs`.
    Resource(ResourceScope),
    /// Any other scope, kept as given.
    Other(String),
}

/// Whose data a resource scope is about: the `patient/`, `user/` or `system/` prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScopeContext {
    /// Data about the patient in context.
    Patient,
    /// Data the user may see.
    User,
    /// Data a backend service may see (no user).
    System,
}

impl ScopeContext {
    /// The prefix text, without the slash.
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeContext::Patient => "patient",
            ScopeContext::User => "user",
            ScopeContext::System => "system",
        }
    }

    fn from_prefix(prefix: &str) -> Option<Self> {
        match prefix {
            "patient" => Some(ScopeContext::Patient),
            "user" => Some(ScopeContext::User),
            "system" => Some(ScopeContext::System),
            _ => None,
        }
    }
}

impl fmt::Display for ScopeContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The SMART v2 permissions: create, read, update, delete, search (`cruds`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Permissions {
    /// `c`: create.
    pub create: bool,
    /// `r`: read (and vread, history of an instance).
    pub read: bool,
    /// `u`: update.
    pub update: bool,
    /// `d`: delete.
    pub delete: bool,
    /// `s`: search (and history of a type).
    pub search: bool,
}

impl Permissions {
    /// No permission.
    pub const NONE: Permissions = Permissions {
        create: false,
        read: false,
        update: false,
        delete: false,
        search: false,
    };
    /// `c` only.
    pub const CREATE: Permissions = Permissions {
        create: true,
        ..Permissions::NONE
    };
    /// `r` only.
    pub const READ: Permissions = Permissions {
        read: true,
        ..Permissions::NONE
    };
    /// `u` only.
    pub const UPDATE: Permissions = Permissions {
        update: true,
        ..Permissions::NONE
    };
    /// `d` only.
    pub const DELETE: Permissions = Permissions {
        delete: true,
        ..Permissions::NONE
    };
    /// `s` only.
    pub const SEARCH: Permissions = Permissions {
        search: true,
        ..Permissions::NONE
    };
    /// `cruds`: everything (v1 `*`).
    pub const ALL: Permissions = Permissions {
        create: true,
        read: true,
        update: true,
        delete: true,
        search: true,
    };
    /// `rs`: what v1 `read` means.
    pub const V1_READ: Permissions = Permissions {
        read: true,
        search: true,
        ..Permissions::NONE
    };
    /// `cud`: what v1 `write` means.
    pub const V1_WRITE: Permissions = Permissions {
        create: true,
        update: true,
        delete: true,
        ..Permissions::NONE
    };

    /// True when every permission in `needed` is also in `self`.
    pub fn contains(self, needed: Permissions) -> bool {
        (!needed.create || self.create)
            && (!needed.read || self.read)
            && (!needed.update || self.update)
            && (!needed.delete || self.delete)
            && (!needed.search || self.search)
    }

    /// The permissions in either.
    pub fn union(self, other: Permissions) -> Permissions {
        Permissions {
            create: self.create || other.create,
            read: self.read || other.read,
            update: self.update || other.update,
            delete: self.delete || other.delete,
            search: self.search || other.search,
        }
    }

    /// True when no permission is set.
    pub fn is_empty(self) -> bool {
        self == Permissions::NONE
    }

    /// Parse a v2 permission string: a non-empty subset of `cruds`, in that order.
    pub fn parse_v2(text: &str) -> Option<Permissions> {
        if text.is_empty() {
            return None;
        }
        let mut perms = Permissions::NONE;
        let mut last = 0usize;
        for c in text.chars() {
            let pos = "cruds".find(c)? + 1;
            if pos <= last {
                return None; // out of order or repeated
            }
            last = pos;
            match c {
                'c' => perms.create = true,
                'r' => perms.read = true,
                'u' => perms.update = true,
                'd' => perms.delete = true,
                _ => perms.search = true,
            }
        }
        Some(perms)
    }

    /// Parse a v1 permission (`read`, `write`, `*`) into its v2 meaning.
    pub fn parse_v1(text: &str) -> Option<Permissions> {
        match text {
            "read" => Some(Permissions::V1_READ),
            "write" => Some(Permissions::V1_WRITE),
            "*" => Some(Permissions::ALL),
            _ => None,
        }
    }

    fn v1_text(self) -> Option<&'static str> {
        match self {
            Permissions::V1_READ => Some("read"),
            Permissions::V1_WRITE => Some("write"),
            Permissions::ALL => Some("*"),
            _ => None,
        }
    }
}

impl fmt::Display for Permissions {
    /// The v2 letters, in `cruds` order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (on, c) in [
            (self.create, "c"),
            (self.read, "r"),
            (self.update, "u"),
            (self.delete, "d"),
            (self.search, "s"),
        ] {
            if on {
                f.write_str(c)?;
            }
        }
        Ok(())
    }
}

/// Which SMART version's syntax a resource scope was written in (kept so it prints back as given).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScopeSyntax {
    /// SMART v1: `.read`, `.write`, `.*`.
    V1,
    /// SMART v2: `.cruds` letters, with optional `?query` constraints.
    V2,
}

/// A clinical-data scope: `{context}/{resource type or *}.{permissions}[?constraints]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResourceScope {
    /// `patient`, `user` or `system`.
    pub context: ScopeContext,
    /// A FHIR resource type (`Observation`) or `*` for all.
    pub resource_type: String,
    /// What may be done, in v2 terms (v1 scopes are mapped).
    pub permissions: Permissions,
    /// v2 query constraints, decoded (`category` → `http://…|vital-signs`). Empty = unconstrained.
    pub constraints: Vec<(String, String)>,
    /// The syntax it was written in.
    pub syntax: ScopeSyntax,
}

impl ResourceScope {
    /// A v2 scope without constraints.
    pub fn new(context: ScopeContext, resource_type: impl Into<String>, permissions: Permissions) -> Self {
        ResourceScope {
            context,
            resource_type: resource_type.into(),
            permissions,
            constraints: Vec::new(),
            syntax: ScopeSyntax::V2,
        }
    }

    /// True when the scope's resource type is `resource_type` or `*`.
    pub fn applies_to(&self, resource_type: &str) -> bool {
        self.resource_type == "*" || self.resource_type == resource_type
    }

    /// The same scope written in v2 syntax (`read` → `rs`, `write` → `cud`, `*` → `cruds`).
    pub fn to_v2(&self) -> ResourceScope {
        ResourceScope {
            syntax: ScopeSyntax::V2,
            ..self.clone()
        }
    }

    /// True when this (granted) scope allows everything `requested` asks for on its own.
    pub fn covers(&self, requested: &ResourceScope) -> bool {
        self.context == requested.context
            && (self.resource_type == "*" || self.resource_type == requested.resource_type)
            && self.permissions.contains(requested.permissions)
            && self.constraints_within(requested)
    }

    /// True when every constraint of `self` is also a constraint of `other` (self is no narrower).
    fn constraints_within(&self, other: &ResourceScope) -> bool {
        self.constraints.iter().all(|c| other.constraints.contains(c))
    }

    fn parse(token: &str) -> Result<Option<ResourceScope>, String> {
        let Some((prefix, rest)) = token.split_once('/') else {
            return Ok(None);
        };
        let Some(context) = ScopeContext::from_prefix(prefix) else {
            return Ok(None);
        };
        let (body, query) = match rest.split_once('?') {
            Some((body, query)) => (body, Some(query)),
            None => (rest, None),
        };
        let Some((resource_type, perms)) = body.split_once('.') else {
            return Err("a resource scope needs `.permissions` after the resource type".into());
        };
        let type_ok = resource_type == "*"
            || (resource_type.starts_with(|c: char| c.is_ascii_uppercase())
                && resource_type.chars().all(|c| c.is_ascii_alphanumeric()));
        if !type_ok {
            return Err(format!("{resource_type:?} is not a FHIR resource type or `*`"));
        }
        let (permissions, syntax) = if let Some(p) = Permissions::parse_v1(perms) {
            if query.is_some() {
                return Err("SMART v1 scopes (read/write/*) cannot carry `?` constraints".into());
            }
            (p, ScopeSyntax::V1)
        } else if let Some(p) = Permissions::parse_v2(perms) {
            (p, ScopeSyntax::V2)
        } else {
            return Err(format!(
                "{perms:?} is neither read/write/* (SMART v1) nor letters of `cruds` in that order (SMART v2)"
            ));
        };
        let constraints = match query {
            None => Vec::new(),
            Some("") => return Err("the `?` is followed by no constraint".into()),
            Some(q) => url::form_urlencoded::parse(q.as_bytes()).into_owned().collect(),
        };
        Ok(Some(ResourceScope {
            context,
            resource_type: resource_type.to_owned(),
            permissions,
            constraints,
            syntax,
        }))
    }
}

impl fmt::Display for ResourceScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}.", self.context, self.resource_type)?;
        match (self.syntax, self.permissions.v1_text()) {
            (ScopeSyntax::V1, Some(v1)) if self.constraints.is_empty() => f.write_str(v1),
            _ => {
                write!(f, "{}", self.permissions)?;
                for (i, (k, v)) in self.constraints.iter().enumerate() {
                    f.write_str(if i == 0 { "?" } else { "&" })?;
                    write!(f, "{}={}", QueryPart(k), QueryPart(v))?;
                }
                Ok(())
            }
        }
    }
}

/// Writes a constraint key or value, escaping only what would change its meaning in a scope.
struct QueryPart<'a>(&'a str);

impl fmt::Display for QueryPart<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.bytes() {
            let plain = is_scope_char(b) && !matches!(b, b'&' | b'=' | b'%' | b'+' | b'#');
            if plain {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "%{b:02X}")?;
            }
        }
        Ok(())
    }
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_char(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)
}

impl Scope {
    /// Parse one scope token strictly: malformed resource scopes are errors.
    pub fn parse(token: &str) -> Result<Scope, Error> {
        let invalid = |reason: String| Error::InvalidScope {
            scope: token.to_owned(),
            reason,
        };
        if token.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        if let Some(bad) = token.bytes().find(|b| !is_scope_char(*b)) {
            return Err(invalid(format!(
                "the character {:?} is not allowed in a scope",
                bad as char
            )));
        }
        Self::parse_token(token).map_err(invalid)
    }

    /// Parse one scope token leniently: anything that is not understood becomes [`Scope::Other`].
    pub fn parse_lenient(token: &str) -> Scope {
        Self::parse_token(token).unwrap_or_else(|_| Scope::Other(token.to_owned()))
    }

    fn parse_token(token: &str) -> Result<Scope, String> {
        Ok(match token {
            "launch" => Scope::Launch,
            "launch/patient" => Scope::LaunchPatient,
            "launch/encounter" => Scope::LaunchEncounter,
            "openid" => Scope::OpenId,
            "fhirUser" => Scope::FhirUser,
            "profile" => Scope::Profile,
            "offline_access" => Scope::OfflineAccess,
            "online_access" => Scope::OnlineAccess,
            _ => match ResourceScope::parse(token)? {
                Some(resource) => Scope::Resource(resource),
                None => Scope::Other(token.to_owned()),
            },
        })
    }

    /// The same scope with resource scopes in v2 syntax.
    pub fn to_v2(&self) -> Scope {
        match self {
            Scope::Resource(r) => Scope::Resource(r.to_v2()),
            other => other.clone(),
        }
    }

    /// The resource scope inside, if this is one.
    pub fn as_resource(&self) -> Option<&ResourceScope> {
        match self {
            Scope::Resource(r) => Some(r),
            _ => None,
        }
    }

    /// True when a granted scope `self` gives at least what `requested` asks for.
    fn covers(&self, requested: &Scope) -> bool {
        match (self, requested) {
            (Scope::Resource(g), Scope::Resource(r)) => g.covers(r),
            (g, r) => g == r,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Launch => f.write_str("launch"),
            Scope::LaunchPatient => f.write_str("launch/patient"),
            Scope::LaunchEncounter => f.write_str("launch/encounter"),
            Scope::OpenId => f.write_str("openid"),
            Scope::FhirUser => f.write_str("fhirUser"),
            Scope::Profile => f.write_str("profile"),
            Scope::OfflineAccess => f.write_str("offline_access"),
            Scope::OnlineAccess => f.write_str("online_access"),
            Scope::Resource(r) => r.fmt(f),
            Scope::Other(s) => f.write_str(s),
        }
    }
}

impl FromStr for Scope {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::parse(s)
    }
}

/// What a set of granted scopes says about one kind of access: see [`ScopeSet::constraints_for`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScopeConstraints {
    /// At least one matching scope has no constraints: all resources of the type are allowed.
    Unrestricted,
    /// Only resources matching at least one of these constraint lists (each list is an AND of
    /// `(search parameter, value)` pairs) are allowed.
    AnyOf(Vec<Vec<(String, String)>>),
}

/// An ordered set of scopes without duplicates, as sent in `scope=`.
///
/// Serializes as the space-separated string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeSet {
    scopes: Vec<Scope>,
}

impl ScopeSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse a space-separated scope string strictly (use for scopes you will send or enforce).
    pub fn parse(text: &str) -> Result<ScopeSet, Error> {
        let mut set = ScopeSet::new();
        for token in text.split_whitespace() {
            set.insert(Scope::parse(token)?);
        }
        Ok(set)
    }

    /// Parse a scope string as a server sent it: never fails, unknown or malformed tokens are kept
    /// as [`Scope::Other`].
    pub fn parse_lenient(text: &str) -> ScopeSet {
        text.split_whitespace().map(Scope::parse_lenient).collect()
    }

    /// The tokens of a granted scope string that are not SMART scope grammar: malformed resource
    /// scopes, and vendor API names shaped like a resource type without a context
    /// (`Patient.read`, `Patient.search` in Epic's token responses). Other unknown tokens
    /// (`email`, `urn:…`) are ordinary OAuth scopes and are not listed.
    pub fn not_understood(text: &str) -> Vec<&str> {
        let looks_like_api_name = |token: &str| {
            token.split_once('.').is_some_and(|(head, _)| {
                head.starts_with(|c: char| c.is_ascii_uppercase())
                    && head.chars().all(|c| c.is_ascii_alphanumeric())
            })
        };
        text.split_whitespace()
            .filter(|token| match Scope::parse(token) {
                Err(_) => true,
                Ok(Scope::Other(other)) => looks_like_api_name(&other),
                Ok(_) => false,
            })
            .collect()
    }

    /// Add a scope unless it is already present. Returns true when it was added.
    pub fn insert(&mut self, scope: Scope) -> bool {
        if self.scopes.contains(&scope) {
            return false;
        }
        self.scopes.push(scope);
        true
    }

    /// True when exactly this scope is present.
    pub fn contains(&self, scope: &Scope) -> bool {
        self.scopes.contains(scope)
    }

    /// The scopes, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Scope> {
        self.scopes.iter()
    }

    /// How many scopes.
    pub fn len(&self) -> usize {
        self.scopes.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }

    /// The resource scopes only.
    pub fn resource_scopes(&self) -> impl Iterator<Item = &ResourceScope> {
        self.scopes.iter().filter_map(Scope::as_resource)
    }

    /// True when `openid` is present (an id_token is expected and a nonce is sent).
    pub fn has_openid(&self) -> bool {
        self.contains(&Scope::OpenId)
    }

    /// The same set with every resource scope in v2 syntax.
    pub fn to_v2(&self) -> ScopeSet {
        self.scopes.iter().map(Scope::to_v2).collect()
    }

    /// True when a granted scope allows `needed` on `resource_type` in context `ctx`.
    ///
    /// One scope must allow all of `needed` on its own, so ask for one interaction at a time
    /// (`Permissions::READ` for a read, `Permissions::SEARCH` for a search). Constrained v2 scopes
    /// count: use [`ScopeSet::constraints_for`] to learn what the constraints are.
    pub fn permits(&self, ctx: ScopeContext, resource_type: &str, needed: Permissions) -> bool {
        self.constraints_for(ctx, resource_type, needed).is_some()
    }

    /// The constraints under which `needed` on `resource_type` is allowed, or `None` when it is not.
    pub fn constraints_for(
        &self,
        ctx: ScopeContext,
        resource_type: &str,
        needed: Permissions,
    ) -> Option<ScopeConstraints> {
        let mut any_of = Vec::new();
        for scope in self.resource_scopes() {
            if scope.context != ctx || !scope.applies_to(resource_type) || !scope.permissions.contains(needed)
            {
                continue;
            }
            if scope.constraints.is_empty() {
                return Some(ScopeConstraints::Unrestricted);
            }
            any_of.push(scope.constraints.clone());
        }
        (!any_of.is_empty()).then_some(ScopeConstraints::AnyOf(any_of))
    }

    /// Compare the scopes that were requested (`self`) with those the server granted.
    ///
    /// A requested resource scope counts as granted when granted scopes of the same context,
    /// covering its type, with no narrower constraints, together give every permission it asked
    /// for (so `patient/Observation.read` is satisfied by `patient/*.rs`, and by
    /// `patient/Observation.r` plus `patient/Observation.s`).
    pub fn compare_granted(&self, granted: &ScopeSet) -> ScopeComparison {
        let mut comparison = ScopeComparison::default();
        for requested in &self.scopes {
            if covered_by(requested, granted) {
                comparison.granted.push(requested.clone());
            } else {
                comparison.missing.push(requested.clone());
            }
        }
        for extra in &granted.scopes {
            if !covered_by(extra, self) {
                comparison.extra.push(extra.clone());
            }
        }
        comparison
    }
}

/// True when the scopes in `set` together cover `wanted`.
fn covered_by(wanted: &Scope, set: &ScopeSet) -> bool {
    let Scope::Resource(want) = wanted else {
        return set.scopes.iter().any(|g| g.covers(wanted));
    };
    let union = set
        .resource_scopes()
        .filter(|g| {
            g.context == want.context && g.applies_to(&want.resource_type) && g.constraints_within(want)
        })
        .fold(Permissions::NONE, |acc, g| acc.union(g.permissions));
    union.contains(want.permissions)
}

/// The outcome of [`ScopeSet::compare_granted`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeComparison {
    /// Requested scopes that were granted (possibly by broader scopes).
    pub granted: Vec<Scope>,
    /// Requested scopes that were not (fully) granted.
    pub missing: Vec<Scope>,
    /// Granted scopes that go beyond what was requested.
    pub extra: Vec<Scope>,
}

impl ScopeComparison {
    /// True when everything requested was granted.
    pub fn all_granted(&self) -> bool {
        self.missing.is_empty()
    }

    /// The missing scopes that concern data access (servers often leave out `launch` and the like
    /// from the granted list, which rarely matters; a missing resource scope does).
    pub fn missing_access(&self) -> impl Iterator<Item = &ResourceScope> {
        self.missing.iter().filter_map(Scope::as_resource)
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut set = ScopeSet::new();
        for scope in iter {
            set.insert(scope);
        }
        set
    }
}

impl<'a> IntoIterator for &'a ScopeSet {
    type Item = &'a Scope;
    type IntoIter = std::slice::Iter<'a, Scope>;

    fn into_iter(self) -> Self::IntoIter {
        self.scopes.iter()
    }
}

impl fmt::Display for ScopeSet {
    /// The space-separated scope string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.scopes.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            scope.fmt(f)?;
        }
        Ok(())
    }
}

impl FromStr for ScopeSet {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ScopeSet::parse(s)
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    /// Lenient: a token that is not understood is kept as [`Scope::Other`].
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(Scope::parse_lenient(&text))
    }
}

impl Serialize for ScopeSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ScopeSet {
    /// Lenient, like a server's answer: unknown tokens are kept.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(ScopeSet::parse_lenient(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> ScopeSet {
        ScopeSet::parse(s).unwrap()
    }

    fn resource(s: &str) -> ResourceScope {
        match Scope::parse(s).unwrap() {
            Scope::Resource(r) => r,
            other => panic!("{s} parsed as {other:?}"),
        }
    }

    #[test]
    fn context_scopes_parse_to_their_variants() {
        let s = set(
            "launch launch/patient launch/encounter openid fhirUser profile offline_access online_access",
        );
        assert_eq!(
            s.iter().cloned().collect::<Vec<_>>(),
            vec![
                Scope::Launch,
                Scope::LaunchPatient,
                Scope::LaunchEncounter,
                Scope::OpenId,
                Scope::FhirUser,
                Scope::Profile,
                Scope::OfflineAccess,
                Scope::OnlineAccess
            ]
        );
        assert!(s.has_openid());
    }

    #[test]
    fn v1_scopes_map_to_v2_permissions() {
        assert_eq!(
            resource("patient/Observation.read").permissions,
            Permissions::V1_READ
        );
        assert_eq!(resource("user/Patient.write").permissions, Permissions::V1_WRITE);
        assert_eq!(resource("system/*.*").permissions, Permissions::ALL);
        assert_eq!(
            resource("patient/Observation.read").to_v2().to_string(),
            "patient/Observation.rs"
        );
        assert_eq!(
            resource("user/Patient.write").to_v2().to_string(),
            "user/Patient.cud"
        );
        assert_eq!(resource("system/*.*").to_v2().to_string(), "system/*.cruds");
        assert_eq!(
            set("launch patient/Observation.read").to_v2().to_string(),
            "launch patient/Observation.rs"
        );
    }

    #[test]
    fn v2_scopes_with_constraints_parse_and_print_back() {
        let text = "user/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs";
        let r = resource(text);
        assert_eq!(r.context, ScopeContext::User);
        assert_eq!(r.resource_type, "Observation");
        assert_eq!(r.permissions, Permissions::V1_READ);
        assert_eq!(
            r.constraints,
            vec![(
                "category".to_owned(),
                "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs".to_owned()
            )]
        );
        assert_eq!(r.to_string(), text);
        let two = "patient/Condition.rs?category=problem-list-item&clinical-status=active";
        assert_eq!(resource(two).constraints.len(), 2);
        assert_eq!(resource(two).to_string(), two);
    }

    #[test]
    fn scope_set_round_trips_through_display() {
        let text = "launch/patient openid fhirUser patient/Patient.read patient/Observation.rs offline_access foo:bar";
        assert_eq!(set(text).to_string(), text);
        assert_eq!(text.parse::<ScopeSet>().unwrap(), set(text));
    }

    #[test]
    fn duplicates_are_dropped_and_whitespace_ignored() {
        let s = set("  openid   openid\tlaunch ");
        assert_eq!(s.len(), 2);
        assert_eq!(s.to_string(), "openid launch");
    }

    #[test]
    fn unknown_scopes_are_kept_as_other() {
        let s = set("launch/location smart/orchestrate_launch patient_selection");
        assert!(s.iter().all(|sc| matches!(sc, Scope::Other(_))));
        assert_eq!(
            s.to_string(),
            "launch/location smart/orchestrate_launch patient_selection"
        );
    }

    #[test]
    fn malformed_resource_scopes_are_errors_when_strict() {
        for bad in [
            "patient/Observation",
            "patient/Observation.sr",
            "patient/Observation.rr",
            "patient/Observation.x",
            "patient/Observation.",
            "patient/observation.read",
            "patient/Observation.read?category=x",
            "patient/Observation.rs?",
            "patient/Obs-ervation.rs",
        ] {
            let err = ScopeSet::parse(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidScope { .. }), "{bad}: {err}");
        }
        assert!(ScopeSet::parse("bad\"quote").is_err());
        assert!(ScopeSet::parse("back\\slash").is_err());
    }

    #[test]
    fn malformed_scopes_are_kept_when_lenient() {
        let s = ScopeSet::parse_lenient("patient/Observation.sr patient/Patient.read");
        assert_eq!(
            s.iter().next(),
            Some(&Scope::Other("patient/Observation.sr".into()))
        );
        assert!(s.permits(ScopeContext::Patient, "Patient", Permissions::READ));
    }

    #[test]
    fn permits_checks_context_type_and_permission() {
        let s = set("patient/Observation.rs user/Patient.r patient/*.c");
        assert!(s.permits(ScopeContext::Patient, "Observation", Permissions::READ));
        assert!(s.permits(ScopeContext::Patient, "Observation", Permissions::SEARCH));
        assert!(!s.permits(ScopeContext::Patient, "Observation", Permissions::UPDATE));
        assert!(s.permits(ScopeContext::Patient, "Condition", Permissions::CREATE));
        assert!(!s.permits(ScopeContext::Patient, "Patient", Permissions::READ));
        assert!(s.permits(ScopeContext::User, "Patient", Permissions::READ));
        assert!(!s.permits(ScopeContext::User, "Patient", Permissions::SEARCH));
        assert!(!s.permits(ScopeContext::System, "Observation", Permissions::READ));
        assert!(!ScopeSet::new().permits(ScopeContext::Patient, "Patient", Permissions::READ));
    }

    #[test]
    fn wildcard_v1_scope_permits_everything_in_its_context() {
        let s = set("system/*.*");
        assert!(s.permits(ScopeContext::System, "Encounter", Permissions::ALL));
        assert!(!s.permits(ScopeContext::Patient, "Encounter", Permissions::READ));
    }

    #[test]
    fn constraints_for_reports_unrestricted_or_the_constraint_lists() {
        let s = set("patient/Observation.rs?category=vital-signs patient/Observation.rs?category=laboratory");
        assert_eq!(
            s.constraints_for(ScopeContext::Patient, "Observation", Permissions::SEARCH),
            Some(ScopeConstraints::AnyOf(vec![
                vec![("category".into(), "vital-signs".into())],
                vec![("category".into(), "laboratory".into())],
            ]))
        );
        let mut broader = s.clone();
        broader.insert(Scope::parse("patient/Observation.r").unwrap());
        assert_eq!(
            broader.constraints_for(ScopeContext::Patient, "Observation", Permissions::READ),
            Some(ScopeConstraints::Unrestricted)
        );
        assert_eq!(
            s.constraints_for(ScopeContext::Patient, "Observation", Permissions::DELETE),
            None
        );
    }

    #[test]
    fn comparison_finds_missing_and_extra_scopes() {
        let requested = set("launch/patient openid fhirUser patient/Patient.read patient/Observation.read");
        let granted =
            set("launch/patient openid patient/Patient.rs patient/Observation.r patient/Encounter.rs");
        let cmp = requested.compare_granted(&granted);
        assert!(!cmp.all_granted());
        assert_eq!(
            cmp.missing,
            vec![Scope::FhirUser, Scope::parse("patient/Observation.read").unwrap()]
        );
        assert_eq!(cmp.missing_access().count(), 1);
        assert_eq!(cmp.extra, vec![Scope::parse("patient/Encounter.rs").unwrap()]);
    }

    #[test]
    fn comparison_accepts_broader_and_split_grants() {
        let requested = set("patient/Observation.read?category=vital-signs"
            .replace(".read", ".rs")
            .as_str());
        assert!(requested.compare_granted(&set("patient/*.read")).all_granted());
        assert!(
            requested
                .compare_granted(&set("patient/Observation.r patient/Observation.s"))
                .all_granted()
        );
        // A grant narrower than the request (an extra constraint) does not satisfy it.
        let plain = set("patient/Observation.rs");
        let narrower = set("patient/Observation.rs?category=laboratory");
        assert!(!plain.compare_granted(&narrower).all_granted());
        // A different context does not satisfy it.
        assert!(!plain.compare_granted(&set("user/Observation.rs")).all_granted());
    }

    #[test]
    fn scope_sets_serialize_as_strings() {
        let s = set("openid patient/Observation.rs?code=http://loinc.org|8867-4");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            "\"openid patient/Observation.rs?code=http://loinc.org|8867-4\""
        );
        assert_eq!(serde_json::from_str::<ScopeSet>(&json).unwrap(), s);
    }

    #[test]
    fn constraint_values_with_reserved_characters_are_escaped() {
        let mut r = ResourceScope::new(ScopeContext::Patient, "Observation", Permissions::SEARCH);
        r.constraints.push(("code".into(), "a&b=c d".into()));
        let text = r.to_string();
        assert_eq!(text, "patient/Observation.s?code=a%26b%3Dc%20d");
        let back = resource(&text);
        assert_eq!(back.constraints, r.constraints);
    }

    #[test]
    fn permissions_print_in_cruds_order() {
        assert_eq!(Permissions::ALL.to_string(), "cruds");
        assert_eq!(Permissions::V1_WRITE.to_string(), "cud");
        assert_eq!(Permissions::parse_v2("rs"), Some(Permissions::V1_READ));
        assert_eq!(Permissions::parse_v2(""), None);
        assert!(Permissions::ALL.contains(Permissions::DELETE));
        assert!(!Permissions::READ.contains(Permissions::V1_READ));
    }
}
