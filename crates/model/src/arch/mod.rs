//! Loading a model and running its forward pass: [`Model`] (the mapped file, the
//! architecture's config and weight views, the thread pool) and [`State`] (one
//! sequence's KV cache and activation buffers).
//!
//! One forward pass serves every shape of work: [`Model::forward`] runs one
//! sequence, [`Model::forward_batch`] the rows of several sequences with
//! caches of their own ([`SeqStep`]), and [`Model::forward_paged`] the rows of
//! sequences whose keys and values live in the blocks of a shared
//! [`KvPool`] ([`PagedSeq`]); each matrix product runs once over all rows of a
//! pass, attention per sequence.
//!
//! ```no_run
//! # fn main() -> Result<(), model::ModelError> {
//! use model::{Logits, Model};
//! let model = Model::load(std::path::Path::new("model.gguf"))?;
//! let mut state = model.new_state(2048)?;
//! let logits = model.forward(&mut state, &[1, 15043, 3186], Logits::Last)?;
//! assert_eq!(logits.len(), model.info().n_vocab);
//! # Ok(()) }
//! ```

pub mod batch;
pub mod block;
pub mod bloom;
pub mod cohere2;
pub mod command_r;
pub mod common;
pub mod gemma;
pub mod gemma2;
pub mod gemma3;
pub mod gpt_oss;
pub mod granite;
pub mod llama;
pub mod mistral3;
pub mod moe;
pub mod olmo2;
pub mod phi3;
pub mod qwen2;
pub mod qwen3;
pub mod qwen3moe;
pub mod standard;
pub mod starcoder2;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use gguf::GgufModel;
use kernels::pool::ThreadPool;

use crate::ModelError;
use crate::kv_cache::{KvCache, KvPool, KvType};
use crate::lora::{Lora, LoraUse};

/// The architectures hearth implements, by `general.architecture`.
#[derive(Debug)]
pub enum Arch {
    /// `llama`: Llama 1-3, Mistral, Mixtral, CodeLlama, DeepSeek-Coder.
    Llama(llama::Llama),
    /// `qwen2`: Qwen1.5, Qwen2, Qwen2.5.
    Qwen2(qwen2::Qwen2),
    /// `qwen3`: Qwen3 (dense).
    Qwen3(qwen3::Qwen3),
    /// `qwen3moe`: Qwen3 mixture of experts (30B-A3B, 235B-A22B).
    Qwen3Moe(qwen3moe::Qwen3Moe),
    /// `phi3`: Phi-3, Phi-3.5 and Phi-4 (dense).
    Phi3(phi3::Phi3),
    /// `command-r`: Command R.
    CommandR(command_r::Cohere),
    /// `mistral3`: Mistral Small 3.x and Ministral 3 (text).
    Mistral3(mistral3::Mistral3),
    /// `granite`: IBM Granite 3.x (dense).
    Granite(granite::Granite),
    /// `olmo2`: OLMo 2.
    Olmo2(olmo2::Olmo2),
    /// `cohere2`: Command R7B.
    Cohere2(cohere2::Cohere2),
    /// `starcoder2`: StarCoder2.
    Starcoder2(starcoder2::Starcoder2),
    /// `gemma`: Gemma 1 and CodeGemma.
    Gemma(gemma::Gemma),
    /// `gemma2`: Gemma 2.
    Gemma2(gemma2::Gemma2),
    /// `gemma3`: Gemma 3 (text).
    Gemma3(gemma3::Gemma3),
    /// `gpt-oss`: gpt-oss-20b and gpt-oss-120b.
    GptOss(gpt_oss::GptOss),
    /// `bloom`: BLOOM and BLOOMZ.
    Bloom(bloom::Bloom),
}

