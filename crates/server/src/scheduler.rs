//! Model residency: which models are loaded, the queue in front of each, and
//! when they unload (Ollama's server/sched.go, simplified for CPU).
//!
//! - A model loads on first use, keyed by its manifest digest: two names for
//!   the same model share one copy. A [`Runner`] owns the model's thread (see
//!   worker.rs) and a job channel; the thread's batching scheduler takes a job
//!   from it whenever one of its `HEARTH_NUM_PARALLEL` sequences is free.
//! - Admission happens here, on the async side, under one mutex and without
//!   waiting: a full queue (`HEARTH_MAX_QUEUE` waiting jobs) is a 503; a new
//!   model that would exceed `HEARTH_MAX_LOADED_MODELS` or the memory
//!   available evicts idle models first, else it is a 503.
//! - Every job carries a [`Completion`] whose drop updates the runner's counts
//!   and expiry, so a job that ends in any way (done, error, cancelled,
//!   dropped with a dead runner) is accounted. A model whose keep-alive is
//!   zero is removed from the table right there, before the client sees the
//!   end of its response; a reaper task removes the others when they expire.
//! - Removing a runner drops its job sender; its thread finishes the jobs
//!   already queued, then exit and free the model.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime};

use axum::http::StatusCode;
use store::{Digest, ModelName, ResolvedModel, Store};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::config::{Config, KeepAlive};
use crate::error::ApiError;
use crate::memory;
use crate::request::{Event, GenerateRequest, Input};
use crate::worker::{self, Job, LoadSpec};

/// The context size a model gets when neither the request nor the Modelfile
/// sets one (Ollama's default), capped by the model's training context.
pub const DEFAULT_NUM_CTX: usize = 4096;

/// What the scheduler reads from a GGUF header before loading it: enough to
/// validate `num_ctx` and estimate memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelMeta {
    /// `general.architecture`.
    pub arch: String,
    /// `{arch}.context_length`.
    pub n_ctx_train: usize,
    /// KV cache bytes per position (keys and values over all layers, stored
    /// as the server's `HEARTH_KV_CACHE_TYPE`).
    pub kv_bytes_per_token: u64,
    /// Size of the weights file.
    pub file_size: u64,
}

impl ModelMeta {
    /// Reads the header of the GGUF at `path`, for a KV cache of `kv_type`.
    pub fn read(path: &std::path::Path, kv_type: model::KvType) -> Result<ModelMeta, gguf::Error> {
        let file = gguf::GgufFile::open(path)?;
        let md = file.metadata();
        let arch = md.get_str("general.architecture")?.to_owned();
        let key = |k: &str| format!("{arch}.{k}");
        let u = |k: &str| md.opt_u32(&key(k)).map(|v| v.unwrap_or(0) as u64);
        let n_ctx_train = u("context_length")?.max(1) as usize;
        let n_layer = u("block_count")?;
        let n_embd = u("embedding_length")?;
        let n_head = u("attention.head_count")?.max(1);
        let n_head_kv = md
            .opt_u32(&key("attention.head_count_kv"))?
            .map_or(n_head, u64::from);
        let head_dim_k = md
            .opt_u32(&key("attention.key_length"))?
            .map_or(n_embd / n_head, u64::from);
        let head_dim_v = md
            .opt_u32(&key("attention.value_length"))?
            .map_or(n_embd / n_head, u64::from);
        Ok(ModelMeta {
            arch,
            n_ctx_train,
            kv_bytes_per_token: n_layer
                * n_head_kv
                * (kv_type.row_bytes(head_dim_k as usize) + kv_type.row_bytes(head_dim_v as usize))
                    as u64,
            file_size: file.file_size(),
        })
    }

    /// Estimated resident size with `n_seq` sequences of `num_ctx` positions.
    /// A KV budget (`HEARTH_KV_CACHE_MEMORY`) replaces the contexts' size.
    pub fn estimate(&self, num_ctx: usize, n_seq: usize, kv_budget: Option<u64>) -> u64 {
        self.file_size
            + kv_budget.unwrap_or(self.kv_bytes_per_token * num_ctx as u64 * n_seq as u64)
    }
}

