//! The generation loop against a scripted fake model and a real tokenizer
//! (the byte-level BPE fixture from crates/model/tests/fixtures/tokenizer).

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use engine::{
    Backend, ChatSession, Context, DoneReason, EngineError, GenerateResult, Options, PREFILL_CHUNK,
    generate,
};
use model::ModelError;
use model::tokenizer::Tokenizer;

fn fixture() -> gguf::GgufFile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures/tokenizer/bpe-llama3.gguf");
    gguf::GgufFile::open(&path).unwrap()
}

fn tokenizer() -> Tokenizer {
    Tokenizer::from_metadata(fixture().metadata()).unwrap()
}

/// Picks the next token from the cached tokens; `None` ends the answer.
type Script = Box<dyn Fn(&[u32]) -> Option<u32>>;

/// A model that follows a script, with a peaked distribution so that any
/// sampler settings pick the scripted token (end of sequence when the script
/// has nothing more).
struct Scripted {
    n_ctx: usize,
    n_vocab: usize,
    eos: u32,
    script: Script,
    cache: Vec<u32>,
    logits: Vec<f32>,
    /// Tokens per forward call.
    calls: Vec<usize>,
    /// (keep, discard) per shift.
    shifts: Vec<(usize, usize)>,
}

impl Scripted {
    /// After `prompt` come `answer`'s tokens, then end of sequence.
    fn new(tok: &Tokenizer, n_ctx: usize, prompt: &[u32], answer: &[u32]) -> Self {
        let (n_prompt, answer) = (prompt.len(), answer.to_vec());
        Self::with_script(
            tok,
            n_ctx,
            Box::new(move |cache| answer.get(cache.len().checked_sub(n_prompt)?).copied()),
        )
    }

    fn with_script(tok: &Tokenizer, n_ctx: usize, script: Script) -> Self {
        Self {
            n_ctx,
            n_vocab: tok.n_vocab(),
            eos: tok.eos().unwrap(),
            script,
            cache: Vec::new(),
            logits: Vec::new(),
            calls: Vec::new(),
            shifts: Vec::new(),
        }
    }
}

impl Backend for Scripted {
    fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    fn n_past(&self) -> usize {
        self.cache.len()
    }

    fn forward(&mut self, tokens: &[u32]) -> Result<&[f32], ModelError> {
        let needed = self.cache.len() + tokens.len();
        if needed > self.n_ctx {
            return Err(ModelError::ContextFull {
                n_ctx: self.n_ctx,
                needed,
            });
        }
        self.calls.push(tokens.len());
        self.cache.extend_from_slice(tokens);
        let next = (self.script)(&self.cache).unwrap_or(self.eos);
        self.logits.clear();
        self.logits.resize(self.n_vocab, 0.0);
        self.logits[next as usize] = 30.0;
        Ok(&self.logits)
    }

    fn truncate(&mut self, n: usize) {
        self.cache.truncate(n);
    }

    fn shift(&mut self, keep: usize, discard: usize) -> Result<(), ModelError> {
        self.shifts.push((keep, discard));
        self.cache.drain(keep..keep + discard);
        Ok(())
    }
}

/// Runs `generate`, returning the result and the streamed pieces.
fn run(
    ctx: &mut Context<Scripted>,
    tok: &Tokenizer,
    prompt: &[u32],
    options: &Options,
) -> Result<(GenerateResult, Vec<String>), EngineError> {
    let mut pieces = Vec::new();
    let result = generate(ctx, tok, prompt, options, None, &mut |t| {
        pieces.push(t.to_owned());
        ControlFlow::Continue(())
    })?;
    Ok((result, pieces))
}

fn greedy() -> Options {
    let mut o = Options::default();
    o.set("temperature", "0").unwrap();
    o
}

