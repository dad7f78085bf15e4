//! `hearth serve`: Ollama's and OpenAI's HTTP APIs over the engine, with model
//! residency, bounded queues and request limits.
//!
//! - [`app`] builds the router from an [`AppState`], so tests drive it without
//!   a socket; [`serve`] binds it and runs until a shutdown signal.
//! - Handlers are thin: `api/ollama.rs` and `api/openai.rs` turn requests
//!   into one internal [`request::GenerateRequest`], and job
//!   [`request::Event`]s back into their API's JSON (NDJSON or SSE streams).
//! - [`scheduler`] decides what is loaded; `worker.rs` runs models on their
//!   own threads, never on the async reactor.
//! - Errors are [`ApiError`]s rendered as `{"error": "..."}` (or, under
//!   `/v1`, as OpenAI's `{"error": {"message", "type", ...}}`) with a fitting
//!   status; internal details go to the log only.
//! - [`web`] serves the page for people at `/`, from files compiled in.
//! - [`route`] decides, in one middleware in front of the generation
//!   handlers, whether a request is served here or by an OpenAI-compatible
//!   upstream (and which local model serves it: fallback, channel canary).
//!
//! Privacy: the server binds 127.0.0.1 unless `HEARTH_HOST` says otherwise,
//! allows cross-origin requests only from local origins unless
//! `HEARTH_ORIGINS` adds more, and never logs prompt or response text unless
//! `HEARTH_LOG_PROMPTS=1`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod config;
pub mod config_file;
pub mod embed;
pub mod error;
mod guard;
pub mod json;
pub mod listen;
pub mod memory;
pub mod metrics;
pub mod observe;
pub mod request;
pub mod route;
pub mod scheduler;
pub mod web;
mod worker;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::routing::{get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use config::{Config, KeepAlive};
pub use error::ApiError;
pub use scheduler::Scheduler;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Model residency and the store.
    pub scheduler: Arc<Scheduler>,
    /// Set when shutdown begins: `/ready` and new requests answer 503 from
    /// then on.
    pub draining: Arc<AtomicBool>,
    /// Requests in flight, which a drain waits for.
    pub in_flight: Arc<listen::InFlight>,
    /// What `/metrics` reports.
    pub metrics: Arc<metrics::Metrics>,
    /// The audit log (`HEARTH_AUDIT_LOG`), if one is kept.
    pub audit: Option<Arc<observe::AuditLog>>,
    /// API keys and their budgets.
    pub auth: Arc<auth::Auth>,
    /// Where generation requests are served (upstreams, policy, channels).
    pub router: Arc<route::Router>,
}

impl AppState {
    /// State over `store` with `config`'s limits.
    pub fn new(store: store::Store, config: Config) -> AppState {
        let audit = config
            .audit_log
            .as_ref()
            .map(|(path, max)| Arc::new(observe::AuditLog::new(path.clone(), *max, 5)));
        let auth = Arc::new(auth::Auth::new(&config.keys));
        let router = Arc::new(route::Router::new(&config));
        let metrics = Arc::new(metrics::Metrics::new());
        metrics.set_prices(&config.routing);
        AppState {
            audit,
            auth,
            router,
            scheduler: Scheduler::new(store, config),
            draining: Arc::new(AtomicBool::new(false)),
            in_flight: Arc::new(listen::InFlight::default()),
            metrics,
        }
    }
}

/// Counts each request in flight until its response body is done (streams
/// included), and while the server drains answers new requests 503 with
/// `Connection: close` (probes aside), so clients and load balancers go
/// elsewhere while the requests in flight finish.
async fn track(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = request.uri().path();
    if path == "/health" || path == "/ready" {
        return next.run(request).await;
    }
    if state.draining.load(Ordering::Relaxed) {
        let mut response =
            ApiError::unavailable("the server is shutting down; try again on another replica")
                .into_response();
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            HeaderValue::from_static("close"),
        );
        return response;
    }
    let guard = state.in_flight.enter();
    hold_until_sent(next.run(request).await, guard)
}

/// `/ready`: 200 while the server takes requests, 503 once it drains (so a
/// load balancer stops sending new ones). `/health` only says it is alive.
async fn ready(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if state.draining.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response()
    } else {
        "ready".into_response()
    }
}