/// Fewest sequences a model serves at once when `HEARTH_NUM_PARALLEL` is unset.
pub const MIN_PARALLEL: usize = 4;
/// Most sequences a model serves at once when `HEARTH_NUM_PARALLEL` is unset.
pub const MAX_AUTO_PARALLEL: usize = 16;

/// A model's sequences and KV budget: `HEARTH_NUM_PARALLEL` and
/// `HEARTH_KV_CACHE_MEMORY` as set. Without `HEARTH_NUM_PARALLEL`, the
/// sequences are what the KV budget holds at `num_ctx` positions each, at
/// least [`MIN_PARALLEL`] and at most [`MAX_AUTO_PARALLEL`]; without a set
/// budget either, that budget is a quarter of the memory `available` beside
/// the weights. The paged pool then holds that many whole contexts (a
/// sequence takes blocks only for the positions it has, so shorter ones
/// leave room for more).
pub fn sizing(
    config: &Config,
    meta: &ModelMeta,
    num_ctx: usize,
    available: Option<u64>,
) -> (usize, Option<u64>) {
    let per_seq = (meta.kv_bytes_per_token * num_ctx as u64).max(1);
    let held = |bytes: u64| {
        usize::try_from(bytes / per_seq)
            .unwrap_or(usize::MAX)
            .clamp(MIN_PARALLEL, MAX_AUTO_PARALLEL)
    };
    match (config.num_parallel, config.kv_cache_memory) {
        (Some(n), budget) => (n, budget),
        (None, Some(budget)) => (held(budget), Some(budget)),
        (None, None) => (
            available.map_or(MIN_PARALLEL, |a| held(a.saturating_sub(meta.file_size) / 4)),
            None,
        ),
    }
}

/// Counts and expiry of one runner, shared with its jobs' completions.
#[derive(Debug)]
pub(crate) struct RunnerState {
    /// Jobs admitted and not yet finished (queued or running).
    active: usize,
    /// Jobs admitted and not yet taken by a worker.
    pending: usize,
    /// When the model unloads if no job comes; `None` while busy or forever.
    expires_at: Option<Instant>,
    /// The keep-alive of the latest request.
    keep_alive: KeepAlive,
    /// When loading started.
    started: Instant,
    /// The batching scheduler's KV and prefix-cache figures, as of its
    /// latest step.
    stats: engine::scheduler::Stats,
    /// When the model finished loading, if it has.
    loaded_at: Option<Instant>,
    /// Why loading failed, if it did.
    failed: Option<String>,
    /// Context length of the sequences (the largest asked for).
    num_ctx: usize,
}

/// A loaded (or loading) model.
#[derive(Debug)]
pub struct Runner {
    id: u64,
    name: ModelName,
    model: Arc<ResolvedModel>,
    meta: ModelMeta,
    /// Sequences served at once.
    n_seq: usize,
    /// `HEARTH_KV_CACHE_MEMORY`, the KV pool's size when set.
    kv_budget: Option<u64>,
    /// The thread count it was loaded with (`None`: all cores).
    threads: Option<usize>,
    jobs: mpsc::Sender<Job>,
    state: Arc<Mutex<RunnerState>>,
    /// The default scale of each of the model's LoRA adapters (1 at load;
    /// `POST /lora-adapters` sets them), for requests that name none.
    lora_scales: Arc<Mutex<Vec<f32>>>,
}

/// The forward pass's thread count a request asks for (`num_thread`; 0 or
/// absent: the default).
fn requested_threads(request: &GenerateRequest) -> Option<usize> {
    request
        .options
        .num_thread
        .map(|n| n as usize)
        .filter(|&n| n > 0)
}

impl Runner {
    /// Whether this runner can serve `request`: loading did not fail, and the
    /// request does not ask for another thread count while the model is idle
    /// (Ollama loads the model again when options that shape its runner
    /// change; a busy model keeps serving the others as it is).
    fn serves(&self, request: &GenerateRequest) -> bool {
        let st = lock(&self.state);
        if st.failed.is_some() {
            return false;
        }
        let wanted = requested_threads(request);
        if wanted.is_some() && wanted != self.threads && st.active == 0 {
            tracing::info!(
                model = %self.name.display_short(),
                num_thread = wanted,
                "loading the model again for another num_thread"
            );
            return false;
        }
        true
    }

