//! Cross-origin requests (CORS), as SMART App Launch 2.2 asks of a server that offers `client-public`: browser
//! apps must be able to read discovery, call the token endpoint and call the FHIR API from their own origin.
//!
//! - Discovery (`.well-known/smart-configuration`, `.well-known/openid-configuration`, the style), the JWK Set
//!   and `/metadata` answer any origin: they are public documents.
//! - The token, introspection and revocation endpoints and the FHIR API answer the origins of registered clients
//!   (the origins of their redirect and launch URIs; any loopback origin under open registration).
//! - The sign-in pages behind `/authorize` are navigated to, never fetched: they send no CORS headers.
//!
//! Preflights (`OPTIONS` with `Access-Control-Request-Method`) are answered by the layer itself, before routing.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, header, request::Parts};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::Layout;
use crate::SandboxState;

/// Which CORS policy a path falls under.
#[derive(Debug, PartialEq, Eq)]
enum Policy {
    AnyOrigin,
    RegisteredOrigins,
    None,
}

fn policy(path: &str, layout: &Layout, fhir_path: &str) -> Policy {
    let public = path.ends_with("/.well-known/smart-configuration")
        || path.ends_with("/.well-known/openid-configuration")
        || path.ends_with("/.well-known/smart-style.json")
        || path == format!("{fhir_path}/metadata")
        || path == layout.jwks;
    if public {
        return Policy::AnyOrigin;
    }
    let api = path == layout.token
        || path == layout.introspect
        || path == layout.revoke
        || path == fhir_path
        || path.starts_with(&format!("{fhir_path}/"));
    if api {
        Policy::RegisteredOrigins
    } else {
        Policy::None
    }
}

/// The sandbox's CORS layer (see the module documentation).
pub(crate) fn cors_layer(state: SandboxState) -> CorsLayer {
    let persona = state.auth().persona();
    let layout = std::sync::Arc::new(Layout::of(persona));
    let fhir_path = persona.fhir_path();
    let allow = AllowOrigin::predicate(move |origin: &HeaderValue, parts: &Parts| {
        match policy(parts.uri.path(), &layout, &fhir_path) {
            Policy::AnyOrigin => true,
            Policy::RegisteredOrigins => origin
                .to_str()
                .is_ok_and(|o| state.auth().is_registered_origin(o)),
            Policy::None => false,
        }
    });
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::HEAD,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            HeaderName::from_static("prefer"),
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::LAST_MODIFIED,
            header::CONTENT_LOCATION,
            header::RETRY_AFTER,
            header::WWW_AUTHENTICATE,
        ])
        .max_age(Duration::from_secs(600))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persona::Persona;

    #[test]
    fn discovery_and_metadata_are_public_the_api_is_for_registered_origins_and_pages_get_nothing() {
        let layout = Layout::of(Persona::Smart);
        let p = |path: &str| policy(path, &layout, "/fhir");
        assert_eq!(p("/fhir/.well-known/smart-configuration"), Policy::AnyOrigin);
        assert_eq!(p("/fhir/.well-known/openid-configuration"), Policy::AnyOrigin);
        assert_eq!(p("/fhir/metadata"), Policy::AnyOrigin);
        assert_eq!(p("/auth/jwks"), Policy::AnyOrigin);
        assert_eq!(p("/auth/token"), Policy::RegisteredOrigins);
        assert_eq!(p("/fhir/Patient/1"), Policy::RegisteredOrigins);
        assert_eq!(p("/auth/authorize"), Policy::None);
        assert_eq!(p("/auth/authorize/consent"), Policy::None);
    }
}
