//! Matrix multiplication of a weight matrix (any format, read in place from the
//! mapped file) by a batch of f32 activation rows: `y[r] = W · x[r]`.
//!
//! This is ggml's `ggml_compute_forward_mul_mat` in outline (ggml-cpu.c): every
//! activation row is converted once to the weight format's `vec_dot_type` (Q8_0,
//! Q8_K, F16, ...), then weight rows are split across the pool in contiguous
//! chunks. Where the format has a GEMM tile kernel (`gemm`: F16, Q8_0, Q4_0,
//! Q4_K, Q6_K on AVX-512 VNNI) a chunk is walked in tiles of four weight rows ×
//! up to four tokens, so each weight block is read once per tile and unpacked
//! once for four tokens; otherwise each output is one `vec_dot` of a weight row
//! with a converted activation row, the weight row being the outer loop. Nothing
//! is allocated: the caller provides the scratch the converted activations live
//! in ([`activation_scratch_len`]).
//!
//! A matrix may also carry a copy repacked at load time ([`PackedMatrix`], made
//! by [`PackedMatrix::new`] where the CPU has a packed kernel for the format);
//! then groups of 16 rows are split across the pool and each group is
//! multiplied with the batch's tokens by the packed kernel, which is faster
//! than the tiles for prefill and decode alike. See `gemm/packed.rs`.

use std::sync::atomic::{AtomicBool, Ordering};

use gguf::TensorType;

use crate::gemm::{self, NC, NR};
use crate::pool::{SharedSlice, ThreadPool};
use crate::{KernelError, traits};

pub use crate::gemm::packed::{GROUP, PackedMatrix};

/// A weight matrix viewed in place: `n_out` rows of `n_in` elements in format `ty`.
#[derive(Clone, Copy, Debug)]
pub struct Matrix<'a> {
    /// Element format of `data`.
    pub ty: TensorType,
    /// Row length (ggml's `ne[0]`).
    pub n_in: usize,
    /// Number of rows (ggml's `ne[1]`).
    pub n_out: usize,
    /// `n_out` rows of `ty.row_size(n_in)` bytes.
    pub data: &'a [u8],
    /// The same rows repacked for the packed kernels, when the owner made a
    /// copy ([`Matrix::with_packed`]); [`matmul`] then reads it instead of
    /// `data`.
    pub packed: Option<&'a PackedMatrix>,
}

impl<'a> Matrix<'a> {
    /// A view of `data` as `n_out` rows of `n_in` elements, checked for length and
    /// for the format having a dot product.
    pub fn new(
        ty: TensorType,
        n_in: usize,
        n_out: usize,
        data: &'a [u8],
    ) -> Result<Self, KernelError> {
        let tr = traits(ty).ok_or(KernelError::Unsupported(ty))?;
        if tr.vec_dot.is_none() {
            return Err(KernelError::Unsupported(ty));
        }
        let row = row_bytes(ty, n_in)?;
        let expected = row * n_out;
        if data.len() != expected {
            return Err(KernelError::Length {
                ty,
                expected,
                found: data.len(),
            });
        }
        Ok(Matrix {
            ty,
            n_in,
            n_out,
            data,
            packed: None,
        })
    }

    /// This matrix with its repacked copy `packed`, which must have been made
    /// from the same rows (checked: format and shape).
    pub fn with_packed(self, packed: &'a PackedMatrix) -> Result<Self, KernelError> {
        if packed.ty() != self.ty || packed.n_in() != self.n_in || packed.n_out() != self.n_out {
            return Err(KernelError::Length {
                ty: self.ty,
                expected: self.n_in * self.n_out,
                found: packed.n_in() * packed.n_out(),
            });
        }
        Ok(Matrix {
            packed: Some(packed),
            ..self
        })
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.data.len() / self.n_out.max(1)
    }

    /// The bytes of row `i` (panics if out of range).
    pub fn row(&self, i: usize) -> &'a [u8] {
        let n = self.row_bytes();
        &self.data[i * n..(i + 1) * n]
    }
}

