//! Hybrid routing: where each generation request is served.
//!
//! One middleware ([`dispatch`]) sits in front of `/api/chat`,
//! `/api/generate`, `/v1/chat/completions` and `/v1/completions` and decides,
//! from the policy in the config file ([`Routing`], see `config.rs`):
//!
//! - a model named `UPSTREAM/MODEL` goes to that OpenAI-compatible upstream
//!   (`upstream.rs` translates both ways), unless the request must stay on
//!   this machine: `HEARTH_OFFLINE=1`, a key with `local_only = true`, or
//!   (`sensitive = "local"`) personal data found by `detect.rs`. Such a
//!   request is answered by `fallback`, or refused with a message saying
//!   why;
//! - an upstream that cannot be reached or answers 5xx falls back to
//!   `fallback` (or, for overflow, to the model asked for);
//! - overflow (`burst = true`): a request for a local model that may leave
//!   goes to `burst_model` while more than `burst_queue` requests wait;
//! - a channel with `canary = N` sends N% of its requests to its
//!   experimental model; with `shadow = true` the experimental model
//!   answers a copy of each request in the background (`channels.rs`).
//!
//! Every answer carries `X-Hearth-Route: local` or the upstream's name; the
//! route and the reason go to the audit log and the per-route token
//! metrics (never any text). The rest of the server does not know about
//! upstreams: a request served locally reaches the handlers with, at most,
//! its `model` rewritten.

pub mod channels;
mod config;
pub mod detect;
mod upstream;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub use config::{ChannelPolicy, Routing, Upstream};

use crate::AppState;
use crate::error::{ApiError, response_for};
use crate::observe::Observer;
use upstream::Failure;

/// The header that says where an answer was made.
pub const ROUTE_HEADER: &str = "x-hearth-route";

/// The generation endpoints routing applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `/api/chat`.
    OllamaChat,
    /// `/api/generate`.
    OllamaGenerate,
    /// `/v1/chat/completions`.
    OpenAiChat,
    /// `/v1/completions`.
    OpenAiCompletions,
}

/// The policy, compiled, with the client that reaches upstreams.
#[derive(Debug)]
pub struct Router {
    /// The policy as configured.
    pub policy: Routing,
    detector: detect::Detector,
    client: reqwest::Client,
    /// Names of the keys whose requests never leave.
    local_only_keys: Vec<String>,
    /// Requests seen per channel (as `policy.channels` lists them), for
    /// the canary split.
    canary_counters: Vec<AtomicU64>,
    /// The latest shadow answers per channel.
    pub shadows: channels::Shadows,
}

/// Where a request goes.
#[derive(Debug)]
enum Decision {
    /// Served here, by `model` when it replaces the one asked for.
    Local {
        model: Option<String>,
        reason: String,
        shadow: Option<String>,
    },
    /// Sent to an upstream; on failure served here by `fallback`.
    Upstream {
        upstream: Upstream,
        model: String,
        reason: String,
        fallback: Option<String>,
    },
    /// Refused: the answer, and the reason for the audit log.
    Refuse(ApiError, String),
}

impl Router {
    /// The router for `config` (whose routing policy was checked when read).
    pub fn new(config: &crate::Config) -> Router {
        let policy = config.routing.clone();
        let detector = detect::Detector::new(&policy.patterns, &policy.keywords)
            .expect("patterns were checked when the config was read");
        // No overall timeout (streamed answers may run long), but an
        // upstream that sends nothing for two minutes has failed.
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .read_timeout(std::time::Duration::from_secs(120))
            .build()
            .expect("a client without custom TLS settings builds");
        Router {
            detector,
            client,
            local_only_keys: config
                .keys
                .iter()
                .filter(|k| k.local_only)
                .map(|k| k.name.clone())
                .collect(),
            canary_counters: policy.channels.iter().map(|_| AtomicU64::new(0)).collect(),
            shadows: channels::Shadows::default(),
            policy,
        }
    }