impl Arch {
    /// The architecture's forward pass.
    fn decoder(&self) -> &dyn common::Decoder {
        match self {
            Arch::Llama(m) => m,
            Arch::Qwen2(m) => m,
            Arch::Qwen3(m) => m,
            Arch::Qwen3Moe(m) => m,
            Arch::Phi3(m) => m,
            Arch::CommandR(m) => m,
            Arch::Mistral3(m) => m,
            Arch::Granite(m) => m,
            Arch::Olmo2(m) => m,
            Arch::Cohere2(m) => m,
            Arch::Starcoder2(m) => m,
            Arch::Gemma(m) => m,
            Arch::Gemma2(m) => m,
            Arch::Gemma3(m) => m,
            Arch::GptOss(m) => m,
            Arch::Bloom(m) => m,
        }
    }

    /// The sizes every architecture has.
    pub fn dims(&self) -> common::Dims {
        self.decoder().dims().clone()
    }
}

/// Options for [`Model::load_with`].
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Threads for the forward pass; `None` uses every available core.
    pub threads: Option<usize>,
}

/// What a loaded model is, for display and for sizing requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    /// `general.architecture`.
    pub arch: String,
    /// Vocabulary size (rows of the logits).
    pub n_vocab: usize,
    /// Context length the model was trained with.
    pub n_ctx_train: usize,
    /// Residual stream width.
    pub n_embd: usize,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads.
    pub n_head_kv: usize,
    /// `general.file_type` (llama.cpp's `llama_ftype`), if set.
    pub file_type: Option<u32>,
    /// Total number of weights.
    pub n_params: u64,
    /// Size of the file(s) in bytes.
    pub file_size: u64,
}

/// Which logits [`Model::forward`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// Only the last token's: `n_vocab` floats.
    Last,
    /// Every token's: `n_tokens * n_vocab` floats, token-major.
    All,
}

/// A loaded model: the memory-mapped GGUF, the architecture's config and weight
/// views, and the thread pool its forward pass runs on.
#[derive(Debug)]
pub struct Model {
    gguf: GgufModel,
    info: ModelInfo,
    arch: Arch,
    pool: ThreadPool,
    /// How new states and pools store keys and values.
    kv_type: KvType,
    /// Distinguishes states made by this model from others'.
    id: u64,
}

static NEXT_MODEL_ID: AtomicU64 = AtomicU64::new(1);

impl Model {
    /// Loads the model at `path` with default options (all cores).
    pub fn load(path: &Path) -> Result<Model, ModelError> {
        Self::load_with(path, &LoadOptions::default())
    }

    /// Loads the model at `path`: maps the file, reads the architecture's
    /// hyper-parameters and checks that every tensor it needs is present with the
    /// expected shape and a supported type.
    pub fn load_with(path: &Path, options: &LoadOptions) -> Result<Model, ModelError> {
        let gguf = GgufModel::open(path)?;
        Self::from_gguf(gguf, options)
    }

