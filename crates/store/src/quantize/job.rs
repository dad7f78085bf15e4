//! The quantize job (llama.cpp src/llama-quant.cpp `llama_model_quantize_impl`):
//! decide every tensor's type, check up front everything that would stop the job
//! half-way, then stream tensors from the mapped input to the output in
//! llama.cpp's order, rows split across threads. The output is written under a
//! temporary name and renamed at the end, so a failed or interrupted run leaves
//! no file behind.

use std::collections::BTreeMap;
use std::path::Path;

use gguf::{GgufModel, GgufStreamWriter, Metadata, TensorInfo, TensorPlan, TensorType, Value};

use super::rules::{self, Decision, Options, TensorIn};
use super::{Imatrix, ModelFacts, Preset, QuantizeError};

/// ggml's `GGML_QNT_VERSION`, written as `general.quantization_version`.
const QUANTIZATION_VERSION: u32 = 2;
/// Source rows converted to f32 at a time, at most (bounds memory per tensor).
const SLAB_VALUES: usize = 8 << 20;

/// What to quantize, and how.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// The model to read (any shard of a split model).
    pub input: &'a Path,
    /// The file to write.
    pub output: &'a Path,
    /// Preset and overrides.
    pub options: Options,
    /// `--allow-requantize`: quantized inputs may be quantized again.
    pub allow_requantize: bool,
    /// The importance matrix and the file name it came from (recorded in the
    /// output's `quantize.imatrix.file`).
    pub imatrix: Option<(&'a Imatrix, &'a str)>,
    /// Worker threads (at least 1).
    pub n_threads: usize,
}

/// Progress, reported as the job goes.
#[derive(Clone, Debug)]
pub enum Event<'a> {
    /// Types are decided; `bytes_in` of tensor data will be read.
    Planned {
        /// Tensors in the model.
        n_tensors: usize,
        /// Their total size in the input.
        bytes_in: u64,
    },
    /// One tensor is written.
    Tensor {
        /// Its position in the output, from 0.
        index: usize,
        /// Its name.
        name: &'a str,
        /// Its type in the input.
        from: TensorType,
        /// Its type in the output.
        to: TensorType,
        /// Its size in the input.
        bytes_in: u64,
        /// Its size in the output.
        bytes_out: u64,
    },
}

/// What the job did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Tensors written.
    pub n_tensors: usize,
    /// Tensor bytes read.
    pub bytes_in: u64,
    /// Tensor bytes written.
    pub bytes_out: u64,
    /// Elements in all tensors (for bits per weight).
    pub n_elements: u64,
    /// Tensors whose row length forced a fallback type.
    pub n_fallback: usize,
    /// The output's type per tensor, in file order.
    pub types: Vec<(String, TensorType)>,
}

/// One tensor's job: its decision, the input descriptor, its imatrix slice.
struct Item<'a> {
    info: &'a TensorInfo,
    decision: Decision,
    weights: Option<&'a [f32]>,
}

/// Quantizes `req.input` into `req.output`, reporting progress to `progress`.
pub fn quantize_file(
    req: &Request,
    progress: &mut dyn FnMut(Event),
) -> Result<Report, QuantizeError> {
    if let (Ok(a), Ok(b)) = (req.input.canonicalize(), req.output.canonicalize())
        && a == b
    {
        return Err(QuantizeError::SameFile(a));
    }
    let model = GgufModel::open(req.input)?;
    let facts = ModelFacts::from_metadata(model.metadata())?;
    let (shards, infos): (Vec<usize>, Vec<&TensorInfo>) = model.tensors().unzip();
    let imatrix = req.imatrix.filter(|(m, _)| !m.entries.is_empty());
    if let Some((m, _)) = imatrix
        && let Some((name, _)) = m
            .entries
            .iter()
            .find(|(_, v)| v.iter().any(|x| !x.is_finite()))
    {
        return Err(QuantizeError::ImatrixNotFinite(name.clone()));
    }
    let mut opts = req.options.clone();
    opts.has_imatrix = imatrix.is_some();
    let ins: Vec<TensorIn> = infos
        .iter()
        .map(|t| TensorIn {
            name: &t.name,
            ty: t.ty,
            dims: &t.dims,
        })
        .collect();
    let decisions = rules::plan(&facts, &opts, &ins)?;
    let items = check(req, &opts, &infos, decisions, imatrix.map(|(m, _)| m))?;

    let meta = output_metadata(model.metadata(), req, &infos, imatrix);
    let plans: Vec<TensorPlan> = items
        .iter()
        .map(|it| TensorPlan {
            name: it.info.name.clone(),
            ty: it.decision.ty,
            dims: it.info.dims[..rules::n_dims(&it.info.dims)].to_vec(),
        })
        .collect();
    let mut out = GgufStreamWriter::create(req.output, &meta, &plans)?;
    let bytes_in: u64 = infos.iter().map(|t| t.size).sum();
    progress(Event::Planned {
        n_tensors: items.len(),
        bytes_in,
    });
    let mut report = Report {
        n_tensors: items.len(),
        bytes_in,
        bytes_out: 0,
        n_elements: infos.iter().map(|t| t.n_elements()).sum(),
        n_fallback: items.iter().filter(|it| it.decision.fell_back).count(),
        types: Vec::with_capacity(items.len()),
    };
    let mut f32_buf = Vec::new();
    let mut q_buf = Vec::new();
    for (index, it) in items.iter().enumerate() {
        let src = model.tensor_data(&it.info.name)?;
        let to = it.decision.ty;
        let bytes_out = if to == it.info.ty {
            out.write(src)?;
            src.len() as u64
        } else {
            convert(
                it,
                src,
                req.n_threads.max(1),
                &mut f32_buf,
                &mut q_buf,
                &mut out,
            )?
        };
        // Done with the source: drop its pages from the resident set, as
        // llama-quantize unmaps each weight (memory stays near one tensor).
        model.files()[shards[it.decision.index]].release_tensor_pages(it.info);
        report.bytes_out += bytes_out;
        report.types.push((it.info.name.clone(), to));
        progress(Event::Tensor {
            index,
            name: &it.info.name,
            from: it.info.ty,
            to,
            bytes_in: it.info.size,
            bytes_out,
        });
    }
    out.finish()?;
    Ok(report)
}

