//! `/metrics`: Prometheus metrics in the OpenMetrics text format (the
//! `prometheus-client` crate). Counted per request by [`record`] (a
//! middleware): `hearth_requests_total{api,endpoint,model,code}` and
//! `hearth_request_duration_seconds{api,endpoint}` (to the first byte of the
//! answer). Read at each scrape: `hearth_model_loaded{model}`,
//! `hearth_queue_depth`, `hearth_running_sequences` and the process's
//! resident memory, CPU time, open files and start time. The queue and
//! running counts are also exported under the names the Kubernetes Gateway
//! API Inference Extension reads from model servers
//! (`vllm:num_requests_waiting`, `vllm:num_requests_running`), so an
//! inference gateway can balance hearth replicas by load. Per route (`local`
//! or an upstream's name, see `route`): `hearth_route_tokens_total{route,
//! direction}`, their cost at the configured prices
//! (`hearth_route_cost_total`) and the prices themselves
//! (`hearth_route_price_per_million_tokens`).
//!
//! Label values are bounded: endpoints are the router's paths (anything else
//! is `other`), models are names the store resolves (anything else is
//! `other`), so a client cannot grow the series without limit.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::AppState;
use crate::observe::{AuditRecord, CURRENT, Observer};

/// Labels of `hearth_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    api: &'static str,
    endpoint: &'static str,
    model: String,
    code: u16,
}

/// Labels of `hearth_request_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    api: &'static str,
    endpoint: &'static str,
}

/// Labels of the per-route token and cost metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    direction: &'static str,
}

/// Labels of per-model gauges.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
}

