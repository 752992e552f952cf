//! The EHR's look, from the launch context's `smart_style_url`.
//!
//! The style document is JSON (`color_background`, `color_highlight`, `font_family_body`, …). The
//! app fetches it once after the launch, keeps only values that are plainly a colour, a length or a
//! font list, and turns them into CSS custom properties that override the stylesheet's defaults. A
//! style that cannot be fetched or read leaves the default look; it never fails the launch.
//! [`ThemeCache`] keeps fetched styles for a few minutes: every launch from one EHR names the same
//! document, and the callback should not wait for it each time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use url::Url;

/// The validated subset of a SMART style document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Theme {
    /// `(css variable, value)` pairs, every value already validated.
    vars: Vec<(String, String)>,
}

/// Which style key sets which CSS variable, and how the value is checked.
const MAPPING: &[(&str, &str, Kind)] = &[
    ("color_background", "--bg", Kind::Colour),
    ("color_text", "--text", Kind::Colour),
    ("color_highlight", "--accent", Kind::Colour),
    ("color_error", "--danger", Kind::Colour),
    ("color_success", "--ok", Kind::Colour),
    ("font_family_body", "--font", Kind::Font),
    ("dim_border_radius", "--radius", Kind::Length),
];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Colour,
    Font,
    Length,
}

fn is_colour(v: &str) -> bool {
    let hex = v
        .strip_prefix('#')
        .is_some_and(|h| matches!(h.len(), 3 | 4 | 6 | 8) && h.bytes().all(|b| b.is_ascii_hexdigit()));
    let named = (3..=20).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphabetic());
    hex || is_colour_function(v) || named
}

/// `rgb(…)`, `rgba(…)`, `hsl(…)` or `hsla(…)` holding three or four numbers (each with `%` or `deg` at most),
/// separated by commas, spaces or the alpha's `/`: the CSS Color 4 grammar and nothing else, so no `url(…)` or
/// `var(…)` can ride inside.
fn is_colour_function(v: &str) -> bool {
    let Some((name, rest)) = v.split_once('(') else {
        return false;
    };
    let Some(args) = rest.strip_suffix(')') else {
        return false;
    };
    let parts: Vec<&str> = args.split([',', ' ', '/']).filter(|p| !p.is_empty()).collect();
    v.len() <= 40
        && matches!(name, "rgb" | "rgba" | "hsl" | "hsla")
        && (3..=4).contains(&parts.len())
        && parts.iter().all(|p| is_colour_number(p))
}

fn is_colour_number(v: &str) -> bool {
    let number = v.strip_suffix('%').or_else(|| v.strip_suffix("deg")).unwrap_or(v);
    !number.is_empty()
        && number.len() <= 8
        && number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && number.bytes().filter(|b| *b == b'.').count() <= 1
}

fn is_font(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 200
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || " ,-_'\"".contains(c))
        && v.matches('"').count().is_multiple_of(2)
        && v.matches('\'').count().is_multiple_of(2)
}

fn is_length(v: &str) -> bool {
    let number = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &v[number.len()..];
    !number.is_empty()
        && number.len() <= 8
        && number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && matches!(unit, "px" | "em" | "rem" | "")
}

/// The WCAG relative luminance of a `#rgb` / `#rrggbb` colour.
fn relative_luminance(colour: &str) -> Option<f64> {
    let hex = colour.strip_prefix('#')?;
    let expanded: String = match hex.len() {
        3 => hex.chars().flat_map(|c| [c, c]).collect(),
        6 => hex.to_owned(),
        _ => return None,
    };
    let channel = |i: usize| -> Option<f64> {
        let v = f64::from(u8::from_str_radix(expanded.get(i..i + 2)?, 16).ok()?) / 255.0;
        Some(if v <= 0.03928 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        })
    };
    Some(0.2126 * channel(0)? + 0.7152 * channel(2)? + 0.0722 * channel(4)?)
}

