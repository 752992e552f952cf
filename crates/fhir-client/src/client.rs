//! [`FhirClient`]: the FHIR R4 RESTful interactions over HTTP.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, Stream, StreamExt, TryStreamExt};
use reqwest::Method;
use reqwest::header::{self, HeaderValue};
use serde_json::Value;
use smart_launch::TokenSource;
use url::Url;

use crate::error::{FhirError, coded_text};
use crate::model::{self, Read, type_name};
use crate::observe::RequestObserver;
use crate::paging::{SearchPage, is_under_base, resources_from_slice};
use crate::r4::{Bundle, CapabilityStatement, Mode, Resource, ResourceType};
use crate::reference::{
    LiteralReference, ReferenceTarget, find_contained, find_in_bundle, is_id, parse_reference,
};
use crate::request::{Answer, Call, FHIR_JSON, Interaction, Transport};
use crate::retry::RetryPolicy;
use crate::search::SearchParams;

/// A client for one FHIR R4 server (its base URL), cheap to clone (an `Arc` inside).
///
/// Every request sends `Accept: application/fhir+json` and, when a token source is set, a
/// bearer token; it never follows HTTP redirects and never sends the token outside the base.
#[derive(Clone)]
pub struct FhirClient {
    inner: Arc<Inner>,
}

struct Inner {
    base: Url,
    transport: Transport,
}

impl std::fmt::Debug for FhirClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FhirClient")
            .field("base", &self.inner.base.as_str())
            .field("authorized", &self.inner.transport.auth.is_some())
            .finish()
    }
}

/// Builds a [`FhirClient`]; start with [`FhirClient::builder`].
#[must_use]
pub struct FhirClientBuilder {
    base: String,
    auth: Option<Arc<dyn TokenSource>>,
    retry: RetryPolicy,
    timeout: Duration,
    connect_timeout: Duration,
    pool: Option<HttpPool>,
    observer: Option<Arc<dyn RequestObserver>>,
}

/// An HTTP connection pool that many [`FhirClient`]s can share (for example one client per user session, each
/// with its own tokens), so that each does not open new connections and a new TLS set-up.
///
/// It never follows redirects (a token must not travel to where a redirect points). Cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpPool {
    http: reqwest::Client,
}

impl HttpPool {
    /// A pool whose connections time out after `connect_timeout` while connecting.
    pub fn new(connect_timeout: Duration) -> Result<Self, FhirError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect_timeout)
            .user_agent(concat!("smart-fhir/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(FhirError::HttpClient)?;
        Ok(Self { http })
    }
}

