//! Finding and checking tensors and hyper-parameters in a GGUF model, with errors
//! that name the tensor or key, what was expected and what was found.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use gguf::{GgufModel, Metadata, TensorType, Value};
use kernels::matmul::{Matrix, PackedMatrix};

use crate::ModelError;

/// A tensor of the model: where it lives in the file, its format and shape.
/// The bytes stay in the memory map; [`Tensor::data`] borrows them. A matrix
/// may also own a copy repacked for the CPU's packed kernels, made once at
/// load ([`Tensors::get`] with [`Use::MatMul`]).
#[derive(Clone, Debug)]
pub struct Tensor {
    /// Tensor name.
    pub name: String,
    /// Element format.
    pub ty: TensorType,
    /// Shape, `ne[0]` (the row length) first.
    pub dims: Vec<u64>,
    shard: usize,
    index: usize,
    /// The rows repacked (2-D matmul weights whose format has a packed kernel
    /// on this CPU); shared by clones (a tied output head).
    packed: Option<Arc<PackedMatrix>>,
    /// Each matrix of a 3-D stack of experts repacked, where the format's
    /// packed kernels follow ggml's order for experts
    /// ([`PackedMatrix::new_expert`]).
    experts: Option<Arc<[PackedMatrix]>>,
}

impl Tensor {
    /// The tensor's bytes in the mapped file.
    pub fn data<'a>(&self, gguf: &'a GgufModel) -> &'a [u8] {
        let file = &gguf.files()[self.shard];
        file.tensor_data(&file.tensors()[self.index])
    }

    /// The tensor as a matrix of `dims[0]`-long rows (all further dimensions are rows).
    pub fn matrix<'a>(&'a self, gguf: &'a GgufModel) -> Matrix<'a> {
        let n_in = self.dims[0] as usize;
        let n_out = self.dims[1..].iter().product::<u64>() as usize;
        Matrix {
            ty: self.ty,
            n_in,
            n_out,
            data: self.data(gguf),
            packed: self.packed.as_deref(),
        }
    }

    /// Row `i` dequantized into `out` (`dims[0]` values): an embedding lookup.
    /// Read from the packed copy when there is one, whose values are the
    /// file row's bit for bit: the file's pages of a packed matrix were
    /// released at load, and reading rows there would fault them back into
    /// the resident set (a tied token_embd, which is also the output head).
    pub fn dequantize_row(
        &self,
        gguf: &GgufModel,
        i: usize,
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        match &self.packed {
            Some(packed) => packed.dequantize_row(i, out)?,
            None => kernels::matmul::dequantize_row(&self.matrix(gguf), i, out)?,
        }
        Ok(())
    }

    /// Matrix `e` of a 3-D stack (`dims = [n_in, n_out, n_expert]`).
    pub fn expert<'a>(&'a self, gguf: &'a GgufModel, e: usize) -> Matrix<'a> {
        let (n_in, n_out) = (self.dims[0] as usize, self.dims[1] as usize);
        let data = self.data(gguf);
        let size = data.len() / self.dims[2] as usize;
        Matrix {
            ty: self.ty,
            n_in,
            n_out,
            data: &data[e * size..(e + 1) * size],
            packed: self.experts.as_ref().map(|x| &x[e]),
        }
    }

    /// The whole tensor dequantized to f32; used at load time for small vectors
    /// (norm weights, biases, RoPE factors), never for matrices.
    pub fn to_f32(&self, gguf: &GgufModel) -> Result<Vec<f32>, ModelError> {
        let mut out = vec![0f32; self.dims.iter().product::<u64>() as usize];
        kernels::dequantize(self.ty, self.data(gguf), &mut out)?;
        Ok(out)
    }
}

/// What a tensor is used for, which decides the formats it may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// Multiplied with activations: needs a dot product kernel.
    MatMul,
    /// Read as f32 (norms, biases, embeddings rows): needs a dequantizer.
    Read,
}

/// The model's tensors by name, checked on lookup.
///
/// The file pages of the matrices it packs are released as each is packed,
/// and once more when it is dropped (the end of a load): reading the next
/// tensor maps the file's cached pages around the faulting address back in
/// (the kernel's fault-around, 64 KiB windows by default), the tail of the
/// tensor released just before included. Measured with the `long_context`
/// example on a Llama-3.2-1B-shaped Q4_0: 5 MiB of file pages were left
/// mapped after loading without the second pass.
pub struct Tensors<'a> {
    gguf: &'a GgufModel,
    index: HashMap<&'a str, (usize, usize)>,
    /// (shard, index) of every tensor packed so far.
    released: RefCell<Vec<(usize, usize)>>,
}

impl Drop for Tensors<'_> {
    fn drop(&mut self) {
        for &(shard, index) in self.released.get_mut().iter() {
            let file = &self.gguf.files()[shard];
            file.release_tensor_pages(&file.tensors()[index]);
        }
    }
}

impl<'a> Tensors<'a> {
    /// Indexes the tensors of `gguf`.
    pub fn new(gguf: &'a GgufModel) -> Self {
        let mut index = HashMap::new();
        for (shard, file) in gguf.files().iter().enumerate() {
            for (i, t) in file.tensors().iter().enumerate() {
                index.insert(t.name.as_str(), (shard, i));
            }
        }
        Tensors {
            gguf,
            index,
            released: RefCell::new(Vec::new()),
        }
    }

    /// The tensor `name`, which must exist with shape `dims` and a usable format.
    pub fn get(&self, name: &str, dims: &[u64], usage: Use) -> Result<Tensor, ModelError> {
        self.opt(name, dims, usage)?
            .ok_or_else(|| ModelError::MissingTensor(name.to_owned()))
    }