    /// Where a request for `api` with `body` goes; `waiting` is the local
    /// queue's length, `key` the name of the key it came with.
    fn decide(&self, body: &Value, waiting: usize, key: Option<&str>) -> Decision {
        let requested = body["model"].as_str().unwrap_or_default();
        let policy = &self.policy;
        // Why the request may not leave this machine, if it may not.
        let stay = || -> Option<String> {
            if policy.offline {
                return Some("offline".to_owned());
            }
            if key.is_some_and(|k| self.local_only_keys.iter().any(|l| l == k)) {
                return Some("key_local_only".to_owned());
            }
            if policy.sensitive_local {
                let mut text = String::new();
                collect_text(body, &mut text);
                if let Some(kind) = self.detector.find(&text) {
                    return Some(format!("sensitive_{kind}"));
                }
            }
            None
        };
        // A channel's canary may be an upstream model.
        let (picked, reason, shadow) = self.channel_pick(requested);
        let canary = picked.is_some();
        let effective = picked.as_deref().unwrap_or(requested);
        if let Some((upstream, model)) = policy.upstream_of(effective) {
            return match (stay(), &policy.fallback) {
                (None, _) => Decision::Upstream {
                    upstream: upstream.clone(),
                    model: model.to_owned(),
                    reason,
                    // A canary that fails is answered by the channel itself.
                    fallback: if canary {
                        Some(requested.to_owned())
                    } else {
                        policy.fallback.clone()
                    },
                },
                (Some(reason), _) if canary => Decision::Local {
                    model: None,
                    reason,
                    shadow: None,
                },
                (Some(reason), Some(fallback)) => Decision::Local {
                    model: Some(fallback.clone()),
                    reason,
                    shadow: None,
                },
                (Some(reason), None) => Decision::Refuse(refusal(requested, &reason), reason),
            };
        }
        let model = picked;
        if let Some((queue, burst_model)) = &policy.burst
            && waiting > *queue
            && stay().is_none()
            && let Some((upstream, model)) = policy.upstream_of(burst_model)
        {
            return Decision::Upstream {
                upstream: upstream.clone(),
                model: model.to_owned(),
                reason: "burst".to_owned(),
                fallback: None,
            };
        }
        Decision::Local {
            model,
            reason,
            shadow,
        }
    }

    /// For a request naming a channel with a split: the model that answers
    /// it (`None`: the channel's target, as named), the reason, and the
    /// model that shadows it. The canary share is spread evenly: request n
    /// goes to the experimental model when ⌊(n+1)·p/100⌋ > ⌊n·p/100⌋, so
    /// any 100 consecutive requests hold exactly p of them.
    fn channel_pick(&self, requested: &str) -> (Option<String>, String, Option<String>) {
        let short = store::ModelName::parse(requested).map(|n| n.display_short());
        let Some((i, channel)) = self.policy.channels.iter().enumerate().find(|(_, c)| {
            let name = store::ModelName::parse(&c.name).map(|n| n.display_short());
            name.is_ok() && name.as_ref().ok() == short.as_ref().ok()
        }) else {
            return (None, "model".to_owned(), None);
        };
        let shadow = channel.shadow.then(|| channel.experimental.clone());
        if channel.canary > 0 {
            let n = self.canary_counters[i].fetch_add(1, Ordering::Relaxed);
            let p = u64::from(channel.canary);
            if (n + 1) * p / 100 > n * p / 100 {
                return (
                    Some(channel.experimental.clone()),
                    "canary".to_owned(),
                    None,
                );
            }
        }
        (None, "channel".to_owned(), shadow)
    }
}