    /// A model from an already opened GGUF.
    pub fn from_gguf(gguf: GgufModel, options: &LoadOptions) -> Result<Model, ModelError> {
        let md = gguf.metadata();
        let name = md.get_str("general.architecture")?.to_owned();
        let arch = match name.as_str() {
            "llama" => Arch::Llama(llama::Llama::load(&gguf)?),
            "qwen2" => Arch::Qwen2(qwen2::load(&gguf)?),
            "qwen3" => Arch::Qwen3(qwen3::load(&gguf)?),
            "qwen3moe" => Arch::Qwen3Moe(qwen3moe::load(&gguf)?),
            "phi3" => Arch::Phi3(phi3::Phi3::load(&gguf)?),
            "command-r" => Arch::CommandR(command_r::load(&gguf)?),
            "mistral3" => Arch::Mistral3(mistral3::Mistral3::load(&gguf)?),
            "granite" => Arch::Granite(granite::Granite::load(&gguf)?),
            "olmo2" => Arch::Olmo2(olmo2::load(&gguf)?),
            "cohere2" => Arch::Cohere2(cohere2::load(&gguf)?),
            "starcoder2" => Arch::Starcoder2(starcoder2::load(&gguf)?),
            "gemma" => Arch::Gemma(gemma::load(&gguf)?),
            "gemma2" => Arch::Gemma2(gemma2::load(&gguf)?),
            "gemma3" => Arch::Gemma3(gemma3::load(&gguf)?),
            "gpt-oss" => Arch::GptOss(gpt_oss::load(&gguf)?),
            "bloom" => Arch::Bloom(bloom::load(&gguf)?),
            _ => return Err(ModelError::UnknownArchitecture(name)),
        };
        let c = arch.dims();
        let info = ModelInfo {
            arch: name,
            n_vocab: c.n_vocab,
            n_ctx_train: c.n_ctx_train,
            n_embd: c.n_embd,
            n_layer: c.n_layer,
            n_head: c.n_head,
            n_head_kv: c.n_head_kv,
            file_type: md.opt_u32("general.file_type")?,
            n_params: gguf.tensors().map(|(_, t)| t.n_elements()).sum(),
            file_size: gguf.file_size(),
        };
        let pool = match options.threads {
            Some(n) => ThreadPool::new(n),
            None => ThreadPool::with_available_parallelism(),
        };
        Ok(Model {
            gguf,
            info,
            arch,
            pool,
            kv_type: KvType::F16,
            id: NEXT_MODEL_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// What the model is.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The underlying GGUF (metadata for the tokenizer and chat template).
    pub fn gguf(&self) -> &GgufModel {
        &self.gguf
    }

    /// The architecture with its config.
    pub fn arch(&self) -> &Arch {
        &self.arch
    }

    /// Threads the forward pass runs on.
    pub fn n_threads(&self) -> usize {
        self.pool.n_threads()
    }

    /// How the KV caches of new states and pools store keys and values.
    pub fn kv_type(&self) -> KvType {
        self.kv_type
    }

    /// Makes new states ([`Model::new_state`]) and pools ([`Model::new_kv_pool`])
    /// store keys and values as `ty` (llama.cpp's `-ctk/-ctv`). A quantized
    /// type needs heads of whole blocks (32 values), as llama.cpp does.
    pub fn set_kv_type(&mut self, ty: KvType) -> Result<(), ModelError> {
        let hd = self.arch.dims().head_dim;
        if !hd.is_multiple_of(ty.block_size()) {
            return Err(ModelError::InvalidRequest(format!(
                "a {ty} KV cache needs heads of a multiple of {} values; this model's have {hd}",
                ty.block_size()
            )));
        }
        self.kv_type = ty;
        Ok(())
    }

    /// A fresh sequence state for up to `n_ctx` positions: the KV cache (of
    /// [`Model::kv_type`]) and the activation buffers, allocated once here.
    pub fn new_state(&self, n_ctx: usize) -> Result<State, ModelError> {
        if n_ctx == 0 {
            return Err(ModelError::InvalidRequest("n_ctx must be positive".into()));
        }
        let d = self.arch.decoder();
        let c = d.dims();
        Ok(State {
            kv: KvCache::with_type(c.n_layer, n_ctx, c.kv_dim(), self.kv_type, c.head_dim),
            n_past: 0,
            logits: Vec::new(),
            buffers: common::Buffers::new(d, &self.pool, d.n_batch(), n_ctx)?,
            model_id: self.id,
            lora: Vec::new(),
        })
    }

    /// Buffers for [`Model::forward_batch`]: steps of up to `n_rows` tokens in
    /// all, from sequences of up to `n_ctx` positions each.
    pub fn new_batch(&self, n_rows: usize, n_ctx: usize) -> Result<Batch, ModelError> {
        if n_rows == 0 || n_ctx == 0 {
            return Err(ModelError::InvalidRequest(
                "a batch needs room for at least one row and one position".into(),
            ));
        }
        let d = self.arch.decoder();
        Ok(Batch {
            buffers: common::Buffers::new(d, &self.pool, n_rows, n_ctx)?,
            out: Vec::new(),
            spans: Vec::new(),
            model_id: self.id,
        })
    }

    /// Runs `tokens` at positions `state.n_past()..` and appends them to the cache.
    /// Returns the last token's logits ([`Logits::Last`], `n_vocab` floats) or
    /// every token's ([`Logits::All`], `tokens.len() * n_vocab`), borrowed from
    /// `state`. This is a batch of one sequence, split into steps of the
    /// architecture's batch size.
    ///
    /// Errors, leaving the state unchanged: an empty `tokens`, a token id
    /// `>= n_vocab`, or more tokens than the context has room for
    /// ([`ModelError::ContextFull`]).
    pub fn forward<'s>(
        &self,
        state: &'s mut State,
        tokens: &[u32],
        want: Logits,
    ) -> Result<&'s [f32], ModelError> {
        self.run(state, tokens, want == Logits::All, false)
    }

    /// Runs `tokens` like [`Model::forward`] but returns every token's final
    /// hidden state after the output norm (`tokens.len() * n_embd` floats,
    /// token-major) instead of logits: what embeddings are pooled from
    /// (llama.cpp's `result_norm` with `embeddings = true`).
    pub fn embed<'s>(&self, state: &'s mut State, tokens: &[u32]) -> Result<&'s [f32], ModelError> {
        self.run(state, tokens, true, true)
    }

    /// One step over several sequences at once: each sequence's `tokens` run at
    /// its positions `n_past()..` and are appended to its cache. Every matrix
    /// product runs once over the rows of all sequences (the weights are read
    /// once per step, not once per sequence); attention runs per sequence over
    /// its own cache. Prefill chunks and decoding steps mix freely. If the rows
    /// exceed the batch's `n_rows`, the step is split into several passes.
    /// Each sequence's logits ([`SeqStep::logits`]) are then in
    /// [`Batch::logits`], in the order of `seqs`.
    ///
    /// Errors, leaving every state unchanged: a sequence with no tokens, a token
    /// id `>= n_vocab`, a sequence without room for its tokens, or one whose
    /// context is longer than the batch was made for.
    pub fn forward_batch(
        &self,
        batch: &mut Batch,
        seqs: &mut [SeqStep<'_>],
    ) -> Result<(), ModelError> {
        if batch.model_id != self.id {
            return Err(ModelError::InvalidRequest(
                "the batch belongs to another model".into(),
            ));
        }
        let n_vocab = self.info.n_vocab;
        batch.clear_outputs();
        for seq in seqs.iter() {
            self.check_tokens(seq.state, seq.tokens)?;
            if seq.state.kv.n_ctx() > batch.buffers.n_ctx {
                return Err(ModelError::InvalidRequest(format!(
                    "a sequence of {} positions in a batch made for {}",
                    seq.state.kv.n_ctx(),
                    batch.buffers.n_ctx
                )));
            }
            batch.push_output(seq.logits, seq.tokens.len(), n_vocab);
        }
        let mut rows: Vec<common::SeqRows<'_>> = seqs
            .iter_mut()
            .map(|seq| common::SeqRows {
                pos0: seq.state.n_past,
                n_ctx: seq.state.kv.n_ctx(),
                kv: common::SeqKv::Own(&mut seq.state.kv),
                tokens: seq.tokens,
                want: want(seq.logits),
                lora: &seq.state.lora,
            })
            .collect();
        common::forward(
            self.arch.decoder(),
            &self.gguf,
            &self.pool,
            None,
            &mut batch.buffers,
            &mut rows,
            false,
            &mut batch.out,
        )?;
        for seq in seqs.iter_mut() {
            seq.state.n_past += seq.tokens.len();
        }
        Ok(())
    }

    /// Bytes one block of `block_len` positions takes in this model's
    /// [`KvPool`] (keys and values of every layer, stored as
    /// [`Model::kv_type`]): what a memory budget is divided by to size the
    /// pool.
    pub fn kv_block_bytes(&self, block_len: usize) -> usize {
        let c = self.arch.dims();
        KvPool::block_bytes(c.n_layer, c.kv_dim(), block_len, self.kv_type)
    }

    /// A paged KV cache for this model: `n_blocks` blocks of `block_len` (a
    /// power of two) positions in every layer.
    pub fn new_kv_pool(&self, block_len: usize, n_blocks: usize) -> Result<KvPool, ModelError> {
        if !block_len.is_power_of_two() || n_blocks == 0 {
            return Err(ModelError::InvalidRequest(format!(
                "a pool of {n_blocks} blocks of {block_len} positions (a power of two)"
            )));
        }
        let c = self.arch.dims();
        Ok(KvPool::with_type(
            c.n_layer,
            c.kv_dim(),
            block_len,
            n_blocks,
            self.kv_type,
            c.head_dim,
        ))
    }

    /// [`Model::forward_batch`] for sequences whose keys and values live in
    /// blocks of `pool`: each sequence's `tokens` run at positions
    /// `n_past..`, stored through its block table (which must already have
    /// the blocks for them), and attention reads through it. The caller keeps
    /// each sequence's `n_past` and blocks (`engine::blocks`). Each sequence
    /// may hold up to the batch's `n_ctx` positions.
    ///
    /// Errors, storing nothing: a sequence with no tokens, a token id `>=
    /// n_vocab`, positions beyond its blocks or the batch's `n_ctx`, a block id
    /// beyond the pool, or a pool made for another model's shapes.
    pub fn forward_paged(
        &self,
        batch: &mut Batch,
        pool: &mut KvPool,
        seqs: &[PagedSeq<'_>],
    ) -> Result<(), ModelError> {
        if batch.model_id != self.id {
            return Err(ModelError::InvalidRequest(
                "the batch belongs to another model".into(),
            ));
        }
        let c = self.arch.dims();
        if (pool.n_layer(), pool.kv_dim()) != (c.n_layer, c.kv_dim()) {
            return Err(ModelError::InvalidRequest(
                "the KV pool was made for another model".into(),
            ));
        }
        let n_vocab = self.info.n_vocab;
        let n_ctx = batch.buffers.n_ctx;
        batch.clear_outputs();
        for seq in seqs {
            self.check_ids(seq.tokens)?;
            self.check_lora(seq.lora)?;
            let needed = seq.n_past + seq.tokens.len();
            let room = (seq.blocks.len() * pool.block_len()).min(n_ctx);
            if needed > room {
                return Err(ModelError::ContextFull {
                    n_ctx: room,
                    needed,
                });
            }
            if let Some(&b) = seq.blocks.iter().find(|&&b| b as usize >= pool.n_blocks()) {
                return Err(ModelError::InvalidRequest(format!(
                    "block {b} of a pool of {}",
                    pool.n_blocks()
                )));
            }
            batch.push_output(seq.logits, seq.tokens.len(), n_vocab);
        }
        let mut rows: Vec<common::SeqRows<'_>> = seqs
            .iter()
            .map(|seq| common::SeqRows {
                kv: common::SeqKv::Paged(seq.blocks),
                n_ctx,
                pos0: seq.n_past,
                tokens: seq.tokens,
                want: want(seq.logits),
                lora: seq.lora,
            })
            .collect();
        common::forward(
            self.arch.decoder(),
            &self.gguf,
            &self.pool,
            Some(pool),
            &mut batch.buffers,
            &mut rows,
            false,
            &mut batch.out,
        )
    }

    /// Checks that `tokens` is not empty and every id is in the vocabulary.
    fn check_ids(&self, tokens: &[u32]) -> Result<(), ModelError> {
        if tokens.is_empty() {
            return Err(ModelError::InvalidRequest("no tokens to run".into()));
        }
        let n_vocab = self.info.n_vocab;
        if let Some((index, &token)) = tokens
            .iter()
            .enumerate()
            .find(|(_, t)| **t as usize >= n_vocab)
        {
            return Err(ModelError::TokenOutOfRange {
                token,
                index,
                n_vocab,
            });
        }
        Ok(())
    }

    /// Checks that every adapter of `uses` was loaded for this model.
    fn check_lora(&self, uses: &[LoraUse]) -> Result<(), ModelError> {
        if uses.iter().any(|u| !u.lora.belongs_to(self.id)) {
            return Err(ModelError::InvalidRequest(
                "a LoRA adapter loaded for another model".into(),
            ));
        }
        Ok(())
    }

    /// Loads the LoRA adapter at `path` for this model, checked against its
    /// architecture and tensors ([`Lora::load`]).
    pub fn load_lora(&self, path: &Path) -> Result<Lora, ModelError> {
        Lora::load(self, path)
    }

    /// This model's identity (adapters and states made for it carry it).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Names of the matrices adapters may adapt: every 2-D weight the
    /// forward pass multiplies through a projection (not the routers and
    /// experts of a mixture of experts).
    pub(crate) fn adaptable_matrices(&self) -> Vec<&str> {
        self.arch
            .decoder()
            .matrices()
            .into_iter()
            .filter(|t| t.dims.len() == 2 && !t.name.ends_with("ffn_gate_inp.weight"))
            .map(|t| t.name.as_str())
            .collect()
    }

    /// Checks that `tokens` can run in `state`.
    fn check_tokens(&self, state: &State, tokens: &[u32]) -> Result<(), ModelError> {
        self.check_state(state)?;
        self.check_lora(&state.lora)?;
        self.check_ids(tokens)?;
        let needed = state.n_past + tokens.len();
        if needed > state.kv.n_ctx() {
            return Err(ModelError::ContextFull {
                n_ctx: state.kv.n_ctx(),
                needed,
            });
        }
        Ok(())
    }

    /// [`Model::forward`] and [`Model::embed`]: logits of the last or of every
    /// token, or (`hidden`) every token's normed hidden state.
    fn run<'s>(
        &self,
        state: &'s mut State,
        tokens: &[u32],
        all: bool,
        hidden: bool,
    ) -> Result<&'s [f32], ModelError> {
        self.check_tokens(state, tokens)?;
        let n_out = match (hidden, all) {
            (true, _) => tokens.len() * self.info.n_embd,
            (false, false) => self.info.n_vocab,
            (false, true) => tokens.len() * self.info.n_vocab,
        };
        state.logits.resize(n_out, 0.0);
        let want = if all || hidden {
            common::Want::All
        } else {
            common::Want::Last
        };
        let mut rows = [common::SeqRows {
            n_ctx: state.kv.n_ctx(),
            kv: common::SeqKv::Own(&mut state.kv),
            pos0: state.n_past,
            tokens,
            want,
            lora: &state.lora,
        }];
        common::forward(
            self.arch.decoder(),
            &self.gguf,
            &self.pool,
            None,
            &mut state.buffers,
            &mut rows,
            hidden,
            &mut state.logits,
        )?;
        state.n_past += tokens.len();
        Ok(&state.logits)
    }

    fn check_state(&self, state: &State) -> Result<(), ModelError> {
        if state.model_id != self.id {
            return Err(ModelError::InvalidRequest(
                "the state belongs to another model".into(),
            ));
        }
        Ok(())
    }
}

