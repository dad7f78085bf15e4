//! Refusals for requests a hostile web page can make a browser send.
//!
//! - **DNS rebinding.** A page on `evil.example` whose name is re-pointed at
//!   127.0.0.1 talks to the local server with `Host: evil.example`. While the
//!   server is bound to a loopback address, only local Host values are
//!   accepted (`localhost`, `*.localhost`, loopback and unspecified IP
//!   literals, this machine's hostname) plus those configured in
//!   `HEARTH_ALLOWED_HOSTS`; anything else is 403. Bound elsewhere, the
//!   operator has chosen to be reached under other names and Host is not
//!   checked (as Ollama does since its rebinding fix).
//! - **Cross-site request forgery.** A browser names the page in `Origin` on
//!   every cross-origin POST, including the "simple" ones it sends without a
//!   preflight (`text/plain`, forms). A request that changes state (any method
//!   but GET, HEAD and OPTIONS) from an origin CORS does not allow is 403
//!   (the server's own origin, where the web page at `/` runs, is allowed
//!   under a name rebinding cannot take over), and
//!   so is one a browser marks `Sec-Fetch-Site: cross-site` with no allowed
//!   origin.
//! - **Content types.** JSON endpoints read JSON only: a body declared
//!   `text/plain`, `multipart/form-data` or anything else but JSON is 415.
//!   `application/x-www-form-urlencoded` — what `curl -d` sends, as every
//!   Ollama example does — is read as JSON when no browser sent it (no
//!   `Origin`, no `Sec-Fetch-*` header) and 415 otherwise. Blob uploads
//!   (`/api/blobs`) take raw bytes and are exempt.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::ApiError;

/// What the guard needs from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    /// Whether the server is bound to a loopback address (Host is checked).
    loopback: bool,
    /// Host names accepted besides the local ones (lower case, no port).
    allowed_hosts: Vec<String>,
    /// This machine's hostname (lower case), a local Host value.
    hostname: Option<String>,
    /// Origins CORS allows besides the local ones (`*`: all).
    origins: Vec<String>,
}

impl Guard {
    /// The guard for a server bound to `bind` (`host:port`).
    pub(crate) fn new(bind: &str, allowed_hosts: &[String], origins: &[String]) -> Guard {
        Guard {
            loopback: is_loopback_bind(bind),
            allowed_hosts: allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            hostname: hostname().map(|h| h.to_ascii_lowercase()),
            origins: origins.to_vec(),
        }
    }

    /// Whether `host` (a Host header's value) may reach this server.
    fn host_allowed(&self, host: &str) -> bool {
        if !self.loopback {
            return true;
        }
        let name = host_name(host).to_ascii_lowercase();
        if name.is_empty() || name == "localhost" || name.ends_with(".localhost") {
            return true;
        }
        if let Ok(ip) = name.parse::<std::net::IpAddr>() {
            return ip.is_loopback() || ip.is_unspecified();
        }
        self.hostname.as_deref() == Some(name.as_str()) || self.allowed_hosts.contains(&name)
    }

    /// Whether CORS allows `origin`.
    fn origin_allowed(&self, origin: &str) -> bool {
        crate::is_local_origin(origin) || self.origins.iter().any(|o| o == "*" || o == origin)
    }

    /// Whether `origin` is the server's own, as the browser reached it under
    /// `host`: the web page served at `/` calling the API. Only for names a
    /// rebinding attack cannot take over: an IP literal (a browser never
    /// resolves it), a local name, this machine's hostname or one in
    /// `HEARTH_ALLOWED_HOSTS`. A page on `evil.example` re-pointed at this
    /// server is same-origin with it too, and stays refused.
    fn same_origin(&self, origin: &str, host: &str) -> bool {
        let Some(rest) = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
        else {
            return false;
        };
        if host.is_empty() || !rest.eq_ignore_ascii_case(host) {
            return false;
        }
        let name = host_name(host).to_ascii_lowercase();
        name == "localhost"
            || name.ends_with(".localhost")
            || name.parse::<std::net::IpAddr>().is_ok()
            || self.hostname.as_deref() == Some(name.as_str())
            || self.allowed_hosts.contains(&name)
    }
}

/// The middleware: refuses what the module docs describe, passes the rest.
pub(crate) async fn check(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    match refusal(&guard, request.method(), path, request.headers()) {
        Some(error) => crate::error::response_for(path, error),
        None => next.run(request).await,
    }
}

/// Why `request` is refused, if it is.
fn refusal(guard: &Guard, method: &Method, path: &str, headers: &HeaderMap) -> Option<ApiError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = text(header::HOST.as_str()).unwrap_or_default();
    if !guard.host_allowed(host) {
        return Some(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "host '{}' is not allowed: this server answers to local names only \
                 (set HEARTH_ALLOWED_HOSTS to add one)",
                crate::error::truncated(host_name(host))
            ),
        ));
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    let origin = text(header::ORIGIN.as_str());
    let browser = origin.is_some() || headers.keys().any(|k| k.as_str().starts_with("sec-fetch-"));
    let origin_ok = origin.is_some_and(|o| guard.origin_allowed(o) || guard.same_origin(o, host));
    if origin.is_some() && !origin_ok {
        return Some(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross-origin request refused: the origin is not allowed (HEARTH_ORIGINS)",
        ));
    }
    if text("sec-fetch-site") == Some("cross-site") && !origin_ok {
        return Some(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross-site request refused",
        ));
    }
    if path.starts_with("/api/blobs/") {
        return None;
    }
    let media = text(header::CONTENT_TYPE.as_str()).map(|t| {
        t.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    });
    match media.as_deref() {
        None | Some("") => None,
        Some(m) if m == "application/json" || m.ends_with("+json") => None,
        Some("application/x-www-form-urlencoded") if !browser => None,
        Some(m) => Some(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "request bodies must be JSON (Content-Type: application/json), not '{}'",
                crate::error::truncated(m)
            ),
        )),
    }
}

