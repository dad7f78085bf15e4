//! F16 and F32 weights × activations of their own format for a batch of two
//! or more tokens, in the order of llama.cpp's tinyBLAS
//! (ggml-cpu/llamafile/sgemm.cpp, `tinyBLAS<16, __m512, __m512, T, T,
//! float>` on AVX-512, `tinyBLAS<8, __m256, __m256, T, T, float>` on AVX2),
//! which ggml-cpu uses for an F16 or F32 matmul of `n >= 2` activation rows
//! whose length is a multiple of the vector width (one row goes to
//! `ggml_vec_dot_f16` / `ggml_vec_dot_f32`, the dispatch table's `vec_dot`s).
//! Here rows must be a multiple of 16 long at both levels; shorter multiples of
//! 8 stay with `vec_dot` on AVX2.
//!
//! Every output is sixteen (AVX-512) or eight (AVX2) f32 lanes of fused
//! multiply-adds, lane `t` summing the products of values `k ≡ t (mod
//! lanes)` in order, reduced at the end as GCC's `_mm512_reduce_add_ps`, or
//! tinyBLAS' `hsum` of a `__m256`. Tile shapes do not change that order, so
//! the kernels pick their own: four weight rows × [`TOKENS`] tokens, 24
//! accumulators, on AVX-512; four rows × three tokens, 12 accumulators, twice
//! per tile on AVX2 (16 ymm registers); each weight vector converted once for
//! all tokens of the pass. The activations (already rounded to f16 by the
//! matmul's conversion step for F16 weights) are widened to f32 once, which
//! is exact, and interleaved per tile of tokens as `[block of 16
//! values][token][16]`, so a tile's loads are one contiguous stream.

use std::arch::x86_64::*;

use crate::matmul::Matrix;
use crate::pool::{SharedSlice, ThreadPool};
use gguf::TensorType;

use crate::simd::{Cpu, cpu_level};

/// Tokens per tile.
const TOKENS: usize = 6;
/// Weight rows per tile.
const ROWS: usize = 4;
/// Weight rows per block of work: their 16 × `n_in` f16 stay in L2 while
/// every token tile passes.
const ROW_BLOCK: usize = 16;

/// Whether this CPU runs the kernels (the AVX2 and AVX-512 levels, where the
/// F16 `vec_dot` follows ggml's order for one row).
pub(crate) fn available() -> bool {
    cpu_level() >= Cpu::Avx2
}

/// Whether [`gemm`] multiplies weights of format `ty`.
pub(crate) fn handles(ty: TensorType) -> bool {
    matches!(ty, TensorType::F16 | TensorType::F32) && available()
}

