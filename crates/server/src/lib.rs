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
//!
//! Privacy: the server binds 127.0.0.1 unless `HEARTH_HOST` says otherwise,
//! allows cross-origin requests only from local origins unless
//! `HEARTH_ORIGINS` adds more, and never logs prompt or response text unless
//! `HEARTH_LOG_PROMPTS=1`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod embed;
pub mod error;
pub mod json;
pub mod memory;
pub mod request;
pub mod scheduler;
mod worker;

use std::future::Future;
use std::sync::Arc;

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
}

impl AppState {
    /// State over `store` with `config`'s limits.
    pub fn new(store: store::Store, config: Config) -> AppState {
        AppState {
            scheduler: Scheduler::new(store, config),
        }
    }
}

/// The body limit in force for a request (set by [`app`] as an extension).
#[derive(Debug, Clone, Copy)]
struct BodyLimit(usize);

/// The body limit of `req`, for error messages.
pub(crate) fn body_limit(req: &Request) -> usize {
    req.extensions()
        .get::<BodyLimit>()
        .map_or(config::DEFAULT_MAX_BODY_BYTES, |l| l.0)
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
        .route("/", get(|| async { "hearth is running" }).head(|| async {}))
        .route("/health", get(|| async { "ok" }))
        .route("/api/version", get(models::version))
        .route("/api/generate", post(ollama::generate))
        .route("/api/chat", post(ollama::chat))
        .route("/api/embed", post(ollama::embed))
        .route("/api/embeddings", post(ollama::embeddings))
        .route("/api/tags", get(models::tags))
        .route("/api/show", post(models::show))
        .route("/api/create", post(models::create))
        .route("/api/copy", post(models::copy))
        .route("/api/delete", axum::routing::delete(models::delete))
        .route("/api/ps", get(models::ps))
        .nest("/v1", api::openai::routes())
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::Extension(BodyLimit(limit)))
        .merge(blobs)
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        })
        .layer(cors(&config.origins))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// Logs each request's method, path, status and latency (never its body:
/// prompts stay out of the log), like Ollama's `[GIN]` lines.
async fn log_request(request: Request, next: axum::middleware::Next) -> axum::response::Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let start = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    // Streaming bodies continue after this: the latency is to the first byte.
    tracing::info!(%method, %path, status, latency_ms = start.elapsed().as_millis() as u64, "request");
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
    let listener = tokio::net::TcpListener::bind(&config.host).await?;
    let addr = listener.local_addr()?;
    if config.kv_cache_type != config::KvCacheType::F16 {
        tracing::warn!(
            kv_cache_type = ?config.kv_cache_type,
            "the KV cache holds f16 values; quantized KV cache types are not implemented, \
             so this setting does not reduce memory"
        );
    }
    if config.deterministic {
        model::set_batch_invariant(true);
        tracing::info!(
            "deterministic mode: every request's output is independent of what is batched with it"
        );
    }
    let state = AppState::new(store, config);
    state.scheduler.spawn_reaper();
    let scheduler = state.scheduler.clone();
    tracing::info!("listening on {addr}");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down");
            scheduler.shutdown();
        })
        .await
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
