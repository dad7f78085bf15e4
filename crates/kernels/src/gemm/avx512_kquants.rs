//! Q4_K and Q6_K weights repacked into groups of [`GROUP`] rows, and their
//! AVX-512 VNNI kernels against Q8_K activations.
//!
//! The repacked layout puts one weight row in each 32-bit lane of a zmm: a lane
//! holds four consecutive values of its row, so one `vpdpbusd` with a broadcast
//! of four activation bytes adds four products to each of the sixteen rows at
//! once, and the sixteen results of a group come out of one vector without a
//! horizontal sum. This is the idea of ggml's row-interleaved repacks
//! (ggml-cpu/repack.cpp, `block_q4_Kx8`), with sixteen rows in a zmm instead of
//! eight in a ymm and the sub-block scales applied in f32 per sub-block (one
//! `vcvtdq2ps` + one FMA per sub-block and token) instead of `vpmaddubsw` +
//! `vpmaddwd`, so the integer inner loop is `vpdpbusd` alone.
//!
//! A group holds, per 256-value super-block, the quants of its sixteen rows in
//! the order the kernel reads them, then the per-row scales, minimums and
//! super-block scales as vectors of sixteen (one per row). The bytes are the
//! original block's bytes reordered (Q4_K's 6-bit scales and minimums unpacked
//! to bytes: 148 bytes per row and super-block instead of 144), so a group
//! costs about the memory of its rows: decode streams it once, prefill reads it
//! once per [`NC`] tokens.
//!
//! Summation order: integer sums per sub-block are exact; the float part is one
//! FMA per sub-block into a per-super-block sum, one FMA per super-block into
//! the row's accumulator. ggml's `vec_dot` sums the same products in eight
//! float lanes per row instead, so results agree up to float rounding.

use std::arch::x86_64::*;

use gguf::TensorType;

use super::packed::{GROUP, GroupOut, PackedFormat};
use crate::simd::TILED_MIN_BATCH;

/// Tokens per tile: each unpacked weight vector serves this many tokens.
const NC: usize = 10;
/// Values per super-block.
const QK_K: usize = 256;

/// Bytes of one Q4_K super-block of a group: quants (16 × 128), scales and
/// minimums unpacked to one byte per sub-block and row (2 × 8 × 16), d and dmin
/// (2 × 16 f16).
pub(super) const Q4_K_GROUP_BLOCK: usize = GROUP * 128 + 2 * 8 * GROUP + 2 * 2 * GROUP;
/// Bytes of one Q6_K super-block of a group: quants (16 × 192), scales
/// (16 × 16 i8), d (16 f16), and 32 bytes of padding so that every group
/// block starts on a cache line (the 64-byte loads never split one).
pub(super) const Q6_K_GROUP_BLOCK: usize = GROUP * 192 + 16 * GROUP + 2 * GROUP + 32;

const Q4_K_BLOCK: usize = 144;
const Q6_K_BLOCK: usize = 210;
/// Q8_K super-block: d (f32), qs (256 i8), bsums (16 i16).
pub(super) const Q8K_QS: usize = 4;
pub(super) const Q8K_BSUMS: usize = 260;
pub(super) const Q8K_BLOCK: usize = 292;

/// Q4_K's sub-block `j` scale and minimum (ggml's `get_scale_min_k4`).
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Writes the `nb` Q4_K group blocks of the sixteen rows `rows` into `dst`.
///
/// Group block `b` (at `b * Q4_K_GROUP_BLOCK`):
/// - quants: for sub-block pair `p` (values `64p..64p+64`), chunk `i` (0..8),
///   row `r`, at `512p + 64i + 4r`: the four bytes `qs[32p + 4i..32p + 4i + 4]`
///   of row `r` (low nibbles: values `64p + 4i..`, high nibbles: values
///   `64p + 32 + 4i..`);
/// - at 2048: scale of sub-block `j`, row `r` at `16j + r`; at 2176: minimums
///   likewise; at 2304: d of each row (f16); at 2336: dmin of each row (f16).
pub(super) fn pack_q4_k(rows: &[&[u8]; GROUP], nb: usize, dst: &mut [u8]) {
    for (r, row) in rows.iter().enumerate() {
        for (b, src) in row.chunks_exact(Q4_K_BLOCK).take(nb).enumerate() {
            let dst = &mut dst[b * Q4_K_GROUP_BLOCK..][..Q4_K_GROUP_BLOCK];
            let qs = &src[16..144];
            for p in 0..4 {
                for i in 0..8 {
                    let at = p * 512 + i * 64 + r * 4;
                    dst[at..at + 4].copy_from_slice(&qs[32 * p + 4 * i..32 * p + 4 * i + 4]);
                }
            }
            for j in 0..8 {
                let (sc, mn) = scale_min_k4(j, &src[4..16]);
                dst[2048 + 16 * j + r] = sc;
                dst[2176 + 16 * j + r] = mn;
            }
            dst[2304 + 2 * r..2304 + 2 * r + 2].copy_from_slice(&src[0..2]);
            dst[2336 + 2 * r..2336 + 2 * r + 2].copy_from_slice(&src[2..4]);
        }
    }
}

