//! [`RedisUrl`]: the `session_store` setting, a URL that may carry Redis credentials
//! (`redis://user:password@host:6379/0`), so it prints with them redacted.

use url::Url;

/// A `redis://` or `rediss://` URL naming the shared session store. `Debug` and `Display` show it with the
/// password (and user name) replaced by `[redacted]`; [`RedisUrl::secret_url`] gives the real one, to connect.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(Url);

/// A `session_store` value that is not a `redis://HOST[:PORT][/DB]` URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("it must be a redis://HOST:PORT/DB (or rediss://) URL")]
pub struct BadRedisUrl;

impl RedisUrl {
    /// Parses a `redis://` or `rediss://` URL with a host. The error never repeats the text (it may hold a
    /// password).
    pub fn parse(text: &str) -> Result<RedisUrl, BadRedisUrl> {
        let url = Url::parse(text.trim()).map_err(|_| BadRedisUrl)?;
        if !matches!(url.scheme(), "redis" | "rediss") || url.host_str().is_none_or(str::is_empty) {
            return Err(BadRedisUrl);
        }
        Ok(RedisUrl(url))
    }

    /// The URL with its credentials: only for opening the connection.
    pub fn secret_url(&self) -> &Url {
        &self.0
    }

    /// The URL with user name and password replaced by `[redacted]` (for logs and `Debug`).
    pub fn redacted(&self) -> String {
        let mut shown = self.0.clone();
        let had_credentials = !shown.username().is_empty() || shown.password().is_some();
        if had_credentials {
            // Setting these cannot fail on a URL with a host, which `parse` made sure of.
            let _ = shown.set_password(None);
            let _ = shown.set_username("");
        }
        let text = shown.to_string();
        match text.split_once("://") {
            Some((scheme, rest)) if had_credentials => format!("{scheme}://[redacted]@{rest}"),
            _ => text,
        }
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisUrl({})", self.redacted())
    }
}

impl std::fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_never_prints() {
        let url = RedisUrl::parse("redis://app:s3cr3t-pw@redis.internal:6380/2").unwrap();
        for shown in [format!("{url:?}"), url.to_string(), url.redacted()] {
            assert!(!shown.contains("s3cr3t-pw") && !shown.contains("app:"), "{shown}");
            assert!(shown.contains("[redacted]@redis.internal:6380/2"), "{shown}");
        }
        assert_eq!(url.secret_url().password(), Some("s3cr3t-pw"));
        let plain = RedisUrl::parse("redis://127.0.0.1:6379/0").unwrap();
        assert_eq!(plain.to_string(), "redis://127.0.0.1:6379/0");
    }

    #[test]
    fn only_redis_urls_with_a_host_are_accepted() {
        for bad in ["http://x/", "redis://", "not a url", "redis:///0"] {
            assert_eq!(RedisUrl::parse(bad), Err(BadRedisUrl), "{bad}");
        }
        assert!(RedisUrl::parse("rediss://cache.example.org/1").is_ok());
    }
}