/// Everything llama-quantize would stop on half-way, checked before writing.
fn check<'a>(
    req: &Request,
    opts: &Options,
    infos: &[&'a TensorInfo],
    decisions: Vec<Decision>,
    imatrix: Option<&'a Imatrix>,
) -> Result<Vec<Item<'a>>, QuantizeError> {
    let preset = opts.preset.name();
    // llama-quantize looks at every tensor for this first.
    if imatrix.is_none()
        && let Some(d) = decisions
            .iter()
            .find(|d| d.requires_imatrix && d.ty != infos[d.index].ty)
    {
        return Err(QuantizeError::NeedsImatrix {
            preset,
            tensor: infos[d.index].name.clone(),
            ty: d.ty,
        });
    }
    let mut items = Vec::with_capacity(decisions.len());
    for decision in decisions {
        let info = infos[decision.index];
        let to = decision.ty;
        let mut weights = None;
        if to != info.ty {
            if let Some(m) = imatrix
                && let Some(w) = m.entries.get(&info.name)
            {
                let expected = info.dims[0] * info.dims.get(2).copied().unwrap_or(1);
                if w.len() as u64 == expected {
                    weights = Some(w.as_slice());
                } else if !matches!(
                    info.name.as_str(),
                    "token_embd.weight" | "per_layer_token_embd.weight"
                ) {
                    return Err(QuantizeError::ImatrixSize {
                        tensor: info.name.clone(),
                        found: w.len(),
                        expected,
                    });
                }
            }
            if weights.is_none() && decision.requires_imatrix {
                return Err(QuantizeError::NeedsImatrix {
                    preset,
                    tensor: info.name.clone(),
                    ty: to,
                });
            }
            if info.ty.is_quantized() && !req.allow_requantize {
                return Err(QuantizeError::Requantize {
                    tensor: info.name.clone(),
                    ty: info.ty,
                });
            }
            if kernels::traits(info.ty).is_none() {
                return Err(QuantizeError::NotConvertible {
                    tensor: info.name.clone(),
                    ty: info.ty,
                });
            }
            if !kernels::can_quantize(to, weights.is_some()) {
                return Err(QuantizeError::NoQuantizer {
                    tensor: info.name.clone(),
                    ty: to,
                    weighted: weights.is_some(),
                });
            }
        }
        items.push(Item {
            info,
            decision,
            weights,
        });
    }
    Ok(items)
}

/// The input's metadata as llama-quantize rewrites it: quantization version and
/// file type moved to the end, split keys dropped, then the imatrix keys.
fn output_metadata(
    input: &Metadata,
    req: &Request,
    infos: &[&TensorInfo],
    imatrix: Option<(&Imatrix, &str)>,
) -> Metadata {
    let mut meta = input.clone();
    let file_type = match req.options.preset {
        Preset::Copy => input
            .opt_u32("general.file_type")
            .ok()
            .flatten()
            .unwrap_or_else(|| guess_file_type(infos)),
        p => p.file_type(),
    };
    meta.set_last(
        "general.quantization_version",
        Value::U32(QUANTIZATION_VERSION),
    );
    meta.set_last("general.file_type", Value::U32(file_type));
    for key in ["split.no", "split.count", "split.tensors.count"] {
        meta.remove(key);
    }
    if let Some((m, file)) = imatrix {
        // llama-quantize passes these as overrides of at most 127 bytes.
        let truncate = |s: &str| {
            let mut end = s.len().min(127);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s[..end].to_owned()
        };
        meta.set_last("quantize.imatrix.file", Value::String(truncate(file)));
        if let Some(d) = m.datasets.first() {
            meta.set_last("quantize.imatrix.dataset", Value::String(truncate(d)));
        }
        meta.set_last(
            "quantize.imatrix.entries_count",
            Value::U32(m.entries.len() as u32),
        );
        if m.chunk_count > 0 {
            meta.set_last("quantize.imatrix.chunks_count", Value::U32(m.chunk_count));
        }
    }
    meta
}

