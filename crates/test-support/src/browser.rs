//! A browser-like client for the tests: one cookie jar, redirects followed by hand (every hop recorded), the
//! forms of a page read as a person would fill them in, and the walk through the sandbox's sign-in, pickers and
//! consent by clicking what a user would.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::cookie::Jar;
use url::Url;

/// A response as the tests see it.
#[derive(Debug)]
pub struct Page {
    /// The URL requested.
    pub url: Url,
    /// The status code.
    pub status: u16,
    /// The body, as text.
    pub body: String,
    /// The response headers.
    pub headers: reqwest::header::HeaderMap,
}

impl Page {
    /// The page a response to a request for `url` gives (its cookies checked with [`check_cookies`]).
    pub async fn read(url: Url, response: reqwest::Response) -> Page {
        check_cookies(response.headers());
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        Page {
            url,
            status,
            body,
            headers,
        }
    }

    /// The page's forms ([`parse_forms`]).
    pub fn forms(&self) -> Vec<Form> {
        parse_forms(&self.body)
    }

    /// The `Set-Cookie` headers of the response.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

/// Checks that every cookie a response sets is `HttpOnly` and `SameSite=Lax` (the sandbox's and the app's are).
pub fn check_cookies(headers: &reqwest::header::HeaderMap) {
    for value in headers.get_all(reqwest::header::SET_COOKIE) {
        let text = value.to_str().unwrap();
        assert!(
            text.contains("HttpOnly") && text.contains("SameSite=Lax"),
            "{text}"
        );
    }
}

/// A browser: one cookie jar, redirects followed by hand (every hop recorded).
pub struct Browser {
    /// The HTTP client: the cookie jar, no redirects, a 30 s timeout.
    pub client: reqwest::Client,
    /// Every URL visited, in order.
    pub visited: Mutex<Vec<Url>>,
}

impl Default for Browser {
    fn default() -> Browser {
        Browser::new()
    }
}

impl Browser {
    /// A browser with an empty cookie jar.
    pub fn new() -> Browser {
        let jar = Arc::new(Jar::default());
        Self::with_jar(jar)
    }

    /// A browser holding the cookies of `jar` (shared with the test, or with another browser).
    pub fn with_jar(jar: Arc<Jar>) -> Browser {
        let client = reqwest::Client::builder()
            .cookie_provider(jar)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Browser {
            client,
            visited: Mutex::new(Vec::new()),
        }
    }

    /// One request, no redirect following.
    pub async fn request(&self, method: &str, url: Url, form: Option<Vec<(String, String)>>) -> Page {
        self.visited.lock().unwrap().push(url.clone());
        let mut request = self.client.request(method.parse().unwrap(), url.clone());
        if let Some(form) = form {
            request = request.form(&form);
        }
        Page::read(url, request.send().await.unwrap()).await
    }

    /// Follows redirects (at most 20), stopping early at a URL for which `stop` is true.
    pub async fn navigate_until(
        &self,
        method: &str,
        url: Url,
        form: Option<Vec<(String, String)>>,
        stop: impl Fn(&Url) -> bool,
    ) -> Page {
        let mut page = self.request(method, url, form).await;
        for _ in 0..20 {
            if let Some(post) = auto_submitted_form(&page) {
                // The app's authorize-post page: a browser's script submits it at once.
                page = self
                    .request("POST", page.url.join(&post.action).unwrap(), Some(post.fields))
                    .await;
                continue;
            }
            if !(300..400).contains(&page.status) {
                return page;
            }
            let location = page
                .headers
                .get(reqwest::header::LOCATION)
                .unwrap()
                .to_str()
                .unwrap();
            let next = page.url.join(location).unwrap();
            if stop(&next) {
                return page;
            }
            page = self.request("GET", next, None).await;
        }
        panic!("too many redirects, last at {}", page.url);
    }

    /// Follows redirects (at most 20).
    pub async fn navigate(&self, method: &str, url: Url, form: Option<Vec<(String, String)>>) -> Page {
        self.navigate_until(method, url, form, |_| false).await
    }

    /// `GET url`, following redirects.
    pub async fn get(&self, url: Url) -> Page {
        self.navigate("GET", url, None).await
    }