/// The rows of a sequence's tokens whose logits `logits` asks for.
fn want(logits: Option<Logits>) -> common::Want {
    match logits {
        None => common::Want::Nothing,
        Some(Logits::Last) => common::Want::Last,
        Some(Logits::All) => common::Want::All,
    }
}

/// One sequence's part of a [`Model::forward_batch`] step.
#[derive(Debug)]
pub struct SeqStep<'a> {
    /// The sequence; its tokens go at positions `state.n_past()..`.
    pub state: &'a mut State,
    /// Tokens to run: a prompt chunk, one decoded token, or draft tokens.
    pub tokens: &'a [u32],
    /// Which logits to return; `None` for a prompt chunk that is not the end.
    pub logits: Option<Logits>,
}

/// One sequence's part of a [`Model::forward_paged`] step.
#[derive(Clone, Copy, Debug, Default)]
pub struct PagedSeq<'a> {
    /// Its block table: position `p` is in block `blocks[p / block_len]`.
    pub blocks: &'a [u32],
    /// Positions already in its blocks; `tokens` go at `n_past..`.
    pub n_past: usize,
    /// Tokens to run.
    pub tokens: &'a [u32],
    /// Which logits to return; `None` for a prompt chunk that is not the end.
    pub logits: Option<Logits>,
    /// The LoRA adapters it runs with (empty: the base model alone).
    pub lora: &'a [LoraUse],
}

