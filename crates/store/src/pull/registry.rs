//! Talking to a registry over HTTP: the blocking client (timeouts, proxies
//! from the environment, a redirect policy that keeps to https unless
//! insecure), bearer-token auth from a `WWW-Authenticate` challenge (ollama
//! server/auth.go, the Docker registry token flow), and turning transport
//! failures into errors that name the host.

use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use crate::error::{Result, StoreError};

/// Longest token answer read (a JSON object with one token).
const MAX_TOKEN_BYTES: u64 = 64 << 10;
/// Longest error body read to quote in a message.
const MAX_ERROR_BYTES: u64 = 16 << 10;
/// Redirects followed per request (the registry answers one, to its CDN).
const MAX_REDIRECTS: usize = 10;

/// A registry (or file server) at one origin, with the token it granted.
pub(crate) struct Remote {
    client: Client,
    /// Host (and port) named in errors.
    host: String,
    insecure: bool,
    token: Mutex<Option<String>>,
}

impl Remote {
    /// A client for `host`. `insecure` allows plain http, also in redirects
    /// and token realms; otherwise only https is spoken.
    pub(crate) fn new(
        host: &str,
        insecure: bool,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Result<Remote> {
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if attempt.url().scheme() != "https" && !insecure {
                attempt.error("redirect to plain http refused (use --insecure to allow it)")
            } else {
                attempt.follow()
            }
        });
        let client = Client::builder()
            .connect_timeout(connect_timeout)
            // Blocking reqwest applies this to every read of a body as well:
            // a server that stops sending fails the read instead of hanging.
            .timeout(read_timeout)
            .redirect(policy)
            .user_agent(concat!("hearth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| StoreError::Remote(format!("cannot set up an HTTP client: {e}")))?;
        Ok(Remote {
            client,
            host: host.to_owned(),
            insecure,
            token: Mutex::new(None),
        })
    }

    /// The host named in errors.
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    /// Checks that `url` may be fetched (https, or http when insecure).
    pub(crate) fn check_scheme(&self, url: &Url) -> Result<()> {
        match url.scheme() {
            "https" => Ok(()),
            "http" if self.insecure => Ok(()),
            "http" => Err(StoreError::Remote(format!(
                "{url}: insecure protocol http (use --insecure to allow it)"
            ))),
            other => Err(StoreError::Remote(format!(
                "{url}: unsupported protocol {other}"
            ))),
        }
    }

    /// Sends `method url` with `headers`, answering an auth challenge once.
    /// Returns the response whatever its status; transport failures become
    /// [`StoreError::Unreachable`] (no connection) or [`StoreError::Remote`].
    pub(crate) fn send(&self, method: Method, url: &Url, headers: &HeaderMap) -> Result<Response> {
        self.send_with(method, url, headers, |r| r)
    }

    /// [`Remote::send`] with `body` to add a body to each attempt.
    pub(crate) fn send_with(
        &self,
        method: Method,
        url: &Url,
        headers: &HeaderMap,
        body: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response> {
        self.check_scheme(url)?;
        let build = || {
            let mut request = self
                .client
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if let Some(token) = self.token.lock().ok().and_then(|t| t.clone()) {
                request = request.bearer_auth(token);
            }
            body(request)
        };
        let response = build().send().map_err(|e| self.transport_error(&e))?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let Some(challenge) = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge)
        else {
            return Ok(response);
        };
        let token = self.fetch_token(&challenge)?;
        if let Ok(mut slot) = self.token.lock() {
            *slot = Some(token);
        }
        build().send().map_err(|e| self.transport_error(&e))
    }

    /// Asks the challenge's realm for a token (`GET realm?service=&scope=`).
    fn fetch_token(&self, challenge: &Challenge) -> Result<String> {
        let mut url = Url::parse(&challenge.realm).map_err(|e| {
            StoreError::Remote(format!(
                "{}: bad auth realm {:?}: {e}",
                self.host, challenge.realm
            ))
        })?;
        self.check_scheme(&url)?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = &challenge.service {
                query.append_pair("service", service);
            }
            if let Some(scope) = &challenge.scope {
                query.append_pair("scope", scope);
            }
        }
        let response = self
            .client
            .get(url)
            .send()
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(StoreError::Remote(format!(
                "{}: authorization failed ({status}): {}",
                self.host,
                error_text(response)
            )));
        }
        let body = read_capped(response, MAX_TOKEN_BYTES, &self.host, "token answer")?;
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| StoreError::Remote(format!("{}: bad token answer: {e}", self.host)))?;
        value
            .get("token")
            .or_else(|| value.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_owned)
            .ok_or_else(|| {
                StoreError::Remote(format!("{}: the token answer has no token", self.host))
            })
    }

    /// A transport failure as an error naming the host.
    pub(crate) fn transport_error(&self, e: &reqwest::Error) -> StoreError {
        let reason = root_cause(e);
        if e.is_connect() {
            StoreError::Unreachable {
                host: self.host.clone(),
                reason,
            }
        } else if e.is_timeout() {
            StoreError::Remote(format!("{}: timed out: {reason}", self.host))
        } else {
            StoreError::Remote(format!("{}: {reason}", self.host))
        }
    }
}