    /// Estimated resident bytes, given the runner's locked state.
    fn size(&self, st: &RunnerState) -> u64 {
        self.meta.estimate(st.num_ctx, self.n_seq, self.kv_budget)
    }
}

/// Estimated resident bytes of every runner.
fn total_size(runners: &HashMap<Digest, Arc<Runner>>) -> u64 {
    runners.values().map(|r| r.size(&lock(&r.state))).sum()
}

/// One model as `/api/ps` shows it.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    /// The name it was loaded under.
    pub name: ModelName,
    /// The store's description.
    pub model: Arc<ResolvedModel>,
    /// Estimated resident bytes.
    pub size: u64,
    /// Context length of its sequences.
    pub context_length: usize,
    /// When it unloads, `None` if never.
    pub expires_at: Option<SystemTime>,
    /// How long loading took, once it is done.
    pub load_seconds: Option<f64>,
    /// Its KV pool's occupancy and prefix-cache hits.
    pub stats: engine::scheduler::Stats,
}

/// A submitted job as the handler sees it: its events, and a guard that
/// cancels the job when the handler (the client's response) goes away.
#[derive(Debug)]
pub struct JobHandle {
    /// Events of the job, ending with `Done`, `Embedded` or `Error`.
    pub events: UnboundedReceiver<Event>,
    /// Cancels the job when dropped.
    pub cancel: CancelOnDrop,
    /// The request's observer (metrics, audit), fed every event read.
    pub observer: Option<Arc<crate::observe::Observer>>,
}

impl JobHandle {
    /// The job's next event (`None` once it has ended), shown to the
    /// request's observer.
    pub async fn recv(&mut self) -> Option<Event> {
        let event = self.events.recv().await;
        if let (Some(observer), Some(event)) = (&self.observer, &event) {
            observer.on_event(event);
        }
        event
    }
}

/// Sets a job's cancel flag when dropped (the client disconnected, or the
/// response is complete).
#[derive(Debug)]
pub struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Accounts for a job's end when dropped.
#[derive(Debug)]
pub struct Completion {
    scheduler: Weak<Scheduler>,
    digest: Digest,
    runner_id: u64,
    keep_alive: KeepAlive,
}

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(s) = self.scheduler.upgrade() {
            s.finish(self);
        }
    }
}

