//! LoRA adapters applied unmerged (Hu et al. 2021; llama.cpp's
//! src/llama-adapter.cpp and `build_lora_mm`): for every adapted matrix `W`,
//! `y = W x + scale · B (A x)`, with `scale = user_scale · alpha / rank`, or
//! `user_scale` when the adapter's alpha is 0.
//!
//! An adapter is a GGUF file as llama.cpp's `convert_lora_to_gguf.py` writes
//! it: `general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha`,
//! and a pair of tensors `<base tensor>.lora_a` (`rank` rows of the base's row
//! length) and `<base tensor>.lora_b` (the base's rows, each `rank` long) per
//! adapted matrix. The token embeddings' pair is stored the other way round
//! (`lora_a` has a `rank`-long row per token, `lora_b` a `rank`-long row per
//! embedding value), as llama.cpp's `build_inp_embd` reads it.
//!
//! The base weights are never touched, so one model serves many adapters:
//! each sequence of a batch names its own ([`LoraUse`]), and a batch without
//! any runs exactly as before (one `Option` test per projection).

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use gguf::GgufModel;
use kernels::matmul::{activation_scratch_len, matmul};
use kernels::pool::ThreadPool;

use crate::loader::{Tensor, Tensors, Use};
use crate::{Model, ModelError};

/// A LoRA adapter checked against the model it was loaded for.
#[derive(Debug)]
pub struct Lora {
    gguf: GgufModel,
    /// `adapter.lora.alpha` (0 when absent: the scale is the user's).
    alpha: f32,
    /// The model whose tensors it was checked against.
    model_id: u64,
    /// This adapter's identity among all loaded in the process (a reloaded
    /// file is another adapter: the prefix caches' keys must not outlive it).
    id: u64,
    /// Base matrix name → its pair.
    weights: HashMap<String, Pair>,
    /// The token embeddings' pair, if adapted.
    embd: Option<Pair>,
}

/// The two low-rank factors of one adapted matrix.
#[derive(Debug)]
struct Pair {
    /// (n_in, rank) for a matrix; (rank, n_vocab) for the embeddings.
    a: Tensor,
    /// (rank, n_out) for a matrix; (rank, n_embd) for the embeddings.
    b: Tensor,
    rank: usize,
}

impl Pair {
    /// llama.cpp's `llama_adapter_lora_weight::get_scale`.
    fn scale(&self, alpha: f32, user_scale: f32) -> f32 {
        if alpha != 0.0 {
            user_scale * alpha / self.rank as f32
        } else {
            user_scale
        }
    }
}

/// One adapter a sequence runs with, at its user scale (llama.cpp's
/// `--lora-scaled FILE SCALE`; `--lora FILE` is scale 1).
#[derive(Clone, Debug)]
pub struct LoraUse {
    /// The adapter.
    pub lora: Arc<Lora>,
    /// Its user scale.
    pub scale: f32,
}

impl PartialEq for LoraUse {
    /// The same adapter (not merely an equal file) at the same scale.
    fn eq(&self, other: &LoraUse) -> bool {
        Arc::ptr_eq(&self.lora, &other.lora) && self.scale == other.scale
    }
}

