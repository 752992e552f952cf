//! Personas: the sandbox made to look, on the wire, like a real EHR's SMART and FHIR endpoints, reproduced from
//! the vendors' own public documentation and example payloads.
//!
//! - [`Persona::Smart`] (the default): the sandbox as it has always been, SMART App Launch 2.2 to the letter.
//! - [`Persona::Cerner`]: Oracle Health (Cerner) Millennium R4, after cerner/fhir.cerner.com (`content/` and
//!   `lib/resources/example_json/`).
//! - [`Persona::Epic`]: Epic on FHIR R4, after fhir.epic.com's OAuth 2.0 specification and FHIR tutorial.
//!
//! A persona decides three things. Where the endpoints live (the FHIR base path, the authorization server's paths
//! and, for Cerner, a separate authorization host): [`Persona::fhir_path`] here and `auth::endpoints_for`.
//! What the authorization server answers (token responses, discovery, keys): the `auth` module asks
//! [`Persona`] at each of those points. And how FHIR answers look: `rewrite` reshapes the FHIR server's JSON
//! after the server has decided what the token may see, so the FHIR handlers are the same for every persona and a
//! persona can never widen access — it changes the shape of what was already allowed, and adds only
//! OperationOutcomes.

mod cerner;
mod epic;

use std::{fmt, str::FromStr, time::Duration};

use axum::{
    body::Body,
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use http::{HeaderValue, StatusCode, header};
use serde_json::Value;

use crate::SandboxState;

/// The tenant id of Cerner's public R4 code sandbox, as in every example of fhir.cerner.com
/// (`content/authorization/openid-connect.md`, `lib/resources/example_json/r4_examples_capabilitystatement.rb`).
pub const CERNER_TENANT: &str = "ec2458f2-1e24-41c8-b71b-0e701af7583d";

/// Which EHR the sandbox looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Persona {
    /// The sandbox's own SMART App Launch 2.2 behaviour (the default).
    #[default]
    Smart,
    /// Oracle Health (Cerner) Millennium.
    Cerner,
    /// Epic.
    Epic,
}

impl Persona {
    /// Every persona, in the order `--persona` lists them.
    pub const ALL: [Persona; 3] = [Persona::Smart, Persona::Cerner, Persona::Epic];

    /// The name used by `--persona`.
    pub fn name(self) -> &'static str {
        match self {
            Persona::Smart => "smart",
            Persona::Cerner => "cerner",
            Persona::Epic => "epic",
        }
    }

    /// The path of the FHIR base on the sandbox's host: `/fhir`, Cerner's `/r4/{tenant}`
    /// (`https://fhir-ehr-code.cerner.com/r4/ec2458f2-…`, fhir.cerner.com `content/authorization.md`), Epic's
    /// `/interconnect-fhir-oauth/api/FHIR/R4` (`https://fhir.epic.com/interconnect-fhir-oauth/api/FHIR/R4`,
    /// fhir.epic.com's OAuth 2.0 tutorial).
    pub fn fhir_path(self) -> String {
        match self {
            Persona::Smart => "/fhir".to_owned(),
            Persona::Cerner => format!("/r4/{CERNER_TENANT}"),
            Persona::Epic => "/interconnect-fhir-oauth/api/FHIR/R4".to_owned(),
        }
    }

    /// The access-token lifetime the vendor documents: Cerner's tokens live 570 seconds ("a single token that is
    /// valid for 570 seconds (~10 minutes)", fhir.cerner.com `content/authorization.md`); Epic's examples say
    /// `"expires_in": 3600` (fhir.epic.com OAuth 2.0 tutorial, step 5); the sandbox's own default is 5 minutes.
    pub fn token_ttl(self) -> Duration {
        match self {
            Persona::Smart => Duration::from_secs(5 * 60),
            Persona::Cerner => Duration::from_secs(570),
            Persona::Epic => Duration::from_secs(3600),
        }
    }

    /// True when the authorization server has its own host (Cerner: `authorization.cerner.com` beside
    /// `fhir-ehr-code.cerner.com`). The sandbox then serves it on a second port.
    pub fn splits_authorization_host(self) -> bool {
        self == Persona::Cerner
    }

    /// True when a refresh answers with a new refresh token (rotation). Cerner: "The token response from a
    /// refresh will not contain a new refresh token. The original refresh token from the initial grant response
    /// must be retained." (fhir.cerner.com `content/authorization.md`, "Utilizing Refresh Tokens").
    pub fn rotates_refresh_tokens(self) -> bool {
        self != Persona::Cerner
    }

    /// True when a standalone launch may POST its authorization request. Epic's OAuth 2.0 tutorial has the
    /// standalone app "link (using HTTP GET) to the authorize endpoint", POST being described for EHR launches
    /// only; its discovery here does not list `authorize-post`.
    pub fn accepts_standalone_authorize_post(self) -> bool {
        self != Persona::Epic
    }
}