/// Every metric, and the registry that renders them.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    durations: Family<EndpointLabels, Histogram>,
    loaded: Family<ModelLabels, Gauge>,
    load_seconds: Family<ModelLabels, Gauge<f64, AtomicU64>>,
    kv_usage: Gauge<f64, AtomicU64>,
    kv_blocks: Family<ModelLabels, Gauge>,
    prefix_hits: Family<ModelLabels, Counter>,
    prefix_queries: Family<ModelLabels, Counter>,
    /// The prefix-cache totals each model's counters last reached (a model
    /// loaded again starts its totals at zero).
    prefix_seen: Mutex<std::collections::HashMap<String, (u64, u64)>>,
    first_token: Histogram,
    inter_token: Histogram,
    prompt_tokens: Family<ModelLabels, Counter>,
    generated_tokens: Family<ModelLabels, Counter>,
    route_tokens: Family<RouteLabels, Counter>,
    route_cost: Family<RouteLabels, Counter<f64, AtomicU64>>,
    route_price: Family<RouteLabels, Gauge<f64, AtomicU64>>,
    queue_depth: Gauge,
    running: Gauge,
    resident: Gauge,
    cpu_seconds: Gauge<f64, AtomicU64>,
    open_fds: Gauge,
    start_time: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "hearth_requests",
            "Requests answered, by API, endpoint, model and status code",
            requests.clone(),
        );
        let durations = Family::<EndpointLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.005, 0.025, 0.1, 0.25, 1.0, 2.5, 10.0, 30.0, 120.0])
        });
        registry.register(
            "hearth_request_duration_seconds",
            "Time to the first byte of the answer (streams go on after it)",
            durations.clone(),
        );
        let loaded = Family::<ModelLabels, Gauge>::default();
        registry.register(
            "hearth_model_loaded",
            "1 for each loaded model",
            loaded.clone(),
        );
        let load_seconds = Family::<ModelLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "hearth_model_load_seconds",
            "How long each loaded model took to load",
            load_seconds.clone(),
        );
        let kv_blocks = Family::<ModelLabels, Gauge>::default();
        registry.register(
            "hearth_kv_cache_blocks",
            "Blocks of each loaded model's KV cache pool (16 positions each; \
             a quantized HEARTH_KV_CACHE_TYPE fits more in the same memory)",
            kv_blocks.clone(),
        );
        let kv_usage = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "hearth_kv_cache_usage_ratio",
            "Share of the loaded models' KV cache blocks held by sequences",
            kv_usage.clone(),
        );
        // The name the Gateway API Inference Extension reads (vLLM's).
        registry.register(
            "vllm:gpu_cache_usage_perc",
            "KV cache usage, 0 to 1 (hearth_kv_cache_usage_ratio)",
            kv_usage.clone(),
        );
        let prefix_hits = Family::<ModelLabels, Counter>::default();
        registry.register(
            "hearth_prefix_cache_hits",
            "Prompt tokens served from the prefix cache",
            prefix_hits.clone(),
        );
        let prefix_queries = Family::<ModelLabels, Counter>::default();
        registry.register(
            "hearth_prefix_cache_queries",
            "Prompt tokens looked up in the prefix cache",
            prefix_queries.clone(),
        );
        let first_token = Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]);
        registry.register(
            "hearth_time_to_first_token_seconds",
            "Time from a request to its first generated text",
            first_token.clone(),
        );
        let inter_token =
            Histogram::new([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5]);
        registry.register(
            "hearth_inter_token_latency_seconds",
            "Time between successive pieces of generated text",
            inter_token.clone(),
        );
        let prompt_tokens = Family::<ModelLabels, Counter>::default();
        registry.register(
            "hearth_prompt_tokens",
            "Prompt tokens evaluated",
            prompt_tokens.clone(),
        );
        let generated_tokens = Family::<ModelLabels, Counter>::default();
        registry.register(
            "hearth_generated_tokens",
            "Tokens generated",
            generated_tokens.clone(),
        );
        let route_tokens = Family::<RouteLabels, Counter>::default();
        registry.register(
            "hearth_route_tokens",
            "Tokens by route (local or an upstream's name) and direction (input, output)",
            route_tokens.clone(),
        );
        let route_cost = Family::<RouteLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "hearth_route_cost",
            "Cost of the tokens by route and direction, at the upstream's configured prices",
            route_cost.clone(),
        );
        let route_price = Family::<RouteLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "hearth_route_price_per_million_tokens",
            "Configured price of a million tokens by upstream and direction",
            route_price.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let queue_depth = gauge(
            &mut registry,
            "hearth_queue_depth",
            "Requests waiting for a sequence",
        );
        let running = gauge(
            &mut registry,
            "hearth_running_sequences",
            "Requests being generated",
        );
        // The names the Gateway API Inference Extension's model-server
        // protocol reads (vLLM's).
        registry.register(
            "vllm:num_requests_waiting",
            "Requests waiting for a sequence (hearth_queue_depth)",
            queue_depth.clone(),
        );
        registry.register(
            "vllm:num_requests_running",
            "Requests being generated (hearth_running_sequences)",
            running.clone(),
        );
        let resident = gauge(
            &mut registry,
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
        );
        let cpu_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "process_cpu_seconds",
            "User and system CPU time spent in seconds",
            cpu_seconds.clone(),
        );
        let open_fds = gauge(&mut registry, "process_open_fds", "Open file descriptors");
        let start_time = gauge(
            &mut registry,
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds",
        );
        start_time.set(
            std::time::UNIX_EPOCH
                .elapsed()
                .map_or(0, |d| d.as_secs() as i64),
        );
        Metrics {
            registry: Mutex::new(registry),
            requests,
            durations,
            loaded,
            load_seconds,
            kv_usage,
            kv_blocks,
            prefix_hits,
            prefix_queries,
            prefix_seen: Mutex::new(std::collections::HashMap::new()),
            first_token,
            inter_token,
            prompt_tokens,
            generated_tokens,
            route_tokens,
            route_cost,
            route_price,
            queue_depth,
            running,
            resident,
            cpu_seconds,
            open_fds,
            start_time,
        }
    }

    /// Counts a routed answer's tokens, and their cost at the route's prices.
    fn record_route_tokens(
        &self,
        routing: &crate::route::Routing,
        route: &str,
        prompt: u64,
        generated: u64,
    ) {
        let prices = routing
            .upstreams
            .iter()
            .find(|u| u.name == route)
            .map_or((0.0, 0.0), |u| u.price_per_million);
        for (direction, count, price) in
            [("input", prompt, prices.0), ("output", generated, prices.1)]
        {
            let labels = RouteLabels {
                route: route.to_owned(),
                direction,
            };
            self.route_tokens.get_or_create(&labels).inc_by(count);
            if price > 0.0 {
                self.route_cost
                    .get_or_create(&labels)
                    .inc_by(count as f64 * price / 1e6);
            }
        }
    }

    /// Shows each upstream's configured prices.
    pub fn set_prices(&self, routing: &crate::route::Routing) {
        for upstream in &routing.upstreams {
            for (direction, price) in [
                ("input", upstream.price_per_million.0),
                ("output", upstream.price_per_million.1),
            ] {
                self.route_price
                    .get_or_create(&RouteLabels {
                        route: upstream.name.clone(),
                        direction,
                    })
                    .set(price);
            }
        }
    }

    /// The text a scrape returns, with the scrape-time values read now.
    fn render(&self, state: &AppState) -> String {
        let scheduler = &state.scheduler;
        self.loaded.clear();
        self.load_seconds.clear();
        self.kv_blocks.clear();
        let (mut in_use, mut total) = (0usize, 0usize);
        let mut seen = self
            .prefix_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for model in scheduler.list_loaded() {
            let labels = ModelLabels {
                model: model.name.display_short(),
            };
            self.loaded.get_or_create(&labels).set(1);
            if let Some(seconds) = model.load_seconds {
                self.load_seconds.get_or_create(&labels).set(seconds);
            }
            let s = model.stats;
            if s.blocks_total > 0 {
                self.kv_blocks
                    .get_or_create(&labels)
                    .set(s.blocks_total as i64);
            }
            in_use += s.blocks_in_use;
            total += s.blocks_total;
            let last = seen.entry(labels.model.clone()).or_default();
            // Totals below the last seen: the model was loaded again.
            let grow = |now: u64, before: u64| if now >= before { now - before } else { now };
            self.prefix_hits
                .get_or_create(&labels)
                .inc_by(grow(s.prefix_hit_tokens, last.0));
            self.prefix_queries
                .get_or_create(&labels)
                .inc_by(grow(s.prefix_query_tokens, last.1));
            *last = (s.prefix_hit_tokens, s.prefix_query_tokens);
        }
        drop(seen);
        self.kv_usage.set(if total == 0 {
            0.0
        } else {
            in_use as f64 / total as f64
        });
        let (waiting, running) = scheduler.load_counts();
        self.queue_depth.set(waiting as i64);
        self.running.set(running as i64);
        if let Some(p) = process_stats() {
            self.resident.set(p.resident_bytes as i64);
            self.cpu_seconds.set(p.cpu_seconds);
            self.open_fds.set(p.open_fds as i64);
        }
        let _ = &self.start_time;
        let mut text = String::new();
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }
}

