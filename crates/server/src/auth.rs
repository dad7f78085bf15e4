//! API keys. Once any key is configured (`HEARTH_API_KEY`, or `[[keys]]` in
//! the config file, which holds only their SHA-256), every request but the
//! probes (`/`, `/health`, `/ready`, `/api/version`), the web page's assets
//! (`/ui/`) and CORS preflights must
//! carry one, as `Authorization: Bearer KEY` (OpenAI's clients, Ollama's with
//! a header set) or `x-api-key: KEY` (Anthropic's). Then, per key:
//!
//! - managing models (create, delete, copy, pull, push, blob uploads) needs
//!   `admin`;
//! - `models` globs limit which models it may use (checked against the
//!   request body's `model`);
//! - `requests_per_minute` (a token bucket refilled evenly over the minute),
//!   `tokens_per_minute` (prompt and generated tokens, debited when each
//!   answer ends, so a key over its budget is refused until the minute has
//!   refilled it) and `max_concurrent` (requests in flight, streams until
//!   their end) are answered 429 with `Retry-After` when exceeded.
//!
//! Refusals are 401 (no key, or an unknown one), 403 (not allowed) and 429,
//! in the API's own error shape. The key's name is put in the request's
//! extensions ([`KeyName`]) for the log.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest as _, Sha256};

use crate::ApiError;
use crate::config_file::KeyEntry;

/// SHA-256 of an API key, lower-case hex: what the config file stores.
pub fn key_hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random API key (`hearth-` and 32 bytes from the OS, hex).
pub fn new_key() -> std::io::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(format!(
        "hearth-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// The name of the key a request was made with (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName(pub String);

/// The keys and their live counters.
#[derive(Debug)]
pub struct Auth {
    /// By SHA-256.
    keys: HashMap<String, Arc<KeyState>>,
}

/// One key's policy and counters.
#[derive(Debug)]
struct KeyState {
    entry: KeyEntry,
    /// Tokens left in the per-minute bucket, and when it was last filled.
    bucket: Mutex<(f64, Instant)>,
    /// The same for tokens; may go below zero after a long answer.
    tokens: Mutex<(f64, Instant)>,
    in_flight: AtomicU64,
}

impl Auth {
    /// The guard for `keys` (empty: every request passes).
    pub fn new(keys: &[KeyEntry]) -> Auth {
        Auth {
            keys: keys
                .iter()
                .map(|k| {
                    let full = k.requests_per_minute.unwrap_or(0) as f64;
                    let tokens = k.tokens_per_minute.unwrap_or(0) as f64;
                    let state = KeyState {
                        entry: k.clone(),
                        bucket: Mutex::new((full, Instant::now())),
                        tokens: Mutex::new((tokens, Instant::now())),
                        in_flight: AtomicU64::new(0),
                    };
                    (k.sha256.clone(), Arc::new(state))
                })
                .collect(),
        }
    }
}

impl Auth {
    /// Debits `tokens` from the token budget of the key named `name`.
    pub fn debit_tokens(&self, name: &str, tokens: u64) {
        if let Some(key) = self.keys.values().find(|k| k.entry.name == name)
            && let Some(per_minute) = key.entry.tokens_per_minute
        {
            let mut bucket = key.tokens.lock().unwrap_or_else(PoisonError::into_inner);
            refill(&mut bucket, per_minute as f64);
            bucket.0 -= tokens as f64;
        }
    }
}

/// Refills `bucket` (tokens left, last time) at `per_minute`, capped there.
fn refill(bucket: &mut (f64, Instant), per_minute: f64) {
    let now = Instant::now();
    bucket.0 =
        (bucket.0 + now.duration_since(bucket.1).as_secs_f64() * per_minute / 60.0).min(per_minute);
    bucket.1 = now;
}

/// Seconds until `key`'s token budget is positive again, if it is spent.
fn tokens_spent(key: &KeyState) -> Option<u64> {
    let per_minute = key.entry.tokens_per_minute? as f64;
    let mut bucket = key.tokens.lock().unwrap_or_else(PoisonError::into_inner);
    refill(&mut bucket, per_minute);
    if bucket.0 > 0.0 {
        return None;
    }
    if per_minute == 0.0 {
        return Some(60);
    }
    Some(((1.0 - bucket.0) * 60.0 / per_minute).ceil().max(1.0) as u64)
}

/// Counts a request in flight for a key until dropped.
struct InFlight(Arc<KeyState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Endpoints that manage models, for admin keys only.
fn manages_models(method: &Method, path: &str) -> bool {
    matches!(
        (method.as_str(), path),
        (
            "POST",
            "/api/create"
                | "/api/copy"
                | "/api/pull"
                | "/api/push"
                | "/api/channels/promote"
                | "/api/channels/rollback"
        ) | ("DELETE", "/api/delete")
    ) || path.starts_with("/api/blobs/")
}

/// The middleware (module docs).
pub(crate) async fn check(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let refuse = |error: ApiError| {
        let mut response = crate::error::response_for(&path, error);
        if response.status() == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    };
    if auth.keys.is_empty()
        || request.method() == Method::OPTIONS
        || matches!(path.as_str(), "/health" | "/ready" | "/api/version")
        || crate::web::is_page_path(&path)
    {
        return next.run(request).await;
    }
    let headers = request.headers();
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim);
    let Some(presented) = presented.filter(|k| !k.is_empty()) else {
        return refuse(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "an API key is required: send Authorization: Bearer KEY or x-api-key: KEY",
        ));
    };
    let Some(key) = auth.keys.get(&key_hash(presented)).cloned() else {
        return refuse(ApiError::new(StatusCode::UNAUTHORIZED, "invalid API key"));
    };
    let entry = &key.entry;
    if manages_models(request.method(), &path) && !entry.admin {
        return refuse(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "key '{}' may not manage models (admin keys only)",
                entry.name
            ),
        ));
    }
    if let Some(retry) = take_request(&key) {
        let mut response = refuse(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "key '{}' is over its requests per minute; retry in {retry} s",
                entry.name
            ),
        ));
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry.into());
        return response;
    }
    if let Some(retry) = tokens_spent(&key) {
        let mut response = refuse(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "key '{}' is over its tokens per minute; retry in {retry} s",
                entry.name
            ),
        ));
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry.into());
        return response;
    }
    if let Some(max) = entry.max_concurrent
        && key.in_flight.load(Ordering::Relaxed) >= max
    {
        let mut response = refuse(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("key '{}' has {max} requests in flight already", entry.name),
        ));
        response.headers_mut().insert(header::RETRY_AFTER, 1.into());
        return response;
    }
    let mut request = request;
    if let Some(globs) = &entry.models
        && request.method() == Method::POST
    {
        let (parts, body) = request.into_parts();
        let limit = crate::body_limit_of(&parts.extensions);
        let bytes = match axum::body::to_bytes(body, limit).await {
            Ok(bytes) => bytes,
            Err(_) => return refuse(ApiError::too_large(limit)),
        };
        let model = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("model").and_then(|m| m.as_str()).map(str::to_owned));
        if let Some(model) = model
            && !model_allowed(globs, &model)
        {
            return refuse(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "key '{}' may not use model '{}'",
                    entry.name,
                    crate::error::truncated(&model)
                ),
            ));
        }
        request = Request::from_parts(parts, Body::from(bytes));
    }
    request.extensions_mut().insert(KeyName(entry.name.clone()));
    if let Some(observer) = crate::observe::Observer::current() {
        observer.set_key(&entry.name);
    }
    key.in_flight.fetch_add(1, Ordering::Relaxed);
    let guard = InFlight(key.clone());
    crate::hold_until_sent(next.run(request).await, guard)
}