/// The residency manager.
#[derive(Debug)]
pub struct Scheduler {
    store: Store,
    config: Config,
    runners: Mutex<HashMap<Digest, Arc<Runner>>>,
    next_id: std::sync::atomic::AtomicU64,
    /// Cancel flags of jobs not yet finished, set all at once on shutdown.
    cancels: Mutex<Vec<Weak<AtomicBool>>>,
    shutting_down: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Critical sections here never panic midway; a poisoned lock still holds
    // consistent data.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Scheduler {
    /// A scheduler over `store` with `config`'s limits.
    pub fn new(store: Store, config: Config) -> Arc<Scheduler> {
        Arc::new(Scheduler {
            store,
            config,
            runners: Mutex::new(HashMap::new()),
            next_id: std::sync::atomic::AtomicU64::new(1),
            cancels: Mutex::new(Vec::new()),
            shutting_down: AtomicBool::new(false),
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Resolves a model name in the store (blocking file reads, off the reactor).
    /// A missing model is named as the client wrote it ("model 'llama3' not
    /// found", the text Ollama's clients match on).
    pub async fn resolve(&self, name: &str) -> Result<ResolvedModel, ApiError> {
        let parsed = ModelName::parse(name)
            .map_err(|e| ApiError::bad_request(format!("invalid model name '{name}': {e}")))?;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.resolve(&parsed))
            .await
            .map_err(|e| ApiError::internal("resolving a model", &e))?
            .map_err(|e| match e {
                store::StoreError::NotFound(_) => ApiError::not_found(format!(
                    "model '{}' not found",
                    crate::error::truncated(name)
                )),
                e => ApiError::from(e),
            })
    }

    /// Admits `request`: loads its model if needed and queues the job.
    pub async fn submit(self: &Arc<Self>, request: GenerateRequest) -> Result<JobHandle, ApiError> {
        request.options.validate()?;
        request.options.warn_ignored(&request.model);
        if self.shutting_down.load(Ordering::Relaxed) {
            return Err(ApiError::unavailable("the server is shutting down"));
        }
        let resolved = self.resolve(&request.model).await?;
        let digest = resolved.digest;
        let existing = lock(&self.runners).get(&digest).map(|r| r.meta.clone());
        let meta = match existing {
            Some(meta) => meta,
            None => {
                let path = resolved.gguf_path.clone();
                let kv_type = self.config.kv_cache_type;
                tokio::task::spawn_blocking(move || ModelMeta::read(&path, kv_type))
                    .await
                    .map_err(|e| ApiError::internal("reading a model", &e))?
                    .map_err(|e| {
                        ApiError::internal(
                            "reading a model header",
                            &format!("{}: {e}", request.model),
                        )
                    })?
            }
        };
        let num_ctx = resolve_num_ctx(&request, &resolved, &meta, self.config.context_length)?;
        let keep_alive = request.keep_alive.unwrap_or(self.config.keep_alive);
        let (events_tx, events_rx) = unbounded_channel();
        let cancel = Arc::new(AtomicBool::new(false));

        let mut runners = lock(&self.runners);
        let loaded_total = total_size(&runners);
        let runner = match runners.get(&digest) {
            Some(r) if r.serves(&request) => r.clone(),
            _ => {
                runners.remove(&digest);
                let runner = self.start_runner(&mut runners, resolved, meta, num_ctx, &request)?;
                runners.insert(digest, runner.clone());
                runner
            }
        };
        // The state's lock is held from the failure check through the send,
        // so a runner whose loading fails either sees this job in its queue
        // (and fails it) or this check sees the failure.
        let mut st = lock(&runner.state);
        if let Some(failed) = st.failed.clone() {
            drop(st);
            runners.remove(&digest);
            return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, failed));
        }
        if num_ctx > st.num_ctx {
            // A larger context than the sequences have: their KV caches grow.
            let extra = runner
                .meta
                .estimate(num_ctx, runner.n_seq, runner.kv_budget)
                - runner.size(&st);
            let available = memory::available(self.config.max_memory, loaded_total);
            if available.is_some_and(|a| extra > a) {
                return Err(ApiError::unavailable(format!(
                    "num_ctx {num_ctx} needs about {} more memory for model '{}', but only {} \
                     is available; use a smaller num_ctx",
                    memory::human_bytes(extra),
                    request.model,
                    memory::human_bytes(available.unwrap_or_default())
                )));
            }
        }
        if st.pending >= self.config.max_queue {
            return Err(ApiError::unavailable(format!(
                "server busy: {} requests are already waiting for model '{}' \
                 (HEARTH_MAX_QUEUE={}); try again later",
                st.pending, request.model, self.config.max_queue
            )));
        }
        st.pending += 1;
        st.active += 1;
        st.expires_at = None;
        st.keep_alive = keep_alive;
        st.num_ctx = st.num_ctx.max(num_ctx);
        let job = Job {
            request,
            num_ctx,
            events: events_tx,
            cancel: cancel.clone(),
            submitted: Instant::now(),
            log_prompts: self.config.log_prompts,
            completion: Completion {
                scheduler: Arc::downgrade(self),
                digest,
                runner_id: runner.id,
                keep_alive,
            },
        };
        if let Err(mpsc::SendError(job)) = runner.jobs.send(job) {
            // The workers are gone without a recorded failure (they panicked).
            // The job's completion undoes the counts; it takes the locks, so
            // release them first.
            drop(st);
            runners.remove(&digest);
            drop(runners);
            drop(job);
            return Err(ApiError::internal(
                "queueing a request",
                &"the model's workers exited",
            ));
        }
        drop(st);
        drop(runners);
        let mut cancels = lock(&self.cancels);
        cancels.retain(|c| c.strong_count() > 0);
        cancels.push(Arc::downgrade(&cancel));
        Ok(JobHandle {
            events: events_rx,
            cancel: CancelOnDrop(cancel),
            observer: crate::observe::Observer::current(),
        })
    }

