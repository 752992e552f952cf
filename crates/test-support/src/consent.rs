//! The sandbox's authorization pages walked as a user would: a one-cookie browser that never follows redirects
//! and hands back the raw responses (checking every cookie's attributes), its pages' forms read by the one form
//! reader ([`crate::browser::parse_forms`]), and the walk from the authorize request to the redirect back to the
//! app (sign in as the first user offered, pick the first patient and encounter, then approve or deny on the
//! consent page).

use reqwest::StatusCode;
use url::Url;

use crate::browser::parse_forms;

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
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            assert!(
                text.contains("HttpOnly") && text.contains("SameSite=Lax"),
                "{text}"
            );
        }
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

/// The sandbox page's POST form filled in as the user answers it: its action and fields.
pub fn answer(html: &str, decision: Decision) -> (String, Vec<(String, String)>) {
    let action = post_action(html).unwrap_or_else(|| panic!("no form on the page: {html}"));
    let value =
        |name: &str| field(html, name).unwrap_or_else(|| panic!("no field {name} on the page: {html}"));
    let mut form = vec![
        ("txn".to_owned(), value("txn")),
        ("csrf".to_owned(), value("csrf")),
    ];
    let choice = match action.as_str() {
        "/auth/authorize/login" => ("user", value("user")),
        "/auth/authorize/patient" => ("patient", value("patient")),
        "/auth/authorize/encounter" => ("encounter", value("encounter")),
        "/auth/authorize/consent" => {
            let answer = match decision {
                Decision::Approve => "approve",
                Decision::Deny => "deny",
            };
            ("decision", answer.to_owned())
        }
        other => panic!("unexpected form action {other}"),
    };
    form.push((choice.0.to_owned(), choice.1));
    (action, form)
}

/// Walks the pages from `first` until the sandbox redirects to a URL starting with `redirect_prefix`; returns
/// that URL.
pub async fn drive(
    browser: &Browser,
    first: reqwest::Response,
    redirect_prefix: &str,
    decision: Decision,
) -> Url {
    let mut response = first;
    for _ in 0..12 {
        match response.status() {
            StatusCode::SEE_OTHER | StatusCode::FOUND => {
                let to = location(&response);
                if to.starts_with(redirect_prefix) {
                    return Url::parse(&to).unwrap();
                }
                response = browser.get(&to).await;
            }
            StatusCode::OK => {
                let html = response.text().await.unwrap();
                let (action, form) = answer(&html, decision);
                response = browser.post(&action, &form).await;
            }
            status => panic!(
                "the sandbox answered {status}: {}",
                response.text().await.unwrap()
            ),
        }
    }
    panic!("the authorization did not come back to {redirect_prefix}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consent_page_is_answered_with_its_own_fields() {
        let html = r#"<form method="post" action="/auth/authorize/consent">
            <input type="hidden" name="txn" value="t1"><input type="hidden" name="csrf" value="a&amp;b">"#;
        let (action, form) = answer(html, Decision::Deny);
        assert_eq!(action, "/auth/authorize/consent");
        assert_eq!(
            form,
            [("txn", "t1"), ("csrf", "a&b"), ("decision", "deny")].map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!("http://127.0.0.1:9/".origin(), "http://127.0.0.1:9");
    }
}
