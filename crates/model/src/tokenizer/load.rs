//! Building a [`Tokenizer`] from `tokenizer.ggml.*` metadata, following
//! `llama_vocab::impl::load` in llama-vocab.cpp: defaults per tokenizer family and
//! pre-tokenizer, special ids, token attributes, end-of-generation tokens found by
//! their text, and the per-token piece cache.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use super::bpe::BpeTables;
use super::pretokenize::PreTokenizer;
use super::{SpecialTokens, TokenAttr, Tokenizer, TokenizerError, TokenizerKind};
use super::{spm, wpm};

/// A special-token key and the field of [`SpecialTokens`] it sets, in the order
/// llama.cpp reads them (the deprecated FIM keys last, so they win).
/// Selects one field of [`SpecialTokens`].
type Slot = fn(&mut SpecialTokens) -> &mut Option<u32>;

const SPECIAL_KEYS: [(&str, Slot); 17] = [
    ("tokenizer.ggml.bos_token_id", |s| &mut s.bos),
    ("tokenizer.ggml.eos_token_id", |s| &mut s.eos),
    ("tokenizer.ggml.eot_token_id", |s| &mut s.eot),
    ("tokenizer.ggml.eom_token_id", |s| &mut s.eom),
    ("tokenizer.ggml.unknown_token_id", |s| &mut s.unk),
    ("tokenizer.ggml.seperator_token_id", |s| &mut s.sep),
    ("tokenizer.ggml.padding_token_id", |s| &mut s.pad),
    ("tokenizer.ggml.mask_token_id", |s| &mut s.mask),
    ("tokenizer.ggml.fim_pre_token_id", |s| &mut s.fim_pre),
    ("tokenizer.ggml.fim_suf_token_id", |s| &mut s.fim_suf),
    ("tokenizer.ggml.fim_mid_token_id", |s| &mut s.fim_mid),
    ("tokenizer.ggml.fim_pad_token_id", |s| &mut s.fim_pad),
    ("tokenizer.ggml.fim_rep_token_id", |s| &mut s.fim_rep),
    ("tokenizer.ggml.fim_sep_token_id", |s| &mut s.fim_sep),
    ("tokenizer.ggml.prefix_token_id", |s| &mut s.fim_pre),
    ("tokenizer.ggml.suffix_token_id", |s| &mut s.fim_suf),
    ("tokenizer.ggml.middle_token_id", |s| &mut s.fim_mid),
];