    /// Like [`Tensors::get`], but `Ok(None)` when the tensor is absent.
    pub fn opt(&self, name: &str, dims: &[u64], usage: Use) -> Result<Option<Tensor>, ModelError> {
        let Some(&(shard, index)) = self.index.get(name) else {
            return Ok(None);
        };
        let info = &self.gguf.files()[shard].tensors()[index];
        if info.dims != dims {
            return Err(ModelError::TensorShape {
                name: name.to_owned(),
                expected: dims.to_vec(),
                found: info.dims.clone(),
            });
        }
        let usable = kernels::traits(info.ty).is_some_and(|tr| match usage {
            Use::Read => true,
            Use::MatMul => {
                tr.vec_dot.is_some()
                    && kernels::traits(tr.vec_dot_type).is_some_and(|a| a.from_f32.is_some())
                    && (info.dims[0] as usize).is_multiple_of(info.ty.block_size())
            }
        });
        if !usable {
            return Err(ModelError::TensorType {
                name: name.to_owned(),
                ty: info.ty,
            });
        }
        let mut tensor = Tensor {
            name: name.to_owned(),
            ty: info.ty,
            dims: info.dims.clone(),
            shard,
            index,
            packed: None,
            experts: None,
        };
        if usage == Use::MatMul && dims.len() == 2 {
            let (n_in, n_out) = (dims[0] as usize, dims[1] as usize);
            let data = tensor.data(self.gguf);
            tensor.packed = PackedMatrix::new(info.ty, n_in, n_out, data).map(Arc::new);
            if tensor.packed.is_some() {
                // Products read the copy; the mapped rows leave the resident set.
                self.gguf.files()[shard].release_tensor_pages(info);
                self.released.borrow_mut().push((shard, index));
            }
        }
        if usage == Use::MatMul && dims.len() == 3 {
            let (n_in, n_out, n_expert) = (dims[0] as usize, dims[1] as usize, dims[2] as usize);
            let data = tensor.data(self.gguf);
            let experts: Option<Vec<PackedMatrix>> = data
                .chunks_exact(data.len() / n_expert)
                .map(|m| PackedMatrix::new_expert(info.ty, n_in, n_out, m))
                .collect();
            if let Some(experts) = experts {
                tensor.experts = Some(experts.into());
                self.gguf.files()[shard].release_tensor_pages(info);
                self.released.borrow_mut().push((shard, index));
            }
        }
        Ok(Some(tensor))
    }
}

/// The most transformer blocks a model may declare (llama.cpp's
/// `LLAMA_MAX_LAYERS`).
pub const MAX_LAYERS: usize = 512;

/// Hyper-parameters under `{arch}.` keys, with errors that name the key.
pub struct Hparams<'a> {
    md: &'a Metadata,
    arch: &'a str,
}

impl<'a> Hparams<'a> {
    /// Reads `{arch}.*` keys of `md`.
    pub fn new(md: &'a Metadata, arch: &'a str) -> Self {
        Hparams { md, arch }
    }

    /// The full key for `{arch}.{suffix}`.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.arch)
    }

    /// A required positive integer.
    pub fn count(&self, suffix: &str) -> Result<usize, ModelError> {
        let key = self.key(suffix);
        let v = self.md.get_u32(&key)?;
        if v == 0 {
            return Err(config(&key, "must be positive"));
        }
        Ok(v as usize)
    }

    /// `{arch}.block_count`, at most [`MAX_LAYERS`]: checked before anything
    /// is sized by it, so a corrupt count is an error rather than an attempt
    /// to allocate per-layer tables of billions of entries.
    pub fn layer_count(&self) -> Result<usize, ModelError> {
        let n = self.count("block_count")?;
        if n > MAX_LAYERS {
            return Err(config(
                &self.key("block_count"),
                &format!("{n} layers, more than the {MAX_LAYERS} any model has"),
            ));
        }
        Ok(n)
    }

    /// An optional integer.
    pub fn opt_count(&self, suffix: &str) -> Result<Option<usize>, ModelError> {
        Ok(self.md.opt_u32(&self.key(suffix))?.map(|v| v as usize))
    }

    /// An optional float.
    pub fn opt_f32(&self, suffix: &str) -> Result<Option<f32>, ModelError> {
        Ok(self.md.opt_f32(&self.key(suffix))?)
    }

    /// An optional string.
    pub fn opt_str(&self, suffix: &str) -> Result<Option<&'a str>, ModelError> {
        Ok(self.md.opt_str(&self.key(suffix))?)
    }

    /// An integer that may be given once or per layer (an array of `n_layer`);
    /// `Ok(None)` when absent.
    pub fn per_layer(
        &self,
        suffix: &str,
        n_layer: usize,
    ) -> Result<Option<Vec<usize>>, ModelError> {
        let key = self.key(suffix);
        match self.md.get(&key) {
            None => Ok(None),
            Some(Value::Array(a)) => {
                if a.len() != n_layer {
                    return Err(config(
                        &key,
                        &format!("array has {} entries, {n_layer} layers", a.len()),
                    ));
                }
                (0..n_layer)
                    .map(|i| {
                        a.integer_at(i)
                            .and_then(|v| usize::try_from(v).ok())
                            .ok_or_else(|| config(&key, "entries must be non-negative integers"))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some)
            }
            Some(_) => Ok(Some(vec![self.md.get_u32(&key)? as usize; n_layer])),
        }
    }
}

/// A [`ModelError::Config`] for `key`.
pub fn config(key: &str, reason: &str) -> ModelError {
    ModelError::Config {
        key: key.to_owned(),
        reason: reason.to_owned(),
    }
}