/// The 6-bit quants (0..64) of one Q6_K super-block, in value order
/// (ggml's `dequantize_row_q6_K` without the −32 and the scales).
fn q6_k_quants(src: &[u8]) -> [u8; QK_K] {
    let (ql, qh) = (&src[..128], &src[128..192]);
    let mut q = [0u8; QK_K];
    for h in 0..2 {
        let (ql, qh, q) = (&ql[64 * h..], &qh[32 * h..], &mut q[128 * h..]);
        for l in 0..32 {
            q[l] = (ql[l] & 0xF) | ((qh[l] & 3) << 4);
            q[l + 32] = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
            q[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
            q[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        }
    }
    q
}

/// Writes the `nb` Q6_K group blocks of the sixteen rows `rows` into `dst`.
///
/// Group block `b` (at `b * Q6_K_GROUP_BLOCK`): for each 16-value sub-block `s`
/// (192 bytes at `192s`), with `q(k)` the 6-bit quant of value `16s + k` of
/// row `r`, byte `t` (0..4) of row `r`:
/// - at `4r + t`: `q(t) & 15 | (q(4 + t) & 15) << 4`;
/// - at `64 + 4r + t`: `q(8 + t) & 15 | (q(12 + t) & 15) << 4`;
/// - at `128 + 4r + t`: the high two bits of `q(t)`, `q(4 + t)`, `q(8 + t)`,
///   `q(12 + t)` at bits 0, 2, 4, 6.
///
/// Then at 3072 the scale of sub-block `s`, row `r` at `16s + r` (i8) and at
/// 3328 d of each row (f16); 3360..3392 are padding.
pub(super) fn pack_q6_k(rows: &[&[u8]; GROUP], nb: usize, dst: &mut [u8]) {
    for (r, row) in rows.iter().enumerate() {
        for (b, src) in row.chunks_exact(Q6_K_BLOCK).take(nb).enumerate() {
            let dst = &mut dst[b * Q6_K_GROUP_BLOCK..][..Q6_K_GROUP_BLOCK];
            let q = q6_k_quants(src);
            for s in 0..16 {
                let q = &q[16 * s..16 * s + 16];
                let sub = &mut dst[192 * s..192 * s + 192];
                for t in 0..4 {
                    sub[4 * r + t] = (q[t] & 15) | (q[4 + t] & 15) << 4;
                    sub[64 + 4 * r + t] = (q[8 + t] & 15) | (q[12 + t] & 15) << 4;
                    sub[128 + 4 * r + t] = q[t] >> 4
                        | (q[4 + t] >> 4) << 2
                        | (q[8 + t] >> 4) << 4
                        | (q[12 + t] >> 4) << 6;
                }
                dst[3072 + 16 * s + r] = src[192 + s];
            }
            dst[3328 + 2 * r..3328 + 2 * r + 2].copy_from_slice(&src[208..210]);
        }
    }
}

/// Four activation bytes at `p` in every lane.
///
/// # Safety
/// `p` must be valid for reading 4 bytes.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn bcast4(p: *const u8) -> __m512i {
    // SAFETY: the caller guarantees 4 readable bytes; the read is unaligned.
    _mm512_set1_epi32(unsafe { p.cast::<i32>().read_unaligned() })
}

/// Sixteen f16 at `p` as f32.
///
/// # Safety
/// `p` must be valid for reading 32 bytes.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn f16x16(p: *const u8) -> __m512 {
    // SAFETY: the caller guarantees 32 readable bytes; loadu needs no alignment.
    _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(p.cast()) })
}

