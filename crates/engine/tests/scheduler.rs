//! Continuous batching ([`engine::scheduler::Scheduler`]) on tiny synthetic
//! models: at temperature 0 every request's tokens equal those it gets alone
//! through [`engine::generate`], with chunked prefill interleaved with
//! decoding, a queue longer than the sequence slots, and a pool small enough
//! to force preemption; a later request reuses an earlier one's prompt
//! blocks; cancellation frees blocks at once; admission is first come first
//! served by free blocks.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use engine::scheduler::{Scheduler, SchedulerConfig, SeqEvent};
use engine::{Context, DoneReason, GenerateResult, ModelBackend, Options, generate};
use gguf::TensorType;
use model::synthetic::Spec;
use model::tokenizer::Tokenizer;
use model::{LoadOptions, Model};

const N_CTX: usize = 256;

fn load(preset: &str) -> (Model, Tokenizer) {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{preset}-sched.gguf"));
    Spec::preset(preset)
        .unwrap()
        .write(&path, TensorType::Q8_0)
        .unwrap();
    let model = Model::load_with(&path, &LoadOptions { threads: Some(2) }).unwrap();
    let tokenizer = Tokenizer::from_metadata(model.gguf().metadata()).unwrap();
    (model, tokenizer)
}

fn greedy(num_predict: i32) -> Options {
    let mut o = Options::default();
    o.sampler.temperature = 0.0;
    o.num_predict = num_predict;
    o.num_ctx = N_CTX;
    o
}

fn prompt(seed: u32, n: usize) -> Vec<u32> {
    // Byte tokens and a few others, away from the special ids.
    (0..n as u32)
        .map(|i| 3 + (i * 41 + seed * 17) % 290)
        .collect()
}

fn alone(
    model: &Model,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    options: &Options,
) -> GenerateResult {
    let mut ctx = Context::new(ModelBackend::new(model, N_CTX).unwrap());
    generate(&mut ctx, tokenizer, prompt, options, None, &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap()
}

/// Submits every prompt and runs the scheduler to the end; returns each
/// request's result.
fn batched(
    sched: &mut Scheduler<'_>,
    prompts: &[Vec<u32>],
    options: &Options,
) -> Vec<GenerateResult> {
    let results = Arc::new(Mutex::new(vec![None; prompts.len()]));
    for (i, p) in prompts.iter().enumerate() {
        let results = results.clone();
        let sink = Box::new(move |e: SeqEvent| {
            match e {
                SeqEvent::Done(r) => results.lock().unwrap()[i] = Some(r),
                SeqEvent::Error(e) => panic!("request {i}: {e}"),
                SeqEvent::Text(_) => {}
            }
            ControlFlow::Continue(())
        });
        sched.submit(p, options.clone(), None, sink).unwrap();
    }
    sched.run_to_end().unwrap();
    let results = results.lock().unwrap().clone();
    results.into_iter().map(Option::unwrap).collect()
}

#[test]
fn batched_greedy_generations_equal_each_alone() {
    for preset in ["tiny-llama", "tiny-gemma2"] {
        let (model, tokenizer) = load(preset);
        let options = greedy(12);
        let prompts: Vec<Vec<u32>> = [3, 70, 17, 40, 5, 33]
            .iter()
            .enumerate()
            .map(|(i, &n)| prompt(i as u32, n))
            .collect();
        let config = SchedulerConfig {
            block_len: 16,
            n_blocks: 64,
            // 32 tokens a step: the 70-token prompt takes several steps
            // while the others decode.
            step_tokens: 32,
            max_seqs: 4,
            n_ctx: N_CTX,
        };
        let mut sched = Scheduler::new(&model, &tokenizer, config).unwrap();
        let got = batched(&mut sched, &prompts, &options);
        for (p, r) in prompts.iter().zip(&got) {
            let want = alone(&model, &tokenizer, p, &options);
            assert_eq!(r.tokens, want.tokens, "{preset}, prompt of {}", p.len());
            assert_eq!(r.text, want.text);
            assert_eq!(r.done_reason, want.done_reason);
            assert_eq!(r.timings.prompt_eval_count, p.len());
            assert!(!r.tokens.is_empty());
        }
        assert_eq!(sched.n_preempted(), 0);
        assert_eq!(sched.n_available_blocks(), 64);
    }
}

#[test]
fn a_short_pool_preempts_and_recomputes_with_the_same_tokens() {
    let (model, tokenizer) = load("tiny-qwen2");
    let options = greedy(40);
    let prompts: Vec<Vec<u32>> = (0..4).map(|i| prompt(10 + i, 30)).collect();
    // 12 blocks of 16 = 192 positions for 4 x 70.
    let config = SchedulerConfig {
        block_len: 16,
        n_blocks: 12,
        step_tokens: 64,
        max_seqs: 4,
        n_ctx: N_CTX,
    };
    let mut sched = Scheduler::new(&model, &tokenizer, config).unwrap();
    let got = batched(&mut sched, &prompts, &options);
    assert!(sched.n_preempted() > 0);
    for (p, r) in prompts.iter().zip(&got) {
        let want = alone(&model, &tokenizer, p, &options);
        assert_eq!(r.tokens, want.tokens);
        assert_eq!((r.tokens.len(), r.done_reason), (40, DoneReason::Length));
    }
    assert_eq!(sched.n_available_blocks(), 12);
}

#[test]
fn a_later_request_reuses_an_earlier_ones_prompt_blocks() {
    let (model, tokenizer) = load("tiny-qwen3");
    let options = greedy(4);
    let config = SchedulerConfig {
        block_len: 16,
        n_blocks: 32,
        step_tokens: 64,
        max_seqs: 4,
        n_ctx: N_CTX,
    };
    let mut sched = Scheduler::new(&model, &tokenizer, config).unwrap();
    let system = prompt(20, 50);
    let first: Vec<u32> = system.iter().copied().chain(prompt(21, 5)).collect();
    let second: Vec<u32> = system.iter().copied().chain(prompt(22, 7)).collect();
    let a = batched(&mut sched, std::slice::from_ref(&first), &options);
    assert_eq!(a[0].timings.prompt_eval_count, 55);
    let b = batched(&mut sched, std::slice::from_ref(&second), &options);
    // The three full blocks of the shared 50 tokens are cached.
    assert_eq!(b[0].timings.prompt_eval_count, 57 - 48);
    assert_eq!(
        b[0].tokens,
        alone(&model, &tokenizer, &second, &options).tokens
    );
}

#[test]
fn cancellation_frees_the_blocks_at_the_next_step() {
    let (model, tokenizer) = load("tiny-qwen2");
    let config = SchedulerConfig {
        block_len: 16,
        n_blocks: 16,
        step_tokens: 64,
        max_seqs: 4,
        n_ctx: N_CTX,
    };
    let mut sched = Scheduler::new(&model, &tokenizer, config).unwrap();
    let flag = Arc::new(AtomicBool::new(false));
    let ends = Arc::new(Mutex::new(Vec::new()));
    let sink = |name: &'static str| {
        let ends = ends.clone();
        Box::new(move |e: SeqEvent| {
            if let SeqEvent::Done(r) = e {
                ends.lock().unwrap().push((name, r.done_reason));
            }
            ControlFlow::Continue(())
        })
    };
    sched
        .submit(&prompt(1, 40), greedy(-1), Some(flag.clone()), sink("flag"))
        .unwrap();
    let by_id = sched
        .submit(&prompt(2, 40), greedy(-1), None, sink("id"))
        .unwrap();
    for _ in 0..3 {
        sched.step().unwrap();
    }
    assert_eq!(sched.n_available_blocks(), 16 - 2 * 3);
    flag.store(true, Ordering::Relaxed);
    sched.cancel(by_id);
    sched.step().unwrap();
    assert_eq!(sched.n_active(), 0);
    assert_eq!(sched.n_available_blocks(), 16);
    let ends = ends.lock().unwrap();
    assert_eq!(
        *ends,
        [
            ("flag", DoneReason::Cancelled),
            ("id", DoneReason::Cancelled)
        ]
    );
}