impl LoraUse {
    /// A key for what these adapters make of a token prefix, for prefix
    /// caches: 0 for none (the base model's own keys), else a hash of the
    /// adapters' identities and scales.
    pub fn cache_key(uses: &[LoraUse]) -> u64 {
        use std::hash::{Hash, Hasher};
        if uses.is_empty() {
            return 0;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for u in uses {
            u.lora.id.hash(&mut h);
            u.scale.to_bits().hash(&mut h);
        }
        h.finish() | 1
    }
}

static NEXT_LORA_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn invalid(path: &Path, reason: impl std::fmt::Display) -> ModelError {
    ModelError::Lora(format!("{}: {reason}", path.display()))
}

impl Lora {
    /// Loads the adapter at `path` for `model`, checking it as llama.cpp does:
    /// an adapter of the model's architecture, every tensor a `.lora_a` /
    /// `.lora_b` pair of a matrix the model has, with shapes that fit it.
    pub fn load(model: &Model, path: &Path) -> Result<Lora, ModelError> {
        let gguf = GgufModel::open(path)?;
        let md = gguf.metadata();
        let general_type = md.opt_str("general.type")?.unwrap_or("");
        if general_type != "adapter" {
            return Err(invalid(
                path,
                format!("general.type is '{general_type}', expected 'adapter'"),
            ));
        }
        let arch = md.opt_str("general.architecture")?.unwrap_or("");
        if arch != model.info().arch {
            return Err(invalid(
                path,
                format!(
                    "an adapter for '{arch}', the model is '{}'",
                    model.info().arch
                ),
            ));
        }
        let adapter_type = md.opt_str("adapter.type")?.unwrap_or("");
        if adapter_type != "lora" {
            return Err(invalid(
                path,
                format!("adapter.type is '{adapter_type}', expected 'lora'"),
            ));
        }
        if md.get("adapter.alora.invocation_tokens").is_some() {
            return Err(invalid(
                path,
                "activated LoRA (adapter.alora.invocation_tokens) is not supported",
            ));
        }
        let alpha = md.opt_f32("adapter.lora.alpha")?.unwrap_or(0.0);

        // Pair up `<name>.lora_a` and `<name>.lora_b`.
        let mut halves: HashMap<String, [Option<Vec<u64>>; 2]> = HashMap::new();
        for (_, t) in gguf.tensors() {
            let (base, half) = if let Some(base) = t.name.strip_suffix(".lora_a") {
                (base, 0)
            } else if let Some(base) = t.name.strip_suffix(".lora_b") {
                (base, 1)
            } else {
                return Err(invalid(
                    path,
                    format!("tensor '{}' is neither a .lora_a nor a .lora_b", t.name),
                ));
            };
            if t.dims.len() != 2 {
                return Err(invalid(
                    path,
                    format!("tensor '{}' has shape {:?}, expected 2-D", t.name, t.dims),
                ));
            }
            halves.entry(base.to_owned()).or_default()[half] = Some(t.dims.clone());
        }

        let base: HashMap<&str, &[u64]> = model
            .gguf()
            .tensors()
            .map(|(_, t)| (t.name.as_str(), t.dims.as_slice()))
            .collect();
        let adaptable = model.adaptable_matrices();
        let tensors = Tensors::new(&gguf);
        let mut weights = HashMap::new();
        let mut embd = None;
        let mut names: Vec<_> = halves.into_iter().collect();
        names.sort_by(|x, y| x.0.cmp(&y.0));
        for (name, [a_dims, b_dims]) in names {
            let (Some(a_dims), Some(b_dims)) = (a_dims, b_dims) else {
                return Err(invalid(
                    path,
                    format!("the pair of '{name}' is missing its lora_a or lora_b"),
                ));
            };
            let Some(&w) = base.get(name.as_str()) else {
                return Err(invalid(
                    path,
                    format!("'{name}' is not a tensor of the model (an adapter for another base?)"),
                ));
            };
            let mismatch = || {
                invalid(
                    path,
                    format!(
                        "'{name}' is {w:?} in the model, its lora_a {a_dims:?} and lora_b \
                         {b_dims:?} do not fit (an adapter for another base?)"
                    ),
                )
            };
            if w.len() != 2 {
                return Err(invalid(
                    path,
                    format!("'{name}' is not a matrix ({w:?}); hearth adapts only matrices"),
                ));
            }
            let is_embd = name == "token_embd.weight";
            let rank = if is_embd {
                // a: (rank, n_vocab), b: (rank, n_embd).
                if a_dims[1] != w[1] || b_dims[1] != w[0] || a_dims[0] != b_dims[0] {
                    return Err(mismatch());
                }
                b_dims[0]
            } else {
                // a: (n_in, rank), b: (rank, n_out).
                if a_dims[0] != w[0] || b_dims[1] != w[1] {
                    return Err(mismatch());
                }
                if a_dims[1] != b_dims[0] {
                    return Err(invalid(
                        path,
                        format!(
                            "'{name}': lora_a {a_dims:?} and lora_b {b_dims:?} have different \
                             ranks (lora_a not transposed?)"
                        ),
                    ));
                }
                if !adaptable.contains(&name.as_str()) {
                    return Err(invalid(
                        path,
                        format!(
                            "'{name}' is not a projection hearth applies adapters to \
                             (expert and router matrices are not)"
                        ),
                    ));
                }
                b_dims[0]
            };
            let a_use = if is_embd { Use::Read } else { Use::MatMul };
            let pair = Pair {
                a: tensors.get(&format!("{name}.lora_a"), &a_dims, a_use)?,
                b: tensors.get(&format!("{name}.lora_b"), &b_dims, Use::MatMul)?,
                rank: rank as usize,
            };
            if pair.rank == 0 {
                return Err(invalid(path, format!("'{name}' has rank 0")));
            }
            if is_embd {
                embd = Some(pair);
            } else {
                weights.insert(name, pair);
            }
        }
        drop(tensors);
        if weights.is_empty() && embd.is_none() {
            return Err(invalid(path, "the adapter has no tensors"));
        }
        Ok(Lora {
            gguf,
            alpha,
            model_id: model.id(),
            id: NEXT_LORA_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            weights,
            embd,
        })
    }