#[test]
fn streams_the_answer_and_stops_at_end_of_sequence() {
    let tok = tokenizer();
    let prompt = tok.encode("Hello there", false, false);
    let answer = tok.encode(" world, how are you?", false, false);
    let mut ctx = Context::new(Scripted::new(&tok, 64, &prompt, &answer));
    let (result, pieces) = run(&mut ctx, &tok, &prompt, &greedy()).unwrap();
    assert_eq!(result.text, " world, how are you?");
    assert_eq!(pieces.concat(), result.text);
    assert_eq!(result.tokens, answer);
    assert_eq!(result.done_reason, DoneReason::Stop);
    assert_eq!(result.timings.prompt_eval_count, prompt.len());
    assert_eq!(result.timings.eval_count, answer.len());
    // The end-of-sequence token was sampled but never fed back or shown.
    assert_eq!(ctx.tokens().len(), prompt.len() + answer.len());
    assert!(!result.text.contains("<|endoftext|>"));
}

#[test]
fn seeded_sampling_repeats_itself() {
    let tok = tokenizer();
    let prompt = tok.encode("Hello", false, false);
    let answer = tok.encode(" a b c d", false, false);
    let mut options = Options::default();
    options.set("seed", "123").unwrap();
    let texts: Vec<String> = (0..2)
        .map(|_| {
            let mut ctx = Context::new(Scripted::new(&tok, 64, &prompt, &answer));
            run(&mut ctx, &tok, &prompt, &options).unwrap().0.text
        })
        .collect();
    assert_eq!(texts[0], texts[1]);
    assert_eq!(texts[0], " a b c d", "the scripted token dominates");
}

#[test]
fn stop_sequence_spanning_tokens_ends_without_being_emitted() {
    let tok = tokenizer();
    let prompt = tok.encode("Count:", false, false);
    let answer = tok.encode(" one two\nUser: three four", false, false);
    // The stop text is spread over several tokens.
    let pieces: Vec<String> = answer
        .iter()
        .map(|&t| String::from_utf8_lossy(tok.token_to_piece(t, false)).into_owned())
        .collect();
    assert!(pieces.iter().all(|p| !p.contains("User:")), "{pieces:?}");
    assert_eq!(pieces.concat(), " one two\nUser: three four");
    let mut options = greedy();
    options.set("stop", "User:").unwrap();
    let mut ctx = Context::new(Scripted::new(&tok, 64, &prompt, &answer));
    let (result, streamed) = run(&mut ctx, &tok, &prompt, &options).unwrap();
    assert_eq!(result.text, " one two\n");
    assert_eq!(streamed.concat(), " one two\n");
    assert_eq!(result.done_reason, DoneReason::Stop);
}

#[test]
fn partial_stop_match_that_diverges_is_emitted() {
    let tok = tokenizer();
    let prompt = tok.encode("Count:", false, false);
    let answer = tok.encode(" one Use three", false, false);
    let mut options = greedy();
    options.set("stop", "User:").unwrap();
    let mut ctx = Context::new(Scripted::new(&tok, 64, &prompt, &answer));
    let (result, streamed) = run(&mut ctx, &tok, &prompt, &options).unwrap();
    assert_eq!(result.text, " one Use three");
    assert_eq!(streamed.concat(), result.text);
}

#[test]
fn num_predict_limits_the_answer() {
    let tok = tokenizer();
    let prompt = tok.encode("Hi", false, false);
    let answer = tok.encode(" a b c d e f", false, false);
    let mut options = greedy();
    options.set("num_predict", "3").unwrap();
    let mut ctx = Context::new(Scripted::new(&tok, 64, &prompt, &answer));
    let (result, _) = run(&mut ctx, &tok, &prompt, &options).unwrap();
    assert_eq!(result.tokens, answer[..3]);
    assert_eq!(result.done_reason, DoneReason::Length);
    // The last token is not run through the model: nobody needs its logits.
    assert_eq!(ctx.tokens().len(), prompt.len() + 2);

    options.set("num_predict", "0").unwrap();
    let (result, _) = run(&mut ctx, &tok, &prompt, &options).unwrap();
    assert!(result.tokens.is_empty());
    assert_eq!(result.done_reason, DoneReason::Length);
}

