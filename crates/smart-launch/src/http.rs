//! The HTTP client used for OAuth and discovery calls, and the reading of their responses.
//!
//! It never follows redirects (a redirected token request could leak the code, the verifier or
//! the client's credentials to another host), and it names the JSON path when a body does not parse.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::error::{Error, truncate_body};

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

    /// The OAuth `error` and `error_description` of an error body, when it is JSON and has them.
    pub(crate) fn oauth_error(&self) -> (Option<String>, Option<String>) {
        #[derive(serde::Deserialize)]
        struct OAuthError {
            error: Option<String>,
            error_description: Option<String>,
        }
        match serde_json::from_str::<OAuthError>(&self.text) {
            Ok(e) => (e.error, e.error_description),
            Err(_) => (None, None),
        }
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