/// Bytes of `n` elements of `ty`; an error unless `n` is whole blocks.
fn row_bytes(ty: TensorType, n: usize) -> Result<usize, KernelError> {
    let block = ty.block_size();
    if !n.is_multiple_of(block) {
        return Err(KernelError::PartialBlock { ty, n, block });
    }
    Ok(n / block * ty.type_size())
}

/// Scratch bytes [`matmul`] needs to hold `n_rows` activation rows of `n_in`
/// elements converted for weights of format `weight_ty`.
pub fn activation_scratch_len(
    weight_ty: TensorType,
    n_in: usize,
    n_rows: usize,
) -> Result<usize, KernelError> {
    let tr = traits(weight_ty).ok_or(KernelError::Unsupported(weight_ty))?;
    Ok(row_bytes(tr.vec_dot_type, n_in)? * n_rows)
}

/// Weight rows per task: enough tasks for load balance (4 per thread), each a
/// contiguous run of rows, a multiple of the tile height `NR`.
fn rows_per_task(n_out: usize, n_threads: usize) -> usize {
    n_out.div_ceil(n_threads * 4).next_multiple_of(NR).max(NR)
}

/// `y[r * w.n_out + o] = dot(W row o, x row r)` for `n_rows = x.len() / w.n_in`
/// activation rows.
///
/// `scratch` must hold at least [`activation_scratch_len`] bytes; `y` exactly
/// `n_rows * w.n_out` floats.
pub fn matmul(
    pool: &ThreadPool,
    w: &Matrix<'_>,
    x: &[f32],
    scratch: &mut [u8],
    y: &mut [f32],
) -> Result<(), KernelError> {
    matmul_in(pool, w, x, scratch, y, Op::MulMat)
}

/// [`matmul`] for one expert of a mixture-of-experts layer, with ggml's
/// `mul_mat_id` orders: the rows routed to the expert go through `vec_dot`
/// (or, for 8 rows or more, the tiled order of the formats ggml tiles, which
/// the packed K-quant kernels follow by themselves), never the tinyBLAS GEMM
/// that [`matmul`] follows for batches of F16, Q8_0 and Q4_0.
pub fn matmul_expert(
    pool: &ThreadPool,
    w: &Matrix<'_>,
    x: &[f32],
    scratch: &mut [u8],
    y: &mut [f32],
) -> Result<(), KernelError> {
    matmul_in(pool, w, x, scratch, y, Op::MulMatId)
}

/// Whether products are batch-invariant ([`set_batch_invariant`]).
static BATCH_INVARIANT: AtomicBool = AtomicBool::new(false);

/// Makes every product of this process sum each output in one order whatever
/// the number of rows (`HEARTH_DETERMINISTIC=1`): the dispatch table's
/// `vec_dot` per (weight row, activation row), never the tinyBLAS, tiled or
/// packed batch kernels, whose orders depend on the row count. Then a row's
/// result does not depend on the other rows of its batch (what batched
/// serving needs for reproducible output), at the cost of the batch
/// kernels' speed. Off by default (llama.cpp's orders).
pub fn set_batch_invariant(on: bool) {
    BATCH_INVARIANT.store(on, Ordering::Relaxed);
}

/// Whether [`set_batch_invariant`] is on.
pub fn batch_invariant() -> bool {
    BATCH_INVARIANT.load(Ordering::Relaxed)
}

/// Which of ggml's operations a product reproduces.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    MulMat,
    MulMatId,
}

