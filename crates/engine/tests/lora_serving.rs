//! One base model serving several LoRA adapters at once
//! ([`engine::Options::lora`]): sequences with different adapters (or none)
//! share every batched step of the [`Scheduler`], and each gets, token for
//! token at temperature 0, the answer its adapter gives alone; the prefix
//! cache never hands one adapter's blocks to another.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::{Arc, Mutex};

use engine::scheduler::{Scheduler, SchedulerConfig, SeqEvent};
use engine::{Context, GenerateResult, ModelBackend, Options, generate};
use gguf::TensorType;
use model::synthetic::Spec;
use model::tokenizer::Tokenizer;
use model::{LoadOptions, Lora, LoraUse, Model};

const N_CTX: usize = 256;

fn tmp(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

fn setup() -> (Model, Tokenizer, Arc<Lora>, Arc<Lora>) {
    let spec = Spec::tiny_llama();
    let path = tmp("lora-serving-base.gguf");
    spec.write(&path, TensorType::Q8_0).unwrap();
    let model = Model::load_with(&path, &LoadOptions { threads: Some(2) }).unwrap();
    let tokenizer = Tokenizer::from_metadata(model.gguf().metadata()).unwrap();
    let mut adapters = Vec::new();
    for (seed, targets) in [
        (
            21,
            &[
                "blk.0.attn_q.weight",
                "blk.0.attn_v.weight",
                "blk.1.ffn_down.weight",
                "output.weight",
            ][..],
        ),
        (
            22,
            &[
                "blk.1.attn_k.weight",
                "blk.0.ffn_up.weight",
                "output.weight",
            ][..],
        ),
    ] {
        let p = tmp(&format!("lora-serving-{seed}.gguf"));
        spec.lora(targets, 8, 16.0, TensorType::F16, seed)
            .unwrap()
            .write_file(&p)
            .unwrap();
        adapters.push(Arc::new(model.load_lora(&p).unwrap()));
    }
    let b = adapters.pop().unwrap();
    let a = adapters.pop().unwrap();
    (model, tokenizer, a, b)
}

fn options(lora: Option<&Arc<Lora>>) -> Options {
    let mut o = Options::default();
    o.sampler.temperature = 0.0;
    o.num_predict = 16;
    o.num_ctx = N_CTX;
    o.lora = lora
        .map(|l| {
            vec![LoraUse {
                lora: l.clone(),
                scale: 1.0,
            }]
        })
        .unwrap_or_default();
    o
}

fn alone(model: &Model, tokenizer: &Tokenizer, prompt: &[u32], o: &Options) -> GenerateResult {
    let backend = ModelBackend::new(model, N_CTX)
        .unwrap()
        .with_lora(o.lora.clone());
    let mut ctx = Context::new(backend);
    generate(&mut ctx, tokenizer, prompt, o, None, &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap()
}

/// Submits every (prompt, options) at once and runs the scheduler to the end.
fn together(sched: &mut Scheduler<'_>, requests: &[(Vec<u32>, Options)]) -> Vec<GenerateResult> {
    let results = Arc::new(Mutex::new(vec![None; requests.len()]));
    for (i, (p, o)) in requests.iter().enumerate() {
        let results = results.clone();
        let sink = Box::new(move |e: SeqEvent| {
            match e {
                SeqEvent::Done(r) => results.lock().unwrap()[i] = Some(r),
                SeqEvent::Error(e) => panic!("request {i}: {e}"),
                SeqEvent::Text(_) => {}
            }
            ControlFlow::Continue(())
        });
        sched.submit(p, o.clone(), None, sink).unwrap();
    }
    sched.run_to_end().unwrap();
    let results = results.lock().unwrap().clone();
    results.into_iter().map(Option::unwrap).collect()
}

#[test]
fn two_adapters_and_the_base_share_batches_each_with_its_own_answer() {
    let (model, tokenizer, a, b) = setup();
    let config = SchedulerConfig {
        block_len: 16,
        n_blocks: 64,
        step_tokens: 32,
        max_seqs: 6,
        n_ctx: N_CTX,
    };
    let mut sched = Scheduler::new(&model, &tokenizer, config).unwrap();
    // The same prompt under each adapter and none (a shared system prompt
    // is the common case), and other prompts beside them.
    let shared: Vec<u32> = (0..40u32).map(|i| 3 + (i * 41) % 290).collect();
    let other: Vec<u32> = (0..23u32).map(|i| 3 + (i * 29 + 5) % 290).collect();
    let requests = vec![
        (shared.clone(), options(Some(&a))),
        (shared.clone(), options(Some(&b))),
        (shared.clone(), options(None)),
        (other.clone(), options(Some(&b))),
        (other.clone(), options(Some(&a))),
    ];
    let got = together(&mut sched, &requests);
    for ((p, o), r) in requests.iter().zip(&got) {
        let want = alone(&model, &tokenizer, p, o);
        assert_eq!(r.tokens, want.tokens);
        assert_eq!(r.text, want.text);
    }
    // The adapters change the answer: the same prompt gets three.
    assert_ne!(got[0].tokens, got[1].tokens);
    assert_ne!(got[0].tokens, got[2].tokens);
    assert_ne!(got[1].tokens, got[2].tokens);

    // A later request under adapter a reuses a's cached prompt blocks and
    // gets a's answer again.
    let again = together(&mut sched, &[(shared.clone(), options(Some(&a)))]);
    assert_eq!(again[0].tokens, got[0].tokens);
    assert!(again[0].timings.prompt_eval_count < shared.len());
}