/// A prompt and an answer that loops forever (a b a b ...).
fn endless(tok: &Tokenizer, n_ctx: usize) -> (Vec<u32>, Scripted) {
    let prompt = tok.encode("one two three four", false, false);
    let ab = tok.encode(" x y", false, false);
    let (a, b) = (ab[0], ab[1]);
    let model = Scripted::with_script(
        tok,
        n_ctx,
        Box::new(move |cache| Some(if cache.last() == Some(&a) { b } else { a })),
    );
    (prompt, model)
}

#[test]
fn full_context_is_an_error_by_default() {
    let tok = tokenizer();
    let (prompt, model) = endless(&tok, 12);
    let mut ctx = Context::new(model);
    let err = run(&mut ctx, &tok, &prompt, &greedy()).unwrap_err();
    assert!(
        matches!(err, EngineError::ContextFull { n_ctx: 12 }),
        "{err}"
    );
}

#[test]
fn num_predict_minus_two_fills_the_context() {
    let tok = tokenizer();
    let (prompt, model) = endless(&tok, 12);
    let mut ctx = Context::new(model);
    let mut options = greedy();
    options.set("num_predict", "-2").unwrap();
    let (result, _) = run(&mut ctx, &tok, &prompt, &options).unwrap();
    assert_eq!(result.done_reason, DoneReason::Length);
    // Every position is filled; the last token sampled has no room to be run.
    assert_eq!(ctx.tokens().len(), 12);
    assert_eq!(prompt.len() + result.tokens.len(), 13);
}

#[test]
fn context_shift_keeps_num_keep_and_drops_half_the_rest() {
    let tok = tokenizer();
    let (prompt, model) = endless(&tok, 12);
    let mut ctx = Context::new(model);
    let mut options = greedy();
    options.set("context_shift", "true").unwrap();
    options.set("num_keep", "2").unwrap();
    options.set("num_predict", "30").unwrap();
    let (result, _) = run(&mut ctx, &tok, &prompt, &options).unwrap();
    assert_eq!(result.tokens.len(), 30);
    assert_eq!(result.done_reason, DoneReason::Length);
    let shifts = &ctx.backend().shifts;
    assert!(!shifts.is_empty());
    // Each shift happens with all 12 positions cached: keep 2, drop (12 - 2) / 2.
    assert!(shifts.iter().all(|&s| s == (2, 5)), "{shifts:?}");
    // The kept prefix is still the prompt's start.
    assert_eq!(ctx.tokens()[..2], prompt[..2]);
    assert_eq!(ctx.tokens(), ctx.backend().cache);
}

#[test]
fn a_prompt_that_fills_the_context_is_rejected() {
    let tok = tokenizer();
    let (prompt, model) = endless(&tok, prompt_len(&tok));
    let mut ctx = Context::new(model);
    let err = run(&mut ctx, &tok, &prompt, &greedy()).unwrap_err();
    assert!(matches!(err, EngineError::PromptTooLong { .. }), "{err}");
    let err = run(&mut ctx, &tok, &[], &greedy()).unwrap_err();
    assert!(matches!(err, EngineError::EmptyPrompt), "{err}");
}

#[test]
fn with_context_shift_an_over_long_prompt_keeps_its_start_and_end() {
    let tok = tokenizer();
    let (_, model) = endless(&tok, 12);
    let prompt: Vec<u32> = (100..130).collect();
    let mut ctx = Context::new(model);
    let mut options = greedy();
    options.set("context_shift", "true").unwrap();
    options.set("num_keep", "3").unwrap();
    options.set("num_predict", "5").unwrap();
    let (result, _) = run(&mut ctx, &tok, &prompt, &options).unwrap();
    assert_eq!(result.tokens.len(), 5);
    // Ollama's truncation: the first num_keep tokens, then the prompt's end,
    // filling all but one position; the generated tokens then shift.
    let calls = &ctx.backend().calls;
    assert_eq!(calls[0], 11, "{calls:?}");
    assert_eq!(result.timings.prompt_eval_count, 11);
    assert_eq!(ctx.tokens()[..3], prompt[..3]);
    let shifts = &ctx.backend().shifts;
    assert!(shifts.iter().all(|&s| s == (3, 4)), "{shifts:?}");
    assert_eq!(ctx.tokens(), ctx.backend().cache);

    // A num_keep as large as the context still keeps the prompt's last token.
    let (_, model) = endless(&tok, 12);
    let mut ctx = Context::new(model);
    options.set("num_keep", "50").unwrap();
    run(&mut ctx, &tok, &prompt, &options).unwrap();
    assert_eq!(ctx.backend().calls[0], 11);
    assert_eq!(ctx.backend().cache[..10], prompt[..10]);
    assert_eq!(ctx.backend().cache[10], prompt[29]);
    // Shifts keep all but one position and drop one.
    let shifts = &ctx.backend().shifts;
    assert!(shifts.iter().all(|&s| s == (11, 1)), "{shifts:?}");
}