fn matmul_in(
    pool: &ThreadPool,
    w: &Matrix<'_>,
    x: &[f32],
    scratch: &mut [u8],
    y: &mut [f32],
    op: Op,
) -> Result<(), KernelError> {
    let tr = traits(w.ty).ok_or(KernelError::Unsupported(w.ty))?;
    let vec_dot = tr.vec_dot.ok_or(KernelError::Unsupported(w.ty))?;
    let act = traits(tr.vec_dot_type).ok_or(KernelError::Unsupported(tr.vec_dot_type))?;
    // ggml-cpu's run-time converter, not the weight quantizer: on x86 they round
    // Q8_0 / Q8_1 differently, and one flipped activation moves the logits.
    let convert = act
        .activation_quantizer()
        .ok_or(KernelError::NoQuantizer(tr.vec_dot_type))?;
    let n_in = w.n_in;
    if n_in == 0 || !x.len().is_multiple_of(n_in) {
        return Err(KernelError::Length {
            ty: TensorType::F32,
            expected: n_in,
            found: x.len(),
        });
    }
    let n_rows = x.len() / n_in;
    let act_row = row_bytes(tr.vec_dot_type, n_in)?;
    let need = act_row * n_rows;
    if scratch.len() < need {
        return Err(KernelError::Length {
            ty: tr.vec_dot_type,
            expected: need,
            found: scratch.len(),
        });
    }
    if y.len() != n_rows * w.n_out {
        return Err(KernelError::Length {
            ty: TensorType::F32,
            expected: n_rows * w.n_out,
            found: y.len(),
        });
    }
    let scratch = &mut scratch[..need];

    // 1. Convert each activation row once.
    {
        let view = SharedSlice::new(scratch);
        pool.run(n_rows, &|r| {
            // SAFETY: task r writes only activation row r's bytes.
            let dst = unsafe { view.slice_mut(r * act_row, act_row) };
            convert(&x[r * n_in..(r + 1) * n_in], dst);
        });
    }
    let converted: &[u8] = scratch;
    let invariant = batch_invariant();

    // 2. Dot every weight row with every converted activation row.
    if let Some(p) = w.packed.filter(|_| !invariant) {
        packed_products(pool, p, converted, act_row, n_rows, y);
        return Ok(());
    }
    // F16 and F32 on AVX2 and AVX-512 in ggml's orders: tinyBLAS for two rows
    // or more, the dispatch table's vec_dot (ggml_vec_dot_f16/f32's order) for one.
    #[cfg(target_arch = "x86_64")]
    let float_ggml = gemm::f16_tinyblas::handles(w.ty);
    #[cfg(not(target_arch = "x86_64"))]
    let float_ggml = false;
    #[cfg(target_arch = "x86_64")]
    if float_ggml && op == Op::MulMat && n_rows >= 2 && n_in.is_multiple_of(16) && !invariant {
        gemm::f16_tinyblas::gemm(pool, w, converted, act_row, n_rows, y);
        return Ok(());
    }
    let chunk = rows_per_task(w.n_out, pool.n_threads());
    let n_tasks = w.n_out.div_ceil(chunk);
    let n_out = w.n_out;
    let out = SharedSlice::new(y);
    let act = |r: usize| &converted[r * act_row..(r + 1) * act_row];
    // ggml's expert products are vec_dot (or tiled) per pair.
    let tile_kernel = if float_ggml || op == Op::MulMatId || invariant {
        None
    } else {
        gemm::kernel(w.ty)
    };
    match tile_kernel {
        Some(kernel) => pool.run(n_tasks, &|t| {
            let first = t * chunk;
            let last = (first + chunk).min(n_out);
            let mut tile = [[0f32; NR]; NC];
            for o in (first..last).step_by(NR) {
                // A short last tile repeats its last row; those results are dropped.
                let rows: [&[u8]; NR] = std::array::from_fn(|i| w.row((o + i).min(last - 1)));
                for r0 in (0..n_rows).step_by(NC) {
                    let n_act = NC.min(n_rows - r0);
                    let acts: [&[u8]; NC] = std::array::from_fn(|c| act(r0 + c.min(n_act - 1)));
                    kernel.tile(n_in, rows, &acts[..n_act], &mut tile);
                    for (c, outs) in tile.iter().enumerate().take(n_act) {
                        for (i, &v) in outs.iter().enumerate().take(last - o) {
                            // SAFETY: output (r, o + i) belongs to the task owning
                            // weight row o + i.
                            unsafe { out.write((r0 + c) * n_out + o + i, v) };
                        }
                    }
                }
            }
        }),
        None => {
            // ggml-cpu multiplies batches of TILED_MIN_BATCH rows or more of
            // some formats with its tiled kernels, in another float order.
            let vec_dot = match crate::simd::tiled_dot(w.ty) {
                Some(tiled) if n_rows >= crate::simd::TILED_MIN_BATCH && !invariant => tiled,
                _ => vec_dot,
            };
            pool.run(n_tasks, &|t| {
                let first = t * chunk;
                let last = (first + chunk).min(n_out);
                for o in first..last {
                    let wrow = w.row(o);
                    for r in 0..n_rows {
                        let v = vec_dot(n_in, wrow, act(r));
                        // SAFETY: output (r, o) belongs to the task owning weight row o.
                        unsafe { out.write(r * n_out + o, v) };
                    }
                }
            })
        }
    }
    Ok(())
}