/// Why a request for an upstream model was refused.
fn refusal(requested: &str, reason: &str) -> ApiError {
    let why = match reason {
        "offline" => {
            return ApiError::unavailable(format!(
                "'{requested}' is an upstream model and HEARTH_OFFLINE=1 forbids outbound \
                 connections; set [routing] fallback to answer such requests locally"
            ));
        }
        "key_local_only" => "this key is local-only".to_owned(),
        other => format!(
            "the request holds personal data ({})",
            other.trim_start_matches("sensitive_")
        ),
    };
    ApiError::new(
        StatusCode::FORBIDDEN,
        format!(
            "'{requested}' is an upstream model and {why}, so it must stay on this machine; \
             set [routing] fallback to answer such requests locally"
        ),
    )
}

/// Every string of `body` but its model's name, for the detector.
fn collect_text(body: &Value, out: &mut String) {
    match body {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(items) => items.iter().for_each(|v| collect_text(v, out)),
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| *k != "model")
            .for_each(|(_, v)| collect_text(v, out)),
        _ => {}
    }
}

fn with_route(mut response: Response, route: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(route) {
        response.headers_mut().insert(ROUTE_HEADER, value);
    }
    response
}

fn record_route(route: &str, reason: &str) {
    if let Some(observer) = Observer::current() {
        observer.set_route(route, reason);
    }
}

/// The middleware (module docs).
pub(crate) async fn dispatch(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let router = state.router.clone();
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let api = match path.as_str() {
        "/api/chat" => Api::OllamaChat,
        "/api/generate" => Api::OllamaGenerate,
        "/v1/chat/completions" => Api::OpenAiChat,
        "/v1/completions" => Api::OpenAiCompletions,
        "/api/pull" | "/api/push" if router.policy.offline => {
            return response_for(
                &path,
                ApiError::unavailable(
                    "HEARTH_OFFLINE=1 forbids outbound connections: pull and push are off",
                ),
            );
        }
        "/api/show" if method == Method::POST && !router.policy.upstreams.is_empty() => {
            return show_upstream_model(&router.policy, request, next).await;
        }
        "/api/tags" | "/v1/models" if method == Method::GET => {
            return list_upstream_models(&router.policy, &path, next.run(request).await).await;
        }
        p if method == Method::GET && p.starts_with("/v1/models/") => {
            let id = &p["/v1/models/".len()..];
            if let Some((upstream, _)) = router.policy.upstream_of(id) {
                return axum::Json(openai_model(id, &upstream.name)).into_response();
            }
            return next.run(request).await;
        }
        _ => return next.run(request).await,
    };
    if method != Method::POST {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let limit = crate::body_limit_of(&parts.extensions);
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return response_for(&path, ApiError::too_large(limit));
    };
    let body = match serde_json::from_slice::<Value>(&bytes) {
        Ok(body @ Value::Object(_)) if body["model"].is_string() => body,
        // The handler gives its own error for a malformed body.
        _ => {
            let request = Request::from_parts(parts, Body::from(bytes));
            return with_route(next.run(request).await, "local");
        }
    };
    let key = parts
        .extensions
        .get::<crate::auth::KeyName>()
        .map(|k| k.0.clone());
    let waiting = state.scheduler.load_counts().0;
    let requested = body["model"].as_str().unwrap_or_default().to_owned();
    let serve_here = |model: Option<String>, reason: String, shadow: Option<String>| {
        let mut body = body.clone();
        // The handler gets the bytes as sent unless the model changes.
        let bytes = match &model {
            Some(model) => {
                body["model"] = json!(model);
                axum::body::Bytes::from(body.to_string())
            }
            None => bytes,
        };
        if let Some(experimental) = shadow {
            let id = parts
                .extensions
                .get::<crate::RequestId>()
                .map(|id| id.0.clone())
                .unwrap_or_default();
            channels::spawn_shadow(state.clone(), api, &body, &requested, experimental, id);
        }
        record_route("local", &reason);
        parts.headers.remove(header::CONTENT_LENGTH);
        let request = Request::from_parts(parts, Body::from(bytes));
        async move { with_route(next.run(request).await, "local") }
    };
    match router.decide(&body, waiting, key.as_deref()) {
        Decision::Refuse(error, reason) => {
            record_route("refused", &reason);
            response_for(&path, error)
        }
        Decision::Local {
            model,
            reason,
            shadow,
        } => serve_here(model, reason, shadow).await,
        Decision::Upstream {
            upstream,
            model,
            reason,
            fallback,
        } => match forward(&router, api, &body, &upstream, &model, &requested).await {
            Ok(response) => {
                record_route(&upstream.name, &reason);
                with_route(response, &upstream.name)
            }
            Err(Failure::Refused(error)) => {
                record_route(&upstream.name, &reason);
                with_route(response_for(&path, error), &upstream.name)
            }
            Err(Failure::Unavailable(why)) => {
                tracing::warn!(upstream = %upstream.name, "upstream failed: {why}");
                let fallback = match reason.as_str() {
                    "burst" => Some(None),
                    _ => fallback.map(Some),
                };
                match fallback {
                    Some(model) => serve_here(model, "upstream_failed".to_owned(), None).await,
                    None => {
                        record_route(&upstream.name, "upstream_failed");
                        response_for(
                            &path,
                            ApiError::new(
                                StatusCode::BAD_GATEWAY,
                                format!(
                                    "upstream {} is unavailable and no [routing] fallback is set",
                                    upstream.name
                                ),
                            ),
                        )
                    }
                }
            }
        },
    }
}