    /// `adapter.lora.alpha` (0 when the file has none).
    pub fn alpha(&self) -> f32 {
        self.alpha
    }

    /// Names of the base tensors it adapts, sorted.
    pub fn targets(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.weights.keys().map(String::as_str).collect();
        if self.embd.is_some() {
            names.push("token_embd.weight");
        }
        names.sort_unstable();
        names
    }

    /// Whether it was loaded for the model with id `model_id`.
    pub(crate) fn belongs_to(&self, model_id: u64) -> bool {
        self.model_id == model_id
    }

    /// `W + scale · B A` for the base matrix `name` (`n_out` rows of `n_in`,
    /// row-major f32) added into `w`, at user scale `user_scale`: what a
    /// merged export writes. A matrix it does not adapt is left as it is;
    /// the embeddings' pair is transposed as llama.cpp stores it.
    pub fn merge_into(
        &self,
        name: &str,
        user_scale: f32,
        w: &mut [f32],
        n_in: usize,
    ) -> Result<bool, ModelError> {
        let (pair, is_embd) = match (self.weights.get(name), &self.embd) {
            (Some(p), _) => (p, false),
            (None, Some(p)) if name == "token_embd.weight" => (p, true),
            _ => return Ok(false),
        };
        let scale = pair.scale(self.alpha, user_scale);
        let r = pair.rank;
        let a = pair.a.to_f32(&self.gguf)?;
        let b = pair.b.to_f32(&self.gguf)?;
        let n_out = w.len() / n_in;
        for (o, row) in w.chunks_exact_mut(n_in).enumerate() {
            for (i, v) in row.iter_mut().enumerate() {
                let mut sum = 0f32;
                for k in 0..r {
                    sum += if is_embd {
                        // delta[token o][embd i] = b row i · a row o.
                        b[i * r + k] * a[o * r + k]
                    } else {
                        // delta[out o][in i] = b row o · (a's column i).
                        b[o * r + k] * a[k * n_in + i]
                    };
                }
                *v += scale * sum;
            }
        }
        debug_assert_eq!(n_out * n_in, w.len());
        Ok(true)
    }
}

/// The model `base` with `adapters` merged into its weights, as
/// llama.cpp's `llama-export-lora` writes it: every adapted matrix is
/// dequantized to f32, each adapter's `scale · B A` added in order, and the
/// sum stored as F32 when the base tensor is F32, else as F16 (a quantized
/// base is not requantized: `hearth quantize` can do that after); every
/// other tensor and the metadata are copied, with `general.file_type` set to
/// F16 as llama-export-lora does. The adapters must have been loaded for
/// the model `base` is the file of.
pub fn merge(base: &GgufModel, adapters: &[LoraUse]) -> Result<gguf::GgufWriter, ModelError> {
    let mut w = gguf::GgufWriter::new();
    for (key, value) in base.metadata().iter() {
        if !key.starts_with("split.") {
            w.add(key, value.clone());
        }
    }
    // llama.cpp's LLAMA_FTYPE_MOSTLY_F16.
    w.add_u32("general.file_type", 1);
    for (shard, info) in base.tensors() {
        let data = base.files()[shard].tensor_data(info);
        let adapted = adapters.iter().any(|u| {
            u.lora.weights.contains_key(&info.name)
                || (info.name == "token_embd.weight" && u.lora.embd.is_some())
        });
        if !adapted {
            w.add_tensor(&info.name, info.ty, &info.dims, data)?;
            continue;
        }
        let n_in = info.dims[0] as usize;
        let mut values = vec![0f32; info.n_elements() as usize];
        kernels::dequantize(info.ty, data, &mut values)?;
        for u in adapters {
            u.lora.merge_into(&info.name, u.scale, &mut values, n_in)?;
        }
        let ty = if info.ty == gguf::TensorType::F32 {
            gguf::TensorType::F32
        } else {
            gguf::TensorType::F16
        };
        let size = ty.row_size(values.len() as u64).unwrap_or(0) as usize;
        let mut bytes = vec![0u8; size];
        kernels::quantize(ty, &values, &mut bytes)?;
        w.add_tensor(&info.name, ty, &info.dims, &bytes)?;
    }
    Ok(w)
}

/// Scratch for the low-rank products, grown to the largest use and kept
/// with the batch's buffers.
#[derive(Debug, Default)]
pub struct LoraScratch {
    /// Activations converted for the kernels.
    act: Vec<u8>,
    /// (rows, rank) `A x`.
    ax: Vec<f32>,
    /// (rows, n_out) `B A x`.
    bax: Vec<f32>,
}

fn grow<T: Clone + Default>(v: &mut Vec<T>, n: usize) -> &mut [T] {
    if v.len() < n {
        v.resize(n, T::default());
    }
    &mut v[..n]
}

/// The adapters of one batch's rows: a run of rows per sequence (adjacent
/// runs with the same adapters merged), and the scratch.
#[derive(Debug)]
pub struct LoraBatch<'k> {
    runs: Vec<(Range<usize>, &'k [LoraUse])>,
    scratch: RefCell<LoraScratch>,
}

fn same(x: &[LoraUse], y: &[LoraUse]) -> bool {
    x == y
}

impl<'k> LoraBatch<'k> {
    /// The adapters of segments of `n` rows each, in row order, taking the
    /// scratch kept in `scratch`; `None` when no segment has any (the batch
    /// runs without adapter code).
    pub fn new(
        segments: Vec<(usize, &'k [LoraUse])>,
        scratch: &mut LoraScratch,
    ) -> Option<LoraBatch<'k>> {
        let mut runs: Vec<(Range<usize>, &'k [LoraUse])> = Vec::new();
        let mut row = 0;
        for (n, uses) in segments {
            match runs.last_mut() {
                Some((r, last)) if r.end == row && same(last, uses) => r.end += n,
                _ if uses.is_empty() => {}
                _ => runs.push((row..row + n, uses)),
            }
            row += n;
        }
        (!runs.is_empty()).then(|| LoraBatch {
            runs,
            scratch: RefCell::new(std::mem::take(scratch)),
        })
    }

    /// Its scratch, to keep for the next batch.
    pub fn into_scratch(self) -> LoraScratch {
        self.scratch.into_inner()
    }

    /// `y += scale · B (A x)` for the rows of every sequence whose adapters
    /// adapt the matrix `name` (`n_in` → `y.len() / rows` outputs). The rows
    /// of `x` are the batch's rows, or with `subset` the batch rows it lists
    /// (increasing: the output head's wanted rows).
    pub fn apply(
        &self,
        pool: &ThreadPool,
        name: &str,
        n_in: usize,
        x: &[f32],
        y: &mut [f32],
        subset: Option<&[usize]>,
    ) -> Result<(), ModelError> {
        let n_rows = x.len() / n_in;
        if n_rows == 0 {
            return Ok(());
        }
        let n_out = y.len() / n_rows;
        let mut guard = self.scratch.borrow_mut();
        let s = &mut *guard;
        for (run, uses) in &self.runs {
            // The rows of x in this run.
            let rows = match subset {
                None => run.clone(),
                Some(batch_rows) => {
                    batch_rows.partition_point(|&r| r < run.start)
                        ..batch_rows.partition_point(|&r| r < run.end)
                }
            };
            if rows.is_empty() {
                continue;
            }
            for u in uses.iter() {
                let Some(pair) = u.lora.weights.get(name) else {
                    continue;
                };
                let nr = rows.len();
                let (r, lg) = (pair.rank, &u.lora.gguf);
                let act_len = activation_scratch_len(pair.a.ty, n_in, nr)?
                    .max(activation_scratch_len(pair.b.ty, r, nr)?);
                let act = grow(&mut s.act, act_len);
                let ax = grow(&mut s.ax, nr * r);
                let bax = grow(&mut s.bax, nr * n_out);
                let xs = &x[rows.start * n_in..rows.end * n_in];
                matmul(pool, &pair.a.matrix(lg), xs, act, ax)?;
                matmul(pool, &pair.b.matrix(lg), ax, act, bax)?;
                let scale = pair.scale(u.lora.alpha, u.scale);
                let ys = &mut y[rows.start * n_out..rows.end * n_out];
                for (y, d) in ys.iter_mut().zip(bax.iter()) {
                    *y += *d * scale;
                }
            }
        }
        Ok(())
    }

    /// Whether any sequence's adapters adapt the token embeddings.
    pub fn adapts_embeddings(&self) -> bool {
        self.runs
            .iter()
            .any(|(_, uses)| uses.iter().any(|u| u.lora.embd.is_some()))
    }

    /// `x += scale · B a[token]` for the embeddings of `tokens` (one row of
    /// `n_embd` in `x` each), llama.cpp's `build_inp_embd`.
    pub fn apply_embeddings(
        &self,
        pool: &ThreadPool,
        tokens: &[u32],
        x: &mut [f32],
    ) -> Result<(), ModelError> {
        let n_embd = x.len() / tokens.len();
        let mut guard = self.scratch.borrow_mut();
        let s = &mut *guard;
        for (rows, uses) in &self.runs {
            for u in uses.iter() {
                let Some(pair) = &u.lora.embd else {
                    continue;
                };
                let nr = rows.len();
                let (r, lg) = (pair.rank, &u.lora.gguf);
                let act = grow(&mut s.act, activation_scratch_len(pair.b.ty, r, nr)?);
                let ax = grow(&mut s.ax, nr * r);
                for (row, &tok) in ax.chunks_exact_mut(r).zip(&tokens[rows.clone()]) {
                    pair.a.dequantize_row(lg, tok as usize, row)?;
                }
                let bax = grow(&mut s.bax, nr * n_embd);
                matmul(pool, &pair.b.matrix(lg), ax, act, bax)?;
                let scale = pair.scale(u.lora.alpha, u.scale);
                let xs = &mut x[rows.start * n_embd..rows.end * n_embd];
                for (x, d) in xs.iter_mut().zip(bax.iter()) {
                    *x += *d * scale;
                }
            }
        }
        Ok(())
    }
}