impl Theme {
    /// Reads a style document, keeping only the values that pass validation.
    pub fn from_json(document: &serde_json::Value) -> Theme {
        let vars = MAPPING
            .iter()
            .filter_map(|(key, var, kind)| {
                let value = document.get(*key)?;
                let text = match value {
                    serde_json::Value::String(s) => s.trim().to_owned(),
                    serde_json::Value::Number(n) => format!("{n}px"),
                    _ => return None,
                };
                let ok = match kind {
                    Kind::Colour => is_colour(&text),
                    Kind::Font => is_font(&text),
                    Kind::Length => is_length(&text),
                };
                ok.then(|| ((*var).to_owned(), text))
            })
            .collect::<Vec<(String, String)>>();
        let mut theme = Theme { vars };
        theme.pair_accent_with_readable_text();
        theme
    }

    /// The accent colours the header and buttons, under white or black text: keep a themed accent
    /// only when it is a hex colour, and pick whichever text colour contrasts more with it (WCAG
    /// relative luminance).
    fn pair_accent_with_readable_text(&mut self) {
        let Some(index) = self.vars.iter().position(|(k, _)| k == "--accent") else {
            return;
        };
        match relative_luminance(&self.vars[index].1) {
            Some(l) => {
                // Contrast with white is 1.05 / (l + 0.05); with black (l + 0.05) / 0.05.
                let text = if 1.05 / (l + 0.05) >= (l + 0.05) / 0.05 {
                    "#ffffff"
                } else {
                    "#000000"
                };
                self.vars.push(("--accent-text".to_owned(), text.to_owned()));
            }
            None => {
                self.vars.remove(index);
            }
        }
    }

    /// Whether the document gave nothing usable.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// The CSS rule that applies the theme.
    pub fn css_variables(&self) -> String {
        let body: String = self.vars.iter().map(|(k, v)| format!("{k}:{v};")).collect();
        format!(":root{{{body}}}")
    }

    /// Fetches and reads the style document at `url`. Any failure gives `None` (and a debug log):
    /// the default look is a fine fallback.
    pub async fn fetch(http: &reqwest::Client, url: &Url) -> Option<Theme> {
        if !matches!(url.scheme(), "http" | "https") {
            return None;
        }
        let response = http
            .get(url.clone())
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            tracing::debug!(
                status = response.status().as_u16(),
                "the smart_style_url could not be fetched"
            );
            return None;
        }
        let bytes = response.bytes().await.ok()?;
        if bytes.len() > 64 * 1024 {
            return None;
        }
        let document: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        Some(Theme::from_json(&document)).filter(|t| !t.is_empty())
    }
}

/// How long a fetched style is reused.
pub const THEME_CACHE_TTL: Duration = Duration::from_secs(600);

/// At most this many style documents are kept.
const THEME_CACHE_MAX: usize = 64;

/// Styles fetched recently, by URL. Only styles that could be read are kept: a failed fetch is tried
/// again at the next launch.
#[derive(Debug, Default)]
pub struct ThemeCache {
    entries: Mutex<HashMap<Url, (Instant, Theme)>>,
}

