//! The current request's [`Session`]: what handlers read and change, and how it is loaded from and saved to the
//! store with its cookie ([`Session::load`], [`commit`]).

use std::sync::{Arc, Mutex};

use http::HeaderValue;
use http::header::COOKIE;
use sha2::{Digest, Sha256};

use super::{COOKIE_NAME, SaveMode, SessionData, SessionError, SessionId, SessionStore, random_token};
use crate::launch_record::LaunchRecord;

/// What happens to the session when the response is sent.
#[derive(Debug, Default)]
struct SessionInner {
    /// The id the browser presented and the store knows; `None` for a new visitor.
    id: Option<SessionId>,
    /// An id given to this session during the request (new session or rotation).
    new_id: Option<SessionId>,
    /// Shared with the store's cache until changed (copy on write).
    data: Arc<SessionData>,
    /// The stored generation `data` was loaded at.
    generation: i64,
    dirty: bool,
    /// The change takes access away (log out): it is synced to disk before the response.
    revokes: bool,
    destroyed: bool,
}

impl SessionInner {
    fn data_mut(&mut self) -> &mut SessionData {
        self.dirty = true;
        Arc::make_mut(&mut self.data)
    }
}

/// The current request's session. Handlers read and change it; the app's session layer saves it ([`commit`]).
#[derive(Clone, Debug, Default)]
pub struct Session {
    inner: Arc<Mutex<SessionInner>>,
}