/// Takes one request from `key`'s bucket; `Some(seconds)` to wait when empty.
fn take_request(key: &KeyState) -> Option<u64> {
    let per_minute = key.entry.requests_per_minute? as f64;
    let mut bucket = key.bucket.lock().unwrap_or_else(PoisonError::into_inner);
    refill(&mut bucket, per_minute);
    if bucket.0 >= 1.0 {
        bucket.0 -= 1.0;
        None
    } else if per_minute == 0.0 {
        Some(60)
    } else {
        Some(((1.0 - bucket.0) * 60.0 / per_minute).ceil().max(1.0) as u64)
    }
}

/// Whether `model` (as the request names it) matches one of `globs`, tried
/// on the name as sent and on its short form (`llama3` → `llama3:latest`).
fn model_allowed(globs: &[String], model: &str) -> bool {
    let short = store::ModelName::parse(model).map(|n| n.display_short());
    globs
        .iter()
        .any(|g| glob_match(g, model) || short.as_deref().is_ok_and(|s| glob_match(g, s)))
}

/// `*` (any run) and `?` (one character) wildcards.
fn glob_match(glob: &str, text: &str) -> bool {
    let (g, t): (Vec<char>, Vec<char>) = (glob.chars().collect(), text.chars().collect());
    let (mut gi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if gi < g.len() && (g[gi] == '?' || g[gi] == t[ti]) {
            gi += 1;
            ti += 1;
        } else if gi < g.len() && g[gi] == '*' {
            star = Some(gi);
            mark = ti;
            gi += 1;
        } else if let Some(s) = star {
            gi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_names_as_sent_and_short() {
        assert!(glob_match("llama3*", "llama3.2:1b"));
        assert!(glob_match("*", ""));
        assert!(glob_match("qwen?:*", "qwen3:8b"));
        assert!(!glob_match("llama3*", "qwen3"));
        assert!(!glob_match("llama", "llama3"));
        let globs = ["llama3:latest".to_owned()];
        assert!(model_allowed(&globs, "llama3"));
        assert!(!model_allowed(&globs, "llama3:8b"));
    }

    #[test]
    fn the_bucket_refuses_past_its_rate_and_says_when_to_retry() {
        let entry = KeyEntry {
            name: "k".into(),
            sha256: key_hash("k"),
            models: None,
            admin: false,
            local_only: false,
            requests_per_minute: Some(2),
            tokens_per_minute: None,
            max_concurrent: None,
        };
        let auth = Auth::new(&[entry]);
        let key = auth.keys.values().next().unwrap();
        assert_eq!(take_request(key), None);
        assert_eq!(take_request(key), None);
        let retry = take_request(key).unwrap();
        assert!((1..=30).contains(&retry), "{retry}");
    }

    #[test]
    fn keys_are_random_and_hashed() {
        let (a, b) = (new_key().unwrap(), new_key().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with("hearth-") && a.len() == 7 + 64);
        assert_eq!(
            key_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