/// Sixteen bytes at `p`, zero-extended to i32 lanes.
///
/// # Safety
/// `p` must be valid for reading 16 bytes.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn u8x16(p: *const u8) -> __m512i {
    // SAFETY: the caller guarantees 16 readable bytes.
    _mm512_cvtepu8_epi32(unsafe { _mm_loadu_si128(p.cast()) })
}

/// Sixteen bytes at `p`, each widened to both 16-bit halves of its i32 lane
/// (`(v, v)`: a `vpdpwssd` operand that multiplies both halves of a lane by
/// the same value), zero-extended if `signed` is false.
///
/// # Safety
/// `p` must be valid for reading 16 bytes.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn pair16(p: *const u8, signed: bool) -> __m512i {
    // SAFETY: the caller guarantees 16 readable bytes.
    let bytes = unsafe { _mm_loadu_si128(p.cast()) };
    let v = if signed {
        _mm512_cvtepi8_epi32(bytes)
    } else {
        _mm512_cvtepu8_epi32(bytes)
    };
    _mm512_or_si512(
        _mm512_and_si512(v, _mm512_set1_epi32(0xFFFF)),
        _mm512_slli_epi32::<16>(v),
    )
}

/// The eight lane accumulators of ggml's AVX2 `vec_dot` added up in its
/// `hsum_float_8` order: `((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))`.
#[target_feature(enable = "avx512f")]
#[inline]
fn hsum8(a: &[__m512; 8]) -> __m512 {
    let t: [__m512; 4] = std::array::from_fn(|i| _mm512_add_ps(a[i + 4], a[i]));
    _mm512_add_ps(_mm512_add_ps(t[0], t[2]), _mm512_add_ps(t[1], t[3]))
}

/// One repacked Q4_K group (`nb` super-blocks at `w`) × `N` Q8_K activation
/// rows, in the order of ggml-cpu's tiled matmul (batches of
/// [`TILED_MIN_BATCH`] rows or more): `out[c][r] = dot(row r, activation c)`.
///
/// Per sub-block `j` and token: eight `vpdpbusd` (nibbles × activation bytes)
/// from zero, then `s1 += scale_j · raw` in integers (`vpmulld`). The
/// minimums' `s2 = Σ_j min_j · (bsums[2j] + bsums[2j+1])` is eight
/// `vpdpwssd` per super-block with `(min_j, min_j)` in each lane. Then per
/// super-block, as ggml's epilogue: `r = fma(−dmin, f32(s2), f32(s1) · d)`,
/// `acc = fma(r, d_y, acc)`.
///
/// # Safety
/// `w` must be valid for `nb * Q4_K_GROUP_BLOCK` bytes and each `a[c]` for
/// `nb * 292`; the CPU must have AVX-512 F, BW and VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma,f16c")]
unsafe fn q4_k<const N: usize>(nb: usize, w: *const u8, a: [*const u8; N], out: &mut [GroupOut]) {
    let mut acc = [_mm512_setzero_ps(); N];
    let lo = _mm512_set1_epi8(0x0F);
    let zero = _mm512_setzero_si512();
    for b in 0..nb {
        // SAFETY: super-block b of the group and of every activation row is in
        // bounds (caller); offsets are within Q4_K_GROUP_BLOCK and Q8K_BLOCK.
        unsafe {
            let g = w.add(b * Q4_K_GROUP_BLOCK);
            let mut s1 = [zero; N];
            for p in 0..4 {
                for half in 0..2 {
                    let q: [__m512i; 8] = std::array::from_fn(|i| {
                        let v = _mm512_loadu_si512(g.add(p * 512 + i * 64).cast());
                        let v = if half == 0 {
                            v
                        } else {
                            _mm512_srli_epi16::<4>(v)
                        };
                        _mm512_and_si512(v, lo)
                    });
                    let sc = u8x16(g.add(2048 + 16 * (2 * p + half)));
                    for c in 0..N {
                        let y = a[c].add(b * Q8K_BLOCK + Q8K_QS + 64 * p + 32 * half);
                        let mut raw = zero;
                        for (i, &qi) in q.iter().enumerate() {
                            raw = _mm512_dpbusd_epi32(raw, qi, bcast4(y.add(4 * i)));
                        }
                        s1[c] = _mm512_add_epi32(s1[c], _mm512_mullo_epi32(raw, sc));
                    }
                }
            }
            // The minimums once the quants' registers are free, as ggml does.
            let mm: [__m512i; 8] = std::array::from_fn(|j| pair16(g.add(2176 + 16 * j), false));
            let d = f16x16(g.add(2304));
            let dmin = f16x16(g.add(2336));
            for c in 0..N {
                let bs = a[c].add(b * Q8K_BLOCK + Q8K_BSUMS);
                let mut s2 = zero;
                for (j, &m) in mm.iter().enumerate() {
                    s2 = _mm512_dpwssd_epi32(s2, m, bcast4(bs.add(4 * j)));
                }
                let r = _mm512_mul_ps(_mm512_cvtepi32_ps(s1[c]), d);
                let r = _mm512_fnmadd_ps(dmin, _mm512_cvtepi32_ps(s2), r);
                let dy = _mm512_set1_ps(a[c].add(b * Q8K_BLOCK).cast::<f32>().read_unaligned());
                acc[c] = _mm512_fmadd_ps(r, dy, acc[c]);
            }
        }
    }
    for (o, v) in out.iter_mut().zip(acc) {
        // SAFETY: `o` is 16 f32.
        unsafe { _mm512_storeu_ps(o.as_mut_ptr(), v) };
    }
}

