//! Pre-tokenizers: split text into words before byte-level BPE merges.
//!
//! A GGUF file names its pre-tokenizer in `tokenizer.ggml.pre`; llama.cpp maps that
//! name to a list of regexes (`llama-vocab.cpp`, `llm_tokenizer_bpe`) and applies
//! them in sequence with `unicode_regex_split` (`unicode.cpp`): each regex splits
//! every piece the previous one produced, and both its matches and the gaps between
//! them become pieces. Tokens must come out identical to llama.cpp's, so the splitters
//! here reproduce what llama.cpp actually does, not what the regexes mean in Python:
//! its hand-written splitters (`custom`), and for the rest the behaviour of
//! `std::regex` over llama.cpp's category-collapsed text (`stl`, `cased`,
//! `deepseek`). Everything runs
//! in one pass per stage over byte offsets, with no backtracking and no allocation.
//!
//! The differential tests in `tests/pretokenize.rs` compare every pre-tokenizer
//! against splits recorded from llama.cpp itself (`tools/pretokenize/`).

mod cased;
mod custom;
mod deepseek;
mod stl;
mod unicode;
mod unicode_table;

use custom::Llama3Style;
pub(crate) use unicode::Flags;

/// A BPE pre-tokenizer, one per llama.cpp `LLAMA_VOCAB_PRE_TYPE_*` that hearth covers.
///
/// Types that share a regex list split identically; they stay distinct because
/// llama.cpp ties other tokenizer settings to them (e.g. `clean_spaces`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PreTokenizer {
    /// llama.cpp's fallback for BPE vocabularies with an unknown or missing type.
    Default,
    /// Llama 3 (`llama3`, `llama-bpe`, `falcon3`, `pixtral`, …).
    Llama3,
    /// DBRX (regexes of Llama 3).
    Dbrx,
    /// Smaug (`smaug-bpe`; regexes of Llama 3).
    SmaugBpe,
    /// ChatGLM 4 / GLM 4–5 (regexes of Llama 3).
    ChatGlm4,
    /// Qwen2 (`qwen2`, `deepseek-r1-qwen`, `megrez`, …).
    Qwen2,
    /// StableLM 2 (regexes of Qwen2).
    StableLm2,
    /// Hunyuan (regexes of Qwen2).
    Hunyuan,
    /// Solar Open (regexes of Qwen2).
    SolarOpen,
    /// Grok 2 (regexes of Qwen2).
    Grok2,
    /// Qwen 3.5: Qwen2 with combining marks kept inside words.
    Qwen35,
    /// GPT-2 (`gpt-2`, `phi-2`, `roberta-bpe`, `exaone4`, …).
    Gpt2,
    /// MPT (regexes of GPT-2).
    Mpt,
    /// OLMo (regexes of GPT-2).
    Olmo,
    /// JAIS (regexes of GPT-2).
    Jais,
    /// Trillion (regexes of GPT-2).
    Trillion,
    /// Granite Docling (regexes of GPT-2).
    GraniteDocling,
    /// StarCoder: GPT-2 with every digit on its own.
    Starcoder,
    /// Refact (regexes of StarCoder).
    Refact,
    /// Command R (regexes of StarCoder).
    CommandR,
    /// SmolLM (regexes of StarCoder).
    Smollm,
    /// CodeShell (regexes of StarCoder).
    Codeshell,
    /// EXAONE (regexes of StarCoder).
    Exaone,
    /// Minerva (regexes of StarCoder).
    Minerva,
    /// Mellum 2 (regexes of StarCoder).
    Mellum2,
    /// DeepSeek LLM.
    DeepseekLlm,
    /// DeepSeek Coder.
    DeepseekCoder,
    /// Falcon.
    Falcon,
    /// DeepSeek V3 / R1 (`deepseek-v3`).
    Deepseek3Llm,
    /// Hunyuan dense (regexes of DeepSeek V3).
    HunyuanDense,
    /// JoyAI LLM (regexes of DeepSeek V3).
    JoyaiLlm,
    /// Hy v4 (regexes of DeepSeek V3).
    HyV4,
    /// Tekken (Mistral NeMo).
    Tekken,
    /// GPT-4o and Llama 4 (`gpt-4o`, `llama4`, `kanana2`, `talkie`).
    Gpt4o,
    /// MiniMax M2 (regexes of GPT-4o).
    MinimaxM2,
    /// Poro.
    Poro,
    /// BLOOM (regexes of Poro).
    Bloom,
    /// GPT-3 Finnish (regexes of Poro).
    Gpt3Finnish,
    /// Viking: Poro with every digit on its own.
    Viking,
    /// Gemma 4: only newlines split; SentencePiece-style BPE on raw UTF-8.
    Gemma4,
    /// Sarvam MoE (as Gemma 4).
    SarvamMoe,
    /// Laguna: newline runs apart, then Qwen2.
    Laguna,
    /// Whitespace-separated words (jina-embeddings-v2-base-zh), raw UTF-8.
    Whitespace,
}