impl FhirClientBuilder {
    /// Send requests over `pool`'s connections instead of a pool of this client's own (the connect timeout is
    /// then the pool's).
    pub fn pool(mut self, pool: HttpPool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Authorize every request with tokens from `source` (e.g. a completed SMART launch).
    pub fn token_source(mut self, source: Arc<dyn TokenSource>) -> Self {
        self.auth = Some(source);
        self
    }

    /// How failed requests are retried (default: [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The timeout of each request attempt (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The connect timeout (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Report every request (each attempt) to `observer`: method, URL without tokens, status,
    /// latency, bytes ([`crate::observe`]).
    pub fn observer(mut self, observer: Arc<dyn RequestObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Check the base URL and build the client.
    pub fn build(self) -> Result<FhirClient, FhirError> {
        let invalid = |reason: &str| FhirError::InvalidBaseUrl {
            url: self.base.clone(),
            reason: reason.to_owned(),
        };
        let mut base = Url::parse(self.base.trim()).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(invalid("it must be an http or https URL with a host"));
        }
        if base.query().is_some() || base.fragment().is_some() || !base.username().is_empty() {
            return Err(invalid("it must not have a query, fragment or user name"));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = match self.pool {
            Some(pool) => pool.http,
            None => HttpPool::new(self.connect_timeout)?.http,
        };
        let transport = Transport {
            http,
            auth: self.auth,
            retry: self.retry,
            timeout: self.timeout,
            observer: self.observer,
        };
        Ok(FhirClient {
            inner: Arc::new(Inner { base, transport }),
        })
    }
}

fn interaction(
    name: &'static str,
    resource_type: Option<&str>,
    permission: &'static str,
    idempotent: bool,
) -> Interaction {
    Interaction {
        name,
        resource_type: resource_type.map(str::to_owned),
        permission,
        idempotent,
    }
}

impl FhirClient {
    /// Start building a client for the FHIR server at `base` (e.g. `https://ehr.example/fhir`).
    pub fn builder(base: impl Into<String>) -> FhirClientBuilder {
        FhirClientBuilder {
            base: base.into(),
            auth: None,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            pool: None,
            observer: None,
        }
    }

    /// A client for an open server (no authorization), with default settings.
    pub fn open(base: impl Into<String>) -> Result<Self, FhirError> {
        Self::builder(base).build()
    }

    /// A client that authorizes requests with tokens from `source`, with default settings.
    pub fn with_token_source(
        base: impl Into<String>,
        source: Arc<dyn TokenSource>,
    ) -> Result<Self, FhirError> {
        Self::builder(base).token_source(source).build()
    }

    /// The request machinery (for the Bulk Data client's own requests).
    pub(crate) fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    /// The FHIR base URL (always ending in `/`).
    pub fn base(&self) -> &Url {
        &self.inner.base
    }

    /// `base` + path segments, each percent-encoded (an id cannot escape its segment).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    fn check_id(id: &str) -> Result<(), FhirError> {
        if is_id(id) {
            Ok(())
        } else {
            Err(FhirError::InvalidInput(format!(
                "{id:?} is not a FHIR id (letters, digits, '-' and '.', at most 64)."
            )))
        }
    }

    async fn get(&self, url: Url, interaction: Interaction) -> Result<Answer, FhirError> {
        self.inner
            .transport
            .execute(Call {
                method: Method::GET,
                url,
                body: None,
                headers: Vec::new(),
                interaction,
            })
            .await
    }

    /// Read an answer as the resource `R` (tolerantly; its `resourceType` must be `R`'s).
    fn typed<R: ResourceType>(answer: &Answer) -> Result<R, FhirError> {
        model::read::<R>(&answer.body, &answer.url, Mode::Tolerant).map(|read| read.resource)
    }

    // ---- read ----

    /// `GET [base]/[type]/[id]`: read the current version of a resource, tolerantly: an element
    /// that does not fit the R4 model (Cerner's documented `telecom[].rank` of `"1"`) is kept
    /// aside as an unknown member and logged once at `warn` with its FHIR path; only malformed JSON
    /// or another resource type fails. [`Self::read_with`] also returns what did not fit.
    pub async fn read<R: ResourceType>(&self, id: &str) -> Result<R, FhirError> {
        self.read_with(id, Mode::Tolerant).await.map(|read| read.resource)
    }

    /// [`Self::read`] in a chosen mode, with the problems found: [`Mode::Strict`] fails with
    /// [`FhirError::InvalidBody`] naming the first problem's FHIR path.
    pub async fn read_with<R: ResourceType>(&self, id: &str, mode: Mode) -> Result<Read<R>, FhirError> {
        let ty = type_name::<R>();
        Self::check_id(id)?;
        let answer = self
            .get(self.url(&[ty, id]), interaction("read", Some(ty), "r", true))
            .await?;
        model::read(&answer.body, &answer.url, mode)
    }

    /// `GET [base]/[type]/[id]` for a type known only at run time.
    pub async fn read_any(&self, resource_type: &str, id: &str) -> Result<Resource, FhirError> {
        Self::check_id(id)?;
        let answer = self
            .get(
                self.url(&[resource_type, id]),
                interaction("read", Some(resource_type), "r", true),
            )
            .await?;
        any_of_type(&answer, resource_type)
    }

    /// `GET [base]/[type]/[id]/_history/[vid]`: read one version.
    pub async fn vread<R: ResourceType>(&self, id: &str, version: &str) -> Result<R, FhirError> {
        let ty = type_name::<R>();
        Self::check_id(id)?;
        Self::check_id(version)?;
        let url = self.url(&[ty, id, "_history", version]);
        let answer = self.get(url, interaction("vread", Some(ty), "r", true)).await?;
        Self::typed(&answer)
    }

    /// `GET [base]/[type]/[id]/_history` (or the type's history when `id` is `None`).
    pub async fn history<R: ResourceType>(&self, id: Option<&str>) -> Result<Bundle, FhirError> {
        let ty = type_name::<R>();
        let url = match id {
            Some(id) => {
                Self::check_id(id)?;
                self.url(&[ty, id, "_history"])
            }
            None => self.url(&[ty, "_history"]),
        };
        let answer = self.get(url, interaction("history", Some(ty), "r", true)).await?;
        decode_bundle(&answer)
    }

    /// `GET [base]/metadata`: the server's CapabilityStatement.
    pub async fn capabilities(&self) -> Result<CapabilityStatement, FhirError> {
        let answer = self
            .get(
                self.url(&["metadata"]),
                interaction("capabilities", None, "r", true),
            )
            .await?;
        Self::typed(&answer)
    }

    // ---- search ----

    /// `GET [base]/[type]?params`: the first page of results, matches typed as `R`.
    pub async fn search<R: ResourceType>(&self, params: &SearchParams) -> Result<SearchPage<R>, FhirError> {
        let ty = type_name::<R>();
        let answer = self.search_answer(ty, params).await?;
        SearchPage::from_slice(&answer.body, &answer.url, Mode::Tolerant)
    }

    /// `GET [base]/[type]?params`, the searchset Bundle as sent.
    pub async fn search_bundle(
        &self,
        resource_type: &str,
        params: &SearchParams,
    ) -> Result<Bundle, FhirError> {
        decode_bundle(&self.search_answer(resource_type, params).await?)
    }

    async fn search_answer(&self, resource_type: &str, params: &SearchParams) -> Result<Answer, FhirError> {
        let mut url = self.url(&[resource_type]);
        if !params.pairs().is_empty() {
            url.set_query(Some(&params.to_query()));
        }
        self.get(url, interaction("search", Some(resource_type), "s", true))
            .await
    }

    /// `POST [base]/[type]/_search` with the parameters as a form body (keeps them out of URLs
    /// and logs).
    pub async fn search_post<R: ResourceType>(
        &self,
        params: &SearchParams,
    ) -> Result<SearchPage<R>, FhirError> {
        let ty = type_name::<R>();
        let call = Call {
            method: Method::POST,
            url: self.url(&[ty, "_search"]),
            body: Some((
                params.to_query().into_bytes(),
                "application/x-www-form-urlencoded",
            )),
            headers: Vec::new(),
            interaction: interaction("search", Some(ty), "s", true),
        };
        let answer = self.inner.transport.execute(call).await?;
        SearchPage::from_slice(&answer.body, &answer.url, Mode::Tolerant)
    }

    /// Fetch the page after `bundle` (its `next` link), or `None` on the last page. Links
    /// outside this client's base are refused with [`FhirError::ForeignUrl`].
    pub async fn next_page(&self, bundle: &Bundle) -> Result<Option<Bundle>, FhirError> {
        match bundle.link_url("next") {
            Some(link) => self.get_page(link, None).await.map(Some),
            None => Ok(None),
        }
    }

    async fn get_page(&self, link: &str, resource_type: Option<&str>) -> Result<Bundle, FhirError> {
        decode_bundle(&self.get_link(link, resource_type).await?)
    }

    /// `GET` a paging link, refused unless it lies under the base.
    async fn get_link(&self, link: &str, resource_type: Option<&str>) -> Result<Answer, FhirError> {
        let url = self.checked_url(link)?;
        self.get(url, interaction("search", resource_type, "s", true))
            .await
    }

    /// Resolve `link` against the base and refuse it unless it lies under the base.
    fn checked_url(&self, link: &str) -> Result<Url, FhirError> {
        let url = self.inner.base.join(link).map_err(|e| FhirError::Reference {
            reference: link.to_owned(),
            reason: e.to_string(),
        })?;
        if is_under_base(&url, &self.inner.base) {
            Ok(url)
        } else {
            Err(FhirError::ForeignUrl {
                url: url.to_string(),
                base: self.inner.base.to_string(),
            })
        }
    }

    /// Every page of a search, following `next` links (same origin and base only; a foreign
    /// link ends the stream with [`FhirError::ForeignUrl`]).
    pub fn search_pages<R: ResourceType + Send + 'static>(
        &self,
        params: SearchParams,
    ) -> impl Stream<Item = Result<SearchPage<R>, FhirError>> + Send + 'static {
        let ty = type_name::<R>();
        self.pages(ty, Some(params), None, move |answer: &Answer| {
            let page = SearchPage::<R>::from_slice(&answer.body, &answer.url, Mode::Tolerant)?;
            let next = page.next.clone();
            Ok((page, next))
        })
    }

    /// Every matching resource of a search, across all pages.
    pub fn search_all<R: ResourceType + Send + 'static>(
        &self,
        params: SearchParams,
    ) -> impl Stream<Item = Result<R, FhirError>> + Send + 'static {
        self.search_pages::<R>(params)
            .map_ok(|page| stream::iter(page.matches.into_iter().map(Ok)))
            .try_flatten()
    }

    /// Pages starting at a search (`params`) or a URL (`start`), each parsed by `parse` into a
    /// page and its `next` link.
    fn pages<P, F>(
        &self,
        resource_type: &'static str,
        params: Option<SearchParams>,
        start: Option<Url>,
        parse: F,
    ) -> impl Stream<Item = Result<P, FhirError>> + Send + 'static
    where
        P: Send + 'static,
        F: Fn(&Answer) -> Result<(P, Option<String>), FhirError> + Clone + Send + Sync + 'static,
    {
        enum Next {
            Search(&'static str, SearchParams),
            Url(Url),
            Link(String),
            Done,
        }
        let first = match (params, start) {
            (_, Some(url)) => Next::Url(url),
            (Some(params), None) => Next::Search(resource_type, params),
            (None, None) => Next::Done,
        };
        let client = self.clone();
        stream::try_unfold(first, move |next| {
            let client = client.clone();
            let parse = parse.clone();
            async move {
                let answer = match next {
                    Next::Done => return Ok(None),
                    Next::Search(ty, params) => client.search_answer(ty, &params).await?,
                    Next::Url(url) => {
                        client
                            .get(url, interaction("search", Some(resource_type), "s", true))
                            .await?
                    }
                    Next::Link(link) => client.get_link(&link, Some(resource_type)).await?,
                };
                let (page, next_link) = parse(&answer)?;
                let following = match next_link {
                    Some(link) => Next::Link(link),
                    None => Next::Done,
                };
                Ok(Some((page, following)))
            }
        })
    }

    /// `GET [base]/Patient/[id]/$everything`: the first page of the patient's record.
    pub async fn patient_everything(&self, patient_id: &str) -> Result<Bundle, FhirError> {
        self.patient_everything_with(patient_id, &EverythingParams::default())
            .await
    }

    /// `GET [base]/Patient/[id]/$everything?params`: the first page of the part of the patient's
    /// record that `params` asks for. Values that are not valid FHIR are refused
    /// ([`FhirError::InvalidInput`]) before anything is sent.
    pub async fn patient_everything_with(
        &self,
        patient_id: &str,
        params: &EverythingParams,
    ) -> Result<Bundle, FhirError> {
        let url = self.everything_url(patient_id, params)?;
        let answer = self
            .get(url, interaction("$everything", Some("Patient"), "r", true))
            .await?;
        decode_bundle(&answer)
    }

    /// Every resource of `Patient/[id]/$everything`, across all pages.
    pub fn patient_everything_all(
        &self,
        patient_id: &str,
    ) -> impl Stream<Item = Result<Resource, FhirError>> + Send + 'static + use<> {
        self.patient_everything_all_with(patient_id, &EverythingParams::default())
    }

    /// Every resource of `Patient/[id]/$everything?params`, across all pages (the server's `next`
    /// links carry the parameters on). Invalid parameters end the stream at once with
    /// [`FhirError::InvalidInput`].
    pub fn patient_everything_all_with(
        &self,
        patient_id: &str,
        params: &EverythingParams,
    ) -> impl Stream<Item = Result<Resource, FhirError>> + Send + 'static + use<> {
        let pages = match self.everything_url(patient_id, params) {
            Ok(url) => self
                .pages("Patient", None, Some(url), |answer: &Answer| {
                    resources_from_slice(&answer.body, &answer.url)
                })
                .boxed(),
            Err(e) => stream::once(async move { Err(e) }).boxed(),
        };
        pages
            .map_ok(|resources| stream::iter(resources.into_iter().map(Ok)))
            .try_flatten()
    }

    /// `[base]/Patient/[id]/$everything` with `params` in its query (none when there are none).
    fn everything_url(&self, patient_id: &str, params: &EverythingParams) -> Result<Url, FhirError> {
        Self::check_id(patient_id)?;
        let pairs = params.pairs()?;
        let mut url = self.url(&["Patient", patient_id, "$everything"]);
        if !pairs.is_empty() {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        Ok(url)
    }

    // ---- write ----

    /// `POST [base]/[type]`: create `resource` (any `id` it has is ignored by the server) and
    /// return what the server stored (with its id and `meta.versionId`).
    pub async fn create<R: ResourceType>(&self, resource: &R) -> Result<R, FhirError> {
        let ty = type_name::<R>();
        let (body, _) = resource_body(resource);
        let call = Call {
            method: Method::POST,
            url: self.url(&[ty]),
            body: Some((body, FHIR_JSON)),
            headers: vec![(
                header::HeaderName::from_static("prefer"),
                HeaderValue::from_static("return=representation"),
            )],
            interaction: interaction("create", Some(ty), "c", false),
        };
        let answer = self.inner.transport.execute(call).await?;
        self.written(answer, ty).await
    }

    /// `PUT [base]/[type]/[id]`: replace the resource unconditionally (its `id` must be set).
    pub async fn update<R: ResourceType>(&self, resource: &R) -> Result<R, FhirError> {
        self.put(resource, false).await
    }

    /// `PUT` with `If-Match: W/"<meta.versionId>"`: replace the resource only if nobody changed
    /// it since it was read; otherwise [`FhirError::VersionConflict`].
    pub async fn update_if_unchanged<R: ResourceType>(&self, resource: &R) -> Result<R, FhirError> {
        self.put(resource, true).await
    }

    async fn put<R: ResourceType>(&self, resource: &R, if_match: bool) -> Result<R, FhirError> {
        let ty = type_name::<R>();
        let answer = self.put_answer(resource, ty, if_match).await?;
        self.written(answer, ty).await
    }

    async fn put_answer<R: ResourceType>(
        &self,
        resource: &R,
        ty: &str,
        if_match: bool,
    ) -> Result<Answer, FhirError> {
        let (body, written) = resource_body(resource);
        let id = written
            .id
            .as_deref()
            .ok_or_else(|| FhirError::InvalidInput(format!("The {ty} to update has no id.")))?;
        Self::check_id(id)?;
        let mut headers = vec![(
            header::HeaderName::from_static("prefer"),
            HeaderValue::from_static("return=representation"),
        )];
        if if_match {
            let version = written
                .meta
                .as_ref()
                .and_then(|m| m.version_id.as_deref())
                .ok_or_else(|| {
                    FhirError::InvalidInput(format!(
                        "The {ty} has no meta.versionId to match; read it first."
                    ))
                })?;
            Self::check_id(version)?;
            let etag = HeaderValue::from_str(&format!("W/\"{version}\""))
                .map_err(|e| FhirError::InvalidInput(e.to_string()))?;
            headers.push((header::IF_MATCH, etag));
        }
        let call = Call {
            method: Method::PUT,
            url: self.url(&[ty, id]),
            body: Some((body, FHIR_JSON)),
            headers,
            interaction: interaction("update", Some(ty), "u", true),
        };
        self.inner.transport.execute(call).await
    }

    /// `PATCH [base]/[type]/[id]` with a JSON Patch (RFC 6902) document, optionally only if the
    /// resource is still at `version`.
    pub async fn patch<R: ResourceType>(
        &self,
        id: &str,
        json_patch: &Value,
        version: Option<&str>,
    ) -> Result<R, FhirError> {
        let ty = type_name::<R>();
        Self::check_id(id)?;
        let mut headers = vec![(
            header::HeaderName::from_static("prefer"),
            HeaderValue::from_static("return=representation"),
        )];
        if let Some(version) = version {
            Self::check_id(version)?;
            let etag = HeaderValue::from_str(&format!("W/\"{version}\""))
                .map_err(|e| FhirError::InvalidInput(e.to_string()))?;
            headers.push((header::IF_MATCH, etag));
        }
        let body = serde_json::to_vec(json_patch).map_err(|e| FhirError::InvalidInput(e.to_string()))?;
        let call = Call {
            method: Method::PATCH,
            url: self.url(&[ty, id]),
            body: Some((body, "application/json-patch+json")),
            headers,
            interaction: interaction("patch", Some(ty), "u", false),
        };
        let answer = self.inner.transport.execute(call).await?;
        self.written(answer, ty).await
    }

    /// `DELETE [base]/[type]/[id]` (authorized like every other request).
    pub async fn delete<R: ResourceType>(&self, id: &str) -> Result<(), FhirError> {
        let ty = type_name::<R>();
        Self::check_id(id)?;
        let call = Call {
            method: Method::DELETE,
            url: self.url(&[ty, id]),
            body: None,
            headers: Vec::new(),
            interaction: interaction("delete", Some(ty), "d", true),
        };
        self.inner.transport.execute(call).await.map(drop)
    }

    /// `POST [base]` a `transaction` Bundle; returns the `transaction-response`.
    pub async fn transaction(&self, bundle: &Bundle) -> Result<Bundle, FhirError> {
        self.post_bundle(bundle, "transaction").await
    }

    /// `POST [base]` a `batch` Bundle; returns the `batch-response`.
    pub async fn batch(&self, bundle: &Bundle) -> Result<Bundle, FhirError> {
        self.post_bundle(bundle, "batch").await
    }

    async fn post_bundle(&self, bundle: &Bundle, kind: &'static str) -> Result<Bundle, FhirError> {
        let found = coded_text(bundle.type_.as_ref());
        if found != kind {
            return Err(FhirError::InvalidInput(format!(
                "A {kind} needs a Bundle of type {kind}, not {found}."
            )));
        }
        let (body, _) = resource_body(bundle);
        let call = Call {
            method: Method::POST,
            url: self.url(&[]),
            body: Some((body, FHIR_JSON)),
            headers: Vec::new(),
            interaction: interaction(kind, None, "cruds", false),
        };
        let answer = self.inner.transport.execute(call).await?;
        decode_bundle(&answer)
    }

    /// The resource a write returned, or (when the server sent no body) the one at `Location`.
    async fn written<R: ResourceType>(&self, answer: Answer, ty: &str) -> Result<R, FhirError> {
        if !answer.body.iter().all(u8::is_ascii_whitespace) {
            return Self::typed(&answer);
        }
        let location = answer
            .headers
            .get(header::LOCATION)
            .or_else(|| answer.headers.get(header::CONTENT_LOCATION))
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| FhirError::InvalidBody {
                url: answer.url.to_string(),
                expected: ty.to_owned(),
                path: String::from("."),
                message: String::from("the server returned neither the resource nor a Location"),
                body: String::new(),
            })?;
        let url = self.checked_url(location)?;
        let answer = self.get(url, interaction("read", Some(ty), "r", true)).await?;
        Self::typed(&answer)
    }

    // ---- references ----

    /// Resolve a reference: `#id` among `context.contained`, then the Bundle the reference was
    /// found in, then a read on this server. Absolute URLs on other servers are refused
    /// ([`FhirError::ForeignUrl`]): the token is never sent there.
    pub async fn resolve(&self, reference: &str, context: ResolveContext<'_>) -> Result<Resource, FhirError> {
        let unresolved = |reason: &str| FhirError::Reference {
            reference: reference.to_owned(),
            reason: reason.to_owned(),
        };
        let target = parse_reference(reference)?;
        if let ReferenceTarget::Contained(id) = &target {
            return find_contained(context.contained, id)
                .ok_or_else(|| unresolved("no contained resource has that id"));
        }
        if let Some(found) = context
            .bundle
            .and_then(|b| find_in_bundle(b, reference, context.full_url))
        {
            return Ok(found);
        }
        let ReferenceTarget::Literal(LiteralReference {
            base,
            resource_type,
            id,
            version,
        }) = target
        else {
            return Err(unresolved("no entry of the Bundle has that fullUrl"));
        };
        let mut segments = vec![resource_type.as_str(), id.as_str()];
        if let Some(version) = &version {
            segments.extend(["_history", version.as_str()]);
        }
        let url = match base {
            Some(base) => {
                let url = Url::parse(&format!("{base}/{}", segments.join("/")))
                    .map_err(|e| unresolved(&e.to_string()))?;
                if !is_under_base(&url, &self.inner.base) {
                    return Err(FhirError::ForeignUrl {
                        url: url.to_string(),
                        base: self.inner.base.to_string(),
                    });
                }
                url
            }
            None => self.url(&segments),
        };
        let answer = self
            .get(url, interaction("read", Some(&resource_type), "r", true))
            .await?;
        any_of_type(&answer, &resource_type)
    }
}