    /// Makes room for and starts a runner (under the table's lock).
    fn start_runner(
        &self,
        runners: &mut HashMap<Digest, Arc<Runner>>,
        resolved: ResolvedModel,
        meta: ModelMeta,
        num_ctx: usize,
        request: &GenerateRequest,
    ) -> Result<Arc<Runner>, ApiError> {
        let available = memory::available(self.config.max_memory, total_size(runners));
        let (n_seq, kv_budget) = sizing(&self.config, &meta, num_ctx, available);
        let size = meta.estimate(num_ctx, n_seq, kv_budget);
        let now = Instant::now();
        // Idle models, the soonest to expire first: the ones to evict.
        let mut idle: Vec<(Digest, Option<Instant>, u64)> = runners
            .iter()
            .filter_map(|(d, r)| {
                let st = lock(&r.state);
                (st.active == 0).then_some((*d, st.expires_at, r.size(&st)))
            })
            .collect();
        idle.sort_by_key(|(_, expires, _)| {
            expires.map_or(Duration::MAX, |t| t.saturating_duration_since(now))
        });
        let mut evict = Vec::new();
        let mut n_loaded = runners.len();
        let mut freed = 0u64;
        let fits = |freed: u64| available.is_none_or(|a| size <= a.saturating_add(freed));
        for (digest, _, idle_size) in &idle {
            if n_loaded < self.config.max_loaded_models && fits(freed) {
                break;
            }
            evict.push(*digest);
            n_loaded -= 1;
            freed += idle_size;
        }
        if n_loaded >= self.config.max_loaded_models {
            return Err(ApiError::unavailable(format!(
                "server busy: {} models are loaded and in use (HEARTH_MAX_LOADED_MODELS={}); \
                 try again later",
                n_loaded, self.config.max_loaded_models
            )));
        }
        if !fits(freed) {
            let available = available.unwrap_or_default().saturating_add(freed);
            return Err(ApiError::unavailable(format!(
                "model '{}' needs about {} of memory with num_ctx {num_ctx}, but only {} is \
                 available; stop other models (hearth stop) or use a smaller num_ctx",
                request.model,
                memory::human_bytes(size),
                memory::human_bytes(available)
            )));
        }
        for digest in evict {
            if let Some(r) = runners.remove(&digest) {
                tracing::info!(model = %r.name.display_short(), "unloading to make room");
            }
        }

        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(Mutex::new(RunnerState {
            active: 0,
            pending: 0,
            expires_at: None,
            keep_alive: self.config.keep_alive,
            started: Instant::now(),
            stats: engine::scheduler::Stats::default(),
            loaded_at: None,
            failed: None,
            num_ctx,
        }));
        let (jobs_tx, jobs_rx) = mpsc::channel();
        let threads = requested_threads(request).or(self.config.num_thread);
        let lora_scales = Arc::new(Mutex::new(vec![1.0; resolved.adapters.len()]));
        let spec = LoadSpec {
            name: resolved.name.display_short(),
            path: PathBuf::from(&resolved.gguf_path),
            template: resolved.template.clone(),
            system: resolved.system.clone(),
            params: resolved.params.clone(),
            messages: resolved.messages.clone(),
            adapters: resolved.adapters.clone(),
            lora_scales: Arc::clone(&lora_scales),
            threads,
            n_seq,
            num_ctx,
            kv_cache_memory: kv_budget,
            kv_type: self.config.kv_cache_type,
            limits: self.config.request_limits,
        };
        worker::spawn(spec, jobs_rx, Arc::clone(&state))
            .map_err(|e| ApiError::internal("starting a model worker", &e))?;
        tracing::info!(model = %resolved.name.display_short(), num_ctx, size, "loading model");
        Ok(Arc::new(Runner {
            id,
            name: resolved.name.clone(),
            model: Arc::new(resolved),
            meta,
            n_seq,
            kv_budget,
            threads,
            jobs: jobs_tx,
            state,
            lora_scales,
        }))
    }