/// The tokenizer-relevant metadata of a model, borrowed from its GGUF file.
#[derive(Debug, Default)]
pub(crate) struct RawVocab<'a> {
    /// `tokenizer.ggml.model`.
    pub model: &'a str,
    /// `tokenizer.ggml.pre`.
    pub pre: Option<&'a str>,
    /// `tokenizer.ggml.tokens`.
    pub tokens: &'a [String],
    /// `tokenizer.ggml.scores` (float, or integer converted to float).
    pub scores: Option<Cow<'a, [f32]>>,
    /// `tokenizer.ggml.token_type`.
    pub token_types: Option<&'a [i32]>,
    /// `tokenizer.ggml.merges`.
    pub merges: Option<&'a [String]>,
    /// The special-id keys present, as `(index into SPECIAL_KEYS, id)`.
    pub special_ids: Vec<(usize, u32)>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`.
    pub add_space_prefix: Option<bool>,
    /// `tokenizer.ggml.normalizer.lowercase` (WordPiece).
    pub lowercase: Option<bool>,
    /// `tokenizer.ggml.normalizer.strip_accents` (WordPiece).
    pub strip_accents: Option<bool>,
    /// `general.name`, which selects per-model token attributes (Phi-3).
    pub general_name: Option<&'a str>,
}

fn meta_err<E: std::fmt::Display>(key: &'static str) -> impl FnOnce(E) -> TokenizerError {
    move |err| TokenizerError::Metadata {
        key,
        message: err.to_string(),
    }
}

/// Reads the `tokenizer.ggml.*` keys and builds the tokenizer.
pub(crate) fn from_metadata(meta: &gguf::Metadata) -> Result<Tokenizer, TokenizerError> {
    const MODEL: &str = "tokenizer.ggml.model";
    const TOKENS: &str = "tokenizer.ggml.tokens";
    const SCORES: &str = "tokenizer.ggml.scores";
    const TYPES: &str = "tokenizer.ggml.token_type";
    const MERGES: &str = "tokenizer.ggml.merges";
    const PRE: &str = "tokenizer.ggml.pre";

    let scores = match meta.opt_f32_array(SCORES) {
        Ok(scores) => scores.map(Cow::Borrowed),
        // llama.cpp also accepts integer scores.
        Err(err) => match meta.opt_i32_array(SCORES) {
            Ok(ints) => ints.map(|v| Cow::Owned(v.iter().map(|&s| s as f32).collect())),
            Err(_) => return Err(meta_err(SCORES)(err)),
        },
    };
    let mut special_ids = Vec::new();
    for (index, (key, _)) in SPECIAL_KEYS.iter().enumerate() {
        if let Some(id) = meta.opt_u32(key).map_err(meta_err(key))? {
            special_ids.push((index, id));
        }
    }
    let raw = RawVocab {
        model: meta.get_str(MODEL).map_err(meta_err(MODEL))?,
        pre: meta.opt_str(PRE).map_err(meta_err(PRE))?,
        tokens: meta.get_str_array(TOKENS).map_err(meta_err(TOKENS))?,
        scores,
        token_types: meta.opt_i32_array(TYPES).map_err(meta_err(TYPES))?,
        merges: meta.opt_str_array(MERGES).map_err(meta_err(MERGES))?,
        special_ids,
        add_bos: opt_bool(meta, "tokenizer.ggml.add_bos_token")?,
        add_eos: opt_bool(meta, "tokenizer.ggml.add_eos_token")?,
        add_space_prefix: opt_bool(meta, "tokenizer.ggml.add_space_prefix")?,
        lowercase: opt_bool(meta, "tokenizer.ggml.normalizer.lowercase")?,
        strip_accents: opt_bool(meta, "tokenizer.ggml.normalizer.strip_accents")?,
        general_name: meta
            .opt_str("general.name")
            .map_err(meta_err("general.name"))?,
    };
    build(raw)
}

fn opt_bool(meta: &gguf::Metadata, key: &'static str) -> Result<Option<bool>, TokenizerError> {
    meta.opt_bool(key).map_err(meta_err(key))
}

/// Flags that llama.cpp sets from the `tokenizer.ggml.pre` name.
#[derive(Clone, Copy)]
struct PreFlags {
    clean_spaces: bool,
    ignore_merges: bool,
    add_bos: bool,
    no_bos: bool,
}

/// The flags of the `default` pre-tokenizer, and of a missing or unknown name.
const DEFAULT_FLAGS: PreFlags = PreFlags {
    clean_spaces: true,
    ignore_merges: false,
    add_bos: false,
    no_bos: false,
};

/// llama.cpp's per-name flags (llama_vocab::impl::load); `None` for an unknown name.
fn pre_flags(name: &str) -> Option<PreFlags> {
    let base = DEFAULT_FLAGS;
    let unclean = PreFlags {
        clean_spaces: false,
        ..base
    };
    Some(match name {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" => PreFlags {
            ignore_merges: true,
            add_bos: true,
            ..base
        },
        "tekken" => PreFlags {
            ignore_merges: true,
            add_bos: true,
            ..unclean
        },
        "chameleon" => PreFlags {
            add_bos: true,
            ..unclean
        },
        "minicpm5" => PreFlags {
            ignore_merges: true,
            ..base
        },
        "youtu" | "granite-embed-multi-97m" => PreFlags {
            ignore_merges: true,
            ..unclean
        },
        "chatglm-bpe" => PreFlags {
            no_bos: true,
            ..base
        },
        "glm4" | "glm5" => PreFlags {
            no_bos: true,
            ignore_merges: true,
            ..base
        },
        "deepseek-llm" | "deepseek-coder" | "deepseek-v3" | "spark2_5" | "command-r" | "qwen2"
        | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "qwen35" | "poro-chat" | "viking"
        | "smollm" | "gpt-4o" | "llama4" | "kanana2" | "talkie" | "tiny_aya" | "cohere2moe"
        | "superbpe" | "trillion" | "granite-docling" | "bailingmoe" | "bailingmoe2"
        | "llada-moe" | "seed-coder" | "hunyuan" | "hunyuan-dense" | "hy_v4" | "joyai-llm"
        | "kimi-k2" | "ufakzeka" | "grok-2" | "afmoe" | "laguna" | "minimax-m2" | "solar-open" => {
            unclean
        }
        "default"
        | "falcon"
        | "mpt"
        | "starcoder"
        | "gpt-2"
        | "phi-2"
        | "jina-es"
        | "jina-de"
        | "gigachat"
        | "jina-v2-es"
        | "jina-v2-de"
        | "a.x-4.0"
        | "mellum"
        | "modern-bert"
        | "jais-2"
        | "jina-v1-en"
        | "jina-v2-code"
        | "roberta-bpe"
        | "refact"
        | "stablelm2"
        | "olmo"
        | "dbrx"
        | "smaug-bpe"
        | "jais"
        | "codeshell"
        | "bloom"
        | "gpt3-finnish"
        | "exaone"
        | "exaone4"
        | "exaone-moe"
        | "minerva-7b"
        | "megrez"
        | "mellum2"
        | "gemma4"
        | "granite-embed-multi-311m" => base,
        "sarvam-moe" => unclean,
        _ => return None,
    })
}

/// Token texts that end generation (llama.cpp's list, matched by text).
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// Texts that identify a missing EOT / EOM / FIM id, per slot.
const DETECT_BY_TEXT: [(Slot, &[&str]); 8] = [
    (
        |s| &mut s.eot,
        &[
            "<|eot_id|>",
            "<|im_end|>",
            "<|end|>",
            "<end_of_turn>",
            "<|endoftext|>",
            "<|end_of_text|>",
            "<EOT>",
            "_<EOT>",
            "[EOT]",
            "<｜end▁of▁sentence｜>",
            "<end_of_utterance>",
        ],
    ),
    (|s| &mut s.eom, &["<|eom_id|>"]),
    (
        |s| &mut s.fim_pre,
        &[
            "<|fim_prefix|>",
            "<fim-prefix>",
            "<fim_prefix>",
            "<｜fim▁begin｜>",
            "<PRE>",
            "▁<PRE>",
            "<|code_prefix|>",
            "<|prefix|>",
        ],
    ),
    (
        |s| &mut s.fim_suf,
        &[
            "<|fim_suffix|>",
            "<fim-suffix>",
            "<fim_suffix>",
            "<｜fim▁hole｜>",
            "<SUF>",
            "▁<SUF>",
            "<|code_suffix|>",
            "<|suffix|>",
        ],
    ),
    (
        |s| &mut s.fim_mid,
        &[
            "<|fim_middle|>",
            "<fim-middle>",
            "<fim_middle>",
            "<｜fim▁end｜>",
            "<MID>",
            "▁<MID>",
            "<|code_middle|>",
            "<|middle|>",
        ],
    ),
    (
        |s| &mut s.fim_pad,
        &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"],
    ),
    (
        |s| &mut s.fim_rep,
        &[
            "<|fim_repo|>",
            "<|repo_name|>",
            "<fim-repo>",
            "<REPO>",
            "<reponame>",
        ],
    ),
    (|s| &mut s.fim_sep, &["<|file_sep|>"]),
];

/// Builds the tokenizer from borrowed metadata.
pub(crate) fn build(raw: RawVocab<'_>) -> Result<Tokenizer, TokenizerError> {
    let mut warnings = Vec::new();
    let n_tokens = raw.tokens.len();
    if n_tokens == 0 {
        return Err(TokenizerError::EmptyVocab);
    }

    // Family defaults (llama_vocab::impl::load).
    let mut special = SpecialTokens::default();
    let mut pre_name = raw.pre.unwrap_or_default().to_owned();
    let kind = match raw.model {
        "llama" => {
            special.bos = Some(1);
            special.eos = Some(2);
            special.unk = Some(0);
            TokenizerKind::Spm
        }
        "gpt2" => {
            special.bos = Some(11);
            special.eos = Some(11);
            TokenizerKind::Bpe
        }
        // Gemma 4's BPE: special ids only from the file, its own pre-tokenizer.
        "gemma4" => {
            pre_name = "gemma4".to_owned();
            TokenizerKind::Bpe
        }
        "bert" => {
            special.bos = Some(101);
            special.unk = Some(100);
            special.sep = Some(102);
            special.pad = Some(0);
            special.mask = Some(103);
            TokenizerKind::Wpm
        }
        other => return Err(TokenizerError::UnknownModel(other.to_owned())),
    };
    let (mut add_bos, mut add_eos, mut add_space_prefix, clean_spaces, ignore_merges, pre) =
        match kind {
            TokenizerKind::Spm => (true, false, true, false, false, None),
            TokenizerKind::Wpm => (true, false, false, true, false, None),
            TokenizerKind::Bpe => {
                let flags = if pre_name.is_empty() {
                    warnings.push(
                        "missing pre-tokenizer type (tokenizer.ggml.pre), using 'default'; \
                         generation quality will be degraded"
                            .to_owned(),
                    );
                    DEFAULT_FLAGS
                } else {
                    pre_flags(&pre_name).unwrap_or_else(|| {
                        warnings.push(format!(
                            "unknown pre-tokenizer type '{pre_name}', using 'default'"
                        ));
                        DEFAULT_FLAGS
                    })
                };
                if flags.no_bos {
                    special.bos = None;
                }
                let pre = match PreTokenizer::from_name(&pre_name) {
                    Some(PreTokenizer::Whitespace) => {
                        return Err(TokenizerError::UnsupportedPreTokenizer(pre_name));
                    }
                    Some(pre) => pre,
                    None => {
                        if !pre_name.is_empty() && pre_flags(&pre_name).is_some() {
                            warnings.push(format!(
                                "pre-tokenizer '{pre_name}' is not implemented, using 'default'"
                            ));
                        }
                        PreTokenizer::Default
                    }
                };
                (
                    flags.add_bos,
                    false,
                    false,
                    flags.clean_spaces,
                    flags.ignore_merges,
                    Some(pre),
                )
            }
        };
    if let Some(value) = raw.add_space_prefix {
        add_space_prefix = value;
    }
    // BPE on raw UTF-8 (Gemma 4) writes spaces as `▁` (llama.cpp's escape_whitespaces).
    let escape_whitespaces = pre.is_some_and(|pre| !pre.byte_encode());

    // Per-token arrays.
    let lengths = [
        (
            "tokenizer.ggml.scores",
            raw.scores.as_ref().map(|s| s.len()),
        ),
        (
            "tokenizer.ggml.token_type",
            raw.token_types.map(<[i32]>::len),
        ),
    ];
    for (key, len) in lengths {
        if let Some(found) = len.filter(|&found| found < n_tokens) {
            return Err(TokenizerError::LengthMismatch {
                key,
                expected: n_tokens,
                found,
            });
        }
    }
    let mut texts = Vec::with_capacity(n_tokens);
    let mut ids = HashMap::with_capacity(n_tokens);
    for (i, text) in raw.tokens.iter().enumerate() {
        let text = if text.is_empty() {
            warnings.push(format!("empty token at index {i}"));
            format!("[EMPTY_{i}]")
        } else {
            text.clone()
        };
        ids.insert(text.clone(), i as u32);
        texts.push(text);
    }
    let scores: Vec<f32> = match &raw.scores {
        Some(scores) => scores[..n_tokens].to_vec(),
        None => vec![0.0; n_tokens],
    };
    let mut attrs: Vec<TokenAttr> = match raw.token_types {
        Some(types) => types[..n_tokens]
            .iter()
            .map(|&t| TokenAttr::from_token_type(t))
            .collect(),
        None => vec![TokenAttr::NORMAL; n_tokens],
    };

    let bpe = match kind {
        TokenizerKind::Spm | TokenizerKind::Wpm => None,
        TokenizerKind::Bpe => {
            let merges = raw.merges.ok_or(TokenizerError::MissingMerges)?;
            let byte_encode = pre.is_none_or(|pre| pre.byte_encode());
            Some(BpeTables::build(&ids, merges, byte_encode)?)
        }
    };

    // Special ids: defaults out of range are disabled; stored ids override them.
    for (key, slot) in SPECIAL_KEYS {
        let id = slot(&mut special);
        if id.is_some_and(|id| id as usize >= n_tokens) {
            warnings.push(format!(
                "default special token '{key}' is out of vocab range, disabling"
            ));
            *id = None;
        }
    }
    for &(index, new_id) in &raw.special_ids {
        let (key, slot) = SPECIAL_KEYS[index];
        if new_id as usize >= n_tokens {
            warnings.push(format!(
                "bad special token: '{key}' = {new_id}, using the default"
            ));
        } else {
            *slot(&mut special) = Some(new_id);
        }
    }
    if let Some(value) = raw.add_bos {
        add_bos = value;
    }
    if let Some(value) = raw.add_eos {
        add_eos = value;
    }
    // llama.cpp overrides a Gemma 4 file that says not to add BOS
    // (ggml-org/llama.cpp#21500).
    if pre == Some(PreTokenizer::Gemma4) {
        add_bos = true;
    }
    let normalizer = wpm::Normalizer {
        lowercase: raw.lowercase.unwrap_or(true),
        // Accents are stripped when lower-casing unless the file says otherwise.
        strip_accents: raw.strip_accents.unwrap_or(raw.lowercase.unwrap_or(true)),
    };

    // Missing ids found by token text. llama.cpp takes the first candidate its hash
    // map yields; we take the first in its list order, which prefers e.g.
    // `<|im_end|>` over `<|endoftext|>` as Qwen's EOT, as llama.cpp ends up doing.
    let canonical = |id: usize| ids.get(&texts[id]) == Some(&(id as u32));
    let mark_control = |attrs: &mut Vec<TokenAttr>, id: usize, warnings: &mut Vec<String>| {
        if !attrs[id].intersects(TokenAttr::CONTROL) {
            warnings.push(format!(
                "control-looking token {id} '{}' was not control-type; overriding",
                texts[id]
            ));
            attrs[id] |= TokenAttr::CONTROL;
        }
    };
    for (slot, candidates) in DETECT_BY_TEXT {
        let target = slot(&mut special);
        if target.is_some() {
            continue;
        }
        if let Some(&id) = candidates.iter().find_map(|text| ids.get(*text)) {
            *target = Some(id);
            mark_control(&mut attrs, id as usize, &mut warnings);
        }
    }
    for id in (0..n_tokens).filter(|&id| canonical(id)) {
        if attrs[id].intersects(TokenAttr::CONTROL) && texts[id].contains("unused") {
            attrs[id] |= TokenAttr::UNUSED;
        }
    }

    let mut eog: HashSet<u32> = [special.fim_pad, special.fim_rep, special.fim_sep]
        .into_iter()
        .flatten()
        .collect();
    for id in (0..n_tokens).filter(|&id| canonical(id)) {
        if EOG_TEXTS.contains(&texts[id].as_str()) {
            eog.insert(id as u32);
            mark_control(&mut attrs, id, &mut warnings);
        }
    }
    // gpt-oss: these are always rendered.
    for text in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
        if let Some(&id) = ids.get(text) {
            attrs[id as usize] = TokenAttr::USER_DEFINED;
        }
    }
    eog.extend(
        [special.eos, special.eot, special.eom]
            .into_iter()
            .flatten(),
    );
    adjust_eog(&texts, &mut attrs, &mut eog);

    let mut special_by_length: Vec<u32> = (0..n_tokens as u32)
        .filter(|&id| {
            attrs[id as usize]
                .intersects(TokenAttr::CONTROL | TokenAttr::USER_DEFINED | TokenAttr::UNKNOWN)
        })
        .collect();
    special_by_length.sort_by_key(|&id| std::cmp::Reverse(texts[id as usize].len()));

    // Phi-3 strips whitespace after its special tokens (matched on general.name).
    let name = raw.general_name.unwrap_or_default().to_lowercase();
    if name.contains("phi-3") || name.contains("phi3") {
        for &id in &special_by_length {
            attrs[id as usize] |= TokenAttr::RSTRIP;
        }
        if let Some(&id) = ids.get("</s>") {
            attrs[id as usize] |= TokenAttr::RSTRIP;
        }
        for text in ["<unk>", "<s>", "<|endoftext|>"] {
            if let Some(&id) = ids.get(text) {
                attrs[id as usize] =
                    TokenAttr(attrs[id as usize].bits() & !TokenAttr::RSTRIP.bits());
            }
        }
    }

    let spm_word_chunks = kind == TokenizerKind::Spm
        && spm::tokens_allow_word_chunks(texts.iter().map(String::as_str));
    let mut byte_tokens = [None; 256];
    if kind == TokenizerKind::Spm {
        for (byte, slot) in byte_tokens.iter_mut().enumerate() {
            let hex = format!("<0x{byte:02X}>");
            *slot = ids.get(&hex).copied().or_else(|| {
                let single = char::from_u32(byte as u32).filter(|c| c.is_ascii())?;
                ids.get(single.to_string().as_str()).copied()
            });
        }
    }

    let texts_max_len = texts.iter().map(String::len).max().unwrap_or(0);
    let mut tokenizer = Tokenizer {
        kind,
        pre_name,
        pre,
        texts,
        scores,
        attrs,
        ids,
        special,
        eog,
        add_bos,
        add_eos,
        add_space_prefix,
        ignore_merges,
        clean_spaces,
        escape_whitespaces,
        normalizer,
        max_token_len: texts_max_len,
        special_by_length,
        pieces: Vec::new(),
        spm_word_chunks,
        byte_tokens,
        bpe,
        warnings,
    };
    tokenizer.pieces = (0..n_tokens as u32)
        .map(|id| tokenizer.build_piece(id))
        .collect();
    tokenizer.special.newline = match kind {
        TokenizerKind::Spm => tokenizer.byte_tokens[b'\n' as usize],
        TokenizerKind::Bpe => tokenizer.encode("\n", false, false).first().copied(),
        TokenizerKind::Wpm => None,
    }
    .or(tokenizer.special.pad);
    Ok(tokenizer)
}

/// llama.cpp's end-of-generation fix-ups: with `<|return|>` and `<|call|>` (gpt-oss)
/// or `<|calls|>` and `<|flush|>` (solar-open), `<|end|>` does not end generation;
/// with `<|tool_response>` or `<|plamo:eos|>`, `</s>` is a normal token.
fn adjust_eog(texts: &[String], attrs: &mut [TokenAttr], eog: &mut HashSet<u32>) {
    let has = |eog: &HashSet<u32>, text: &str| {
        eog.iter()
            .copied()
            .find(|&id| texts.get(id as usize).is_some_and(|t| t == text))
    };
    let (ret, call, calls, flush) = (
        has(eog, "<|return|>"),
        has(eog, "<|call|>"),
        has(eog, "<|calls|>"),
        has(eog, "<|flush|>"),
    );
    if let Some(end) = has(eog, "<|end|>") {
        let has_call = call.is_some() || calls.is_some();
        if has_call && (ret.is_some() || flush.is_some()) {
            eog.remove(&end);
            attrs[end as usize] = TokenAttr::USER_DEFINED;
        }
    }
    let normal_marker = has(eog, "<|tool_response>").or(has(eog, "<|plamo:eos|>"));
    if let (Some(_), Some(s)) = (normal_marker, has(eog, "</s>")) {
        eog.remove(&s);
        attrs[s as usize] = TokenAttr::NORMAL;
    }
}