/// The parameters of `Patient/[id]/$everything` (FHIR R4 OperationDefinition `Patient-everything`),
/// for [`FhirClient::patient_everything_with`] and [`FhirClient::patient_everything_all_with`].
/// Every one is optional; the default asks for the whole record, in pages of the server's size.
///
/// ```
/// use fhir_client::EverythingParams;
///
/// let params = EverythingParams {
///     start: Some("2024-01".into()),
///     since: Some("2024-03-15T10:00:00+01:00".into()),
///     types: vec!["Observation".into(), "Condition".into()],
///     count: Some(20),
///     ..EverythingParams::default()
/// };
/// assert_eq!(
///     params.to_query().unwrap(),
///     "start=2024-01&_since=2024-03-15T10%3A00%3A00%2B01%3A00&_type=Observation%2CCondition&_count=20"
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EverythingParams {
    /// `start`: only care on or after this date (a FHIR date: `2024`, `2024-03` or `2024-03-15`).
    pub start: Option<String>,
    /// `end`: only care on or before this date (a FHIR date).
    pub end: Option<String>,
    /// `_since`: only resources changed after this instant (`2024-03-15T10:00:00Z`: seconds and a
    /// time zone are required).
    pub since: Option<String>,
    /// `_type`: only resources of these types (e.g. `Observation`), sent comma-separated.
    pub types: Vec<String>,
    /// `_count`: the page size asked for.
    pub count: Option<u32>,
}

