//! What happens to one request, seen from outside the engine: its key, the
//! times of its first and later tokens, and its token counts. The metrics
//! middleware makes an [`Observer`] per request and runs the handler in its
//! scope ([`CURRENT`]); the scheduler hands it to the job, whose events feed
//! it ([`Observer::on_event`]) wherever the answer is read; when the answer
//! has been sent (or the client left) the middleware turns it into metrics
//! (time to first token, inter-token latency, token counts) and, with
//! `HEARTH_AUDIT_LOG`, an audit line ([`AuditLog`]).
//!
//! Nothing here ever holds prompt or answer text: only counts and times.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::request::Event;

tokio::task_local! {
    /// The observer of the request being handled on this task.
    pub static CURRENT: Arc<Observer>;
}

/// One request's times and counts.
#[derive(Debug)]
pub struct Observer {
    start: Instant,
    /// The key's name, set by the keys middleware.
    key: Mutex<Option<String>>,
    /// When the first and the latest text arrived.
    tokens: Mutex<(Option<Instant>, Option<Instant>)>,
    /// Gaps between successive texts, in seconds.
    gaps: Mutex<Vec<f64>>,
    prompt_tokens: AtomicU64,
    generated_tokens: AtomicU64,
    /// Where the request was served and why, set by the router.
    route: Mutex<Option<(String, String)>>,
}