/// One repacked Q4_K group × one Q8_K activation row at `a`, in the order of
/// ggml's `ggml_vec_dot_q4_K_q8_K` (AVX2), which llama.cpp uses for fewer
/// than [`TILED_MIN_BATCH`] rows (decoding), for all sixteen rows at once.
///
/// ggml's eight i32 lanes are the eight chunks `i` of four values of every
/// 32-value sub-block, which is how the group stores them: lane `i` gathers
/// `scale_j · Σ q·y` over the four values `4i..4i+4` of each sub-block `j`
/// (`vpmaddubsw`, then `vpdpwssd` with `(scale_j, scale_j)`). Per super-block
/// the lanes go into eight float accumulators, `fma(d · d_y, f32(lane),
/// acc)`, and the minimums into four, `acc_m − (dmin · d_y) · f32(Σ of a pair
/// of sub-blocks' min · bsums)`; at the end `hsum8(acc) + ((m0 + m2) + (m1 +
/// m3))`.
///
/// # Safety
/// `w` must be valid for `nb * Q4_K_GROUP_BLOCK` bytes and `a` for `nb * 292`;
/// the CPU must have AVX-512 F, BW and VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma,f16c")]
unsafe fn q4_k_vec_dot(nb: usize, w: *const u8, a: *const u8, out: &mut GroupOut) {
    let mut acc = [_mm512_setzero_ps(); 8];
    let mut acc_m = [_mm512_setzero_ps(); 4];
    let lo = _mm512_set1_epi8(0x0F);
    let zero = _mm512_setzero_si512();
    for b in 0..nb {
        // SAFETY: super-block b of the group and of the activation row is in
        // bounds (caller); offsets are within Q4_K_GROUP_BLOCK and Q8K_BLOCK.
        unsafe {
            let g = w.add(b * Q4_K_GROUP_BLOCK);
            let y = a.add(b * Q8K_BLOCK);
            let dy = _mm512_set1_ps(y.cast::<f32>().read_unaligned());
            let mut sumi = [zero; 8];
            for p in 0..4 {
                let sc_lo = pair16(g.add(2048 + 16 * (2 * p)), false);
                let sc_hi = pair16(g.add(2048 + 16 * (2 * p + 1)), false);
                for (i, s) in sumi.iter_mut().enumerate() {
                    let v = _mm512_loadu_si512(g.add(p * 512 + i * 64).cast());
                    let q_lo = _mm512_and_si512(v, lo);
                    let q_hi = _mm512_and_si512(_mm512_srli_epi16::<4>(v), lo);
                    let y_lo = bcast4(y.add(Q8K_QS + 64 * p + 4 * i));
                    let y_hi = bcast4(y.add(Q8K_QS + 64 * p + 32 + 4 * i));
                    *s = _mm512_dpwssd_epi32(*s, _mm512_maddubs_epi16(q_lo, y_lo), sc_lo);
                    *s = _mm512_dpwssd_epi32(*s, _mm512_maddubs_epi16(q_hi, y_hi), sc_hi);
                }
            }
            let d = _mm512_mul_ps(dy, f16x16(g.add(2304)));
            for (acc, &s) in acc.iter_mut().zip(&sumi) {
                *acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(s), *acc);
            }
            // Sub-block sums of the activations (bsums in pairs) as i16.
            let bsums = _mm256_loadu_si256(y.add(Q8K_BSUMS).cast());
            let q8s = _mm_hadd_epi16(
                _mm256_castsi256_si128(bsums),
                _mm256_extracti128_si256::<1>(bsums),
            );
            let mut q8s_pairs = [0i32; 4];
            _mm_storeu_si128(q8s_pairs.as_mut_ptr().cast(), q8s);
            let dmin = _mm512_mul_ps(dy, f16x16(g.add(2336)));
            for (k, m) in acc_m.iter_mut().enumerate() {
                let mins = _mm512_or_si512(
                    u8x16(g.add(2176 + 16 * (2 * k))),
                    _mm512_slli_epi32::<16>(u8x16(g.add(2176 + 16 * (2 * k + 1)))),
                );
                let prod = _mm512_dpwssd_epi32(zero, mins, _mm512_set1_epi32(q8s_pairs[k]));
                *m = _mm512_fnmadd_ps(dmin, _mm512_cvtepi32_ps(prod), *m);
            }
        }
    }
    let m = _mm512_add_ps(
        _mm512_add_ps(acc_m[0], acc_m[2]),
        _mm512_add_ps(acc_m[1], acc_m[3]),
    );
    // SAFETY: `out` is 16 f32.
    unsafe { _mm512_storeu_ps(out.as_mut_ptr(), _mm512_add_ps(hsum8(&acc), m)) };
}