impl PreTokenizer {
    /// Every pre-tokenizer, in declaration order.
    pub const ALL: [PreTokenizer; 43] = {
        use PreTokenizer::*;
        [
            Default,
            Llama3,
            Dbrx,
            SmaugBpe,
            ChatGlm4,
            Qwen2,
            StableLm2,
            Hunyuan,
            SolarOpen,
            Grok2,
            Qwen35,
            Gpt2,
            Mpt,
            Olmo,
            Jais,
            Trillion,
            GraniteDocling,
            Starcoder,
            Refact,
            CommandR,
            Smollm,
            Codeshell,
            Exaone,
            Minerva,
            Mellum2,
            DeepseekLlm,
            DeepseekCoder,
            Falcon,
            Deepseek3Llm,
            HunyuanDense,
            JoyaiLlm,
            HyV4,
            Tekken,
            Gpt4o,
            MinimaxM2,
            Poro,
            Bloom,
            Gpt3Finnish,
            Viking,
            Gemma4,
            SarvamMoe,
            Laguna,
            Whitespace,
        ]
    };

    /// The pre-tokenizer for a `tokenizer.ggml.pre` value, mapped as
    /// `llama_vocab::impl::load` maps it; `None` for a name hearth does not know
    /// (the caller warns and falls back to [`PreTokenizer::Default`], as llama.cpp
    /// does for a missing name).
    pub fn from_name(name: &str) -> Option<PreTokenizer> {
        use PreTokenizer::*;
        Some(match name {
            "default" => Default,
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral"
            | "midm-2.0" | "lfm2" | "jina-v5-nano" => Llama3,
            "dbrx" => Dbrx,
            "smaug-bpe" => SmaugBpe,
            "chatglm-bpe" | "glm4" | "glm5" => ChatGlm4,
            "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" => Qwen2,
            "stablelm2" => StableLm2,
            "hunyuan" => Hunyuan,
            "solar-open" => SolarOpen,
            "grok-2" => Grok2,
            "qwen35" => Qwen35,
            "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es"
            | "jina-v2-de" | "a.x-4.0" | "mellum" | "modern-bert" | "jina-v1-en"
            | "jina-v2-code" | "roberta-bpe" | "exaone4" => Gpt2,
            "mpt" => Mpt,
            "olmo" => Olmo,
            "jais" => Jais,
            "trillion" => Trillion,
            "granite-docling" => GraniteDocling,
            "starcoder" => Starcoder,
            "refact" => Refact,
            "command-r" => CommandR,
            "smollm" => Smollm,
            "codeshell" => Codeshell,
            "exaone" => Exaone,
            "minerva-7b" => Minerva,
            "mellum2" => Mellum2,
            "deepseek-llm" => DeepseekLlm,
            "deepseek-coder" => DeepseekCoder,
            "falcon" => Falcon,
            "deepseek-v3" => Deepseek3Llm,
            "hunyuan-dense" => HunyuanDense,
            "joyai-llm" => JoyaiLlm,
            "hy_v4" => HyV4,
            "tekken" => Tekken,
            "gpt-4o" | "llama4" | "kanana2" | "talkie" => Gpt4o,
            "minimax-m2" => MinimaxM2,
            "poro-chat" => Poro,
            "bloom" => Bloom,
            "gpt3-finnish" => Gpt3Finnish,
            "viking" => Viking,
            "gemma4" | "granite-embed-multi-311m" => Gemma4,
            "sarvam-moe" => SarvamMoe,
            "laguna" => Laguna,
            "whitespace" => Whitespace,
            _ => return None,
        })
    }