impl Session {
    /// The session `presented` (the id the cookie carried) names, as the store has it; a new, empty session
    /// when there is none or the store does not know it.
    pub async fn load(store: &SessionStore, presented: Option<SessionId>) -> Result<Session, SessionError> {
        let mut inner = SessionInner::default();
        if let Some(id) = presented
            && let Some(stored) = store.load(&id).await?
        {
            inner.id = Some(id);
            inner.data = stored.data;
            inner.generation = stored.generation;
        }
        Ok(Session {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SessionInner> {
        // A poisoned lock only means a handler panicked mid-update; the data is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The session's CSRF token: derived from the session's secret id (a domain-separated SHA-256 of it, which
    /// reveals nothing of the id), so it needs no storage and showing a form writes nothing. A visitor without a
    /// session gets a token derived from a secret of this process instead: such a visitor has nothing a forged
    /// POST could change. A token stored by an earlier version of the app is used while the session has it.
    pub fn csrf_token(&self) -> String {
        let inner = self.lock();
        if let Some(token) = &inner.data.csrf {
            return token.clone();
        }
        match inner.new_id.as_ref().or(inner.id.as_ref()) {
            Some(id) => derived_csrf(&id.value),
            None => derived_csrf(anonymous_secret()),
        }
    }

    /// The CSRF token a POST of this session must carry (the same as [`Session::csrf_token`]).
    pub fn stored_csrf(&self) -> Option<String> {
        Some(self.csrf_token())
    }

    /// The completed launch, if the user is logged in.
    pub fn launch(&self) -> Option<LaunchRecord> {
        self.lock().data.launch.clone()
    }

    /// Looks at the completed launch without copying it; `None` when the user is not logged in.
    pub fn with_launch<R>(&self, f: impl FnOnce(&LaunchRecord) -> R) -> Option<R> {
        self.lock().data.launch.as_ref().map(f)
    }

    /// Stores (or replaces, after a refresh) the completed launch.
    pub fn set_launch(&self, launch: LaunchRecord) {
        self.lock().data_mut().launch = Some(launch);
    }

    /// The last launch's timeline.
    pub fn timeline(&self) -> Option<smart_launch::LaunchTrace> {
        self.lock().data.timeline.clone()
    }

    /// Stores (or replaces) the last launch's timeline.
    pub fn set_timeline(&self, timeline: smart_launch::LaunchTrace) {
        self.lock().data_mut().timeline = Some(timeline);
    }

    /// Forgets the completed launch (log out / change patient), keeping the session.
    pub fn clear_launch(&self) {
        let mut inner = self.lock();
        inner.data_mut().launch = None;
        inner.revokes = true;
    }

    /// The session's id, giving it one now when it is new (to bind a pending launch to it).
    pub fn ensure_id(&self) -> SessionId {
        let mut inner = self.lock();
        if let Some(id) = inner.new_id.clone().or_else(|| inner.id.clone()) {
            return id;
        }
        let id = SessionId::generate();
        inner.new_id = Some(id.clone());
        inner.dirty = true;
        id
    }

    /// The id the browser presented, if the store knew it.
    pub fn current_id(&self) -> Option<SessionId> {
        let inner = self.lock();
        inner.new_id.clone().or_else(|| inner.id.clone())
    }

    /// A key for in-memory caches of this session (the id's hash), if it has an id.
    pub fn cache_key(&self) -> Option<String> {
        let inner = self.lock();
        inner
            .new_id
            .as_ref()
            .or(inner.id.as_ref())
            .map(|id| id.key().to_owned())
    }

    /// Gives the session a new id (after login), so an id seen before login is worthless. The CSRF
    /// token is renewed too.
    pub fn rotate_id(&self) {
        let mut inner = self.lock();
        inner.new_id = Some(SessionId::generate());
        // The CSRF token follows from the new id; a stored one of an older version is dropped.
        inner.data_mut().csrf = None;
    }

    /// Deletes the session and its cookie (reset).
    pub fn destroy(&self) {
        let mut inner = self.lock();
        inner.destroyed = true;
        inner.data = Arc::default();
    }
}

/// The CSRF token of a session whose secret is `secret`.
fn derived_csrf(secret: &str) -> String {
    use base64::Engine as _;
    let digest = Sha256::new()
        .chain_update(b"smart-fhir csrf v1\0")
        .chain_update(secret.as_bytes())
        .finalize();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// A random secret of this process, for the CSRF token of visitors without a session.
fn anonymous_secret() -> &'static str {
    static SECRET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SECRET.get_or_init(random_token)
}

/// The session id from a `Cookie` header.
pub fn session_id_from_headers(headers: &http::HeaderMap) -> Option<SessionId> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
        .filter(|value| {
            value.len() == 43
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(|value| SessionId::new(value.to_owned()))
}

fn cookie_header(value: &str, max_age: u64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .ok()
}

/// Saves the session's changes; returns the `Set-Cookie` value to send, if any.
pub async fn commit(
    session: &Session,
    store: &SessionStore,
    cookie_presented: bool,
    secure: bool,
) -> Result<Option<HeaderValue>, SessionError> {
    let (id, new_id, data, generation, revokes, destroyed) = {
        let inner = session.lock();
        if !inner.dirty && !inner.destroyed {
            // A page view that changed nothing: no write, no cookie.
            return Ok(None);
        }
        (
            inner.id.clone(),
            inner.new_id.clone(),
            inner.data.clone(),
            inner.generation,
            inner.revokes,
            inner.destroyed,
        )
    };
    if destroyed {
        let ids: Vec<&SessionId> = id.iter().chain(new_id.iter()).collect();
        if !ids.is_empty() {
            store.delete(&ids).await?;
        }
        return Ok(if cookie_presented {
            cookie_header("", 0, secure)
        } else {
            None
        });
    }
    match (id, new_id) {
        (old, Some(new_id)) => {
            store.rotate(old.as_ref(), &new_id, data).await?;
            Ok(cookie_header(&new_id.value, store.ttl().as_secs(), secure))
        }
        (Some(id), None) if revokes => {
            store.save_revocation(&id, data).await?;
            Ok(None)
        }
        (Some(id), None) => {
            store
                .save(&id, data, SaveMode::IfUnchangedSince(generation))
                .await?;
            Ok(None)
        }
        // A visitor without a session whose request left nothing worth keeping: no row, no cookie.
        (None, None) if data.launch.is_none() => Ok(None),
        (None, None) => {
            let id = SessionId::generate();
            store.save(&id, data, SaveMode::Fresh).await?;
            Ok(cookie_header(&id.value, store.ttl().as_secs(), secure))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_parsing_finds_only_well_formed_ids() {
        let id = SessionId::generate();
        let mut headers = http::HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_str(&format!("a=b; {COOKIE_NAME}={}", id.value)).unwrap(),
        );
        assert_eq!(session_id_from_headers(&headers), Some(id));
        headers.insert(COOKIE, HeaderValue::from_static("smart_fhir_session=short"));
        assert_eq!(session_id_from_headers(&headers), None);
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_on_https() {
        let plain = cookie_header("v", 60, false).unwrap();
        let plain = plain.to_str().unwrap();
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Lax") && !plain.contains("Secure"));
        assert!(
            cookie_header("v", 60, true)
                .unwrap()
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
    }
}
