//! The web page: chat and model management for people, served at `/` to
//! browsers from files compiled into the binary (`crates/server/web/`), with
//! no network access at run time.
//!
//! - `GET /` answers a browser (a request that accepts `text/html`) with the
//!   page, and every other client with the plain `hearth is running` that
//!   scripts probe for (as Ollama answers `Ollama is running`).
//! - The page's script, style sheet and icon are under `/ui/`. Like `/`, they
//!   need no API key: they hold no data, and the page asks for a key when the
//!   API answers 401.
//! - Every answer carries a strict Content-Security-Policy: scripts, styles
//!   and connections from this origin only, no inline script or style, no
//!   framing (clickjacking), no plugins, no form posts elsewhere.
//!
//! The page talks to the same APIs as every client, so the Host and Origin
//! checks of `guard.rs` and the keys of `auth.rs` apply to it as to any
//! other; `guard.rs` counts the server's own origin as allowed where the
//! browser reached it under a name DNS rebinding cannot take over.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The page's policy: everything from this origin only, nothing inline.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const MARKDOWN_JS: &str = include_str!("../web/markdown.js");
const APP_CSS: &str = include_str!("../web/app.css");
const ICON_SVG: &str = include_str!("../web/icon.svg");

/// What `/` tells clients that are not browsers.
const RUNNING: &str = "hearth is running";

/// The routes of the page and its assets.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(root).head(|| async {}))
        .route(
            "/ui/app.js",
            get(|| async { asset(APP_JS, "text/javascript") }),
        )
        .route(
            "/ui/markdown.js",
            get(|| async { asset(MARKDOWN_JS, "text/javascript") }),
        )
        .route("/ui/app.css", get(|| async { asset(APP_CSS, "text/css") }))
        .route(
            "/ui/icon.svg",
            get(|| async { asset(ICON_SVG, "image/svg+xml") }),
        )
}

/// The page's assets, under `/ui/`.
const ASSETS: [&str; 4] = [
    "/ui/app.js",
    "/ui/markdown.js",
    "/ui/app.css",
    "/ui/icon.svg",
];

/// Whether `path` is the page's (`/` or one of its assets): such requests
/// need no API key.
pub fn is_page_path(path: &str) -> bool {
    path == "/" || ASSETS.contains(&path)
}

/// `GET /`: the page for browsers, the plain probe answer for the rest.
async fn root(headers: HeaderMap) -> Response {
    let mut response = if wants_html(&headers) {
        asset(INDEX_HTML, "text/html; charset=utf-8")
    } else {
        RUNNING.into_response()
    };
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    response
}

/// Whether `Accept` names HTML (browsers navigating to a page do; curl,
/// scripts and the official clients do not).
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            let mut parts = media.split(';');
            let name = parts.next().unwrap_or_default().trim();
            // `text/html;q=0` refuses HTML.
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("text/html")
                || name.eq_ignore_ascii_case("application/xhtml+xml"))
                && !refused
        })
}

/// A compiled-in file with its type and the page's security headers.
fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            // Always revalidated: a new binary serves a new page.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, value.parse().unwrap());
        headers
    }

    #[test]
    fn browsers_get_the_page_and_scripts_the_probe_answer() {
        // Chromium's and Firefox's navigation Accept headers.
        assert!(wants_html(&accept(
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
        )));
        assert!(wants_html(&accept("TEXT/HTML")));
        // curl, Python's urllib/requests/httpx, fetch() by default.
        assert!(!wants_html(&HeaderMap::new()));
        assert!(!wants_html(&accept("*/*")));
        assert!(!wants_html(&accept("application/json")));
        assert!(!wants_html(&accept("text/html;q=0, */*")));
    }

    #[test]
    fn the_page_references_only_its_own_assets() {
        for asset in ASSETS {
            assert!(INDEX_HTML.contains(asset), "{asset}");
        }
        assert!(INDEX_HTML.contains("<title>hearth"));
        for text in [INDEX_HTML, APP_JS, MARKDOWN_JS, APP_CSS] {
            assert!(!text.contains("http://") && !text.contains("https://"));
            assert!(!text.contains("style=\""), "inline styles break the CSP");
        }
        assert!(
            !INDEX_HTML.contains("<script>"),
            "inline scripts break the CSP"
        );
    }
}