/// The sixteen rows' 6-bit quants of values `16s + 4i .. 16s + 4i + 4` for
/// `i` in 0..4, from sub-block `s` of a Q6_K group block at `sub`.
///
/// # Safety
/// `sub` must be valid for 192 bytes.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn q6_quants(sub: *const u8) -> [__m512i; 4] {
    let lo = _mm512_set1_epi8(0x0F);
    let hi2 = _mm512_set1_epi8(0x30);
    // SAFETY: 192 readable bytes (caller).
    let (qa, qb, qh) = unsafe {
        (
            _mm512_loadu_si512(sub.cast()),
            _mm512_loadu_si512(sub.add(64).cast()),
            _mm512_loadu_si512(sub.add(128).cast()),
        )
    };
    // (x & 0x0F) | y, y already masked to bits 4..5.
    [
        _mm512_ternarylogic_epi32::<0xEA>(
            qa,
            lo,
            _mm512_and_si512(_mm512_slli_epi16::<4>(qh), hi2),
        ),
        _mm512_ternarylogic_epi32::<0xEA>(
            _mm512_srli_epi16::<4>(qa),
            lo,
            _mm512_and_si512(_mm512_slli_epi16::<2>(qh), hi2),
        ),
        _mm512_ternarylogic_epi32::<0xEA>(qb, lo, _mm512_and_si512(qh, hi2)),
        _mm512_ternarylogic_epi32::<0xEA>(
            _mm512_srli_epi16::<4>(qb),
            lo,
            _mm512_and_si512(_mm512_srli_epi16::<2>(qh), hi2),
        ),
    ]
}