/// `y[r * n_out + o] = dot(weight row o, activation row r)` for the F16 or
/// F32 matrix `w` and `n_rows` activation rows of the same format, `act_row`
/// bytes each, in `acts`.
///
/// Panics unless [`handles`] `w.ty`, its rows are a multiple of 16 long, and
/// the buffers hold what they should: [`crate::matmul`] checks first.
pub(crate) fn gemm(
    pool: &ThreadPool,
    w: &Matrix<'_>,
    acts: &[u8],
    act_row: usize,
    n_rows: usize,
    y: &mut [f32],
) {
    assert!(handles(w.ty));
    let f16 = w.ty == TensorType::F16;
    let size = if f16 { 2 } else { 4 };
    let (n_in, n_out) = (w.n_in, w.n_out);
    assert!(n_in.is_multiple_of(16) && act_row == size * n_in);
    assert!(acts.len() >= n_rows * act_row && y.len() == n_rows * n_out);
    let nb = n_in / 16;
    let avx512 = cpu_level() >= Cpu::Avx512;
    let n_tiles = n_rows.div_ceil(TOKENS);
    let tile_len = nb * TOKENS * 16;

    // Activations widened and interleaved, one tile per task; the padding
    // tokens of the last tile stay zero.
    let mut wide = vec![0f32; n_tiles * tile_len];
    {
        let view = SharedSlice::new(&mut wide);
        pool.run(n_tiles, &|tile| {
            // SAFETY: task `tile` alone writes tile `tile`.
            let dst = unsafe { view.slice_mut(tile * tile_len, tile_len) };
            let first = tile * TOKENS;
            for t in 0..TOKENS.min(n_rows - first) {
                let row = &acts[(first + t) * act_row..(first + t + 1) * act_row];
                let dst = dst[16 * t..].as_mut_ptr();
                // SAFETY: the row holds nb blocks of 16 values, the tile
                // nb × TOKENS × 16 floats; the CPU has AVX-512 or AVX2
                // (asserted).
                unsafe {
                    if avx512 {
                        widen(f16, nb, row.as_ptr(), dst);
                    } else {
                        widen_avx2(f16, nb, row.as_ptr(), dst);
                    }
                }
            }
        });
    }

    let n_blocks = n_out.div_ceil(ROW_BLOCK);
    let out = SharedSlice::new(y);
    let wide = &wide;
    pool.run(n_blocks, &|block| {
        let rows = block * ROW_BLOCK..((block + 1) * ROW_BLOCK).min(n_out);
        for tile in 0..n_tiles {
            let a = wide[tile * tile_len..].as_ptr();
            let first = tile * TOKENS;
            let n_tok = TOKENS.min(n_rows - first);
            let mut o = rows.start;
            while o < rows.end {
                let r = ROWS.min(rows.end - o);
                let mut res = [[0f32; TOKENS]; ROWS];
                // SAFETY: rows o..o + r hold nb blocks of 16 f16 each (the
                // matrix is checked), the tile nb × TOKENS × 16 floats; the CPU
                // has AVX-512 or AVX2 (asserted above).
                unsafe {
                    let w_at = |i: usize| w.row(o + i.min(r - 1)).as_ptr();
                    if !avx512 {
                        // Four rows (a short group repeats its last one,
                        // whose results are dropped) × three tokens, twice.
                        let w4 = std::array::from_fn(w_at);
                        kernel_avx2(f16, nb, w4, a, 0, &mut res);
                        kernel_avx2(f16, nb, w4, a, TOKENS / 2, &mut res);
                    } else if r == ROWS {
                        kernel::<ROWS>(f16, nb, std::array::from_fn(w_at), a, &mut res);
                    } else {
                        // A short last group, one row at a time.
                        let mut one = [[0f32; TOKENS]; 1];
                        for (i, dst) in res.iter_mut().enumerate().take(r) {
                            kernel::<1>(f16, nb, [w_at(i)], a, &mut one);
                            *dst = one[0];
                        }
                    }
                }
                for (i, outs) in res.iter().enumerate().take(r) {
                    for (t, &v) in outs.iter().enumerate().take(n_tok) {
                        // SAFETY: output (first + t, o + i) belongs to the task
                        // owning row block `block`.
                        unsafe { out.write((first + t) * n_out + o + i, v) };
                    }
                }
                o += r;
            }
        }
    });
}

/// The `nb` blocks of 16 values at `row` (f16, or f32 unless `f16`) as f32,
/// block `b` at `dst + b * TOKENS * 16` (one token's column of a tile).
///
/// # Safety
/// `row` valid for `nb` blocks, `dst` for `(nb - 1) * TOKENS * 16 + 16`
/// floats; the CPU has AVX-512 F and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn widen(f16: bool, nb: usize, row: *const u8, dst: *mut f32) {
    for b in 0..nb {
        // SAFETY: block b of the row and of the tile column (caller).
        unsafe {
            let v = if f16 {
                _mm512_cvtph_ps(_mm256_loadu_si256(row.add(32 * b).cast()))
            } else {
                _mm512_loadu_ps(row.add(64 * b).cast())
            };
            _mm512_storeu_ps(dst.add(b * TOKENS * 16), v);
        }
    }
}