impl EverythingParams {
    /// The parameters as a form-encoded query string (empty when none is set), or
    /// [`FhirError::InvalidInput`] naming the first value that is not valid FHIR.
    pub fn to_query(&self) -> Result<String, FhirError> {
        Ok(url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.pairs()?)
            .finish())
    }

    /// The set parameters as (name, value) pairs, each value checked.
    fn pairs(&self) -> Result<Vec<(&'static str, String)>, FhirError> {
        let mut pairs = Vec::new();
        for (name, date) in [("start", &self.start), ("end", &self.end)] {
            if let Some(text) = date {
                if !is_fhir_date(text) {
                    return Err(FhirError::InvalidInput(format!(
                        "The $everything parameter {name}={text:?} is not a FHIR date; write it as 2024, 2024-03 or 2024-03-15."
                    )));
                }
                pairs.push((name, text.clone()));
            }
        }
        if let Some(text) = &self.since {
            if chrono::DateTime::parse_from_rfc3339(text).is_err() {
                return Err(FhirError::InvalidInput(format!(
                    "The $everything parameter _since={text:?} is not a FHIR instant; write it with seconds and a time zone, as 2024-03-15T10:00:00Z."
                )));
            }
            pairs.push(("_since", text.clone()));
        }
        if !self.types.is_empty() {
            if let Some(bad) = self.types.iter().find(|t| !crate::reference::is_resource_type(t)) {
                return Err(FhirError::InvalidInput(format!(
                    "The $everything parameter _type names {bad:?}, which is not a resource type; give one type per entry, such as Observation."
                )));
            }
            pairs.push(("_type", self.types.join(",")));
        }
        if let Some(count) = self.count {
            pairs.push(("_count", count.to_string()));
        }
        Ok(pairs)
    }
}

