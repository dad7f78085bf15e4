//! `hearth bench serve MODEL [--url URL] [-c 1,2,4,8] [--requests N] [-p 128]
//! [-n 64] [--shared-prefix N] [--long-prompt N] [--json]`: a server's
//! throughput and latency under concurrent
//! clients, through the OpenAI API every peer speaks (`/v1/completions`,
//! streamed), so the same command measures `hearth serve` and `llama-server`
//! (or vLLM) on the same machine.
//!
//! For each concurrency level C, C clients send requests back to back until
//! `--requests` (default 4×C, at least 8) have finished. Each prompt is
//! distinct token ids (a token array: every server prefills exactly `-p`
//! tokens, whatever its tokenizer; numbered across levels), so no request
//! reuses another's prefix. Reported per level: generated tokens per second over the level's
//! wall time (the server's throughput), requests per second, time to first
//! token (mean, p50, p95), the time between streamed tokens (mean over
//! requests; p50, p99 and the longest gap over every gap of every request) and
//! the end-to-end time (p50, p99). Token counts come from the stream's `usage`
//! (else one per streamed chunk).
//!
//! Two workloads besides distinct prompts:
//! - `--shared-prefix N`: every prompt starts with the same N tokens (a RAG
//!   preamble, a long system prompt) before its own `-p`. The warm-up request
//!   does not carry it, so the first request of the first level meets a cold
//!   cache: its time to first token is reported beside the others' p50
//!   (`ttft_first_s`, `ttft_rest_p50_s`).
//! - `--long-prompt N`: once per level, as soon as the level's first token has
//!   streamed, one more client sends an N-token prompt. Its time to first token
//!   is reported on its own (`long_ttft_s`); the other streams' inter-token p99
//!   and longest gap show whether its prefill stalled them.

use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// Arguments of `hearth bench serve`.
#[derive(Debug, clap::Args)]
pub struct ServeBenchArgs {
    /// The model name the server knows (sent as `model`).
    model: String,
    /// The server's base URL [default: HEARTH_HOST's, http://127.0.0.1:11434].
    #[arg(long)]
    url: Option<String>,
    /// Concurrency levels: clients sending requests at once.
    #[arg(
        short = 'c',
        long = "concurrency",
        value_delimiter = ',',
        default_value = "1,2,4,8"
    )]
    concurrency: Vec<usize>,
    /// Requests per level [default: 4 per client, at least 8].
    #[arg(long)]
    requests: Option<usize>,
    /// Prompt length in tokens: random ids in 16..1000 (below every real
    /// vocabulary's size), sent as a token array so that every server
    /// prefills exactly this many, whatever its tokenizer.
    #[arg(short = 'p', long = "prompt-tokens", default_value_t = 128)]
    prompt_tokens: usize,
    /// Tokens to generate per request (`max_tokens`; `ignore_eos` is sent too,
    /// which llama-server and vLLM honour).
    #[arg(short = 'n', long = "max-tokens", default_value_t = 64)]
    max_tokens: usize,
    /// Tokens every prompt starts with, the same for all requests (before
    /// each one's own `-p` tokens).
    #[arg(long, default_value_t = 0, value_name = "N")]
    shared_prefix: usize,
    /// Once per level, when the first token has streamed, send one more
    /// request with a prompt of this many tokens.
    #[arg(long, default_value_t = 0, value_name = "N")]
    long_prompt: usize,
    /// Print a JSON array, one object per level.
    #[arg(long)]
    json: bool,
    /// Draw tokens/s against concurrency into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<std::path::PathBuf>,
    /// Add earlier runs to the plot: `--json` outputs of this command (for
    /// another server, say), each a line named after its file.
    #[arg(long, value_name = "FILE.json")]
    compare: Vec<std::path::PathBuf>,
    /// The plot's name for this run's line.
    #[arg(long, default_value = "this server")]
    label: String,
}

/// What one request measured.
#[derive(Debug, Clone, Default)]
struct Sample {
    /// Seconds from the level's start to sending.
    start: f64,
    /// Seconds from sending to the first generated text.
    ttft: f64,
    /// Seconds from sending to the last byte.
    total: f64,
    /// Generated tokens.
    tokens: usize,
    /// Seconds between one streamed piece of text and the next.
    gaps: Vec<f64>,
}