/// Sends the request upstream and makes the caller's answer.
async fn forward(
    router: &Router,
    api: Api,
    body: &Value,
    upstream: &Upstream,
    model: &str,
    requested: &str,
) -> Result<Response, Failure> {
    let start = Instant::now();
    // An empty generate only loads the model, as Ollama's does: there is
    // nothing to load upstream.
    if api == Api::OllamaGenerate && body["prompt"].as_str().is_none_or(str::is_empty) {
        return Ok(axum::Json(json!({
            "model": requested,
            "created_at": jiff::Timestamp::now().to_string(),
            "response": "",
            "done": true,
            "done_reason": "load",
        }))
        .into_response());
    }
    let (path, out, stream, include_usage) =
        upstream::translate_request(api, body, model).map_err(Failure::Refused)?;
    let response = upstream::send(&router.client, upstream, path, &out).await?;
    let observer = Observer::current();
    if stream {
        return Ok(upstream::translate_stream(
            api,
            response,
            requested,
            include_usage,
            observer,
        ));
    }
    let answer: Value = response.json().await.map_err(|e| {
        Failure::Unavailable(format!(
            "upstream {}: unreadable answer: {e}",
            upstream.name
        ))
    })?;
    let (answer, usage) = upstream::translate_answer(api, answer, requested, start);
    if let Some(observer) = observer {
        observer.set_token_counts(usage.tokens.0, usage.tokens.1);
    }
    Ok(axum::Json(answer).into_response())
}

/// An upstream model as `/v1/models` lists it.
fn openai_model(id: &str, owner: &str) -> Value {
    json!({ "id": id, "object": "model", "created": 0, "owned_by": owner })
}

/// `/api/show` of an upstream model: what hearth knows of it (Ollama's
/// clients ask before they chat); other models go to the handler.
async fn show_upstream_model(policy: &Routing, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let limit = crate::body_limit_of(&parts.extensions);
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return response_for("/api/show", ApiError::too_large(limit));
    };
    let name = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| {
            v["model"]
                .as_str()
                .filter(|m| !m.is_empty())
                .or(v["name"].as_str())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let Some((upstream, model)) = policy.upstream_of(&name) else {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    };
    axum::Json(json!({
        "license": "",
        "modelfile": "",
        "parameters": "",
        "template": "",
        "system": "",
        "details": { "format": "upstream", "family": "", "parameter_size": "", "quantization_level": "" },
        "model_info": {},
        "capabilities": ["completion", "tools"],
        "remote_model": model,
        "remote_host": upstream.url,
    }))
    .into_response()
}