/// Whether `text` is a FHIR date: `YYYY`, `YYYY-MM` or a valid `YYYY-MM-DD` (no time, no zone).
fn is_fhir_date(text: &str) -> bool {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = text.split('-').collect();
    match parts.as_slice() {
        [year] => digits(year, 4),
        [year, month] => digits(year, 4) && digits(month, 2) && matches!(month.parse::<u32>(), Ok(1..=12)),
        [year, month, day] => {
            digits(year, 4)
                && digits(month, 2)
                && digits(day, 2)
                && chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
        }
        _ => false,
    }
}

/// Where a reference was found, for [`FhirClient::resolve`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ResolveContext<'a> {
    /// The `contained` resources of the referring resource.
    pub contained: &'a [Resource],
    /// The Bundle the referring resource came in.
    pub bundle: Option<&'a Bundle>,
    /// The referring entry's `fullUrl` in that Bundle.
    pub full_url: Option<&'a str>,
}

/// A Bundle answer, read tolerantly.
fn decode_bundle(answer: &Answer) -> Result<Bundle, FhirError> {
    model::read::<Bundle>(&answer.body, &answer.url, Mode::Tolerant).map(|read| read.resource)
}

/// A resource answer of the type `expected` (a name known only at run time), read tolerantly.
fn any_of_type(answer: &Answer, expected: &str) -> Result<Resource, FhirError> {
    let resource = model::read::<Resource>(&answer.body, &answer.url, Mode::Tolerant)?.resource;
    if resource.resource_type() == expected {
        Ok(resource)
    } else {
        Err(FhirError::UnexpectedResourceType {
            url: answer.url.to_string(),
            expected: expected.to_owned(),
            found: format!("resourceType {:?}", resource.resource_type()),
        })
    }
}