/// `R` weight rows (`nb` blocks of 16 f16, or f32 unless `f16`, at `w[i]`) ×
/// one interleaved tile of [`TOKENS`] activation rows at `a` into `out[i][t]`.
///
/// # Safety
/// `w[i]` valid for `nb` blocks, `a` for `nb * TOKENS * 16` floats; the CPU
/// has AVX-512 F, BW and VL, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn kernel<const R: usize>(
    f16: bool,
    nb: usize,
    w: [*const u8; R],
    a: *const f32,
    out: &mut [[f32; TOKENS]; R],
) {
    let mut acc = [[_mm512_setzero_ps(); TOKENS]; R];
    for b in 0..nb {
        // SAFETY: block b of every row and of the tile is in bounds (caller).
        unsafe {
            let wv: [__m512; R] = std::array::from_fn(|i| {
                if f16 {
                    _mm512_cvtph_ps(_mm256_loadu_si256(w[i].add(32 * b).cast()))
                } else {
                    _mm512_loadu_ps(w[i].add(64 * b).cast())
                }
            });
            let ab = a.add(b * TOKENS * 16);
            // `t` indexes the tile's tokens and every row's accumulators.
            #[allow(clippy::needless_range_loop)]
            for t in 0..TOKENS {
                let av = _mm512_loadu_ps(ab.add(16 * t));
                for i in 0..R {
                    acc[i][t] = _mm512_fmadd_ps(wv[i], av, acc[i][t]);
                }
            }
        }
    }
    for (o, a) in out.iter_mut().zip(&acc) {
        for (v, &s) in o.iter_mut().zip(a) {
            // Rust's lane order is GCC's (this file's test checks the bits).
            *v = _mm512_reduce_add_ps(s);
        }
    }
}

/// [`widen`] on AVX2.
///
/// # Safety
/// As [`widen`], with AVX2 and F16C instead of AVX-512.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn widen_avx2(f16: bool, nb: usize, row: *const u8, dst: *mut f32) {
    for b in 0..nb {
        // SAFETY: block b of the row and of the tile column (caller).
        unsafe {
            for half in 0..2 {
                let v = if f16 {
                    _mm256_cvtph_ps(_mm_loadu_si128(row.add(32 * b + 16 * half).cast()))
                } else {
                    _mm256_loadu_ps(row.add(64 * b + 32 * half).cast())
                };
                _mm256_storeu_ps(dst.add(b * TOKENS * 16 + 8 * half), v);
            }
        }
    }
}