    /// Submits `form` (its pre-filled fields, the first choice of each radio group, and the button whose
    /// value is `button`, when given) and follows redirects.
    pub async fn submit_until(
        &self,
        page: &Page,
        form: &Form,
        button: Option<&str>,
        stop: impl Fn(&Url) -> bool,
    ) -> Page {
        let action = page.url.join(&form.action).unwrap();
        let mut fields = form.fields.clone();
        if let Some(value) = button {
            let b = form
                .buttons
                .iter()
                .find(|(_, v)| v == value)
                .expect("no such button");
            fields.push(b.clone());
        }
        if form.method == "POST" {
            self.navigate_until("POST", action, Some(fields), stop).await
        } else {
            let mut url = action;
            url.query_pairs_mut().extend_pairs(fields);
            self.navigate_until("GET", url, None, stop).await
        }
    }
}

/// The form a page's script submits on load (`data-auto-submit`), as a browser would send it.
pub fn auto_submitted_form(page: &Page) -> Option<Form> {
    if page.status != 200 || !page.body.contains("data-auto-submit") {
        return None;
    }
    page.forms().into_iter().find(|f| f.method == "POST")
}

/// An HTML form: its action, method, the fields a person would send, and its named buttons.
#[derive(Debug, Clone)]
pub struct Form {
    /// The `action` attribute, as written (relative to the page).
    pub action: String,
    /// `GET` or `POST`.
    pub method: String,
    /// The fields as a person would send them (name, value).
    pub fields: Vec<(String, String)>,
    /// The named buttons (name, value); the one clicked is sent.
    pub buttons: Vec<(String, String)>,
}

/// The attributes of an HTML start tag (names lower-cased, values unescaped).
fn attributes(tag: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = tag.trim_start_matches('<');
    rest = rest.split_once(char::is_whitespace).map(|(_, r)| r).unwrap_or("");
    loop {
        rest = rest.trim_start();
        if rest.is_empty() || rest.starts_with('>') || rest.starts_with("/>") {
            return out;
        }
        let name_end = rest
            .find(|c: char| c == '=' || c.is_whitespace() || c == '>')
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = &rest[name_end..];
        if let Some(after) = rest.strip_prefix('=') {
            let (value, remaining) = if let Some(q) = after.strip_prefix('"') {
                let end = q.find('"').unwrap();
                (&q[..end], &q[end + 1..])
            } else {
                let end = after
                    .find(|c: char| c.is_whitespace() || c == '>')
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            out.push((name, unescape(value)));
            rest = remaining;
        } else {
            out.push((name, String::new()));
        }
    }
}

/// Undoes HTML's character references for the five escaped characters.
fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The value of the attribute `name`.
fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// The forms of a page (inputs, first-checked radios, selects' selected or first option, buttons).
pub fn parse_forms(html: &str) -> Vec<Form> {
    let mut forms = Vec::new();
    let lower = html.to_ascii_lowercase();
    let mut from = 0;
    while let Some(start) = lower[from..].find("<form").map(|i| i + from) {
        let end = lower[start..]
            .find("</form>")
            .map(|i| i + start)
            .unwrap_or(html.len());
        let inner = &html[start..end];
        let open_end = inner.find('>').unwrap();
        let attrs = attributes(&inner[..=open_end]);
        let mut form = Form {
            action: attr(&attrs, "action").unwrap_or("").to_owned(),
            method: attr(&attrs, "method").unwrap_or("get").to_ascii_uppercase(),
            fields: Vec::new(),
            buttons: Vec::new(),
        };
        let mut radios_seen: Vec<String> = Vec::new();
        let mut pos = open_end;
        while let Some(i) = inner[pos..].find('<').map(|i| i + pos) {
            let close = inner[i..].find('>').map(|c| c + i).unwrap_or(inner.len() - 1);
            let tag = &inner[i..=close];
            let tag_lower = tag.to_ascii_lowercase();
            let a = attributes(tag);
            if tag_lower.starts_with("<input") {
                let kind = attr(&a, "type").unwrap_or("text").to_ascii_lowercase();
                let name = attr(&a, "name").map(str::to_owned);
                let value = attr(&a, "value").unwrap_or("").to_owned();
                match (kind.as_str(), name) {
                    ("submit", Some(name)) => form.buttons.push((name, value)),
                    ("radio", Some(name)) => {
                        // The first radio of each group unless a later one is checked.
                        if attr(&a, "checked").is_some() {
                            form.fields.retain(|(n, _)| n != &name);
                            form.fields.push((name.clone(), value));
                            radios_seen.push(name);
                        } else if !radios_seen.contains(&name) && !form.fields.iter().any(|(n, _)| n == &name)
                        {
                            form.fields.push((name, value));
                        }
                    }
                    ("checkbox", Some(name)) if attr(&a, "checked").is_some() => {
                        form.fields.push((name, value))
                    }
                    ("checkbox", _) => {}
                    (_, Some(name)) => form.fields.push((name, value)),
                    _ => {}
                }
            } else if tag_lower.starts_with("<button") {
                if let (Some(name), Some(value)) = (attr(&a, "name"), attr(&a, "value")) {
                    form.buttons.push((name.to_owned(), value.to_owned()));
                }
            } else if tag_lower.starts_with("<select")
                && let Some(name) = attr(&a, "name")
            {
                let select_end = inner[close..]
                    .to_ascii_lowercase()
                    .find("</select>")
                    .map(|e| e + close)
                    .unwrap_or(inner.len());
                let options = &inner[close..select_end];
                let mut first = None;
                let mut selected = None;
                for piece in options.split("<option").skip(1) {
                    let tag_end = piece.find('>').unwrap_or(piece.len());
                    let oa = attributes(&format!("<option{}", &piece[..=tag_end.min(piece.len() - 1)]));
                    let value = attr(&oa, "value").unwrap_or("").to_owned();
                    if first.is_none() {
                        first = Some(value.clone());
                    }
                    if attr(&oa, "selected").is_some() {
                        selected = Some(value);
                    }
                }
                if let Some(v) = selected.or(first) {
                    form.fields.push((name.to_owned(), v));
                }
            }
            pos = close + 1;
        }
        forms.push(form);
        from = end.max(start + 5);
    }
    forms
}

/// The one consent walker: clicks through the sandbox's sign-in, patient picker, optional encounter picker and
/// consent (the first choice of each, as a user who accepts what is offered), answering consent with `decision`
/// ("approve" or "deny"). Starts from an EHR page and returns the first page that is not on the sandbox's
/// origin (normally the app's callback result), or, when a redirect leads to a URL for which `stop` is true,
/// that redirect (its Location is that URL).
pub async fn click_through_ehr(
    browser: &Browser,
    mut page: Page,
    decision: &str,
    stop: &dyn Fn(&Url) -> bool,
) -> Page {
    let ehr_origin = page.url.origin();
    for _ in 0..8 {
        if page.url.origin() != ehr_origin || (300..400).contains(&page.status) {
            return page;
        }
        assert_eq!(
            page.status, 200,
            "the EHR answered {}: {}",
            page.status, page.body
        );
        let forms = page.forms();
        let form = forms
            .iter()
            .find(|f| f.method == "POST")
            .unwrap_or_else(|| panic!("no POST form on {}: {}", page.url, page.body))
            .clone();
        let button = form
            .buttons
            .iter()
            .any(|(n, _)| n == "decision")
            .then_some(decision);
        page = browser.submit_until(&page, &form, button, stop).await;
    }
    panic!(
        "the EHR's pages did not lead back to the app; last at {}",
        page.url
    );
}

/// Where the browser goes from the app's answer to `/authorize` or `/launch`: the redirect's target,
/// or, for the authorize-post form page, where the EHR sends it after the POST.
pub async fn ehr_entry(browser: &Browser, page: &Page) -> Url {
    match auto_submitted_form(page) {
        Some(form) => {
            let action = page.url.join(&form.action).unwrap();
            location(&browser.request("POST", action, Some(form.fields)).await)
        }
        None => location(page),
    }
}

/// A query parameter of a URL (the first of that name).
pub fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The URL in a redirect's Location header.
pub fn location(page: &Page) -> Url {
    let loc = page
        .headers
        .get(reqwest::header::LOCATION)
        .expect("not a redirect")
        .to_str()
        .unwrap();
    page.url.join(loc).unwrap()
}