    /// Whether BPE runs on GPT-2's byte-to-unicode encoding of each word (llama.cpp's
    /// `byte_encode`); false for the pre-tokenizers that merge raw UTF-8.
    pub fn byte_encode(&self) -> bool {
        !matches!(
            self,
            PreTokenizer::Gemma4 | PreTokenizer::SarvamMoe | PreTokenizer::Whitespace
        )
    }

    /// Appends the words of `text` to `out`, in order. They are non-empty and
    /// concatenate to `text`.
    pub fn split<'a>(&self, text: &'a str, out: &mut Vec<&'a str>) {
        use PreTokenizer::*;
        let emit = &mut |word: &'a str| out.push(word);
        match self {
            Default => stl::runs(text, is_default_punctuation, &mut |p| {
                custom::gpt2(p, &mut |p| {
                    stl::runs(p, is_regex_number, &mut |p| stl::digit_triples(p, emit))
                })
            }),
            Llama3 | Dbrx | SmaugBpe | ChatGlm4 => custom::llama3(LLAMA3, text, emit),
            Qwen2 | StableLm2 | Hunyuan | SolarOpen | Grok2 => custom::llama3(QWEN2, text, emit),
            Qwen35 => custom::llama3(QWEN35, text, emit),
            Gpt2 | Mpt | Olmo | Jais | Trillion | GraniteDocling => custom::gpt2(text, emit),
            Starcoder | Refact | CommandR | Smollm | Codeshell | Exaone | Minerva | Mellum2 => {
                stl::each(text, is_regex_number, &mut |p| custom::gpt2(p, emit))
            }
            DeepseekLlm => stl::each(text, is_newline, &mut |p| {
                stl::space_then_run(p, deepseek::is_llm_letter, &mut |p| {
                    stl::space_then_run(p, deepseek::is_llm_punctuation, &mut |p| {
                        stl::trailing_whitespace(p, &mut |p| {
                            stl::runs(p, deepseek::is_cjk, &mut |p| {
                                stl::runs(p, is_regex_number, emit)
                            })
                        })
                    })
                })
            }),
            DeepseekCoder => stl::each(text, is_newline, &mut |p| {
                stl::space_then_run(p, is_regex_letter, &mut |p| {
                    stl::space_then_run(p, is_regex_punctuation, &mut |p| {
                        stl::runs(p, deepseek::is_cjk, &mut |p| {
                            stl::each(p, is_regex_number, emit)
                        })
                    })
                })
            }),
            Falcon => stl::runs(text, is_falcon_punctuation, &mut |p| {
                custom::gpt2(p, &mut |p| stl::digit_triples(p, emit))
            }),
            Deepseek3Llm | HunyuanDense | JoyaiLlm | HyV4 => stl::number_triples(text, &mut |p| {
                stl::runs(p, deepseek::is_han_or_kana, &mut |p| {
                    deepseek::v3_words(p, emit)
                })
            }),
            Tekken => cased::split(cased::TEKKEN, text, emit),
            Gpt4o | MinimaxM2 => cased::split(cased::GPT4O, text, emit),
            Poro | Bloom | Gpt3Finnish => stl::bloom(text, emit),
            Viking => stl::bloom(text, &mut |p| stl::each(p, is_regex_number, emit)),
            Gemma4 | SarvamMoe => stl::runs(text, |c| c == '\n', emit),
            Laguna => stl::runs(text, |c| c == '\n', &mut |p| custom::llama3(QWEN2, p, emit)),
            Whitespace => stl::runs(text, |c| !Flags::of(c).is_whitespace(), emit),
        }
    }
}