/// Set by the test's scripted model once it has run a full prefill chunk.
static CANCEL_AFTER_ONE_CHUNK: AtomicBool = AtomicBool::new(false);

#[test]
fn a_long_prompt_runs_in_chunks_and_cancelling_stops_between_them() {
    let tok = tokenizer();
    let prompt: Vec<u32> = (0..2 * PREFILL_CHUNK as u32 + 88)
        .map(|i| 100 + i % 50)
        .collect();
    let mut ctx = Context::new(Scripted::with_script(&tok, 1024, Box::new(|_| None)));
    let (result, _) = run(&mut ctx, &tok, &prompt, &greedy()).unwrap();
    assert_eq!(ctx.backend().calls, [PREFILL_CHUNK, PREFILL_CHUNK, 88]);
    assert_eq!(result.timings.prompt_eval_count, prompt.len());

    // Ctrl-C during the first chunk: the second never runs, the first stays
    // cached, and no token is generated.
    let script: Script = Box::new(|cache| {
        if cache.len() >= PREFILL_CHUNK {
            CANCEL_AFTER_ONE_CHUNK.store(true, Ordering::SeqCst);
        }
        None
    });
    let mut ctx = Context::new(Scripted::with_script(&tok, 1024, script));
    let result = generate(
        &mut ctx,
        &tok,
        &prompt,
        &greedy(),
        Some(&CANCEL_AFTER_ONE_CHUNK),
        &mut |_| ControlFlow::Continue(()),
    )
    .unwrap();
    assert_eq!(result.done_reason, DoneReason::Cancelled);
    assert!(result.tokens.is_empty() && result.text.is_empty());
    assert_eq!(ctx.backend().calls, [PREFILL_CHUNK]);
    assert_eq!(result.timings.prompt_eval_count, PREFILL_CHUNK);
    assert_eq!(ctx.tokens(), &prompt[..PREFILL_CHUNK]);

    // The next request reuses the cached chunk.
    CANCEL_AFTER_ONE_CHUNK.store(false, Ordering::SeqCst);
    let (result, _) = run(&mut ctx, &tok, &prompt, &greedy()).unwrap();
    assert_eq!(
        result.timings.prompt_eval_count,
        prompt.len() - PREFILL_CHUNK
    );
}

fn prompt_len(tok: &Tokenizer) -> usize {
    tok.encode("one two three four", false, false).len()
}

#[test]
fn a_prompt_extending_the_cache_runs_only_the_new_tokens() {
    let tok = tokenizer();
    let prompt = tok.encode("Hello there", false, false);
    let answer = tok.encode(" friend", false, false);
    let mut ctx = Context::new(Scripted::new(&tok, 64, &prompt, &answer));
    let (first, _) = run(&mut ctx, &tok, &prompt, &greedy()).unwrap();
    let mut second = prompt.clone();
    second.extend(&first.tokens);
    second.extend(tok.encode(" and more", false, false));
    let n_new = second.len() - ctx.tokens().len();
    let (result, _) = run(&mut ctx, &tok, &second, &greedy()).unwrap();
    assert_eq!(result.timings.prompt_eval_count, n_new);
    assert!(ctx.backend().calls.contains(&n_new));
    // The same prompt again re-runs only its last token (its logits are needed).
    let (again, _) = run(&mut ctx, &tok, &second, &greedy()).unwrap();
    assert_eq!(again.timings.prompt_eval_count, 1);
}