/// One level's figures.
#[derive(Debug, Clone)]
struct Level {
    concurrency: usize,
    requests: usize,
    wall_s: f64,
    generated_tokens: usize,
    tokens_per_s: f64,
    requests_per_s: f64,
    ttft_mean_s: f64,
    ttft_p50_s: f64,
    ttft_p95_s: f64,
    /// The first-sent request's time to first token.
    ttft_first_s: f64,
    /// The median of the others'.
    ttft_rest_p50_s: f64,
    inter_token_mean_s: f64,
    inter_token_p50_s: f64,
    inter_token_p99_s: f64,
    inter_token_max_s: f64,
    e2e_p50_s: f64,
    e2e_p99_s: f64,
    /// The `--long-prompt` request's time to first token.
    long_ttft_s: Option<f64>,
}

impl Level {
    fn to_json(&self) -> Value {
        json!({
            "concurrency": self.concurrency,
            "requests": self.requests,
            "wall_s": self.wall_s,
            "generated_tokens": self.generated_tokens,
            "tokens_per_s": self.tokens_per_s,
            "requests_per_s": self.requests_per_s,
            "ttft_mean_s": self.ttft_mean_s,
            "ttft_p50_s": self.ttft_p50_s,
            "ttft_p95_s": self.ttft_p95_s,
            "ttft_first_s": self.ttft_first_s,
            "ttft_rest_p50_s": self.ttft_rest_p50_s,
            "inter_token_mean_s": self.inter_token_mean_s,
            "inter_token_p50_s": self.inter_token_p50_s,
            "inter_token_p99_s": self.inter_token_p99_s,
            "inter_token_max_s": self.inter_token_max_s,
            "e2e_p50_s": self.e2e_p50_s,
            "e2e_p99_s": self.e2e_p99_s,
            "long_ttft_s": self.long_ttft_s,
        })
    }
}

/// Runs `hearth bench serve`.
pub fn run(args: &ServeBenchArgs) -> anyhow::Result<()> {
    if args.concurrency.contains(&0) {
        bail!("concurrency levels must be at least 1");
    }
    if args.max_tokens == 0 {
        bail!("--max-tokens must be at least 1");
    }
    let base = args
        .url
        .clone()
        .unwrap_or_else(super::client::base_url)
        .trim_end_matches('/')
        .to_owned();
    let http = reqwest::blocking::Client::builder()
        .default_headers(super::client::auth_headers())
        .connect_timeout(Duration::from_secs(5))
        .timeout(None::<Duration>)
        // A fresh connection per request: servers close idle keep-alive
        // connections at their own pace (llama-server did, mid-run).
        .pool_max_idle_per_host(0)
        .build()?;
    // One request first: the model loads, and a wrong name or URL fails here.
    // It has no shared prefix, so that the first measured request finds none
    // cached.
    let warm_up = prompt(0, args.prompt_tokens);
    request(&http, &base, args, &warm_up, Instant::now(), None)
        .with_context(|| format!("the warm-up request to {base}"))?;
    let mut levels = Vec::new();
    // Requests are numbered across levels, so that no prompt repeats one a
    // server may still have cached.
    let mut sent = 1;
    for &c in &args.concurrency {
        let n = args.requests.unwrap_or((4 * c).max(8)).max(c);
        eprintln!("concurrency {c}: {n} requests");
        levels.push(level(&http, &base, args, c, n, sent)?);
        sent += n;
    }
    if args.json {
        let rows: Vec<Value> = levels.iter().map(Level::to_json).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_table(&levels, args);
    }
    if let Some(path) = &args.plot {
        plot(path, args, &levels)?;
    }
    Ok(())
}