/// Activation buffers and outputs of [`Model::forward_batch`] steps, allocated
/// once for up to `n_rows` rows per pass.
#[derive(Debug)]
pub struct Batch {
    buffers: common::Buffers,
    /// Every sequence's logits, one after another.
    out: Vec<f32>,
    /// Each sequence's part of `out`.
    spans: Vec<std::ops::Range<usize>>,
    model_id: u64,
}

impl Batch {
    /// Rows one pass holds.
    pub fn n_rows(&self) -> usize {
        self.buffers.n_rows
    }

    /// The logits of sequence `i` of the last step: `n_vocab` floats per row
    /// asked for (none if it asked for none).
    pub fn logits(&self, i: usize) -> &[f32] {
        &self.out[self.spans[i].clone()]
    }

    /// Forgets the last step's layout, before laying out the next's (the
    /// buffer is kept: each pass overwrites the rows it hands out).
    fn clear_outputs(&mut self) {
        self.spans.clear();
    }

    /// Makes room, after the sequences already laid out, for the logits of
    /// the next one: `n_tokens` rows of `n_vocab` wanted as `logits` says.
    fn push_output(&mut self, logits: Option<Logits>, n_tokens: usize, n_vocab: usize) {
        let rows = match logits {
            None => 0,
            Some(Logits::Last) => 1,
            Some(Logits::All) => n_tokens,
        };
        let start = self.spans.last().map_or(0, |r| r.end);
        let end = start + rows * n_vocab;
        self.spans.push(start..end);
        if self.out.len() < end {
            self.out.resize(end, 0.0);
        }
    }
}

