//! Constrained decoding ([`engine::constraint`]) over the tiny synthetic
//! model's vocabulary (byte-fallback tokens, `▁tN` pieces, `</s>`): random
//! walks through each grammar's masks (a uniformly chosen allowed token at
//! every step) always give text the grammar describes, for JSON Schema
//! features, JSON mode, GBNF, regular expressions and lazy triggers; bad
//! grammars are errors; and in the batching scheduler, constrained sequences
//! sampled at temperature 1 give valid JSON while an unconstrained one beside
//! them is unchanged.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use engine::constraint::{ConstraintEnv, SeqConstraint};
use engine::scheduler::{Scheduler, SchedulerConfig, SeqEvent};
use engine::{Constraint, DoneReason, EngineError, GenerateResult, Grammar, Options};
use gguf::TensorType;
use model::synthetic::Spec;
use model::tokenizer::Tokenizer;
use model::{LoadOptions, Model};
use serde_json::{Value, json};

fn load() -> (Model, Tokenizer) {
    // Written once: the tests run in parallel.
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    let path = PATH.get_or_init(|| {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tiny-llama-constraint.gguf");
        Spec::preset("tiny-llama")
            .unwrap()
            .write(&path, TensorType::Q8_0)
            .unwrap();
        path
    });
    let model = Model::load_with(path, &LoadOptions { threads: Some(2) }).unwrap();
    let tokenizer = Tokenizer::from_metadata(model.gguf().metadata()).unwrap();
    (model, tokenizer)
}

fn tokenizer() -> Tokenizer {
    load().1
}

/// SplitMix64, for reproducible walks.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

fn allowed(mask: &[u32]) -> Vec<u32> {
    (0..mask.len() * 32)
        .filter(|&i| mask[i / 32] >> (i % 32) & 1 == 1)
        .map(|i| i as u32)
        .collect()
}

/// Walks `c` from its current state: every step a uniformly chosen allowed
/// token, an end token once allowed half the time. Returns the text of the
/// tokens taken (as the grammar sees it) and whether it ended at an end
/// token or the grammar's end.
fn walk(tok: &Tokenizer, c: &mut SeqConstraint, rng: &mut Rng) -> String {
    let mut text = Vec::new();
    for _ in 0..20_000 {
        let mask = c.mask().unwrap().expect("the grammar is on");
        let ids = allowed(mask);
        assert!(!ids.is_empty(), "a mask allows nothing after {text:?}");
        let (ends, others): (Vec<u32>, Vec<u32>) = ids.into_iter().partition(|&t| tok.is_eog(t));
        for &t in &others {
            assert!(!tok.is_control(t), "control token {t} allowed");
        }
        if !ends.is_empty() && (others.is_empty() || rng.below(2) == 0) {
            return String::from_utf8(text).unwrap();
        }
        let t = others[rng.below(others.len())];
        let piece = tok.token_to_piece(t, true);
        text.extend_from_slice(piece);
        c.accept(t, piece).unwrap();
        if c.is_finished() {
            return String::from_utf8(text).unwrap();
        }
    }
    panic!(
        "no end after 20000 tokens: {:?}",
        String::from_utf8_lossy(&text)
    );
}

/// `n` walks of `grammar`, each checked by `check`.
fn walks(env: &ConstraintEnv, tok: &Tokenizer, grammar: Grammar, n: u64, check: impl Fn(&str)) {
    let constraint = Constraint::new(grammar);
    for seed in 0..n {
        let mut c = env.compile(&constraint).unwrap();
        let text = walk(tok, &mut c, &mut Rng(seed));
        check(&text);
    }
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{text:?} is not JSON: {e}"))
}