/// Tokens/s against concurrency: this run, and each `--compare` file's.
fn plot(path: &std::path::Path, args: &ServeBenchArgs, levels: &[Level]) -> anyhow::Result<()> {
    let line = |label: String, points: Vec<(f64, f64)>| super::plot::Series { label, points };
    let mut series = vec![line(
        args.label.clone(),
        levels
            .iter()
            .map(|l| (l.concurrency as f64, l.tokens_per_s))
            .collect(),
    )];
    for file in &args.compare {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let rows: Vec<Value> = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a bench serve --json output", file.display()))?;
        let points = rows
            .iter()
            .filter_map(|r| Some((r["concurrency"].as_f64()?, r["tokens_per_s"].as_f64()?)))
            .collect();
        let name = file.file_stem().map_or_else(
            || file.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        series.push(line(name, points));
    }
    super::plot::line_chart(
        path,
        &format!("{}: generated tokens/s by concurrency", args.model),
        "concurrent clients",
        "tokens/s",
        &series,
    )?;
    eprintln!("plot written to {}", path.display());
    Ok(())
}

/// Runs `n` requests (numbered from `first`) from `c` clients and sums them up.
fn level(
    http: &reqwest::blocking::Client,
    base: &str,
    args: &ServeBenchArgs,
    c: usize,
    n: usize,
    first: usize,
) -> anyhow::Result<Level> {
    let next = AtomicUsize::new(0);
    let samples = Mutex::new(Vec::with_capacity(n));
    // Set when the level's first token has streamed, for `--long-prompt`.
    let streaming = (Mutex::new(false), Condvar::new());
    let start = Instant::now();
    let long = std::thread::scope(|scope| -> anyhow::Result<Option<Sample>> {
        let clients: Vec<_> = (0..c)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return Ok(());
                        }
                        let tokens = with_prefix(args, prompt(first + i, args.prompt_tokens));
                        let sample = request(http, base, args, &tokens, start, Some(&streaming))?;
                        samples
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(sample);
                    }
                })
            })
            .collect();
        let long = (args.long_prompt > 0).then(|| {
            scope.spawn(|| -> anyhow::Result<Sample> {
                let (flag, signal) = &streaming;
                let mut started = flag
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                while !*started {
                    started = signal
                        .wait(started)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                drop(started);
                // Numbered past every regular request of every level.
                let tokens = prompt(usize::MAX - first, args.long_prompt);
                request(http, base, args, &tokens, start, None)
            })
        });
        let ended: Vec<_> = clients.into_iter().map(|c| c.join()).collect();
        // Had nothing streamed (every request failed), the long prompt's
        // thread would wait for ever.
        *streaming
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        streaming.1.notify_all();
        for client in ended {
            client.map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
        }
        long.map(|l| {
            l.join()
                .map_err(|_| anyhow::anyhow!("the long prompt's thread panicked"))?
                .context("the --long-prompt request")
        })
        .transpose()
    })?;
    let samples = samples
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut level = summarize(c, &samples);
    level.long_ttft_s = long.map(|s| s.ttft);
    Ok(level)
}

/// `tokens` behind the `--shared-prefix` every prompt starts with.
fn with_prefix(args: &ServeBenchArgs, tokens: Vec<u32>) -> Vec<u32> {
    if args.shared_prefix == 0 {
        return tokens;
    }
    // Seeded apart from every request's own tokens.
    let mut prefixed = prompt(usize::MAX / 2, args.shared_prefix);
    prefixed.extend(tokens);
    prefixed
}