/// One repacked Q6_K group (`nb` super-blocks at `w`) × `N` Q8_K activation
/// rows in the order of ggml-cpu's tiled matmul (batches):
/// `out[c][r] = dot(row r, activation c)`.
///
/// Per 16-value sub-block `s` and token: four `vpdpbusd` of the 6-bit quants
/// (0..64) starting from `−32·bsums[s]` (so the sum is of `q − 32`), then
/// `s1 += scale_s · raw` in integers; per super-block
/// `acc = fma(f32(s1) · d, d_y, acc)`.
///
/// # Safety
/// `w` must be valid for `nb * Q6_K_GROUP_BLOCK` bytes and each `a[c]` for
/// `nb * 292`; the CPU must have AVX-512 F, BW and VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma,f16c")]
unsafe fn q6_k<const N: usize>(nb: usize, w: *const u8, a: [*const u8; N], out: &mut [GroupOut]) {
    let mut acc = [_mm512_setzero_ps(); N];
    for b in 0..nb {
        // SAFETY: super-block b of the group and of every activation row is in
        // bounds (caller); offsets are within Q6_K_GROUP_BLOCK and Q8K_BLOCK.
        unsafe {
            let g = w.add(b * Q6_K_GROUP_BLOCK);
            // -32·bsums[s] of each token, as i32, read back one at a time.
            let mut start = [[0i32; 16]; N];
            for c in 0..N {
                let bs = _mm256_loadu_si256(a[c].add(b * Q8K_BLOCK + Q8K_BSUMS).cast());
                let v = _mm512_slli_epi32::<5>(_mm512_cvtepi16_epi32(bs));
                _mm512_storeu_si512(
                    start[c].as_mut_ptr().cast(),
                    _mm512_sub_epi32(_mm512_setzero_si512(), v),
                );
            }
            let mut s1 = [_mm512_setzero_si512(); N];
            // `s` indexes the group block, the scales and every token's starts.
            #[allow(clippy::needless_range_loop)]
            for s in 0..16 {
                let q = q6_quants(g.add(192 * s));
                let sc = _mm512_cvtepi8_epi32(_mm_loadu_si128(g.add(3072 + 16 * s).cast()));
                for c in 0..N {
                    let y = a[c].add(b * Q8K_BLOCK + Q8K_QS + 16 * s);
                    let mut raw = _mm512_set1_epi32(start[c][s]);
                    for (i, &qi) in q.iter().enumerate() {
                        raw = _mm512_dpbusd_epi32(raw, qi, bcast4(y.add(4 * i)));
                    }
                    s1[c] = _mm512_add_epi32(s1[c], _mm512_mullo_epi32(raw, sc));
                }
            }
            let d = f16x16(g.add(3328));
            for c in 0..N {
                let r = _mm512_mul_ps(_mm512_cvtepi32_ps(s1[c]), d);
                let dy = _mm512_set1_ps(a[c].add(b * Q8K_BLOCK).cast::<f32>().read_unaligned());
                acc[c] = _mm512_fmadd_ps(r, dy, acc[c]);
            }
        }
    }
    for (o, v) in out.iter_mut().zip(acc) {
        // SAFETY: `o` is 16 f32.
        unsafe { _mm512_storeu_ps(o.as_mut_ptr(), v) };
    }
}

/// One repacked Q6_K group × one Q8_K activation row at `a`, in the order of
/// ggml's `ggml_vec_dot_q6_K_q8_K` (AVX2), for fewer than
/// [`TILED_MIN_BATCH`] rows (decoding), all sixteen rows at once.
///
/// ggml's i32 lane `m` holds, for each 32 values, the four values
/// `4m..4m+4` (sub-block `2k + m / 4` of the `k`-th 32), weighted by their
/// sub-block's scale, minus `32 · (scale_2m · bsums[2m] + scale_2m+1 ·
/// bsums[2m+1])`; the group's value quadruple `i` of sub-block `s` is lane
/// `4 (s mod 2) + i`. Per super-block `acc[m] = fma(d · d_y, f32(lane m),
/// acc[m])`, at the end [`hsum8`].
///
/// # Safety
/// `w` must be valid for `nb * Q6_K_GROUP_BLOCK` bytes and `a` for `nb * 292`;
/// the CPU must have AVX-512 F, BW and VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma,f16c")]
unsafe fn q6_k_vec_dot(nb: usize, w: *const u8, a: *const u8, out: &mut GroupOut) {
    let mut acc = [_mm512_setzero_ps(); 8];
    let zero = _mm512_setzero_si512();
    for b in 0..nb {
        // SAFETY: super-block b of the group and of the activation row is in
        // bounds (caller); offsets are within Q6_K_GROUP_BLOCK and Q8K_BLOCK.
        unsafe {
            let g = w.add(b * Q6_K_GROUP_BLOCK);
            let y = a.add(b * Q8K_BLOCK);
            let dy = _mm512_set1_ps(y.cast::<f32>().read_unaligned());
            // Lane m starts at −32 · (scale_2m · bsums[2m] + scale_2m+1 · bsums[2m+1]).
            let mut sumi: [__m512i; 8] = std::array::from_fn(|m| {
                let scales = _mm512_or_si512(
                    _mm512_and_si512(
                        _mm512_cvtepi8_epi32(_mm_loadu_si128(g.add(3072 + 32 * m).cast())),
                        _mm512_set1_epi32(0xFFFF),
                    ),
                    _mm512_slli_epi32::<16>(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                        g.add(3072 + 32 * m + 16).cast(),
                    ))),
                );
                let t = _mm512_dpwssd_epi32(zero, scales, bcast4(y.add(Q8K_BSUMS + 4 * m)));
                _mm512_sub_epi32(zero, _mm512_slli_epi32::<5>(t))
            });
            for s in 0..16 {
                let q = q6_quants(g.add(192 * s));
                let sc = pair16(g.add(3072 + 16 * s), true);
                for (i, &qi) in q.iter().enumerate() {
                    let m = 4 * (s % 2) + i;
                    let p = _mm512_maddubs_epi16(qi, bcast4(y.add(Q8K_QS + 16 * s + 4 * i)));
                    sumi[m] = _mm512_dpwssd_epi32(sumi[m], p, sc);
                }
            }
            let d = _mm512_mul_ps(dy, f16x16(g.add(3328)));
            for (acc, &s) in acc.iter_mut().zip(&sumi) {
                *acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(s), *acc);
            }
        }
    }
    // SAFETY: `out` is 16 f32.
    unsafe { _mm512_storeu_ps(out.as_mut_ptr(), hsum8(&acc)) };
}

