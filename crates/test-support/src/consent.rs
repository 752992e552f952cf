//! The sandbox's authorization pages as its own tests and smart-launch's meet them: a browser (the cookie jar of
//! [`crate::browser::Browser`]) that follows no redirects and hands back the raw responses, checking every
//! cookie's attributes; the pages' fields read by the one form reader ([`crate::browser::parse_forms`]); and
//! [`drive`], the walk from the authorize request to the redirect back to the app by the one consent walker
//! ([`crate::browser::click_through_ehr`]: sign in as the first user offered, pick the first patient and
//! encounter, then approve or deny on the consent page).

use reqwest::StatusCode;
use url::Url;

use crate::browser::{Page, check_cookies, click_through_ehr, location as page_location, parse_forms};

/// The user's answer on the consent page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// "Allow".
    Approve,
    /// "Deny".
    Deny,
}

/// What a [`Browser`] resolves relative URLs against (`http://host:port`).
pub trait Origin {
    /// The origin, without a trailing slash.
    fn origin(&self) -> String;
}

impl Origin for str {
    fn origin(&self) -> String {
        self.trim_end_matches('/').to_owned()
    }
}

impl Origin for String {
    fn origin(&self) -> String {
        self.as_str().origin()
    }
}

/// A browser that hands back raw responses and follows no redirects (the test reads each `Location` itself):
/// the cookie jar of a [`crate::browser::Browser`] and an origin that paths are resolved against. Every cookie
/// the sandbox sets is checked to be `HttpOnly` and `SameSite=Lax`.
pub struct Browser {
    jar: crate::browser::Browser,
    origin: String,
}

impl Browser {
    /// A browser on `origin` (a test sandbox, or `"http://host:port"`).
    pub fn new<O: Origin + ?Sized>(origin: &O) -> Browser {
        Browser {
            jar: crate::browser::Browser::new(),
            origin: origin.origin(),
        }
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with('/') {
            format!("{}{url}", self.origin)
        } else {
            url.to_owned()
        }
    }

    /// Sends `request` (built on the jar's client), checks the cookies it sets.
    async fn send(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let response = request.send().await.unwrap();
        check_cookies(response.headers());
        response
    }

    /// `GET url` (absolute, or a path on the origin) with the browser's cookies.
    pub async fn get(&self, url: &str) -> reqwest::Response {
        let request = self.jar.client.get(self.absolute(url));
        self.send(request).await
    }

    /// `POST url` with a form body and the browser's cookies.
    pub async fn post(&self, url: &str, form: &[(String, String)]) -> reqwest::Response {
        let request = self.jar.client.post(self.absolute(url)).form(form);
        self.send(request).await
    }
}

/// An HTTP client that never follows redirects.
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `Location` of a response (panics when it has none).
pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location in a {} response", response.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The value of the first field `name` in a page's forms (read by [`parse_forms`]).
pub fn field(html: &str, name: &str) -> Option<String> {
    parse_forms(html)
        .into_iter()
        .flat_map(|form| form.fields)
        .find(|(field, _)| field == name)
        .map(|(_, value)| value)
}

/// The action of the page's first POST form.
pub fn post_action(html: &str) -> Option<String> {
    parse_forms(html)
        .into_iter()
        .find(|form| form.method == "POST")
        .map(|form| form.action)
}

impl Decision {
    /// The value of the consent page's button for this answer.
    pub fn button(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
        }
    }
}

/// Walks the pages from `first` (the sandbox's answer to an authorize request) with the one consent walker
/// ([`click_through_ehr`]) until the sandbox redirects to a URL starting with `redirect_prefix`; returns that
/// URL.
pub async fn drive(
    browser: &Browser,
    first: reqwest::Response,
    redirect_prefix: &str,
    decision: Decision,
) -> Url {
    let stop = |url: &Url| url.as_str().starts_with(redirect_prefix);
    let mut page = Page::read(first.url().clone(), first).await;
    if (300..400).contains(&page.status) && !stop(&page_location(&page)) {
        page = browser
            .jar
            .navigate_until("GET", page_location(&page), None, stop)
            .await;
    }
    if page.status == StatusCode::OK.as_u16() {
        page = click_through_ehr(&browser.jar, page, decision.button(), &stop).await;
    }
    assert!(
        (300..400).contains(&page.status),
        "the sandbox answered {} at {}: {}",
        page.status,
        page.url,
        page.body
    );
    let back = page_location(&page);
    assert!(
        stop(&back),
        "the authorization did not come back to {redirect_prefix}: {back}"
    );
    back
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pages_fields_and_post_action_are_read_from_its_forms() {
        let html = r#"<form method="get" action="/auth/authorize/step"><input type="hidden" name="txn" value="t1">
            </form><form method="post" action="/auth/authorize/consent">
            <input type="hidden" name="txn" value="t1"><input type="hidden" name="csrf" value="a&amp;b"></form>"#;
        assert_eq!(post_action(html).as_deref(), Some("/auth/authorize/consent"));
        assert_eq!(field(html, "csrf").as_deref(), Some("a&b"));
        assert_eq!(field(html, "user"), None);
        assert_eq!(Decision::Deny.button(), "deny");
        assert_eq!("http://127.0.0.1:9/".origin(), "http://127.0.0.1:9");
    }
}