#[test]
fn requests_wait_first_come_first_served_for_blocks() {
    let (model, tokenizer) = load("tiny-qwen2");
    // 8 blocks: one 100-token prompt at a time.
    let config = SchedulerConfig {
        block_len: 16,
        n_blocks: 8,
        step_tokens: 128,
        max_seqs: 4,
        n_ctx: N_CTX,
    };
    let mut sched = Scheduler::new(&model, &tokenizer, config).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    for (i, n) in [(0usize, 100usize), (1, 100), (2, 3)] {
        let log = log.clone();
        let sink = Box::new(move |e: SeqEvent| {
            let what = match e {
                SeqEvent::Text(_) => "text",
                SeqEvent::Done(_) => "done",
                SeqEvent::Error(_) => "error",
            };
            log.lock().unwrap().push((i, what));
            ControlFlow::Continue(())
        });
        sched
            .submit(&prompt(i as u32, n), greedy(3), None, sink)
            .unwrap();
    }
    sched.run_to_end().unwrap();
    let log = log.lock().unwrap();
    let first = |i: usize| log.iter().position(|&(j, _)| j == i).unwrap();
    let done = |i: usize| log.iter().position(|&e| e == (i, "done")).unwrap();
    // The second waits for the first's blocks, and the small third does not
    // jump the queue.
    assert!(done(0) < first(1));
    assert!(first(1) < first(2));
    // A prompt larger than the pool is refused at once.
    let refused = sched.submit(
        &prompt(3, 130),
        greedy(1),
        None,
        Box::new(|_| ControlFlow::Continue(())),
    );
    assert!(refused.is_err());
}

#[test]
fn a_full_context_shifts_and_generation_goes_on() {
    let (model, tokenizer) = load("tiny-llama");
    let config = SchedulerConfig {
        block_len: 16,
        n_blocks: 16,
        step_tokens: 64,
        max_seqs: 2,
        n_ctx: N_CTX,
    };
    let mut sched = Scheduler::new(&model, &tokenizer, config).unwrap();
    // 40 tokens past a 48-position context: it shifts (keeping 4, dropping
    // half the rest) and recomputes, twice, as Ollama's runner goes on.
    let mut options = greedy(60);
    options.num_ctx = 48;
    options.num_keep = 4;
    options.context_shift = true;
    let got = batched(&mut sched, &[prompt(30, 20)], &options);
    let r = &got[0];
    assert_eq!((r.tokens.len(), r.done_reason), (60, DoneReason::Length));
    assert_eq!(sched.n_available_blocks(), 16);
    // Without the shift, the same request ends with an error at the
    // context's end.
    options.context_shift = false;
    let errors = Arc::new(Mutex::new(Vec::new()));
    let e2 = errors.clone();
    sched
        .submit(
            &prompt(30, 20),
            options,
            None,
            Box::new(move |e| {
                if let SeqEvent::Error(e) = e {
                    e2.lock().unwrap().push(e.to_string());
                }
                ControlFlow::Continue(())
            }),
        )
        .unwrap();
    sched.run_to_end().unwrap();
    assert_eq!(errors.lock().unwrap().len(), 1);
    assert_eq!(sched.n_available_blocks(), 16);
}