/// tinyBLAS' `hsum` of eight lanes: `(lo + hi)` as four, then pairs, then
/// the two halves.
#[target_feature(enable = "avx2")]
#[inline]
fn hsum8(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_extractf128_ps::<1>(v), _mm256_castps256_ps128(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Four weight rows (`nb` blocks of 16 f16, or f32 unless `f16`, at `w[i]`) ×
/// tokens `t0..t0 + 3` of one interleaved tile at `a` into `out[i][t]`, in
/// eight lanes per output (each block of 16 as two steps of 8).
///
/// # Safety
/// `w[i]` valid for `nb` blocks, `a` for `nb * TOKENS * 16` floats,
/// `t0 + 3 <= TOKENS`; the CPU has AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn kernel_avx2(
    f16: bool,
    nb: usize,
    w: [*const u8; ROWS],
    a: *const f32,
    t0: usize,
    out: &mut [[f32; TOKENS]; ROWS],
) {
    const T: usize = 3;
    let mut acc = [[_mm256_setzero_ps(); T]; ROWS];
    for b in 0..nb {
        for half in 0..2 {
            // SAFETY: block b of every row and of the tile is in bounds (caller).
            unsafe {
                let wv: [__m256; ROWS] = std::array::from_fn(|i| {
                    if f16 {
                        _mm256_cvtph_ps(_mm_loadu_si128(w[i].add(32 * b + 16 * half).cast()))
                    } else {
                        _mm256_loadu_ps(w[i].add(64 * b + 32 * half).cast())
                    }
                });
                let ab = a.add(b * TOKENS * 16 + 8 * half);
                for t in 0..T {
                    let av = _mm256_loadu_ps(ab.add(16 * (t0 + t)));
                    for (row, &wv) in acc.iter_mut().zip(&wv) {
                        row[t] = _mm256_fmadd_ps(wv, av, row[t]);
                    }
                }
            }
        }
    }
    for (o, a) in out.iter_mut().zip(&acc) {
        for (v, &s) in o[t0..t0 + T].iter_mut().zip(a) {
            *v = hsum8(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data::values;

    type Encode = dyn Fn(&[f32]) -> Vec<u8>;
    type Decode = dyn Fn(&[u8]) -> Vec<f32>;

    /// tinyBLAS' order written out in scalar code: sixteen lanes of fused
    /// multiply-adds, then GCC's reduction tree (AVX-512), or eight lanes and
    /// tinyBLAS' `hsum` (AVX2).
    fn tinyblas_dot(w: &[f32], x: &[f32]) -> f32 {
        if cpu_level() >= Cpu::Avx512 {
            let lanes = lane_sums::<16>(w, x);
            let h: [f32; 8] = std::array::from_fn(|i| lanes[i] + lanes[i + 8]);
            let q: [f32; 4] = std::array::from_fn(|i| h[i] + h[i + 4]);
            (q[0] + q[2]) + (q[1] + q[3])
        } else {
            let lanes = lane_sums::<8>(w, x);
            let q: [f32; 4] = std::array::from_fn(|i| lanes[i + 4] + lanes[i]);
            (q[0] + q[2]) + (q[1] + q[3])
        }
    }

    /// `L` lanes, lane `t` the fused multiply-adds of values `k ≡ t (mod L)`.
    fn lane_sums<const L: usize>(w: &[f32], x: &[f32]) -> [f32; L] {
        let mut lanes = [0f32; L];
        for (wb, xb) in w.chunks_exact(L).zip(x.chunks_exact(L)) {
            for t in 0..L {
                lanes[t] = wb[t].mul_add(xb[t], lanes[t]);
            }
        }
        lanes
    }

    /// Every output has the bits of the scalar tinyBLAS order, for token
    /// counts with a short last tile and an odd number of rows.
    #[test]
    #[cfg_attr(not(hearth_avx2), ignore = "needs AVX2 (tinyBLAS order kernels)")]
    fn matches_tinyblas_order_bit_for_bit() {
        assert!(available());
        let pool = ThreadPool::new(3);
        let (n_in, n_out) = (272, 37);
        let to_f16 = |v: &[f32]| -> Vec<u8> {
            v.iter()
                .flat_map(|&x| crate::formats::float::f32_to_f16(x).to_le_bytes())
                .collect()
        };
        let back = |b: &[u8]| -> Vec<f32> {
            b.chunks_exact(2)
                .map(|c| crate::formats::float::f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect()
        };
        let to_f32 = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let back32 = |b: &[u8]| -> Vec<f32> {
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        for (ty, n_rows) in [2, 12, 13, 30]
            .into_iter()
            .flat_map(|n| [(TensorType::F16, n), (TensorType::F32, n)])
        {
            let (enc, dec): (&Encode, &Decode) = if ty == TensorType::F16 {
                (&to_f16, &back)
            } else {
                (&to_f32, &back32)
            };
            let wq = enc(&values(n_in * n_out, 3));
            let w = Matrix::new(ty, n_in, n_out, &wq).unwrap();
            let wf = dec(&wq);
            let acts = enc(&values(n_in * n_rows, 4 + n_rows as u64));
            let af = dec(&acts);
            let mut y = vec![f32::NAN; n_rows * n_out];
            gemm(&pool, &w, &acts, acts.len() / n_rows, n_rows, &mut y);
            for r in 0..n_rows {
                for o in 0..n_out {
                    let want =
                        tinyblas_dot(&wf[o * n_in..(o + 1) * n_in], &af[r * n_in..(r + 1) * n_in]);
                    let got = y[r * n_out + o];
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{ty}, {n_rows} rows, ({r}, {o})"
                    );
                }
            }
        }
    }
}
