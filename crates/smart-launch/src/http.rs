//! The HTTP client used for OAuth and discovery calls, and the reading of their responses.
//!
//! It never follows redirects (a redirected token request could leak the code, the verifier or
//! the client's credentials to another host), and it names the JSON path when a body does not parse.

use std::time::Duration;

use serde::de::DeserializeOwned;
use url::Url;

use crate::error::{Error, truncate_body};
use crate::oauth_error::OAuthErrorBody;

/// Build the HTTP client for OAuth calls: no redirects, bounded time.
pub(crate) fn oauth_client(timeout: Duration) -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .user_agent(concat!("smart-launch/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|source| Error::Config {
            reason: format!("the HTTP client could not be created: {source}"),
        })
}

/// Refuse plain `http` for `url` unless its host is this machine (`localhost`, 127.0.0.0/8, `::1`)
/// or `allow_insecure_http` says otherwise. SMART App Launch requires TLS for every EHR endpoint;
/// loopback stays allowed for local development and tests.
pub fn require_secure(url: &Url, what: &'static str, allow_insecure_http: bool) -> Result<(), Error> {
    if url.scheme() == "https" || allow_insecure_http || is_loopback(url) {
        return Ok(());
    }
    Err(Error::InsecureUrl {
        what,
        url: url.to_string(),
    })
}

/// True when `url`'s host is this machine.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A response read to the end.
pub(crate) struct Body {
    pub url: String,
    pub status: u16,
    pub text: String,
}

impl Body {
    /// Parse the body as JSON of type `T`, naming the failing path.
    pub(crate) fn json<T: DeserializeOwned>(&self, what: &'static str) -> Result<T, Error> {
        let mut de = serde_json::Deserializer::from_str(&self.text);
        serde_path_to_error::deserialize(&mut de).map_err(|e| Error::MalformedResponse {
            what,
            url: self.url.clone(),
            path: e.path().to_string(),
            reason: e.inner().to_string(),
            body: truncate_body(&self.text),
        })
    }

    /// The OAuth `error`, `error_description` and `error_uri` of an error body, when it is JSON and
    /// has them.
    pub(crate) fn oauth_error(&self) -> OAuthErrorBody {
        OAuthErrorBody::parse(&self.text)
    }

    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Send a request and read the whole response. Redirects become [`Error::UnexpectedRedirect`].
pub(crate) async fn send(request: reqwest::RequestBuilder, url: &str) -> Result<Body, Error> {
    let http_err = |source| Error::Http {
        url: url.to_owned(),
        source,
    };
    let response = request.send().await.map_err(http_err)?;
    let status = response.status().as_u16();
    if (300..400).contains(&status) {
        return Err(Error::UnexpectedRedirect {
            url: url.to_owned(),
            status,
        });
    }
    let text = response.text().await.map_err(http_err)?;
    Ok(Body {
        url: url.to_owned(),
        status,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_refused_except_on_this_machine_or_when_allowed() {
        let url = |s: &str| Url::parse(s).unwrap();
        for ok in [
            "https://ehr.example/fhir",
            "http://localhost:9000/fhir",
            "http://127.0.0.1:9000/fhir",
            "http://127.8.0.1/fhir",
            "http://[::1]:9000/fhir",
        ] {
            assert!(require_secure(&url(ok), "FHIR base", false).is_ok(), "{ok}");
        }
        for refused in [
            "http://ehr.example/fhir",
            "http://10.0.0.5/fhir",
            "http://localhost.example/",
        ] {
            let err = require_secure(&url(refused), "FHIR base", false).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InsecureUrl {
                        what: "FHIR base",
                        ..
                    }
                ),
                "{refused}"
            );
            assert!(require_secure(&url(refused), "FHIR base", true).is_ok());
        }
    }
}