/// llama.cpp's file type for a model without `general.file_type`: that of its
/// most common tensor type, marked as guessed (`LLAMA_FTYPE_GUESSED`).
fn guess_file_type(infos: &[&TensorInfo]) -> u32 {
    const GUESSED: u32 = 1024;
    let mut counts: BTreeMap<TensorType, usize> = BTreeMap::new();
    let mut best = (0, TensorType::F32);
    let mut names: Vec<&str> = infos.iter().map(|t| t.name.as_str()).collect();
    names.sort_by(|a, b| rules::llama_order(a, b));
    for name in names {
        let ty = infos
            .iter()
            .find(|t| t.name == name)
            .map_or(TensorType::F32, |t| t.ty);
        let n = counts.entry(ty).or_default();
        *n += 1;
        if *n > best.0 {
            best = (*n, ty);
        }
    }
    use TensorType as T;
    let ftype = match best.1 {
        T::F16 => 1,
        T::BF16 => 32,
        T::Q3_K => 12,
        T::Q4_K => 15,
        T::Q5_K => 17,
        T::IQ2_XS => 20,
        T::IQ2_S => 28,
        ty => [
            Preset::Q4_0,
            Preset::Q4_1,
            Preset::Q5_0,
            Preset::Q5_1,
            Preset::Q8_0,
            Preset::Q2_K,
            Preset::Q6_K,
            Preset::TQ1_0,
            Preset::TQ2_0,
            Preset::IQ2_XXS,
            Preset::IQ3_XXS,
            Preset::IQ1_S,
            Preset::IQ1_M,
            Preset::IQ4_NL,
            Preset::IQ4_XS,
            Preset::IQ3_S,
        ]
        .into_iter()
        .find(|p| p.default_type() == ty)
        .map_or(0, Preset::file_type),
    };
    ftype | GUESSED
}

/// Converts one tensor slab by slab: source rows to f32, quantized across
/// threads (rows are independent, so any split writes the same bytes), with the
/// importance of each row's expert.
fn convert(
    it: &Item,
    src: &[u8],
    n_threads: usize,
    f32_buf: &mut Vec<f32>,
    q_buf: &mut Vec<u8>,
    out: &mut GgufStreamWriter,
) -> Result<u64, QuantizeError> {
    let (from, to) = (it.info.ty, it.decision.ty);
    let name = &it.info.name;
    let n_per_row = it.info.dims[0] as usize;
    let n_rows = (it.info.n_elements() / it.info.dims[0].max(1)) as usize;
    let rows_per_expert = it.info.dims.get(1).copied().unwrap_or(1) as usize;
    let row_in = from.row_size(n_per_row as u64).unwrap_or(0) as usize;
    let row_out = to
        .row_size(n_per_row as u64)
        .ok_or_else(|| QuantizeError::NoFallback {
            tensor: name.clone(),
            ty: to,
            ncols: n_per_row as u64,
        })? as usize;
    let slab_rows = (SLAB_VALUES / n_per_row.max(1)).max(1);
    let mut written = 0u64;
    let mut row = 0;
    while row < n_rows {
        let rows = slab_rows.min(n_rows - row);
        f32_buf.resize(rows * n_per_row, 0.0);
        q_buf.resize(rows * row_out, 0);
        let src_rows = &src[row * row_in..(row + rows) * row_in];
        kernels::dequantize(from, src_rows, f32_buf).map_err(|_| {
            QuantizeError::NotConvertible {
                tensor: name.clone(),
                ty: from,
            }
        })?;
        if f32_buf.iter().any(|x| !x.is_finite()) {
            return Err(QuantizeError::NotFinite(name.clone()));
        }
        let per_thread = rows.div_ceil(n_threads);
        let first_row = row;
        let result: Result<(), kernels::KernelError> = std::thread::scope(|s| {
            let handles: Vec<_> = f32_buf
                .chunks(per_thread * n_per_row)
                .zip(q_buf.chunks_mut(per_thread * row_out))
                .enumerate()
                .map(|(k, (x, q))| {
                    s.spawn(move || {
                        for (r, (xr, qr)) in x
                            .chunks_exact(n_per_row)
                            .zip(q.chunks_exact_mut(row_out))
                            .enumerate()
                        {
                            let expert = (first_row + k * per_thread + r) / rows_per_expert;
                            let w = it
                                .weights
                                .map(|w| &w[expert * n_per_row..(expert + 1) * n_per_row]);
                            kernels::quantize_weighted(to, xr, qr, w)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().expect("quantizer threads do not panic"))
        });
        result.map_err(|_| QuantizeError::NoQuantizer {
            tensor: name.clone(),
            ty: to,
            weighted: it.weights.is_some(),
        })?;
        out.write(q_buf)?;
        written += q_buf.len() as u64;
        row += rows;
    }
    Ok(written)
}