#[test]
fn json_schema_features_hold_on_every_walk() {
    let tok = tokenizer();
    let env = ConstraintEnv::new(&tok).unwrap();
    let schema = |v: Value| Grammar::JsonSchema(v);

    // Types, properties, required, additionalProperties, integer bounds,
    // string lengths.
    walks(
        &env,
        &tok,
        schema(json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 6},
                "age": {"type": "integer", "minimum": 18, "maximum": 99},
                "ok": {"type": "boolean"},
                "note": {"type": "null"}
            },
            "required": ["name", "age"],
            "additionalProperties": false
        })),
        8,
        |text| {
            let v = json_of(text);
            let o = v.as_object().unwrap();
            assert!(
                o.keys()
                    .all(|k| ["name", "age", "ok", "note"].contains(&k.as_str()))
            );
            let name = o["name"].as_str().unwrap();
            assert!((1..=6).contains(&name.chars().count()), "{text}");
            let age = o["age"].as_i64().unwrap();
            assert!((18..=99).contains(&age), "{text}");
            assert!(o.get("ok").is_none_or(Value::is_boolean));
            assert!(o.get("note").is_none_or(Value::is_null));
        },
    );
    // enum and const.
    walks(
        &env,
        &tok,
        schema(json!({"enum": ["red", "green", 3, null]})),
        12,
        |text| {
            assert!([json!("red"), json!("green"), json!(3), Value::Null].contains(&json_of(text)))
        },
    );
    walks(
        &env,
        &tok,
        schema(json!({"const": {"a": [1, "b"]}})),
        3,
        |text| assert_eq!(json_of(text), json!({"a": [1, "b"]})),
    );
    // anyOf and oneOf.
    walks(
        &env,
        &tok,
        schema(json!({"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 2}]})),
        12,
        |text| {
            let v = json_of(text);
            assert!(
                v.is_i64() || v.as_str().is_some_and(|s| s.chars().count() <= 2),
                "{text}"
            );
        },
    );
    walks(
        &env,
        &tok,
        schema(json!({"oneOf": [
            {"type": "object", "properties": {"kind": {"const": "a"}}, "required": ["kind"], "additionalProperties": false},
            {"type": "array", "items": {"type": "boolean"}, "maxItems": 2}
        ]})),
        10,
        |text| {
            let v = json_of(text);
            assert!(
                v == json!({"kind": "a"})
                    || v.as_array()
                        .is_some_and(|a| a.len() <= 2 && a.iter().all(Value::is_boolean)),
                "{text}"
            );
        },
    );
    // $ref / $defs, recursively.
    fn tree_ok(v: &Value) -> bool {
        let Some(o) = v.as_object() else { return false };
        o.keys().all(|k| k == "v" || k == "kids")
            && o["v"].is_i64()
            && o.get("kids").is_none_or(|k| {
                k.as_array()
                    .is_some_and(|a| a.len() <= 1 && a.iter().all(tree_ok))
            })
    }
    walks(
        &env,
        &tok,
        schema(json!({
            "$defs": {"node": {
                "type": "object",
                "properties": {
                    "v": {"type": "integer"},
                    "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 1}
                },
                "required": ["v"],
                "additionalProperties": false
            }},
            "$ref": "#/$defs/node"
        })),
        8,
        |text| assert!(tree_ok(&json_of(text)), "{text}"),
    );
    // Arrays with minItems / maxItems.
    walks(
        &env,
        &tok,
        schema(
            json!({"type": "array", "items": {"type": "boolean"}, "minItems": 2, "maxItems": 4}),
        ),
        10,
        |text| {
            let v = json_of(text);
            let a = v.as_array().unwrap();
            assert!(
                (2..=4).contains(&a.len()) && a.iter().all(Value::is_boolean),
                "{text}"
            );
        },
    );
    // pattern and formats.
    walks(
        &env,
        &tok,
        schema(json!({"type": "string", "pattern": "^[a-z]{3}-[0-9]{2}$"})),
        8,
        |text| {
            let s = json_of(text);
            let b = s.as_str().unwrap().as_bytes();
            assert!(
                b.len() == 6
                    && b[..3].iter().all(u8::is_ascii_lowercase)
                    && b[3] == b'-'
                    && b[4..].iter().all(u8::is_ascii_digit),
                "{text}"
            );
        },
    );
    walks(
        &env,
        &tok,
        schema(json!({"type": "string", "format": "date"})),
        8,
        |text| {
            let s = json_of(text);
            let b = s.as_str().unwrap().as_bytes();
            assert!(b.len() == 10 && b[4] == b'-' && b[7] == b'-', "{text}");
            let month: u32 = std::str::from_utf8(&b[5..7]).unwrap().parse().unwrap();
            assert!((1..=12).contains(&month), "{text}");
        },
    );
    walks(
        &env,
        &tok,
        schema(json!({"type": "string", "format": "uuid"})),
        4,
        |text| {
            let s = json_of(text);
            let parts: Vec<usize> = s.as_str().unwrap().split('-').map(str::len).collect();
            assert_eq!(parts, [8, 4, 4, 4, 12], "{text}");
        },
    );
    // Number bounds, exclusive ones too.
    walks(
        &env,
        &tok,
        schema(json!({"type": "number", "minimum": -1.5, "maximum": 2.5})),
        12,
        |text| {
            let x = json_of(text).as_f64().unwrap();
            assert!((-1.5..=2.5).contains(&x), "{text}");
        },
    );
    walks(
        &env,
        &tok,
        schema(json!({"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10})),
        12,
        |text| {
            let x = json_of(text).as_i64().unwrap();
            assert!((1..=9).contains(&x), "{text}");
        },
    );
}

#[test]
fn json_mode_gbnf_and_regex_hold_on_every_walk() {
    let tok = tokenizer();
    let env = ConstraintEnv::new(&tok).unwrap();
    walks(&env, &tok, Grammar::JsonObject, 10, |text| {
        assert!(json_of(text).is_object(), "{text}");
    });
    let gbnf = r#"
        # a list of one to three answers
        root   ::= answer ("," answer){0,2}
        answer ::= "yes" | "no" | [0-9] [0-9]?
    "#;
    walks(&env, &tok, Grammar::Gbnf(gbnf.to_owned()), 12, |text| {
        let parts: Vec<&str> = text.split(',').collect();
        assert!((1..=3).contains(&parts.len()), "{text}");
        for p in parts {
            let number = !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit());
            assert!(p == "yes" || p == "no" || number, "{text}");
        }
    });
    walks(
        &env,
        &tok,
        Grammar::Regex("[a-c]{2,4}x".to_owned()),
        12,
        |text| {
            let b = text.as_bytes();
            assert!((3..=5).contains(&b.len()) && b.ends_with(b"x"), "{text}");
            assert!(
                b[..b.len() - 1].iter().all(|c| (b'a'..=b'c').contains(c)),
                "{text}"
            );
        },
    );
    // A Lark grammar embedding a JSON Schema, as tool calls are built.
    let lark = r#"start: "call " %json {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"], "additionalProperties": false}"#;
    walks(&env, &tok, Grammar::Lark(lark.to_owned()), 6, |text| {
        let rest = text.strip_prefix("call ").unwrap();
        assert!(json_of(rest)["n"].is_number(), "{text}");
    });
}

#[test]
fn end_tokens_are_allowed_exactly_when_the_grammar_accepts() {
    let tok = tokenizer();
    let env = ConstraintEnv::new(&tok).unwrap();
    let eos = tok.eos().unwrap();
    let mut c = env
        .compile(&Constraint::new(Grammar::Regex("ab+".to_owned())))
        .unwrap();
    let id = |b: u8| tok.token_id(&format!("<0x{b:02X}>")).unwrap();
    let has = |c: &mut SeqConstraint, t: u32| allowed(c.mask().unwrap().unwrap()).contains(&t);
    assert!(!has(&mut c, eos));
    assert!(has(&mut c, id(b'a')) && !has(&mut c, id(b'b')));
    c.accept(id(b'a'), b"a").unwrap();
    assert!(!has(&mut c, eos), "'a' alone does not match");
    c.accept(id(b'b'), b"b").unwrap();
    assert!(has(&mut c, eos) && has(&mut c, id(b'b')) && !has(&mut c, id(b'a')));
    assert!(!c.is_finished());
    // A grammar with nothing left to add is finished.
    let mut done = env
        .compile(&Constraint::new(Grammar::Regex("ok".to_owned())))
        .unwrap();
    done.accept(id(b'o'), b"o").unwrap();
    done.accept(id(b'k'), b"k").unwrap();
    assert!(done.is_finished());
}

#[test]
fn a_lazy_grammar_starts_at_its_trigger_even_inside_a_token() {
    let tok = tokenizer();
    let env = ConstraintEnv::new(&tok).unwrap();
    let grammar = Grammar::Lark(r#"start: "t30" /[0-9]/ "!""#.to_owned());
    let mut c = env
        .compile(&Constraint::lazy(grammar, vec!["t30".to_owned()]))
        .unwrap();
    let byte = |b: u8| tok.token_id(&format!("<0x{b:02X}>")).unwrap();
    // Free text first: anything goes, no mask.
    for &b in b"hi t3" {
        assert!(c.mask().unwrap().is_none());
        c.accept(byte(b), &[b]).unwrap();
    }
    assert!(c.mask().unwrap().is_none());
    // The trigger completes inside the piece " t300" (after its space, and
    // across the free bytes "t3" before it): the grammar takes "t300".
    let t300 = tok.token_id("\u{2581}t300").unwrap();
    c.accept(t300, b" t300").unwrap();
    let mask = allowed(c.mask().unwrap().expect("the grammar is on"));
    assert_eq!(mask, [byte(b'!')], "only '!' completes \"t30\" + digit");
    c.accept(byte(b'!'), b"!").unwrap();
    assert!(c.is_finished());

    // A token that completes a trigger and runs on into text the grammar
    // refuses: that occurrence does not count, the text stays free, and a
    // later one does.
    let grammar = Grammar::Lark(r#"start: "t3" "!""#.to_owned());
    let mut c = env
        .compile(&Constraint::lazy(grammar, vec!["t3".to_owned()]))
        .unwrap();
    c.accept(t300, b" t300").unwrap();
    assert!(
        c.mask().unwrap().is_none(),
        "\"t300\" is no match for \"t3\" \"!\""
    );
    for &b in b"t3" {
        c.accept(byte(b), &[b]).unwrap();
    }
    let mask = allowed(c.mask().unwrap().expect("the grammar is on"));
    assert_eq!(mask, [byte(b'!')]);

    // A trigger that starts at a token's start: the token itself is taken.
    let grammar = Grammar::Lark(r#"start: "<" /[a-z]+/ ">""#.to_owned());
    let mut c = env
        .compile(&Constraint::lazy(grammar, vec!["<".to_owned()]))
        .unwrap();
    c.accept(byte(b'x'), b"x").unwrap();
    c.accept(byte(b'<'), b"<").unwrap();
    let mut rng = Rng(3);
    let text = walk(&tok, &mut c, &mut rng);
    assert!(
        text.ends_with('>')
            && text[..text.len() - 1]
                .bytes()
                .all(|b| b.is_ascii_lowercase()),
        "{text}"
    );
}

#[test]
fn invalid_grammars_are_errors_that_name_the_problem() {
    let tok = tokenizer();
    let env = ConstraintEnv::new(&tok).unwrap();
    for (grammar, says) in [
        (
            Grammar::JsonSchema(json!({"type": 5})),
            "invalid JSON Schema",
        ),
        (Grammar::JsonSchema(json!("string")), "invalid JSON Schema"),
        (
            Grammar::JsonSchema(json!({"$ref": "#/$defs/missing"})),
            "invalid JSON Schema",
        ),
        (
            Grammar::Regex("(unclosed".to_owned()),
            "invalid regular expression",
        ),
        (
            Grammar::Lark("start: missing_rule".to_owned()),
            "invalid Lark grammar",
        ),
        (
            Grammar::Gbnf("root ::= \"open".to_owned()),
            "invalid GBNF grammar",
        ),
    ] {
        match env.compile(&Constraint::new(grammar.clone())) {
            Err(EngineError::Constraint(m)) => assert!(m.starts_with(says), "{grammar:?}: {m}"),
            other => panic!("{grammar:?}: {other:?}"),
        }
    }
    let empty_trigger = Constraint::lazy(Grammar::JsonObject, vec![String::new()]);
    assert!(matches!(
        env.compile(&empty_trigger),
        Err(EngineError::Constraint(_))
    ));
}

#[test]
fn constrained_sequences_batch_with_unconstrained_ones() {
    let (model, tok) = load();
    let config = SchedulerConfig {
        block_len: 16,
        n_blocks: 256,
        step_tokens: 64,
        max_seqs: 4,
        n_ctx: 4096,
    };
    let schema = json!({
        "type": "object",
        "properties": {
            "id": {"type": "integer", "minimum": 0, "maximum": 1000},
            "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3}
        },
        "required": ["id", "tags"],
        "additionalProperties": false
    });
    let prompt: Vec<u32> = (0..20).map(|i| 3 + (i * 37) % 290).collect();
    let mut random = Options::default();
    random.sampler.temperature = 1.0;
    random.num_predict = 3000;
    random.num_ctx = 4096;
    let mut greedy = Options::default();
    greedy.sampler.temperature = 0.0;
    greedy.num_predict = 24;
    greedy.num_ctx = 4096;

    let run = |with_constrained: bool| -> Vec<GenerateResult> {
        let mut sched = Scheduler::new(&model, &tok, config).unwrap();
        let n = if with_constrained { 4 } else { 1 };
        let results = Arc::new(Mutex::new(vec![None; n]));
        for i in 0..n {
            let results = results.clone();
            let sink = Box::new(move |e: SeqEvent| {
                match e {
                    SeqEvent::Done(r) => results.lock().unwrap()[i] = Some(r),
                    SeqEvent::Error(e) => panic!("request {i}: {e}"),
                    SeqEvent::Text(_) => {}
                }
                ControlFlow::Continue(())
            });
            if i == 0 {
                sched.submit(&prompt, greedy.clone(), None, sink).unwrap();
            } else {
                let c = sched
                    .compile(&Constraint::new(Grammar::JsonSchema(schema.clone())))
                    .unwrap();
                let mut o = random.clone();
                o.sampler.seed = Some(i as u64);
                sched
                    .submit_constrained(&prompt, o, Some(c), None, sink)
                    .unwrap();
            }
        }
        sched.run_to_end().unwrap();
        results
            .lock()
            .unwrap()
            .iter_mut()
            .map(|r| r.take().unwrap())
            .collect()
    };
    let batched = run(true);
    let alone = run(false);
    assert_eq!(
        batched[0].tokens, alone[0].tokens,
        "the unconstrained sequence changed"
    );
    for r in &batched[1..] {
        assert_eq!(r.done_reason, DoneReason::Stop, "{:?}", r.text);
        let v = json_of(r.text.trim_start());
        assert!(
            (0..=1000).contains(&v["id"].as_i64().unwrap()),
            "{}",
            r.text
        );
        let tags = v["tags"].as_array().unwrap();
        assert!(
            tags.len() <= 3
                && tags
                    .iter()
                    .all(|t| ["a", "b", "c"].contains(&t.as_str().unwrap()))
        );
        assert_eq!(v.as_object().unwrap().len(), 2, "{}", r.text);
    }
}

/// Real vocabularies (llama.cpp's `ggml-vocab-*.gguf`, see
/// crates/model/tests/tokenizer_llama_vocabs.rs): byte-level BPE with
/// multi-byte and partial-character tokens, SentencePiece with byte
/// fallback, and special tokens that must stay out of grammar text. Random
/// walks through a nested schema give valid UTF-8 JSON that conforms, no
/// control token is ever allowed, and where the grammar accepts, every end
/// token (EOS, end of turn) is allowed and nothing else when it is complete.
#[test]
#[cfg_attr(
    not(hearth_llama_vocabs),
    ignore = "HEARTH_LLAMA_VOCAB_DIR is not set (tools/fetch-llama-vocabs.sh)"
)]
fn real_vocabularies_give_conforming_json() {
    let dir = PathBuf::from(
        std::env::var_os("HEARTH_LLAMA_VOCAB_DIR")
            .expect("HEARTH_LLAMA_VOCAB_DIR is not set (run tools/fetch-llama-vocabs.sh)"),
    );
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 12},
            "scores": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 9}, "maxItems": 3},
            "kind": {"enum": ["a", "b"]}
        },
        "required": ["name", "scores", "kind"],
        "additionalProperties": false
    });
    for name in ["llama-bpe", "llama-spm", "qwen2", "phi-3", "command-r"] {
        let file = gguf::GgufFile::open(dir.join(format!("ggml-vocab-{name}.gguf"))).unwrap();
        let tok = Tokenizer::from_metadata(file.metadata()).unwrap();
        let env = ConstraintEnv::new(&tok).unwrap();
        walks(&env, &tok, Grammar::JsonSchema(schema.clone()), 4, |text| {
            let v = json_of(text);
            assert!(
                v["name"].as_str().unwrap().chars().count() <= 12,
                "{name}: {text}"
            );
            assert!(v["scores"].as_array().unwrap().len() <= 3, "{name}: {text}");
            assert!(v["kind"] == "a" || v["kind"] == "b", "{name}: {text}");
        });
        // "o" then "k" (SentencePiece's own tokenization would start with a
        // space).
        let piece = |text: &[u8]| {
            (0..tok.n_vocab() as u32)
                .find(|&t| tok.token_to_piece(t, false) == text)
                .unwrap()
        };
        let ok = [piece(b"o"), piece(b"k")];
        // A complete grammar is finished; one that accepts allows every end
        // token.
        let mut c = env
            .compile(&Constraint::new(Grammar::Regex("ok".to_owned())))
            .unwrap();
        let mut c2 = env
            .compile(&Constraint::new(Grammar::Regex("ok!?".to_owned())))
            .unwrap();
        for t in ok {
            c.accept(t, tok.token_to_piece(t, true)).unwrap();
            c2.accept(t, tok.token_to_piece(t, true)).unwrap();
        }
        let mask = allowed(c2.mask().unwrap().unwrap());
        for eog in tok.eog_ids() {
            assert!(mask.contains(&eog), "{name}: end token {eog} not allowed");
        }
        assert!(
            mask.iter().any(|&t| !tok.is_eog(t)),
            "{name}: '!' not allowed"
        );
        assert!(c.is_finished(), "{name}");
    }
}