/// Tokens per packed kernel call: the group's results for them stay on the
/// stack, and their converted activations in L2.
const PACKED_TOKENS: usize = 64;

/// Step 2 of [`matmul`] for a packed matrix: groups of 16 rows split across
/// the pool (contiguous runs of groups, about four per thread), each group
/// multiplied with the tokens [`PACKED_TOKENS`] at a time.
fn packed_products(
    pool: &ThreadPool,
    p: &PackedMatrix,
    converted: &[u8],
    act_row: usize,
    n_rows: usize,
    y: &mut [f32],
) {
    let n_out = p.n_out();
    let n_groups = p.n_groups();
    let chunk = n_groups.div_ceil(pool.n_threads() * 4).max(1);
    let n_tasks = n_groups.div_ceil(chunk);
    let out = SharedSlice::new(y);
    pool.run(n_tasks, &|t| {
        let groups = t * chunk..((t + 1) * chunk).min(n_groups);
        let mut tile = [[0f32; GROUP]; PACKED_TOKENS];
        // Runs as even as they go (65 tokens: 33 + 32, not 64 + 1): a kernel
        // may follow ggml's decoding order for calls of fewer than
        // TILED_MIN_BATCH tokens, which must then mean a matmul of that few.
        let n_runs = n_rows.div_ceil(PACKED_TOKENS);
        let mut r0 = 0;
        for run in 0..n_runs {
            let n = n_rows / n_runs + usize::from(run < n_rows % n_runs);
            let acts = &converted[r0 * act_row..(r0 + n) * act_row];
            for g in groups.clone() {
                p.gemm_group(g, acts, act_row, &mut tile[..n]);
                let o = g * GROUP;
                let valid = GROUP.min(n_out - o);
                for (c, outs) in tile[..n].iter().enumerate() {
                    // SAFETY: outputs (r0 + c, o..o + valid) belong to the task
                    // owning group g.
                    let dst = unsafe { out.slice_mut((r0 + c) * n_out + o, valid) };
                    dst.copy_from_slice(&outs[..valid]);
                }
            }
            r0 += n;
        }
    });
}