impl fmt::Display for Persona {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Persona {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Persona::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown persona `{s}`; use smart, cerner or epic"))
    }
}

/// The largest FHIR answer the persona layer reshapes; bigger ones pass through unchanged.
const REWRITE_LIMIT: usize = 64 * 1024 * 1024;

/// Middleware: reshapes the FHIR server's successful JSON answers the way the persona's EHR writes them.
/// Anything that is not a 200 `application/fhir+json` answer under the FHIR base passes through untouched (errors
/// stay the server's own OperationOutcomes).
pub(crate) async fn rewrite(State(state): State<SandboxState>, request: Request, next: Next) -> Response {
    let persona = state.auth().persona();
    if persona == Persona::Smart {
        return next.run(request).await;
    }
    let fhir_path = state.fhir_base().path().trim_end_matches('/').to_owned();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let under_fhir = path == fhir_path || path.starts_with(&format!("{fhir_path}/"));
    let is_fhir_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/fhir+json"));
    if !under_fhir || response.status() != StatusCode::OK || !is_fhir_json || path.contains("/.well-known/") {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, REWRITE_LIMIT).await else {
        // The body could not be read (it was larger than the limit, or the stream failed): nothing to send.
        return Response::from_parts(parts, Body::empty());
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    match persona {
        Persona::Cerner => cerner::reshape(&mut value),
        Persona::Epic => epic::reshape(&mut value),
        Persona::Smart => {}
    }
    let text = match serde_json::to_vec(&value) {
        Ok(text) => text,
        Err(_) => return Response::from_parts(parts, Body::from(bytes)),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    if let Ok(len) = HeaderValue::from_str(&text.len().to_string()) {
        parts.headers.insert(header::CONTENT_LENGTH, len);
    }
    Response::from_parts(parts, Body::from(text))
}

/// Calls `f` on every resource of a FHIR answer: the answer itself when it is a resource, every entry's resource
/// when it is a Bundle (searchset, history, `$everything`).
fn for_each_resource(value: &mut Value, f: &mut impl FnMut(&mut Value)) {
    if value.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
        if let Some(entries) = value.get_mut("entry").and_then(Value::as_array_mut) {
            for entry in entries {
                if let Some(resource) = entry.get_mut("resource") {
                    f(resource);
                }
            }
        }
    } else {
        f(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personas_parse_by_name_and_unknown_ones_are_refused_with_the_choices() {
        assert_eq!("cerner".parse::<Persona>().unwrap(), Persona::Cerner);
        assert_eq!("Epic".parse::<Persona>().unwrap(), Persona::Epic);
        assert_eq!(Persona::default(), Persona::Smart);
        let err = "meditech".parse::<Persona>().unwrap_err();
        assert!(err.contains("smart, cerner or epic"), "{err}");
    }

    #[test]
    fn each_persona_has_its_vendors_base_path_and_token_lifetime() {
        assert_eq!(Persona::Smart.fhir_path(), "/fhir");
        assert_eq!(Persona::Cerner.fhir_path(), format!("/r4/{CERNER_TENANT}"));
        assert_eq!(Persona::Cerner.token_ttl().as_secs(), 570);
        assert!(Persona::Cerner.splits_authorization_host());
        assert!(!Persona::Cerner.rotates_refresh_tokens());
        assert!(Persona::Epic.rotates_refresh_tokens());
    }
}