/// The body limit in force for a request (set by [`app`] as an extension).
#[derive(Debug, Clone, Copy)]
struct BodyLimit(usize);

/// The body limit of `req`, for error messages.
pub(crate) fn body_limit(req: &Request) -> usize {
    body_limit_of(req.extensions())
}

/// The body limit recorded in a request's `extensions`.
pub(crate) fn body_limit_of(extensions: &axum::http::Extensions) -> usize {
    extensions
        .get::<BodyLimit>()
        .map_or(config::DEFAULT_MAX_BODY_BYTES, |l| l.0)
}

/// `response` with `guard` kept alive until its body has been sent (or the
/// client went away): at once for a body already made, at the end of a
/// stream.
pub(crate) fn hold_until_sent<G: Send + 'static>(
    response: axum::response::Response,
    guard: G,
) -> axum::response::Response {
    if axum::body::HttpBody::size_hint(response.body())
        .exact()
        .is_some()
    {
        // The whole answer is made; only sending it remains.
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = futures_util::StreamExt::map(body.into_data_stream(), move |chunk| {
        let _ = &guard;
        chunk
    });
    axum::response::Response::from_parts(parts, axum::body::Body::from_stream(body))
}

/// The router: every endpoint, CORS and the body limit.
pub fn app(state: AppState) -> Router {
    use api::{models, ollama};
    let config = state.scheduler.config().clone();
    let limit = config.max_body_bytes;
    let blobs = Router::new()
        .route(
            "/api/blobs/{digest}",
            post(models::blob_upload).head(models::blob_exists),
        )
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .merge(web::routes())
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics::handler))
        .route("/api/version", get(models::version))
        .route("/api/generate", post(ollama::generate))
        .route("/api/chat", post(ollama::chat))
        .route("/api/embed", post(ollama::embed))
        .route("/api/embeddings", post(ollama::embeddings))
        .route("/api/tags", get(models::tags))
        .route("/api/show", post(models::show))
        .route("/api/create", post(models::create))
        .route("/api/pull", post(api::pull::pull))
        .route("/api/push", post(api::pull::push))
        .route("/v2/", get(api::registry::version_check))
        .route(
            "/v2/{namespace}/{model}/manifests/{tag}",
            get(api::registry::manifest).head(api::registry::manifest),
        )
        .route(
            "/v2/{namespace}/{model}/blobs/{digest}",
            get(api::registry::blob).head(api::registry::blob),
        )
        .route("/api/copy", post(models::copy))
        .route("/api/delete", axum::routing::delete(models::delete))
        .route("/api/ps", get(models::ps))
        .route("/lora-adapters", get(api::lora::list).post(api::lora::set))
        .merge(route::channels::routes())
        .nest("/v1", api::openai::routes())
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::Extension(BodyLimit(limit)))
        .merge(blobs)
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        })
        // Inside the keys check, so the router knows the request's key.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            route::dispatch,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), track))
        .layer(axum::middleware::from_fn_with_state(
            state.auth.clone(),
            auth::check,
        ))
        .layer(axum::middleware::from_fn_with_state(
            guard::Guard::new(&config.host, &config.allowed_hosts, &config.origins),
            guard::check,
        ))
        .layer(cors(&config.origins))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::record,
        ))
        .layer(axum::middleware::from_fn(log_request))
        // Outermost, so that every middleware that reads a body (metrics,
        // keys) is bound by it too.
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            config.limits.body_timeout,
        ))
        .with_state(state)
}