/// The level's figures from its requests' samples.
fn summarize(concurrency: usize, samples: &[Sample]) -> Level {
    let first = samples
        .iter()
        .map(|s| s.start)
        .fold(f64::INFINITY, f64::min);
    let last = samples
        .iter()
        .map(|s| s.start + s.total)
        .fold(0.0f64, f64::max);
    let wall = (last - first).max(f64::MIN_POSITIVE);
    let tokens: usize = samples.iter().map(|s| s.tokens).sum();
    let mut ttft: Vec<f64> = samples.iter().map(|s| s.ttft).collect();
    ttft.sort_by(f64::total_cmp);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let itl: Vec<f64> = samples
        .iter()
        .filter(|s| s.tokens > 1)
        .map(|s| (s.total - s.ttft) / (s.tokens - 1) as f64)
        .collect();
    let mut gaps: Vec<f64> = samples
        .iter()
        .flat_map(|s| s.gaps.iter().copied())
        .collect();
    gaps.sort_by(f64::total_cmp);
    let mut e2e: Vec<f64> = samples.iter().map(|s| s.total).collect();
    e2e.sort_by(f64::total_cmp);
    let first_sent = samples
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.start.total_cmp(&b.1.start))
        .map(|(i, _)| i);
    let mut rest: Vec<f64> = samples
        .iter()
        .enumerate()
        .filter(|&(i, _)| Some(i) != first_sent)
        .map(|(_, s)| s.ttft)
        .collect();
    rest.sort_by(f64::total_cmp);
    Level {
        concurrency,
        requests: samples.len(),
        wall_s: wall,
        generated_tokens: tokens,
        tokens_per_s: tokens as f64 / wall,
        requests_per_s: samples.len() as f64 / wall,
        ttft_mean_s: mean(&ttft),
        ttft_p50_s: percentile(&ttft, 0.50),
        ttft_p95_s: percentile(&ttft, 0.95),
        ttft_first_s: first_sent.map_or(0.0, |i| samples[i].ttft),
        ttft_rest_p50_s: percentile(&rest, 0.50),
        inter_token_mean_s: mean(&itl),
        inter_token_p50_s: percentile(&gaps, 0.50),
        inter_token_p99_s: percentile(&gaps, 0.99),
        inter_token_max_s: gaps.last().copied().unwrap_or(0.0),
        e2e_p50_s: percentile(&e2e, 0.50),
        e2e_p99_s: percentile(&e2e, 0.99),
        long_ttft_s: None,
    }
}

/// The nearest-rank percentile of sorted values (0 when empty).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The prompt of request `i`: `n` token ids in 16..1000 from a generator
/// seeded by `i`, so prompts differ from their first token on.
fn prompt(i: usize, n: usize) -> Vec<u32> {
    let mut state = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            16 + (state % 984) as u32
        })
        .collect()
}