    /// Accounts for a finished job; unloads the model now if its keep-alive
    /// is zero and nothing else is queued.
    fn finish(&self, c: &Completion) {
        let mut runners = lock(&self.runners);
        let Some(runner) = runners.get(&c.digest).filter(|r| r.id == c.runner_id) else {
            return;
        };
        let mut st = lock(&runner.state);
        st.active = st.active.saturating_sub(1);
        if st.active > 0 {
            return;
        }
        st.keep_alive = c.keep_alive;
        st.expires_at = match c.keep_alive {
            KeepAlive::For(d) => Some(Instant::now() + d),
            KeepAlive::Forever => None,
        };
        if st.failed.is_some() {
            drop(st);
            runners.remove(&c.digest);
        } else if c.keep_alive.is_zero() || self.shutting_down.load(Ordering::Relaxed) {
            drop(st);
            if let Some(r) = runners.remove(&c.digest) {
                tracing::info!(model = %r.name.display_short(), "unloading (keep_alive 0)");
            }
        }
    }

    /// Called by a worker when it takes a job from the queue.
    pub(crate) fn taken(state: &Mutex<RunnerState>) {
        let mut st = lock(state);
        st.pending = st.pending.saturating_sub(1);
    }

    /// Called by a runner after each batched step with its figures.
    pub(crate) fn publish(state: &Mutex<RunnerState>, stats: engine::scheduler::Stats) {
        lock(state).stats = stats;
    }

    /// Called by the loading worker with the outcome of the load.
    pub(crate) fn loaded(state: &Mutex<RunnerState>, outcome: Result<(), String>) {
        let mut st = lock(state);
        match outcome {
            Ok(()) => st.loaded_at = Some(Instant::now()),
            Err(e) => st.failed = Some(e),
        }
    }

    /// When the runner finished loading, for load durations.
    pub(crate) fn loaded_at(state: &Mutex<RunnerState>) -> Option<Instant> {
        lock(state).loaded_at
    }

    /// Unloads the model `name` (`keep_alive: 0` with no prompt, `hearth
    /// stop`). Jobs already queued still finish. Returns whether it was loaded.
    pub async fn unload(&self, name: &str) -> Result<bool, ApiError> {
        let resolved = self.resolve(name).await?;
        let removed = lock(&self.runners).remove(&resolved.digest);
        if let Some(r) = &removed {
            tracing::info!(model = %r.name.display_short(), "unloading on request");
        }
        Ok(removed.is_some())
    }

    /// The default adapter scales of the loaded model with manifest
    /// `digest` (shared with its worker), if it is loaded.
    pub fn lora_scales(&self, digest: &Digest) -> Option<Arc<Mutex<Vec<f32>>>> {
        lock(&self.runners)
            .get(digest)
            .map(|r| Arc::clone(&r.lora_scales))
    }

    /// Removes expired idle models; the reaper task calls this periodically.
    pub fn reap(&self) {
        let now = Instant::now();
        lock(&self.runners).retain(|_, r| {
            let st = lock(&r.state);
            let expired = st.active == 0 && st.expires_at.is_some_and(|t| t <= now);
            if expired {
                tracing::info!(model = %r.name.display_short(), "unloading (keep_alive expired)");
            }
            !expired
        });
    }

    /// Requests waiting for a sequence, and requests being generated, over
    /// every loaded model.
    pub fn load_counts(&self) -> (usize, usize) {
        lock(&self.runners)
            .values()
            .fold((0, 0), |(waiting, running), r| {
                let st = lock(&r.state);
                (waiting + st.pending, running + (st.active - st.pending))
            })
    }

    /// The loaded models, most recently loaded last.
    pub fn list_loaded(&self) -> Vec<LoadedModel> {
        let now_instant = Instant::now();
        let now = SystemTime::now();
        let mut list: Vec<(u64, LoadedModel)> = lock(&self.runners)
            .values()
            .map(|r| {
                let st = lock(&r.state);
                let expires_at = match (st.expires_at, st.keep_alive) {
                    (Some(t), _) => Some(now + t.saturating_duration_since(now_instant)),
                    (None, KeepAlive::For(d)) => Some(now + d),
                    (None, KeepAlive::Forever) => None,
                };
                let context_length = st.num_ctx;
                (
                    r.id,
                    LoadedModel {
                        name: r.name.clone(),
                        model: r.model.clone(),
                        size: r.size(&st),
                        context_length,
                        expires_at,
                        load_seconds: st
                            .loaded_at
                            .map(|t| t.saturating_duration_since(st.started).as_secs_f64()),
                        stats: st.stats,
                    },
                )
            })
            .collect();
        list.sort_by_key(|(id, _)| *id);
        list.into_iter().map(|(_, m)| m).collect()
    }