/// A request's id: the client's `X-Request-Id` when it is a sane one (1 to
/// 128 characters of letters, digits and `._:-`), else one made here. It is
/// a request extension, logged with the request and echoed in the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// The id for a request that sent `given`.
    fn new(given: Option<&HeaderValue>) -> RequestId {
        let sane = given.and_then(|v| v.to_str().ok()).filter(|v| {
            (1..=128).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
        });
        if let Some(id) = sane {
            return RequestId(id.to_owned());
        }
        // A per-process random prefix (from the std hasher's random keys) and
        // a counter: unique across replicas without a syscall per request.
        static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let prefix = *PREFIX.get_or_init(|| {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::UNIX_EPOCH
                    .elapsed()
                    .unwrap_or_default()
                    .as_nanos(),
            );
            h.finish()
        });
        RequestId(format!(
            "{prefix:016x}-{}",
            NEXT.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

/// Gives each request its [`RequestId`] and logs its method, path, status
/// and latency with it (never its body: prompts stay out of the log), like
/// Ollama's `[GIN]` lines.
async fn log_request(
    mut request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let id = RequestId::new(request.headers().get("x-request-id"));
    request.extensions_mut().insert(id.clone());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let start = std::time::Instant::now();
    let mut response = next.run(request).await;
    let status = response.status().as_u16();
    // Streaming bodies continue after this: the latency is to the first byte.
    tracing::info!(request_id = %id.0, %method, %path, status, latency_ms = start.elapsed().as_millis() as u64, "request");
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// CORS: local origins (any port, http or https) and the app schemes Ollama
/// allows, plus `extra` (`*` allows every origin).
fn cors(extra: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::DELETE,
            Method::HEAD,
            Method::OPTIONS,
        ])
        .allow_headers(tower_http::cors::Any);
    if extra.iter().any(|o| o == "*") {
        return layer.allow_origin(tower_http::cors::Any);
    }
    let extra = extra.to_vec();
    layer.allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
        origin
            .to_str()
            .is_ok_and(|o| is_local_origin(o) || extra.iter().any(|e| e == o))
    }))
}

/// Whether `origin` is this machine (`http://localhost:3000`) or a local app
/// scheme (envconfig.AllowedOrigins in Ollama).
pub fn is_local_origin(origin: &str) -> bool {
    const APP_SCHEMES: [&str; 4] = ["app://", "file://", "tauri://", "vscode-webview://"];
    if APP_SCHEMES.iter().any(|s| origin.starts_with(s)) {
        return true;
    }
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => rest.split(':').next().unwrap_or_default(),
    };
    matches!(host, "localhost" | "127.0.0.1" | "0.0.0.0" | "::1")
}

/// Binds `config.host` and serves `app` until `shutdown` completes; then stops
/// accepting, cancels running generations, and waits for open responses to end.
pub async fn serve(
    store: store::Store,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = match &config.tls {
        None => None,
        Some((cert, key)) => Some(listen::tls_config(cert, key).map_err(std::io::Error::other)?),
    };
    let listener = tokio::net::TcpListener::bind(&config.host).await?;
    let addr = listener.local_addr()?;
    if !config.keys.is_empty() {
        tracing::info!(keys = config.keys.len(), "API keys are required");
    }
    for upstream in &config.routing.upstreams {
        // Never the key: only the variable it is read from.
        tracing::info!(
            upstream = %upstream.name,
            url = %upstream.url,
            models = upstream.models.len(),
            key_from = upstream.api_key_env.as_deref().unwrap_or("-"),
            "upstream configured"
        );
    }
    if config.routing.offline {
        tracing::info!("HEARTH_OFFLINE=1: no outbound connection will be made");
    }
    if config.kv_cache_type != config::KvCacheType::F16 {
        tracing::info!(kv_cache_type = %config.kv_cache_type, "quantized KV cache");
    }
    if config.deterministic {
        model::set_batch_invariant(true);
        tracing::info!(
            "deterministic mode: every request's output is independent of what is batched with it"
        );
    }
    let (limits, drain) = (config.limits, config.drain_timeout);
    let state = AppState::new(store, config);
    state.scheduler.spawn_reaper();
    let scheduler = state.scheduler.clone();
    let draining = state.draining.clone();
    let in_flight = state.in_flight.clone();
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!("listening on {scheme}://{addr}");
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: requests in flight finish, new ones get 503");
        draining.store(true, Ordering::Relaxed);
    };
    let shutdown = listen::Shutdown {
        signal,
        in_flight,
        drain,
        cancel: || scheduler.shutdown(),
    };
    listen::serve(listener, app(state), limits, tls, shutdown).await;
    scheduler.shutdown();
    Ok(())
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_origins_are_recognised() {
        assert!(is_local_origin("http://localhost"));
        assert!(is_local_origin("http://localhost:3000"));
        assert!(is_local_origin("https://127.0.0.1:8443"));
        assert!(is_local_origin("http://[::1]:80"));
        assert!(is_local_origin("tauri://localhost"));
        assert!(!is_local_origin("https://evil.example"));
        assert!(!is_local_origin("http://localhost.evil.example"));
    }
}