impl ThemeCache {
    /// The style at `url`: from the cache when fetched less than [`THEME_CACHE_TTL`] ago, else
    /// fetched now (see [`Theme::fetch`]).
    pub async fn get_or_fetch(&self, http: &reqwest::Client, url: &Url) -> Option<Theme> {
        if let Some(theme) = self.get(url) {
            return Some(theme);
        }
        let theme = Theme::fetch(http, url).await?;
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= THEME_CACHE_MAX {
                entries.retain(|_, (at, _)| at.elapsed() < THEME_CACHE_TTL);
                if entries.len() >= THEME_CACHE_MAX {
                    entries.clear();
                }
            }
            entries.insert(url.clone(), (Instant::now(), theme.clone()));
        }
        Some(theme)
    }

    fn get(&self, url: &Url) -> Option<Theme> {
        let entries = self.entries.lock().ok()?;
        let (at, theme) = entries.get(url)?;
        (at.elapsed() < THEME_CACHE_TTL).then(|| theme.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_values_become_css_variables() {
        let theme = Theme::from_json(&serde_json::json!({
            "color_background": "#edeae3",
            "color_highlight": "rgb(0, 80, 160)",
            "font_family_body": "Georgia, \"Times New Roman\", serif",
            "dim_border_radius": "6px",
            "unknown": "x"
        }));
        let css = theme.css_variables();
        assert!(css.contains("--bg:#edeae3;"), "{css}");
        assert!(!css.contains("--accent:"), "only hex accents are kept: {css}");
        assert!(css.contains("--font:Georgia"), "{css}");
        assert!(css.contains("--radius:6px;"), "{css}");
    }

    #[test]
    fn a_light_accent_gets_dark_text_and_a_dark_one_white_text() {
        let light = Theme::from_json(&serde_json::json!({"color_highlight": "#69b5ce"}));
        assert!(
            light.css_variables().contains("--accent-text:#000000;"),
            "{}",
            light.css_variables()
        );
        let dark = Theme::from_json(&serde_json::json!({"color_highlight": "#0b5cad"}));
        assert!(dark.css_variables().contains("--accent-text:#ffffff;"));
    }

    #[test]
    fn values_that_could_inject_css_or_html_are_dropped() {
        let theme = Theme::from_json(&serde_json::json!({
            "color_background": "red;} body{display:none",
            "color_text": "</style><script>alert(1)</script>",
            "font_family_body": "x; background:url(http://evil)",
            "dim_border_radius": "calc(1px)"
        }));
        assert!(theme.is_empty(), "{theme:?}");
    }

    #[test]
    fn a_colour_function_holds_numbers_only() {
        for bad in [
            "rgb(url(http://e/x))",
            "rgb(0,0,url(x))",
            "rgba(var(--x),0,0)",
            "rgb(1,2)",
            "rgb(1,2,3,4,5)",
            "rgb(1e3,2,3)",
            "rgb(1..2,3,4)",
            "rgb(1,2,3",
            "expression(1,2,3)",
        ] {
            assert!(!is_colour(bad), "{bad}");
        }
        for good in [
            "rgb(0, 80, 160)",
            "rgba(0,0,0,0.5)",
            "rgb(0 80 160 / 50%)",
            "hsl(210deg 100% 31%)",
            "hsla(210, 100%, 31%, .8)",
        ] {
            assert!(is_colour(good), "{good}");
        }
    }

    /// A style server on 127.0.0.1 that counts its requests: `/ok` serves a style, `/missing` a 404.
    async fn style_server() -> (Url, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let hits = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let app = axum::Router::new()
            .route(
                "/ok",
                axum::routing::get(|| async { r##"{"color_background": "#edeae3"}"## }),
            )
            .route(
                "/missing",
                axum::routing::get(|| async { http::StatusCode::NOT_FOUND }),
            )
            .layer(axum::middleware::from_fn(
                move |request: axum::extract::Request, next: axum::middleware::Next| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    next.run(request)
                },
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, hits)
    }

    #[tokio::test]
    async fn a_style_is_fetched_once_and_a_failure_is_tried_again() {
        use std::sync::atomic::Ordering;
        let (base, hits) = style_server().await;
        let http = reqwest::Client::new();
        let cache = ThemeCache::default();
        let ok = base.join("ok").unwrap();
        let first = cache.get_or_fetch(&http, &ok).await.expect("a theme");
        assert!(first.css_variables().contains("--bg:#edeae3;"));
        assert_eq!(cache.get_or_fetch(&http, &ok).await, Some(first));
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "the second launch used the cached style"
        );

        let missing = base.join("missing").unwrap();
        assert!(cache.get_or_fetch(&http, &missing).await.is_none());
        assert!(cache.get_or_fetch(&http, &missing).await.is_none());
        assert_eq!(hits.load(Ordering::SeqCst), 3, "a failed fetch is not remembered");
    }
}