#[test]
fn cancelling_stops_between_tokens() {
    let tok = tokenizer();
    let prompt = tok.encode("Hi", false, false);
    let answer = tok.encode(" a b c d e f", false, false);
    let mut ctx = Context::new(Scripted::new(&tok, 64, &prompt, &answer));
    let mut n = 0;
    let result = generate(&mut ctx, &tok, &prompt, &greedy(), None, &mut |_| {
        n += 1;
        if n == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert_eq!(result.done_reason, DoneReason::Cancelled);
    assert_eq!(result.tokens.len(), 2);

    let flag = AtomicBool::new(true);
    let result = generate(&mut ctx, &tok, &prompt, &greedy(), Some(&flag), &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(result.done_reason, DoneReason::Cancelled);
    assert!(result.tokens.is_empty());
}

#[test]
fn chat_session_renders_history_and_reuses_the_cache() {
    let tok = tokenizer();
    let file = fixture();
    let mut options = greedy();
    options.set("num_predict", "4").unwrap();
    // The fixture has no chat template: ChatML is the fallback.
    let probe = Context::new(Scripted::new(&tok, 256, &[0], &[]));
    let probe = ChatSession::new(probe, &tok, file.metadata(), options.clone()).unwrap();
    let first_prompt = probe.tokenize(
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n\
         <|im_start|>assistant\n",
    );
    let answer = tok.encode(" hello you", false, false);
    let backend = Scripted::new(&tok, 256, &first_prompt, &answer);
    let mut s = ChatSession::new(Context::new(backend), &tok, file.metadata(), options).unwrap();
    s.set_system(Some("Be brief.".into()));
    let first = s
        .send("hi", None, &mut |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!(first.text, " hello you");
    assert_eq!(first.timings.prompt_eval_count, first_prompt.len());
    assert_eq!(s.messages().len(), 2);
    assert_eq!(s.messages()[1]["content"], " hello you");

    let rendered = {
        let second = s
            .send("more", None, &mut |_| ControlFlow::Continue(()))
            .unwrap();
        assert!(
            second.timings.prompt_eval_count < s.context().tokens().len() / 2,
            "only the new turn is evaluated: {} of {}",
            second.timings.prompt_eval_count,
            s.context().tokens().len()
        );
        s.render().unwrap()
    };
    assert!(rendered.starts_with("<|im_start|>system\nBe brief.<|im_end|>\n"));
    assert!(
        rendered.contains("<|im_start|>assistant\n hello you<|im_end|>\n<|im_start|>user\nmore")
    );
    s.clear();
    assert!(s.messages().is_empty());
    assert_eq!(s.system(), Some("Be brief."));
}

#[test]
fn logprobs_come_one_per_generated_token_when_asked() {
    let tok = tokenizer();
    let prompt = tok.encode("Hello there", false, false);
    let answer = tok.encode(" world, how are you?", false, false);
    let mut ctx = Context::new(Scripted::new(&tok, 64, &prompt, &answer));
    let (result, _) = run(&mut ctx, &tok, &prompt, &greedy()).unwrap();
    assert!(result.logprobs.is_empty(), "not asked, not computed");

    let mut ctx = Context::new(Scripted::new(&tok, 64, &prompt, &answer));
    let options = Options {
        logprobs: Some(2),
        ..greedy()
    };
    let (result, _) = run(&mut ctx, &tok, &prompt, &options).unwrap();
    let tokens: Vec<u32> = result.logprobs.iter().map(|l| l.token).collect();
    assert_eq!(tokens, answer);
    // The scripted logit (30 against 0 for every other token) holds almost all
    // the mass: log p = 30 - ln(e^30 + n_vocab - 1).
    let n_other = (tok.n_vocab() - 1) as f32;
    let expected = 30.0 - (30.0f32.exp() + n_other).ln();
    for l in &result.logprobs {
        assert!((l.logprob - expected).abs() < 1e-4, "{l:?}");
        assert_eq!(l.top.len(), 2);
        assert_eq!(l.top[0], (l.token, l.logprob));
        assert!((l.top[1].1 - (-(30.0f32.exp() + n_other).ln())).abs() < 1e-3);
    }
}