/// What an update needs to know of the resource it sends: its id and version.
#[derive(serde::Deserialize)]
struct Written {
    id: Option<String>,
    meta: Option<WrittenMeta>,
}

#[derive(serde::Deserialize)]
struct WrittenMeta {
    #[serde(rename = "versionId")]
    version_id: Option<String>,
}

/// The JSON body of a resource (with its `resourceType`), and its id and version as written.
fn resource_body<R: crate::r4::ToJson>(resource: &R) -> (Vec<u8>, Written) {
    let body = crate::r4::to_vec(resource);
    let written = serde_json::from_slice(&body).unwrap_or(Written { id: None, meta: None });
    (body, written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fhir_dates_are_checked() {
        for ok in ["2024", "2024-03", "2024-02-29", "1999-12-31"] {
            assert!(is_fhir_date(ok), "{ok}");
        }
        for bad in [
            "24",
            "2024-3",
            "2024-13",
            "2023-02-29",
            "2024-03-15T10:00:00Z",
            "",
            "2024-03-15-01",
        ] {
            assert!(!is_fhir_date(bad), "{bad}");
        }
    }

    #[test]
    fn no_everything_parameters_make_an_empty_query() {
        assert_eq!(EverythingParams::default().to_query().unwrap(), "");
    }

    #[test]
    fn invalid_everything_parameters_are_refused() {
        let cases = [
            EverythingParams {
                end: Some("15/03/2024".into()),
                ..EverythingParams::default()
            },
            EverythingParams {
                since: Some("2024-03-15".into()),
                ..EverythingParams::default()
            },
            EverythingParams {
                types: vec!["Observation,Condition".into()],
                ..EverythingParams::default()
            },
        ];
        for params in cases {
            assert!(
                matches!(params.to_query(), Err(FhirError::InvalidInput(_))),
                "{params:?}"
            );
        }
    }
}