/// Dequantizes row `i` of `w` into `out` (`w.n_in` floats): an embedding lookup.
pub fn dequantize_row(w: &Matrix<'_>, i: usize, out: &mut [f32]) -> Result<(), KernelError> {
    if i >= w.n_out {
        return Err(KernelError::Length {
            ty: w.ty,
            expected: w.n_out,
            found: i,
        });
    }
    crate::dequantize(w.ty, w.row(i), out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_data::values;

    /// The same product computed one dot at a time through the checked entry points.
    fn reference(ty: TensorType, wq: &[u8], n_in: usize, n_out: usize, x: &[f32]) -> Vec<f32> {
        let vt = traits(ty).unwrap().vec_dot_type;
        let row = ty.row_size(n_in as u64).unwrap() as usize;
        let arow = vt.row_size(n_in as u64).unwrap() as usize;
        let mut y = Vec::new();
        for xr in x.chunks(n_in) {
            let mut q = vec![0u8; arow];
            (traits(vt).unwrap().activation_quantizer().unwrap())(xr, &mut q);
            for o in 0..n_out {
                y.push(crate::dot(ty, n_in, &wq[o * row..(o + 1) * row], &q).unwrap());
            }
        }
        y
    }

    #[test]
    fn matches_one_dot_at_a_time_for_each_activation_format() {
        let pool = ThreadPool::new(3);
        // 37 rows: a short last tile; 5 tokens: a full and a partial token group.
        let (n_in, n_out, n_rows) = (256, 37, 5);
        let w = values(n_in * n_out, 1);
        let x = values(n_in * n_rows, 2);
        for ty in [
            TensorType::F32,
            TensorType::F16,
            TensorType::Q8_0,
            TensorType::Q4_0,
            TensorType::Q4_K,
            TensorType::Q6_K,
            TensorType::Q5_K,
        ] {
            let mut wq = vec![0u8; ty.row_size(n_in as u64).unwrap() as usize * n_out];
            crate::quantize(ty, &w, &mut wq).unwrap();
            let m = Matrix::new(ty, n_in, n_out, &wq).unwrap();
            let mut scratch = vec![0u8; activation_scratch_len(ty, n_in, n_rows).unwrap()];
            let mut y = vec![0f32; n_rows * n_out];
            matmul(&pool, &m, &x, &mut scratch, &mut y).unwrap();
            // Tile kernels add the same block products in another order.
            let want = reference(ty, &wq, n_in, n_out, &x);
            for (i, (a, b)) in y.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{ty} [{i}]: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    #[cfg_attr(
        any(not(hearth_avx2), hearth_no_repack),
        ignore = "needs AVX2 and repacking (packed kernels)"
    )]
    fn packed_matrices_match_one_dot_at_a_time() {
        let pool = ThreadPool::new(3);
        // 37 rows: a padded last group; 70 tokens: more than one kernel call.
        let (n_in, n_out, n_rows) = (256, 37, 70);
        let w = values(n_in * n_out, 3);
        let x = values(n_in * n_rows, 4);
        for ty in [
            TensorType::Q4_0,
            TensorType::Q8_0,
            TensorType::Q4_K,
            TensorType::Q6_K,
        ] {
            let mut wq = vec![0u8; ty.row_size(n_in as u64).unwrap() as usize * n_out];
            crate::quantize(ty, &w, &mut wq).unwrap();
            let p = PackedMatrix::new(ty, n_in, n_out, &wq)
                .unwrap_or_else(|| panic!("no packed kernel for {ty}"));
            let m = Matrix::new(ty, n_in, n_out, &wq)
                .unwrap()
                .with_packed(&p)
                .unwrap();
            let mut scratch = vec![0u8; activation_scratch_len(ty, n_in, n_rows).unwrap()];
            let mut y = vec![f32::NAN; n_rows * n_out];
            matmul(&pool, &m, &x, &mut scratch, &mut y).unwrap();
            let want = reference(ty, &wq, n_in, n_out, &x);
            for (i, (a, b)) in y.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{ty} [{i}]: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn a_packed_copy_of_another_shape_is_refused() {
        let wq = vec![0u8; 34 * 2 * 32];
        let m = Matrix::new(TensorType::Q8_0, 64, 32, &wq).unwrap();
        if let Some(p) = PackedMatrix::new(TensorType::Q8_0, 32, 64, &wq) {
            assert!(m.with_packed(&p).is_err());
        }
    }

    #[test]
    fn f32_product_is_the_plain_sum() {
        let pool = ThreadPool::new(2);
        let w: Vec<f32> = (0..6).map(|i| i as f32).collect(); // rows [0 1 2], [3 4 5]
        let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
        let m = Matrix::new(TensorType::F32, 3, 2, &bytes).unwrap();
        let x = [1.0, 10.0, 100.0, -1.0, 0.0, 1.0];
        let mut scratch = vec![0u8; activation_scratch_len(TensorType::F32, 3, 2).unwrap()];
        let mut y = [0f32; 4];
        matmul(&pool, &m, &x, &mut scratch, &mut y).unwrap();
        assert_eq!(y, [210.0, 543.0, 2.0, 2.0]);
    }

    #[test]
    fn bad_lengths_are_errors() {
        let pool = ThreadPool::new(1);
        let bytes = vec![0u8; 4 * 6];
        assert!(Matrix::new(TensorType::F32, 3, 3, &bytes).is_err());
        let m = Matrix::new(TensorType::F32, 3, 2, &bytes).unwrap();
        let mut scratch = vec![0u8; 4];
        let mut y = [0f32; 2];
        assert!(matmul(&pool, &m, &[0.0; 3], &mut scratch, &mut y).is_err());
        assert!(dequantize_row(&m, 2, &mut [0.0; 3]).is_err());
    }
}