/// All of `out`'s tokens in tiles of at most [`NC`], as even as they go (64
/// tokens: four tiles of 9 and two of 10 rather than six of 10 and one of 4).
///
/// # Safety
/// As [`PackedGemm`](super::packed::PackedGemm), with `K` one of this file's
/// kernels for the group's format.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma,f16c")]
unsafe fn gemm<K: Kernel>(
    nb: usize,
    w: *const u8,
    a: *const u8,
    a_row: usize,
    out: &mut [GroupOut],
) {
    let n = out.len();
    if n < TILED_MIN_BATCH {
        for (c, o) in out.iter_mut().enumerate() {
            // SAFETY: activation row c is in bounds (caller).
            unsafe { K::vec_dot(nb, w, a.add(c * a_row), o) };
        }
        return;
    }
    let n_tiles = n.div_ceil(NC);
    let mut c = 0;
    for t in 0..n_tiles {
        let width = n / n_tiles + usize::from(t < n % n_tiles);
        macro_rules! tile {
            ($n:literal) => {{
                // SAFETY: rows c..c + $n of the activations are in bounds (caller).
                unsafe {
                    let rows: [*const u8; $n] = std::array::from_fn(|i| a.add((c + i) * a_row));
                    K::tile::<$n>(nb, w, rows, &mut out[c..c + $n]);
                }
            }};
        }
        match width {
            1 => tile!(1),
            2 => tile!(2),
            3 => tile!(3),
            4 => tile!(4),
            5 => tile!(5),
            6 => tile!(6),
            7 => tile!(7),
            8 => tile!(8),
            9 => tile!(9),
            _ => tile!(10),
        }
        c += width;
    }
}

/// A kernel of this file, generic over its token count.
trait Kernel {
    /// # Safety
    /// As [`q4_k`].
    unsafe fn tile<const N: usize>(
        nb: usize,
        w: *const u8,
        a: [*const u8; N],
        out: &mut [GroupOut],
    );

    /// # Safety
    /// As [`q4_k_vec_dot`].
    unsafe fn vec_dot(nb: usize, w: *const u8, a: *const u8, out: &mut GroupOut);
}

struct Q4K;
struct Q6K;

impl Kernel for Q4K {
    unsafe fn tile<const N: usize>(
        nb: usize,
        w: *const u8,
        a: [*const u8; N],
        out: &mut [GroupOut],
    ) {
        // SAFETY: forwarded contract.
        unsafe { q4_k::<N>(nb, w, a, out) }
    }

    unsafe fn vec_dot(nb: usize, w: *const u8, a: *const u8, out: &mut GroupOut) {
        // SAFETY: forwarded contract.
        unsafe { q4_k_vec_dot(nb, w, a, out) }
    }
}

impl Kernel for Q6K {
    unsafe fn tile<const N: usize>(
        nb: usize,
        w: *const u8,
        a: [*const u8; N],
        out: &mut [GroupOut],
    ) {
        // SAFETY: forwarded contract.
        unsafe { q6_k::<N>(nb, w, a, out) }
    }