/// Through the scheduler, a lazy grammar leaves the text alone until its
/// trigger appears, then constrains the rest and ends the sequence when it is
/// complete: at temperature 0 the answer is the free answer up to the
/// trigger, then what the grammar allows.
#[test]
fn a_lazy_grammar_in_the_scheduler_follows_the_free_text_to_its_trigger() {
    let (model, tok) = load();
    let config = SchedulerConfig {
        block_len: 16,
        n_blocks: 64,
        step_tokens: 64,
        max_seqs: 2,
        n_ctx: 256,
    };
    let prompt: Vec<u32> = (0..12).map(|i| 3 + (i * 53) % 290).collect();
    let mut greedy = Options::default();
    greedy.sampler.temperature = 0.0;
    greedy.num_predict = 40;
    greedy.num_ctx = 256;
    let run = |constraint: Option<Constraint>| -> GenerateResult {
        let mut sched = Scheduler::new(&model, &tok, config).unwrap();
        let out = Arc::new(Mutex::new(None));
        let sink_out = out.clone();
        let sink = Box::new(move |e: SeqEvent| {
            match e {
                SeqEvent::Done(r) => *sink_out.lock().unwrap() = Some(r),
                SeqEvent::Error(e) => panic!("{e}"),
                SeqEvent::Text(_) => {}
            }
            ControlFlow::Continue(())
        });
        let compiled = constraint.map(|c| sched.compile(&c).unwrap());
        sched
            .submit_constrained(&prompt, greedy.clone(), compiled, None, sink)
            .unwrap();
        sched.run_to_end().unwrap();
        out.lock().unwrap().take().unwrap()
    };
    let free = run(None);
    // A trigger that ends where a token ends: the last characters of the
    // text of the first six tokens, occurring nowhere earlier.
    let head = tok.decode_lossy(&free.tokens[..6], false, false);
    assert!(free.text.starts_with(&head), "{:?}", free.text);
    let trigger: String = {
        let chars: Vec<char> = head.chars().collect();
        chars[chars.len() - 3..].iter().collect()
    };
    let at = head.len() - trigger.len();
    assert_eq!(free.text.find(&trigger), Some(at), "{:?}", free.text);
    let lark = format!(
        r#"start: {} /[0-9]{{3}}/"#,
        serde_json::to_string(&trigger).unwrap()
    );
    let lazy = run(Some(Constraint::lazy(
        Grammar::Lark(lark),
        vec![trigger.clone()],
    )));
    let (before, after) = lazy.text.split_at(at + trigger.len());
    assert_eq!(before, &free.text[..at + trigger.len()], "{:?}", lazy.text);
    assert!(
        after.len() == 3 && after.bytes().all(|b| b.is_ascii_digit()),
        "{:?}",
        lazy.text
    );
    assert_eq!(lazy.done_reason, DoneReason::Stop);
}