/// One sequence: its KV cache, the number of positions filled, the activation
/// buffers and the last logits.
#[derive(Debug)]
pub struct State {
    kv: KvCache,
    n_past: usize,
    logits: Vec<f32>,
    buffers: common::Buffers,
    model_id: u64,
    /// The LoRA adapters its tokens run with.
    lora: Vec<LoraUse>,
}
impl State {
    /// Runs its next tokens with the adapters `lora` (empty: the base
    /// model). The cached positions are not recomputed: a caller that
    /// changes adapters mid-sequence clears it first.
    pub fn set_lora(&mut self, lora: Vec<LoraUse>) {
        self.lora = lora;
    }

    /// The adapters its tokens run with.
    pub fn lora(&self) -> &[LoraUse] {
        &self.lora
    }

    /// Positions already in the cache (where the next token goes).
    pub fn n_past(&self) -> usize {
        self.n_past
    }

    /// Positions the cache holds in all.
    pub fn n_ctx(&self) -> usize {
        self.kv.n_ctx()
    }

    /// Bytes of the KV cache.
    pub fn kv_size_bytes(&self) -> usize {
        self.kv.size_bytes()
    }

    /// Forgets every cached position.
    pub fn clear(&mut self) {
        self.n_past = 0;
    }

    /// Keeps only the first `n` cached positions (no-op if `n >= n_past`).
    pub fn truncate(&mut self, n: usize) {
        self.n_past = self.n_past.min(n);
    }

    /// Context shift: drops cached positions `keep..keep + discard`, moves the
    /// later ones down and re-rotates their keys by `-discard` positions like
    /// llama.cpp's K-shift, so generation can continue past a full context.
    /// Ollama's policy is `discard = (n_past - keep) / 2`.
    pub fn shift(&mut self, model: &Model, keep: usize, discard: usize) -> Result<(), ModelError> {
        model.check_state(self)?;
        if keep + discard > self.n_past {
            return Err(ModelError::InvalidRequest(format!(
                "cannot drop positions {keep}..{} of {} cached",
                keep + discard,
                self.n_past
            )));
        }
        let head_dim = model.arch.dims().head_dim;
        let n_ctx = self.kv.n_ctx();
        let d = model.arch.decoder();
        self.kv
            .shift(self.n_past, keep, discard, head_dim, &|layer| {
                d.rope(layer, n_ctx)
            });
        self.n_past -= discard;
        Ok(())
    }
}