/// `GET /metrics`.
pub async fn handler(State(state): State<AppState>) -> Response {
    let text = state.metrics.render(&state);
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// Which API and endpoint a path belongs to, as bounded label values.
fn endpoint(path: &str) -> (&'static str, &'static str) {
    const OLLAMA: [&str; 16] = [
        "/api/generate",
        "/api/chat",
        "/api/embed",
        "/api/embeddings",
        "/api/tags",
        "/api/show",
        "/api/create",
        "/api/copy",
        "/api/delete",
        "/api/pull",
        "/api/push",
        "/api/ps",
        "/api/version",
        "/api/blobs",
        "/health",
        "/ready",
    ];
    const OPENAI: [&str; 4] = [
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/models",
    ];
    if path.starts_with("/api/blobs/") {
        return ("ollama", "/api/blobs");
    }
    if let Some(p) = OLLAMA.iter().find(|p| **p == path) {
        return ("ollama", p);
    }
    if let Some(p) = OPENAI.iter().find(|p| path.starts_with(**p)) {
        return ("openai", p);
    }
    if path.starts_with("/v2/") {
        return ("registry", "/v2");
    }
    if path == "/metrics" {
        return ("metrics", "/metrics");
    }
    ("other", "other")
}

/// The model a request names, for its label: set by [`record`] from the
/// body's `model` when that is a model the store has.
#[derive(Debug, Clone)]
pub struct ModelLabel(pub String);

/// The middleware: counts each request by API, endpoint, model and status,
/// times it to the first byte, runs it under an [`Observer`] and, once its
/// answer has been sent, records the observer's times and counts (and
/// writes the audit line).
pub(crate) async fn record(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (api, endpoint) = endpoint(request.uri().path());
    let mut request = request;
    let mut model = "none".to_owned();
    if request.method() == axum::http::Method::POST && endpoint != "/api/blobs" {
        let (parts, body) = request.into_parts();
        let limit = crate::body_limit_of(&parts.extensions);
        let bytes = match axum::body::to_bytes(body, limit).await {
            Ok(bytes) => bytes,
            Err(_) => {
                let path = parts.uri.path();
                return crate::error::response_for(path, crate::ApiError::too_large(limit));
            }
        };
        if let Some(name) = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("model").and_then(|m| m.as_str()).map(str::to_owned))
        {
            model = bounded_model(&state, &name);
        }
        request = Request::from_parts(parts, axum::body::Body::from(bytes));
        request.extensions_mut().insert(ModelLabel(model.clone()));
    }
    let request_id = request
        .extensions()
        .get::<crate::RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_default();
    let client = request
        .extensions()
        .get::<crate::listen::ClientAddr>()
        .map(|a| a.0.to_string());
    let start = Instant::now();
    let observer = Arc::new(Observer::default());
    let response = CURRENT.scope(observer.clone(), next.run(request)).await;
    let status = response.status().as_u16();
    let metrics = &state.metrics;
    metrics
        .requests
        .get_or_create(&RequestLabels {
            api,
            endpoint,
            model: model.clone(),
            code: status,
        })
        .inc();
    metrics
        .durations
        .get_or_create(&EndpointLabels { api, endpoint })
        .observe(start.elapsed().as_secs_f64());
    let finish = Finish {
        state: state.clone(),
        observer,
        record: AuditRecord {
            request_id,
            key: None,
            client,
            api,
            endpoint,
            model,
            route: "local".to_owned(),
            reason: None,
            digest: None,
            text: None,
            status,
            tokens: (0, 0),
            durations: (None, Duration::ZERO),
        },
    };
    crate::hold_until_sent(response, finish)
}

