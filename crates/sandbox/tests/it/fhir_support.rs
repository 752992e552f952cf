//! Shared setup of the FHIR-server tests: a sandbox, a token from a real launch, and a small FHIR client.

use crate::common::{self, TestSandbox};
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::Value;
use std::collections::HashSet;

/// Observation categories.
pub const CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";

/// A FHIR session: the base URL and a bearer token.
pub struct Fhir {
    pub http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
    /// The patient in context (`patient` of the token response).
    pub patient: Option<String>,
}

/// A response: status, headers, JSON body (`Null` when empty).
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    /// The body as sent (a decimal's text is only here: `body`'s numbers are `f64`).
    pub text: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the body is an OperationOutcome and returns its first diagnostics text.
    pub fn outcome(&self) -> String {
        assert_eq!(self.body["resourceType"], "OperationOutcome", "{}", self.body);
        assert!(
            self.header("content-type")
                .unwrap()
                .starts_with("application/fhir+json")
        );
        self.body["issue"][0]["diagnostics"].as_str().unwrap().to_owned()
    }

    /// The resources of a Bundle with `search.mode` = `mode`.
    pub fn resources(&self, mode: &str) -> Vec<Value> {
        self.body["entry"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["search"]["mode"] == mode)
                    .map(|e| e["resource"].clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn total(&self) -> u64 {
        self.body["total"]
            .as_u64()
            .unwrap_or_else(|| panic!("no total: {}", self.body))
    }

    pub fn next(&self) -> Option<String> {
        self.body["link"]
            .as_array()?
            .iter()
            .find(|l| l["relation"] == "next")
            .and_then(|l| l["url"].as_str())
            .map(str::to_owned)
    }
}

/// Starts a sandbox and launches the test app with `scope`.
pub async fn launch(scope: &str) -> (TestSandbox, Fhir) {
    let ts = common::start().await;
    let fhir = session(&ts, scope).await;
    (ts, fhir)
}

/// A new launch on a running sandbox.
pub async fn session(ts: &TestSandbox, scope: &str) -> Fhir {
    let tokens = common::launch_and_exchange(ts, scope).await;
    Fhir {
        http: common::http_client(),
        base: ts.aud(),
        token: Some(tokens["access_token"].as_str().unwrap().to_owned()),
        patient: tokens["patient"].as_str().map(str::to_owned),
    }
}

impl Fhir {
    /// The same server without a token.
    pub fn anonymous(&self) -> Fhir {
        Fhir {
            http: self.http.clone(),
            base: self.base.clone(),
            token: None,
            patient: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else if path.is_empty() {
            self.base.clone()
        } else {
            format!("{}/{path}", self.base)
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let body = body.map(|b| ("application/fhir+json", b.to_string()));
        self.send_text(method, path, body, headers).await
    }

    /// A JSON Patch (`application/json-patch+json`) of `path`.
    pub async fn patch(&self, path: &str, patch: &Value, headers: &[(&str, &str)]) -> Answer {
        let body = Some(("application/json-patch+json", patch.to_string()));
        self.send_text(Method::PATCH, path, body, headers).await
    }

    /// Sends `body` as (content type, text).
    pub async fn send_text(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, String)>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("accept", "application/fhir+json");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some((content_type, text)) = body {
            request = request.header("content-type", content_type).body(text);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None, &[]).await
    }

    pub async fn ok(&self, path: &str) -> Answer {
        let answer = self.get(path).await;
        assert_eq!(answer.status, StatusCode::OK, "GET {path}: {}", answer.body);
        answer
    }

    /// Follows `next` links from `path`, returning every match; asserts no resource repeats.
    pub async fn all_pages(&self, path: &str) -> (u64, Vec<Value>) {
        let first = self.ok(path).await;
        let total = first.total();
        let mut all = first.resources("match");
        let mut next = first.next();
        let mut pages = 1;
        while let Some(url) = next {
            assert!(
                url.starts_with(&self.base),
                "next link {url} is not on the base {}",
                self.base
            );
            let page = self.ok(&url).await;
            assert_eq!(page.total(), total);
            all.extend(page.resources("match"));
            next = page.next();
            pages += 1;
            assert!(pages < 1000);
        }
        let ids: HashSet<String> = all
            .iter()
            .map(|r| {
                format!(
                    "{}/{}",
                    r["resourceType"].as_str().unwrap(),
                    r["id"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(ids.len(), all.len(), "a resource came twice across pages");
        (total, all)
    }
}

/// The patient a resource belongs to (`subject` or `patient`).
pub fn patient_of(resource: &Value) -> Option<String> {
    let reference = resource.get("subject").or_else(|| resource.get("patient"))?["reference"].as_str()?;
    reference.strip_prefix("Patient/").map(str::to_owned)
}

/// Every patient id in the sandbox's database.
pub fn patient_ids(ts: &TestSandbox) -> Vec<String> {
    ts.running
        .state
        .store()
        .find_patients("", 1000)
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}