/// The innermost message of an error chain (reqwest's outer messages repeat
/// the URL; the cause says what happened, e.g. "Connection refused").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    if text.is_empty() { e.to_string() } else { text }
}

/// A `WWW-Authenticate: Bearer realm=…,service=…,scope=…` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub(crate) realm: String,
    pub(crate) service: Option<String>,
    pub(crate) scope: Option<String>,
}

/// Parses a bearer challenge; other schemes give `None`.
pub(crate) fn parse_challenge(value: &str) -> Option<Challenge> {
    let (scheme, params) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let (mut realm, mut service, mut scope) = (None, None, None);
    let mut rest = params.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => after.split_once(',').unwrap_or((after, "")),
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "realm" => realm = Some(value.to_owned()),
            "service" => service = Some(value.to_owned()),
            "scope" => scope = Some(value.to_owned()),
            _ => {}
        }
        rest = after.trim_start_matches([',', ' ']);
    }
    Some(Challenge {
        realm: realm?,
        service,
        scope,
    })
}

/// Reads at most `limit` bytes of a body; a longer one is an error.
pub(crate) fn read_capped(
    response: Response,
    limit: u64,
    host: &str,
    what: &str,
) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    response
        .take(limit + 1)
        .read_to_end(&mut body)
        .map_err(|e| StoreError::Remote(format!("{host}: reading the {what}: {e}")))?;
    if body.len() as u64 > limit {
        return Err(StoreError::Remote(format!(
            "{host}: the {what} is larger than {limit} bytes"
        )));
    }
    Ok(body)
}

/// The message of an error answer: the registry's `errors[0].message` or
/// `error`, else the start of the body.
pub(crate) fn error_text(response: Response) -> String {
    let mut body = Vec::new();
    let _ = response.take(MAX_ERROR_BYTES).read_to_end(&mut body);
    let text = String::from_utf8_lossy(&body).trim().to_owned();
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
        return text;
    };
    value["errors"][0]["message"]
        .as_str()
        .or_else(|| value["error"].as_str())
        .map_or(text.clone(), str::to_owned)
}

/// Headers for one request.
pub(crate) fn headers(pairs: &[(header::HeaderName, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(value) {
            map.insert(name.clone(), value);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://ollama.com/token",service="ollama.com",scope="repository:library/llama3.2:pull""#,
        )
        .unwrap();
        assert_eq!(c.realm, "https://ollama.com/token");
        assert_eq!(c.service.as_deref(), Some("ollama.com"));
        assert_eq!(c.scope.as_deref(), Some("repository:library/llama3.2:pull"));
        let c = parse_challenge("bearer realm=http://h/t, service=s").unwrap();
        assert_eq!(c.realm, "http://h/t");
        assert_eq!(c.service.as_deref(), Some("s"));
        assert_eq!(c.scope, None);
        assert!(parse_challenge(r#"Basic realm="x""#).is_none());
        assert!(parse_challenge("Bearer service=s").is_none());
        assert!(parse_challenge(r#"Bearer realm="unterminated"#).is_none());
    }
}