/// Records a request's observed times and counts when its answer is done.
struct Finish {
    state: AppState,
    observer: Arc<Observer>,
    record: AuditRecord,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let metrics = &self.state.metrics;
        let observer = &self.observer;
        let labels = ModelLabels {
            model: self.record.model.clone(),
        };
        let first = observer.time_to_first_token();
        if let Some(first) = first {
            metrics.first_token.observe(first.as_secs_f64());
        }
        for gap in observer.take_gaps() {
            metrics.inter_token.observe(gap);
        }
        let (prompt, generated) = observer.token_counts();
        if let Some(key) = observer.key() {
            self.state.auth.debit_tokens(&key, prompt + generated);
        }
        metrics.prompt_tokens.get_or_create(&labels).inc_by(prompt);
        metrics
            .generated_tokens
            .get_or_create(&labels)
            .inc_by(generated);
        // Probes and scrapes come every few seconds and say nothing of use.
        let probe = matches!(self.record.endpoint, "/health" | "/ready" | "/metrics");
        let route = observer.route();
        if let Some((route, _)) = &route {
            metrics.record_route_tokens(&self.state.router.policy, route, prompt, generated);
        }
        if let Some(audit) = self.state.audit.as_ref().filter(|_| !probe) {
            let mut record = self.record.clone();
            if let Some((route, reason)) = route {
                record.route = route;
                record.reason = Some(reason);
            }
            record.key = observer.key();
            record.tokens = (prompt, generated);
            record.durations = (first, observer.elapsed());
            audit.write(&record);
        }
    }
}

/// `name` as a label: its short form when the store has such a model (or a
/// configured upstream would), `other` otherwise.
fn bounded_model(state: &AppState, name: &str) -> String {
    if state.router.policy.upstream_of(name).is_some() {
        return name.to_owned();
    }
    let Ok(parsed) = store::ModelName::parse(name) else {
        return "other".to_owned();
    };
    match state.scheduler.store().find(&parsed) {
        Ok(Some(found)) => found.display_short(),
        _ => "other".to_owned(),
    }
}

/// What `/proc/self` says about this process.
struct ProcessStats {
    resident_bytes: u64,
    cpu_seconds: f64,
    open_fds: usize,
}

/// Reads [`ProcessStats`] (Linux; `None` elsewhere).
fn process_stats() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces), from field 3.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    // utime and stime are fields 14 and 15 (index 11 and 12 here), in clock
    // ticks of 1/100 s on Linux.
    let cpu_seconds = (ticks(11)? + ticks(12)?) as f64 / 100.0;
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count();
    Some(ProcessStats {
        resident_bytes: pages * 4096,
        cpu_seconds,
        open_fds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_bounded_labels() {
        assert_eq!(endpoint("/api/chat"), ("ollama", "/api/chat"));
        assert_eq!(endpoint("/api/blobs/sha256:00"), ("ollama", "/api/blobs"));
        assert_eq!(
            endpoint("/v1/chat/completions"),
            ("openai", "/v1/chat/completions")
        );
        assert_eq!(endpoint("/v1/models/tiny"), ("openai", "/v1/models"));
        assert_eq!(endpoint("/v2/library/x/manifests/y"), ("registry", "/v2"));
        assert_eq!(endpoint("/anything/else"), ("other", "other"));
    }

    #[test]
    fn process_stats_are_read() {
        let p = process_stats().expect("Linux /proc");
        assert!(p.resident_bytes > 0 && p.open_fds > 0);
    }
}