    unsafe fn vec_dot(nb: usize, w: *const u8, a: *const u8, out: &mut GroupOut) {
        // SAFETY: forwarded contract.
        unsafe { q6_k_vec_dot(nb, w, a, out) }
    }
}

/// Packed Q4_K × Q8_K activations.
///
/// # Safety
/// As [`PackedGemm`](super::packed::PackedGemm).
unsafe fn gemm_q4_k(nb: usize, w: *const u8, a: *const u8, a_row: usize, out: &mut [GroupOut]) {
    // SAFETY: forwarded contract; `format` registers this only with VNNI.
    unsafe { gemm::<Q4K>(nb, w, a, a_row, out) }
}

/// Packed Q6_K × Q8_K activations.
///
/// # Safety
/// As [`PackedGemm`](super::packed::PackedGemm).
unsafe fn gemm_q6_k(nb: usize, w: *const u8, a: *const u8, a_row: usize, out: &mut [GroupOut]) {
    // SAFETY: forwarded contract; `format` registers this only with VNNI.
    unsafe { gemm::<Q6K>(nb, w, a, a_row, out) }
}

/// Q4_K, packed by [`pack_q4_k`].
pub(super) const Q4_K: PackedFormat = PackedFormat {
    ty: TensorType::Q4_K,
    group_block_bytes: Q4_K_GROUP_BLOCK,
    pack: pack_q4_k,
    gemm: gemm_q4_k,
};

/// Q6_K, packed by [`pack_q6_k`].
pub(super) const Q6_K: PackedFormat = PackedFormat {
    ty: TensorType::Q6_K,
    group_block_bytes: Q6_K_GROUP_BLOCK,
    pack: pack_q6_k,
    gemm: gemm_q6_k,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::Cpu;
    use crate::traits_for;

    use crate::test_data::{quantized, values};

    /// Three super-blocks, every token count up to two tiles and a tail, a
    /// group of 16 real rows and one with 5 real rows and 11 zero rows: each
    /// output has the bits of ggml's order for that many tokens, the tiled
    /// matmul's for [`TILED_MIN_BATCH`] or more (`simd::tiled_dot`) and AVX2
    /// `vec_dot`'s for fewer.
    #[test]
    #[cfg_attr(
        not(hearth_avx512_vnni),
        ignore = "needs AVX-512 VNNI (packed kernels)"
    )]
    fn kernels_follow_ggml_orders() {
        let (n_in, n_out) = (768, 21);
        let nb = n_in / QK_K;
        for format in [&Q4_K, &Q6_K] {
            let ty = format.ty;
            let decode = traits_for(Cpu::Avx2, ty).unwrap().vec_dot.unwrap();
            let batch = crate::simd::tiled_dot(ty).unwrap();
            let w = quantized(ty, &values(n_in * n_out, 7));
            let row = w.len() / n_out;
            let zero = vec![0u8; row];
            let a_row = TensorType::Q8_K.row_size(n_in as u64).unwrap() as usize;
            let n_tok = 2 * NC + 3;
            let acts: Vec<u8> = (0..n_tok)
                .flat_map(|c| quantized(TensorType::Q8_K, &values(n_in, 100 + c as u64)))
                .collect();
            for g in 0..n_out.div_ceil(GROUP) {
                let rows: [&[u8]; GROUP] = std::array::from_fn(|r| {
                    let o = g * GROUP + r;
                    if o < n_out {
                        &w[o * row..(o + 1) * row]
                    } else {
                        &zero
                    }
                });
                let mut packed = vec![0u8; nb * format.group_block_bytes];
                (format.pack)(&rows, nb, &mut packed);
                for n in 1..=n_tok {
                    let mut out = vec![[f32::NAN; GROUP]; n];
                    // SAFETY: the group and n activation rows are in bounds; the
                    // CPU has AVX-512 VNNI (checked above).
                    unsafe { (format.gemm)(nb, packed.as_ptr(), acts.as_ptr(), a_row, &mut out) };
                    for (c, outs) in out.iter().enumerate() {
                        for (r, &got) in outs.iter().enumerate() {
                            let act = &acts[c * a_row..(c + 1) * a_row];
                            let dot = if n < TILED_MIN_BATCH { decode } else { batch };
                            let want = dot(n_in, rows[r], act);
                            assert_eq!(
                                got.to_bits(),
                                want.to_bits(),
                                "{ty} group {g} row {r} token {c} of {n}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