/// `\p{N}{1,3}` words (Llama 3).
const LLAMA3: Llama3Style = Llama3Style {
    max_digits: 3,
    marks_in_words: false,
};
/// `\p{N}` words (Qwen2).
const QWEN2: Llama3Style = Llama3Style {
    max_digits: 1,
    marks_in_words: false,
};
/// `\p{N}` words, `[\p{L}\p{M}]+` words (Qwen 3.5).
const QWEN35: Llama3Style = Llama3Style {
    max_digits: 1,
    marks_in_words: true,
};

/// `[\r\n]`.
fn is_newline(c: char) -> bool {
    c == '\r' || c == '\n'
}

/// `\p{N}` as `std::regex` sees it.
fn is_regex_number(c: char) -> bool {
    Flags::regex(c).is_number()
}

/// `\p{L}` as `std::regex` sees it.
fn is_regex_letter(c: char) -> bool {
    Flags::regex(c).is_letter()
}

/// `\p{P}` as `std::regex` sees it.
fn is_regex_punctuation(c: char) -> bool {
    Flags::regex(c).is_punctuation()
}

/// `[\p{P}\$\+<=>\^~\|]`: punctuation and the ASCII symbols but the backtick.
fn is_default_punctuation(c: char) -> bool {
    is_regex_punctuation(c) || matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '~' | '|')
}

/// `[\p{P}\$\+<=>\^~\|`]`: punctuation and all ASCII symbols.
fn is_falcon_punctuation(c: char) -> bool {
    is_default_punctuation(c) || c == '`'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(pre: PreTokenizer, text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        pre.split(text, &mut out);
        out
    }

    #[test]
    fn llama3_splits_contractions_digits_and_spaces() {
        assert_eq!(
            words(PreTokenizer::Llama3, "I'M here  12345\n\n x"),
            ["I", "'M", " here", " ", " ", "123", "45", "\n\n", " x"]
        );
    }

    #[test]
    fn gpt2_keeps_the_last_space_for_the_next_word() {
        assert_eq!(
            words(PreTokenizer::Gpt2, "a   b 's"),
            ["a", "  ", " b", " '", "s"]
        );
    }

    #[test]
    fn starcoder_isolates_digits() {
        assert_eq!(
            words(PreTokenizer::Starcoder, "x 2024"),
            ["x", " ", "2", "0", "2", "4"]
        );
    }

    #[test]
    fn default_groups_digits_by_three_from_the_left() {
        assert_eq!(words(PreTokenizer::Default, "1234567"), ["123", "456", "7"]);
    }

    #[test]
    fn tekken_splits_case_runs() {
        assert_eq!(
            words(PreTokenizer::Tekken, "HTMLParser iPhone"),
            ["HTMLParser", " i", "Phone"]
        );
    }

    #[test]
    fn all_lists_every_variant_in_order() {
        for (i, pre) in PreTokenizer::ALL.iter().enumerate() {
            assert_eq!(*pre as usize, i);
        }
        assert_eq!(
            PreTokenizer::Whitespace as usize + 1,
            PreTokenizer::ALL.len()
        );
    }

    #[test]
    fn names_map_as_in_llama_cpp() {
        assert_eq!(
            PreTokenizer::from_name("llama-bpe"),
            Some(PreTokenizer::Llama3)
        );
        assert_eq!(
            PreTokenizer::from_name("deepseek-r1-qwen"),
            Some(PreTokenizer::Qwen2)
        );
        assert_eq!(
            PreTokenizer::from_name("command-r"),
            Some(PreTokenizer::CommandR)
        );
        assert_eq!(PreTokenizer::from_name("no-such-pre"), None);
    }
}