impl Default for Observer {
    fn default() -> Self {
        Observer {
            start: Instant::now(),
            key: Mutex::new(None),
            tokens: Mutex::new((None, None)),
            gaps: Mutex::new(Vec::new()),
            prompt_tokens: AtomicU64::new(0),
            generated_tokens: AtomicU64::new(0),
            route: Mutex::new(None),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Observer {
    /// The observer of the request on this task, if there is one.
    pub fn current() -> Option<Arc<Observer>> {
        CURRENT.try_with(Arc::clone).ok()
    }

    /// Records the name of the key the request was made with.
    pub fn set_key(&self, name: &str) {
        *lock(&self.key) = Some(name.to_owned());
    }

    /// Records where the request was served (`local` or an upstream's
    /// name) and why.
    pub fn set_route(&self, route: &str, reason: &str) {
        *lock(&self.route) = Some((route.to_owned(), reason.to_owned()));
    }

    /// Where the request was served and why, if the router said.
    pub fn route(&self) -> Option<(String, String)> {
        lock(&self.route).clone()
    }

    /// Records the token counts of an answer made elsewhere (an upstream).
    pub fn set_token_counts(&self, prompt: u64, generated: u64) {
        self.prompt_tokens.store(prompt, Ordering::Relaxed);
        self.generated_tokens.store(generated, Ordering::Relaxed);
    }

    /// Takes in one of the job's events.
    pub fn on_event(&self, event: &Event) {
        match event {
            Event::Text(_) | Event::Thinking(_) | Event::ToolCall(_) => {
                let now = Instant::now();
                let mut tokens = lock(&self.tokens);
                if let Some(last) = tokens.1 {
                    lock(&self.gaps).push(now.duration_since(last).as_secs_f64());
                }
                tokens.0.get_or_insert(now);
                tokens.1 = Some(now);
            }
            Event::Done(summary) => {
                let t = &summary.timings;
                self.prompt_tokens
                    .store(t.prompt_eval_count as u64, Ordering::Relaxed);
                self.generated_tokens
                    .store(t.eval_count as u64, Ordering::Relaxed);
            }
            Event::Embedded(e) => {
                self.prompt_tokens
                    .store(e.prompt_eval_count as u64, Ordering::Relaxed);
            }
            Event::Started | Event::Error(_) => {}
        }
    }

    /// Time from the request to its first text, if any came.
    pub fn time_to_first_token(&self) -> Option<Duration> {
        lock(&self.tokens).0.map(|t| t.duration_since(self.start))
    }

    /// The gaps between successive texts, in seconds (taken: each is
    /// reported once).
    pub fn take_gaps(&self) -> Vec<f64> {
        std::mem::take(&mut *lock(&self.gaps))
    }

    /// Prompt tokens evaluated, and tokens generated.
    pub fn token_counts(&self) -> (u64, u64) {
        (
            self.prompt_tokens.load(Ordering::Relaxed),
            self.generated_tokens.load(Ordering::Relaxed),
        )
    }

    /// The key's name, if the request carried one.
    pub fn key(&self) -> Option<String> {
        lock(&self.key).clone()
    }

    /// Time since the request came in.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// One audit line's fields (never any text of the conversation, unless the
/// operator opted in to logging text and the line records a shadow answer).
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// The request's id.
    pub request_id: String,
    /// The key's name (`None`: no keys configured).
    pub key: Option<String>,
    /// The client's address.
    pub client: Option<String>,
    /// `ollama`, `openai`, `registry`, ...
    pub api: &'static str,
    /// The endpoint's path.
    pub endpoint: &'static str,
    /// The model's name (bounded as the metrics label).
    pub model: String,
    /// Where it was served: `local`, an upstream's name, `shadow`.
    pub route: String,
    /// Why it was served there (`model`, `sensitive_email`, `offline`,
    /// `upstream_failed`, `burst`, `canary`, ...).
    pub reason: Option<String>,
    /// The answering model's digest, where it is recorded (shadow answers).
    pub digest: Option<String>,
    /// The answer's text: only for shadow answers, and only with
    /// `HEARTH_LOG_PROMPTS=1`.
    pub text: Option<String>,
    /// HTTP status.
    pub status: u16,
    /// Prompt tokens evaluated and tokens generated.
    pub tokens: (u64, u64),
    /// Time to the first token, and to the end of the answer.
    pub durations: (Option<Duration>, Duration),
}

/// The audit log: one JSON line per request, appended to `HEARTH_AUDIT_LOG`
/// and rotated by size (`PATH` → `PATH.1` → … → `PATH.{keep}`).
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: Mutex<Option<std::fs::File>>,
}

impl AuditLog {
    /// An audit log at `path`, rotated past `max_bytes`, keeping `keep` old
    /// files.
    pub fn new(path: PathBuf, max_bytes: u64, keep: usize) -> AuditLog {
        AuditLog {
            path,
            max_bytes,
            keep,
            file: Mutex::new(None),
        }
    }

    /// Appends `record` (a failure to write is logged, never the request's).
    pub fn write(&self, record: &AuditRecord) {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mut line = json!({
            "time": jiff::Timestamp::now().to_string(),
            "request_id": record.request_id,
            "key": record.key,
            "client": record.client,
            "api": record.api,
            "endpoint": record.endpoint,
            "model": record.model,
            "route": record.route,
            "reason": record.reason,
            "status": record.status,
            "prompt_tokens": record.tokens.0,
            "generated_tokens": record.tokens.1,
            "time_to_first_token_ms": record.durations.0.map(ms),
            "duration_ms": ms(record.durations.1),
        });
        if let Some(digest) = &record.digest {
            line["digest"] = json!(digest);
        }
        if let Some(text) = &record.text {
            line["text"] = json!(text);
        }
        if let Err(e) = self.append(format!("{line}\n").as_bytes()) {
            tracing::error!("audit log {}: {e}", self.path.display());
        }
    }

    fn append(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut file = lock(&self.file);
        let size = match file.as_ref() {
            Some(f) => f.metadata()?.len(),
            None => 0,
        };
        if file.is_none() || size + bytes.len() as u64 > self.max_bytes {
            if file.take().is_some() && size > 0 {
                self.rotate()?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            *file = Some(options.open(&self.path)?);
        }
        let f = file.as_mut().expect("opened above");
        f.write_all(bytes)
    }

    /// `PATH.{n}` → `PATH.{n+1}` from the oldest, then `PATH` → `PATH.1`.
    fn rotate(&self) -> std::io::Result<()> {
        let numbered = |n: usize| PathBuf::from(format!("{}.{n}", self.path.display()));
        for n in (1..self.keep).rev() {
            if numbered(n).exists() {
                std::fs::rename(numbered(n), numbered(n + 1))?;
            }
        }
        if self.keep > 0 {
            std::fs::rename(&self.path, numbered(1))?;
        } else {
            std::fs::remove_file(&self.path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u16) -> AuditRecord {
        AuditRecord {
            request_id: format!("r{i}"),
            key: None,
            client: Some("127.0.0.1:1".into()),
            api: "ollama",
            endpoint: "/api/chat",
            model: "tiny:latest".into(),
            route: "local".into(),
            reason: Some("model".into()),
            digest: None,
            text: None,
            status: 200,
            tokens: (3, 4),
            durations: (Some(Duration::from_millis(5)), Duration::from_millis(9)),
        }
    }

    #[test]
    fn lines_rotate_by_size_and_keep_a_bounded_number_of_files() {
        let dir = std::env::temp_dir().join(format!("hearth-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        let log = AuditLog::new(path.clone(), 1000, 2);
        for i in 0..40 {
            log.write(&record(i));
        }
        let line: serde_json::Value = serde_json::from_str(
            std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .last()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(line["request_id"], "r39");
        assert_eq!(line["prompt_tokens"], 3);
        assert!(std::fs::metadata(&path).unwrap().len() <= 1000);
        assert!(dir.join("audit.log.1").exists() && dir.join("audit.log.2").exists());
        assert!(!dir.join("audit.log.3").exists());
    }
}