/// A stable stand-in for an upstream model's digest (clients expect one):
/// SHA-256 of `upstream URL model`.
fn upstream_digest(upstream: &Upstream, model: &str) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(format!("upstream {} {model}", upstream.url).as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// `/api/tags` or `/v1/models` with the upstreams' models added.
async fn list_upstream_models(policy: &Routing, path: &str, response: Response) -> Response {
    if policy.upstreams.is_empty() || response.status() != StatusCode::OK {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return response_for(path, ApiError::internal("listing models", &"body"));
    };
    let Ok(mut list) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    for upstream in &policy.upstreams {
        for model in &upstream.models {
            let id = format!("{}/{model}", upstream.name);
            if let Some(models) = list["models"].as_array_mut() {
                models.push(json!({
                    "name": id,
                    "model": id,
                    "remote_model": model,
                    "remote_host": upstream.url,
                    "modified_at": "1970-01-01T00:00:00Z",
                    "size": 0,
                    "digest": upstream_digest(upstream, model),
                    "details": { "format": "upstream", "family": "", "parameter_size": "", "quantization_level": "" },
                }));
            } else if let Some(data) = list["data"].as_array_mut() {
                data.push(openai_model(&id, &upstream.name));
            }
        }
    }
    let mut response = axum::Json(list).into_response();
    *response.status_mut() = parts.status;
    response
}

/// Whether `HEARTH_OFFLINE` (in the environment) forbids outbound
/// connections, for the CLI's own pulls and pushes.
pub fn offline_from_env() -> bool {
    crate::config::env_setting("OFFLINE").is_some_and(|(_, v)| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config file with `text`, in a directory of its own.
    fn config_file(text: &str) -> crate::config_file::ConfigFile {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hearth-route-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.toml");
        std::fs::write(&path, text).unwrap();
        crate::config_file::ConfigFile::load(&path).unwrap()
    }

    fn router(text: &str, offline: bool) -> Router {
        let file = config_file(text);
        let config = crate::Config {
            routing: Routing::from_file(&file, offline).unwrap(),
            keys: file.keys().unwrap(),
            ..crate::Config::default()
        };
        Router::new(&config)
    }

    const POLICY: &str = "[[upstreams]]\nname = \"cloud\"\nurl = \"http://127.0.0.1:9/v1\"\nmodels = [\"m\"]\n\n\
        [routing]\nsensitive = \"local\"\nfallback = \"tiny\"\nburst = true\nburst_queue = 2\nburst_model = \"cloud/m\"\n\n\
        [[keys]]\nname = \"clinic\"\nsha256 = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\nlocal_only = true\n\n\
        [[channels]]\nname = \"prod\"\nexperimental = \"next\"\ncanary = 10\n";

    fn route_of(decision: Decision) -> (String, String) {
        match decision {
            Decision::Local { model, reason, .. } => (model.unwrap_or_default(), reason),
            Decision::Upstream {
                upstream, reason, ..
            } => (upstream.name, reason),
            Decision::Refuse(e, _) => ("refused".to_owned(), e.message),
        }
    }

    #[test]
    fn decisions_follow_the_policy() {
        let r = router(POLICY, false);
        let ask = |model: &str, text: &str| json!({"model": model, "prompt": text});
        let decide = |body: &Value, waiting: usize, key: Option<&str>| {
            route_of(r.decide(body, waiting, key))
        };
        assert_eq!(
            decide(&ask("cloud/m", "hi"), 0, None),
            ("cloud".into(), "model".into())
        );
        assert_eq!(
            decide(&ask("cloud/m", "mail a@b.example"), 0, None),
            ("tiny".into(), "sensitive_email".into())
        );
        assert_eq!(
            decide(&ask("cloud/m", "hi"), 0, Some("clinic")),
            ("tiny".into(), "key_local_only".into())
        );
        // Overflow: past the queue threshold, requests that may leave go out.
        assert_eq!(
            decide(&ask("tiny", "hi"), 2, None),
            ("".into(), "model".into())
        );
        assert_eq!(
            decide(&ask("tiny", "hi"), 3, None),
            ("cloud".into(), "burst".into())
        );
        assert_eq!(
            decide(&ask("tiny", "call 415-555-0132"), 3, None),
            ("".into(), "model".into())
        );
        assert_eq!(
            decide(&ask("tiny", "hi"), 3, Some("clinic")),
            ("".into(), "model".into())
        );
        // Offline: nothing leaves; upstream models get the fallback.
        let offline = router(POLICY, true);
        assert_eq!(
            route_of(offline.decide(&ask("cloud/m", "hi"), 9, None)),
            ("tiny".into(), "offline".into())
        );
        assert_eq!(
            route_of(offline.decide(&ask("tiny", "hi"), 9, None)),
            ("".into(), "model".into())
        );
        let strict = router(&POLICY.replace("fallback = \"tiny\"\n", ""), true);
        let (route, message) = route_of(strict.decide(&ask("cloud/m", "hi"), 0, None));
        assert_eq!(route, "refused");
        assert!(message.contains("HEARTH_OFFLINE"), "{message}");
    }

    #[test]
    fn a_canary_may_be_an_upstream_model() {
        let r = router(
            &POLICY.replace("experimental = \"next\"", "experimental = \"cloud/m\""),
            false,
        );
        let body = json!({"model": "prod", "prompt": "hi"});
        let routes: Vec<(String, String)> = (0..10)
            .map(|_| route_of(r.decide(&body, 0, None)))
            .collect();
        assert_eq!(
            routes.iter().filter(|r| r.0 == "cloud").count(),
            1,
            "{routes:?}"
        );
        assert!(routes.contains(&("cloud".into(), "canary".into())));
        // Requests that must stay are answered by the channel itself.
        let private = json!({"model": "prod", "prompt": "a@b.example"});
        let routes: Vec<(String, String)> = (0..10)
            .map(|_| route_of(r.decide(&private, 0, None)))
            .collect();
        assert!(routes.iter().all(|r| r.0.is_empty()), "{routes:?}");
    }

    #[test]
    fn a_canary_takes_exactly_its_share_spread_evenly() {
        let r = router(POLICY, false);
        let picks: Vec<bool> = (0..200)
            .map(|_| r.channel_pick("prod").1 == "canary")
            .collect();
        assert_eq!(picks.iter().filter(|p| **p).count(), 20);
        // Never two canary requests within ten.
        assert!(
            picks
                .windows(10)
                .all(|w| w.iter().filter(|p| **p).count() <= 1)
        );
        assert_eq!(r.channel_pick("other").1, "model");
    }

    #[test]
    fn bad_policies_are_refused_naming_the_field() {
        let load = |text: &str| {
            Routing::from_file(&config_file(text), false)
                .unwrap_err()
                .to_string()
        };
        assert!(load("[routing]\npatterns = [\"(\"]\n").contains("routing.patterns[0]"));
        assert!(load("[routing]\nsensitive = \"maybe\"\n").contains("routing.sensitive"));
        assert!(
            load("[[upstreams]]\nname = \"a\"\nurl = \"ftp://x\"\n").contains("upstreams[0].url")
        );
        assert!(
            load("[[upstreams]]\nname = \"a\"\nurl = \"http://x\"\nkey = 1\n")
                .contains("upstreams[0].key")
        );
        assert!(load("[routing]\nburst = true\nburst_model = \"x/y\"\n").contains("burst_model"));
        assert!(
            load("[[channels]]\nname = \"p\"\nexperimental = \"e\"\ncanary = 101\n")
                .contains("canary")
        );
    }
}