    /// Stops taking requests, cancels every running generation and unloads
    /// every model (graceful shutdown).
    pub fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        for c in lock(&self.cancels).drain(..) {
            if let Some(c) = c.upgrade() {
                c.store(true, Ordering::Relaxed);
            }
        }
        lock(&self.runners).clear();
    }

    /// Runs [`Scheduler::reap`] every 250 ms until the scheduler is dropped.
    pub fn spawn_reaper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(s) => s.reap(),
                    None => return,
                }
            }
        });
    }
}

/// The request's `num_ctx`, else the Modelfile's, else the default capped by
/// the training context. Asking for more than the model was trained with is
/// an error (a Modelfile value is capped instead).
fn resolve_num_ctx(
    request: &GenerateRequest,
    resolved: &ResolvedModel,
    meta: &ModelMeta,
    default_num_ctx: usize,
) -> Result<usize, ApiError> {
    if let Some(n) = request.options.num_ctx {
        let n = n as usize;
        if n > meta.n_ctx_train {
            return Err(ApiError::bad_request(format!(
                "num_ctx {n} exceeds the context length the model was trained with \
                 ({} tokens)",
                meta.n_ctx_train
            )));
        }
        return Ok(n);
    }
    if matches!(request.input, Input::Embed(_)) {
        return Ok(default_num_ctx.min(meta.n_ctx_train));
    }
    let from_params = match resolved.params.get("num_ctx") {
        Some(store::ParamValue::Int(n)) if *n > 0 => Some(*n as usize),
        _ => None,
    };
    Ok(from_params.unwrap_or(default_num_ctx).min(meta.n_ctx_train))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    /// A Llama-3.2-1B-like header: 32 KiB of f16 KV per position, 700 MiB
    /// of weights.
    fn meta() -> ModelMeta {
        ModelMeta {
            arch: "llama".into(),
            n_ctx_train: 131_072,
            kv_bytes_per_token: 32 * 1024,
            file_size: 700 * MIB,
        }
    }

    fn config(num_parallel: Option<usize>, kv_cache_memory: Option<u64>) -> Config {
        Config {
            num_parallel,
            kv_cache_memory,
            ..Config::default()
        }
    }

    #[test]
    fn set_parallelism_and_budget_are_kept() {
        let got = sizing(&config(Some(2), None), &meta(), 4096, Some(20 * GIB));
        assert_eq!(got, (2, None));
        let got = sizing(&config(Some(9), Some(GIB)), &meta(), 4096, Some(20 * GIB));
        assert_eq!(got, (9, Some(GIB)));
    }

    #[test]
    fn unset_parallelism_is_what_the_budget_holds() {
        // 4096 positions are 128 MiB: a 1 GiB budget holds 8 of them.
        let got = sizing(&config(None, Some(GIB)), &meta(), 4096, None);
        assert_eq!(got, (8, Some(GIB)));
        // Never fewer than 4, never more than 16.
        let got = sizing(&config(None, Some(100 * MIB)), &meta(), 4096, None);
        assert_eq!(got, (MIN_PARALLEL, Some(100 * MIB)));
        let got = sizing(&config(None, Some(64 * GIB)), &meta(), 4096, None);
        assert_eq!(got, (MAX_AUTO_PARALLEL, Some(64 * GIB)));
    }

    #[test]
    fn without_either_a_quarter_of_the_free_memory_beside_the_weights() {
        // (4 GiB - 700 MiB) / 4 = 844 MiB: 6 contexts of 128 MiB.
        let got = sizing(&config(None, None), &meta(), 4096, Some(4 * GIB));
        assert_eq!(got, (6, None));
        // A laptop with little free: still 4.
        let got = sizing(&config(None, None), &meta(), 4096, Some(GIB));
        assert_eq!(got, (MIN_PARALLEL, None));
        // Plenty: 16, and a short context does not raise it past that.
        let got = sizing(&config(None, None), &meta(), 512, Some(20 * GIB));
        assert_eq!(got, (MAX_AUTO_PARALLEL, None));
        // Free memory unknown.
        let got = sizing(&config(None, None), &meta(), 4096, None);
        assert_eq!(got, (MIN_PARALLEL, None));
    }
}