/// Sends a request with the prompt `tokens`, streamed, and times it; the
/// first streamed text sets `streaming`'s flag and wakes its waiters.
fn request(
    http: &reqwest::blocking::Client,
    base: &str,
    args: &ServeBenchArgs,
    tokens: &[u32],
    level_start: Instant,
    streaming: Option<&(Mutex<bool>, Condvar)>,
) -> anyhow::Result<Sample> {
    let body = json!({
        "model": args.model,
        "prompt": tokens,
        "max_tokens": args.max_tokens,
        "temperature": 0,
        "ignore_eos": true,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let sent = Instant::now();
    let response = http
        .post(format!("{base}/v1/completions"))
        .json(&body)
        .send()
        .with_context(|| format!("POST {base}/v1/completions"))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().unwrap_or_default();
        bail!("{status}: {text}");
    }
    let mut first = None;
    let mut last = None::<Instant>;
    let mut gaps = Vec::with_capacity(args.max_tokens);
    let mut chunks = 0usize;
    let mut usage = None;
    for line in BufReader::new(response).lines() {
        let line = line.context("reading the stream")?;
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let data = data.trim();
        if data == "[DONE]" {
            break;
        }
        let Ok(event) = serde_json::from_str::<Value>(data) else {
            continue;
        };
        if let Some(n) = event["usage"]["completion_tokens"].as_u64() {
            usage = Some(n as usize);
        }
        let text = event["choices"][0]["text"].as_str().unwrap_or_default();
        if !text.is_empty() {
            let now = Instant::now();
            chunks += 1;
            match last {
                Some(t) => gaps.push((now - t).as_secs_f64()),
                None => {
                    first = Some(now - sent);
                    if let Some((flag, signal)) = streaming {
                        *flag
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
                        signal.notify_all();
                    }
                }
            }
            last = Some(now);
        }
    }
    let total = sent.elapsed();
    Ok(Sample {
        start: (sent - level_start).as_secs_f64(),
        ttft: first.unwrap_or(total).as_secs_f64(),
        total: total.as_secs_f64(),
        tokens: usage.unwrap_or(chunks),
        gaps,
    })
}

fn print_table(levels: &[Level], args: &ServeBenchArgs) {
    let ms = |s: f64| format!("{:.0}ms", s * 1e3);
    let mut head = vec![
        "concurrency",
        "requests",
        "tokens/s",
        "req/s",
        "ttft p50",
        "ttft p95",
        "itl mean",
        "itl p50",
        "itl p99",
        "itl max",
        "e2e p50",
        "e2e p99",
    ];
    if args.shared_prefix > 0 {
        head.extend(["ttft first", "ttft rest p50"]);
    }
    if args.long_prompt > 0 {
        head.push("long ttft");
    }
    println!("| {} |", head.join(" | "));
    println!("|{}", " ---: |".repeat(head.len()));
    for l in levels {
        let mut row = vec![
            l.concurrency.to_string(),
            l.requests.to_string(),
            format!("{:.2}", l.tokens_per_s),
            format!("{:.3}", l.requests_per_s),
            ms(l.ttft_p50_s),
            ms(l.ttft_p95_s),
            format!("{:.1}ms", l.inter_token_mean_s * 1e3),
            format!("{:.1}ms", l.inter_token_p50_s * 1e3),
            format!("{:.1}ms", l.inter_token_p99_s * 1e3),
            ms(l.inter_token_max_s),
            ms(l.e2e_p50_s),
            ms(l.e2e_p99_s),
        ];
        if args.shared_prefix > 0 {
            row.extend([ms(l.ttft_first_s), ms(l.ttft_rest_p50_s)]);
        }
        if args.long_prompt > 0 {
            row.push(l.long_ttft_s.map_or_else(|| "-".to_owned(), ms));
        }
        println!("| {} |", row.join(" | "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_sum_their_samples() {
        let s = |start, ttft, total, tokens| Sample {
            start,
            ttft,
            total,
            tokens,
            gaps: Vec::new(),
        };
        let level = summarize(
            2,
            &[
                s(0.0, 0.5, 2.5, 5),
                s(0.0, 1.0, 3.0, 5),
                s(2.5, 0.5, 1.5, 3),
            ],
        );
        assert_eq!(level.requests, 3);
        assert_eq!(level.generated_tokens, 13);
        // From the first start (0) to the last end (4.0).
        assert!((level.wall_s - 4.0).abs() < 1e-12);
        assert!((level.tokens_per_s - 13.0 / 4.0).abs() < 1e-12);
        assert!((level.ttft_p50_s - 0.5).abs() < 1e-12);
        assert!((level.ttft_p95_s - 1.0).abs() < 1e-12);
        // (2.0/4 + 2.0/4 + 1.0/2) / 3
        assert!((level.inter_token_mean_s - 0.5).abs() < 1e-12);
        // Sent first (at 0, the earlier of the two in input order): 0.5 s;
        // the others' median: nearest rank of [0.5, 1.0].
        assert!((level.ttft_first_s - 0.5).abs() < 1e-12);
        assert!((level.ttft_rest_p50_s - 0.5).abs() < 1e-12);
        assert!((level.e2e_p50_s - 2.5).abs() < 1e-12);
        assert!((level.e2e_p99_s - 3.0).abs() < 1e-12);
    }

    #[test]
    fn gaps_are_pooled_over_requests() {
        let s = |start: f64, ttft, gaps: &[f64]| Sample {
            start,
            ttft,
            total: ttft + gaps.iter().sum::<f64>(),
            tokens: gaps.len() + 1,
            gaps: gaps.to_vec(),
        };
        // 100 gaps: 98 of 10 ms, one of 500 ms (a long prompt's prefill), one of 20 ms.
        let mut a = vec![0.010; 49];
        a.push(0.5);
        let mut b = vec![0.010; 49];
        b.push(0.020);
        let level = summarize(2, &[s(1.0, 2.0, &a), s(0.0, 0.25, &b)]);
        assert!((level.inter_token_p50_s - 0.010).abs() < 1e-12);
        assert!((level.inter_token_p99_s - 0.020).abs() < 1e-12);
        assert!((level.inter_token_max_s - 0.5).abs() < 1e-12);
        // The second sample was sent first.
        assert!((level.ttft_first_s - 0.25).abs() < 1e-12);
        assert!((level.ttft_rest_p50_s - 2.0).abs() < 1e-12);
    }

    #[test]
    fn prompts_differ_from_their_first_token_on() {
        let (a, b) = (prompt(1, 64), prompt(2, 64));
        assert_eq!(a.len(), 64);
        assert_ne!(a[0], b[0]);
        assert!(a.iter().chain(&b).all(|&t| (16..1000).contains(&t)));
        assert_eq!(prompt(7, 8), prompt(7, 8));
    }
}