/// The host part of a Host header value (`[::1]:11434` → `::1`).
fn host_name(host: &str) -> &str {
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next().unwrap_or_default();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Whether a bind address (`127.0.0.1:11434`, `[::1]:8080`, `localhost:1`)
/// is a loopback one.
fn is_loopback_bind(bind: &str) -> bool {
    let name = host_name(bind);
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// This machine's hostname, as the kernel reports it (Linux), or from
/// `HOSTNAME`.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    fn status(guard: &Guard, method: Method, path: &str, pairs: &[(&'static str, &str)]) -> u16 {
        refusal(guard, &method, path, &headers(pairs)).map_or(200, |e| e.status.as_u16())
    }

    #[test]
    fn loopback_servers_answer_local_host_names_only() {
        let guard = Guard::new("127.0.0.1:11434", &["models.lan".to_owned()], &[]);
        for host in [
            "localhost:11434",
            "127.0.0.1:11434",
            "127.0.0.2",
            "[::1]:11434",
            "app.localhost",
            "0.0.0.0:11434",
            "MODELS.LAN:11434",
        ] {
            assert_eq!(
                status(&guard, Method::GET, "/api/tags", &[("host", host)]),
                200,
                "{host}"
            );
        }
        for host in [
            "evil.example:11434",
            "192.168.1.5",
            "localhost.evil.example",
        ] {
            assert_eq!(
                status(&guard, Method::GET, "/api/tags", &[("host", host)]),
                403,
                "{host}"
            );
        }
        let open = Guard::new("0.0.0.0:11434", &[], &[]);
        assert_eq!(
            status(&open, Method::GET, "/", &[("host", "evil.example")]),
            200
        );
        assert!(is_loopback_bind("[::1]:80") && is_loopback_bind("localhost:1"));
        assert!(!is_loopback_bind("0.0.0.0:11434"));
    }

    #[test]
    fn cross_origin_writes_and_non_json_bodies_are_refused() {
        let guard = Guard::new("127.0.0.1:11434", &[], &["https://app.example".to_owned()]);
        let local = [("host", "localhost")];
        let post = |extra: &[(&'static str, &str)]| {
            let mut pairs = local.to_vec();
            pairs.extend_from_slice(extra);
            status(&guard, Method::POST, "/api/create", &pairs)
        };
        // A hostile page's "simple" request.
        assert_eq!(
            post(&[
                ("origin", "https://evil.example"),
                ("content-type", "text/plain")
            ]),
            403
        );
        assert_eq!(post(&[("origin", "null")]), 403);
        assert_eq!(post(&[("sec-fetch-site", "cross-site")]), 403);
        // Allowed pages and non-browser clients.
        assert_eq!(
            post(&[
                ("origin", "http://localhost:3000"),
                ("content-type", "application/json")
            ]),
            200
        );
        assert_eq!(
            post(&[
                ("origin", "https://app.example"),
                ("content-type", "application/json")
            ]),
            200
        );
        assert_eq!(
            post(&[("content-type", "application/json; charset=utf-8")]),
            200
        );
        assert_eq!(post(&[]), 200);
        // curl -d, but not from a browser.
        assert_eq!(
            post(&[("content-type", "application/x-www-form-urlencoded")]),
            200
        );
        assert_eq!(
            post(&[
                ("origin", "http://localhost:3000"),
                ("content-type", "application/x-www-form-urlencoded")
            ]),
            415
        );
        assert_eq!(post(&[("content-type", "text/plain")]), 415);
        assert_eq!(
            post(&[("content-type", "multipart/form-data; boundary=x")]),
            415
        );
        // The web page, reached under an allowed name or an IP address.
        let lan = Guard::new("0.0.0.0:11434", &["models.lan".to_owned()], &[]);
        let from_page = |host: &str, origin: &str| {
            status(
                &lan,
                Method::POST,
                "/api/chat",
                &[
                    ("host", host),
                    ("origin", origin),
                    ("content-type", "application/json"),
                ],
            )
        };
        assert_eq!(
            from_page("models.lan:11434", "http://models.lan:11434"),
            200
        );
        assert_eq!(
            from_page("192.168.1.5:11434", "http://192.168.1.5:11434"),
            200
        );
        assert_eq!(from_page("[fd00::5]:11434", "https://[fd00::5]:11434"), 200);
        // A rebound name is same-origin with itself, and refused.
        assert_eq!(
            from_page("evil.example:11434", "http://evil.example:11434"),
            403
        );
        // Another port is another origin.
        assert_eq!(
            from_page("192.168.1.5:11434", "http://192.168.1.5:8080"),
            403
        );
        // Reads are not state changes; blob uploads are raw bytes.
        assert_eq!(
            status(
                &guard,
                Method::GET,
                "/api/tags",
                &[("host", "localhost"), ("origin", "https://evil.example")]
            ),
            200
        );
        assert_eq!(
            status(
                &guard,
                Method::POST,
                "/api/blobs/sha256:00",
                &[
                    ("host", "localhost"),
                    ("content-type", "application/octet-stream")
                ]
            ),
            200
        );
    }
}
