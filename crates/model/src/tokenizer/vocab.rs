//! Vocabulary facts shared by the tokenizers: token attributes, the tokenizer
//! family, and the ids of special tokens.

/// Attributes of one token, as llama.cpp derives them from `tokenizer.ggml.token_type`
/// (llama.h, `llama_token_attr`). A token may carry several.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TokenAttr(pub(crate) u16);

impl TokenAttr {
    /// No attribute (token type 0 "undefined" or an unknown type number).
    pub const UNDEFINED: Self = Self(0);
    /// The unknown-token placeholder (`<unk>`).
    pub const UNKNOWN: Self = Self(1 << 0);
    /// A reserved, unused slot.
    pub const UNUSED: Self = Self(1 << 1);
    /// Ordinary text.
    pub const NORMAL: Self = Self(1 << 2);
    /// A control token (`<s>`, `<|im_end|>`): never produced from plain text.
    pub const CONTROL: Self = Self(1 << 3);
    /// A user-defined token: always split out of text before merging.
    pub const USER_DEFINED: Self = Self(1 << 4);
    /// A byte-fallback token (`<0x0A>`).
    pub const BYTE: Self = Self(1 << 5);
    /// Strip whitespace to the left of this token when it is split out of text.
    pub const LSTRIP: Self = Self(1 << 7);
    /// Strip whitespace to the right of this token when it is split out of text.
    pub const RSTRIP: Self = Self(1 << 8);

    /// The attribute for a GGUF `tokenizer.ggml.token_type` value
    /// (llama.h, `llama_token_type`: 1 normal, 2 unknown, 3 control,
    /// 4 user-defined, 5 unused, 6 byte; anything else is undefined).
    pub fn from_token_type(token_type: i32) -> Self {
        match token_type {
            1 => Self::NORMAL,
            2 => Self::UNKNOWN,
            3 => Self::CONTROL,
            4 => Self::USER_DEFINED,
            5 => Self::UNUSED,
            6 => Self::BYTE,
            _ => Self::UNDEFINED,
        }
    }

    /// Whether any of the attributes in `other` is set.
    pub fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// The raw bit set.
    pub const fn bits(self) -> u16 {
        self.0
    }
}

impl std::ops::BitOr for TokenAttr {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for TokenAttr {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

/// Which tokenization algorithm a vocabulary uses (`tokenizer.ggml.model`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerKind {
    /// SentencePiece-style score-driven merges with byte fallback (`llama`).
    Spm,
    /// BPE with merge ranks and a regex pre-tokenizer: byte-level (`gpt2`), or on
    /// raw UTF-8 with `▁` for spaces and `<0xNN>` byte fallback (`gemma4`).
    Bpe,
    /// WordPiece: normalized words covered by their longest tokens (`bert`).
    Wpm,
}

/// Ids of the special tokens a model declares (or llama.cpp's defaults for its
/// tokenizer family). `None` where the model has no such token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    /// Beginning of sequence.
    pub bos: Option<u32>,
    /// End of sequence.
    pub eos: Option<u32>,
    /// End of turn (`<|eot_id|>`, `<|im_end|>`, `<end_of_turn>`, ...).
    pub eot: Option<u32>,
    /// End of message (`<|eom_id|>`).
    pub eom: Option<u32>,
    /// Unknown token.
    pub unk: Option<u32>,
    /// Separator.
    pub sep: Option<u32>,
    /// Padding.
    pub pad: Option<u32>,
    /// Mask.
    pub mask: Option<u32>,
    /// Newline (the `<0x0A>` byte token for SPM, the encoding of "\n" for BPE).
    pub newline: Option<u32>,
    /// Fill-in-the-middle: prefix.
    pub fim_pre: Option<u32>,
    /// Fill-in-the-middle: suffix.
    pub fim_suf: Option<u32>,
    /// Fill-in-the-middle: middle.
    pub fim_mid: Option<u32>,
    /// Fill-in-the-middle: padding.
    pub fim_pad: Option<u32>,
    /// Fill-in-the-middle: repository name.
    pub fim_rep: Option<u32>,
    /// Fill-in-the-middle: file separator.
    pub fim_sep: Option<u32>,
}
