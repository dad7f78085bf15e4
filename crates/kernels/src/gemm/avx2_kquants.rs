//! AVX2 kernels for the 16-row groups of `avx512_kquants.rs` (same packing,
//! same row readers), for CPUs without AVX-512 VNNI, and the tile driver the
//! AVX2 packed kernels share.
//!
//! A 64-byte vector of the packed layout holds four values of each of the
//! sixteen rows; an AVX2 kernel reads it as two 32-byte halves (rows 0..8 and
//! 8..16, one row per 32-bit lane) and runs the group as two passes of eight
//! rows. Within a pass, the unpacked weights of a sub-block stay in registers
//! for [`NC`] tokens: per token, eight `vpmaddubsw` (nibbles × a broadcast of
//! four activation bytes) summed in 16 bits, one `vpmaddwd` with the
//! sub-block scale into the token's i32 sum. 16 ymm registers are what caps
//! the tile: eight weight vectors, the scale, [`NC`] sums and temporaries.
//!
//! Summation order: exact integer sums per super-block; per super-block and
//! token one float epilogue `fma(−dmin, f32(Σ min·bsums), f32(Σ scale·q·y) ·
//! d)` and one FMA into the row's accumulator. ggml sums in other float
//! orders, so results agree with its `vec_dot` up to float rounding (the
//! non-AVX-512 tolerance of the logits tests).

use std::arch::x86_64::*;

use gguf::TensorType;

use super::avx2_gemv;
use super::avx512_kquants::{
    Q4_K_GROUP_BLOCK, Q6_K_GROUP_BLOCK, Q8K_BLOCK, Q8K_BSUMS, Q8K_QS, pack_q4_k, pack_q6_k,
};
use super::packed::{GroupOut, PackedFormat};

/// Tokens per register tile.
pub(super) const NC: usize = 4;

/// Packed Q4_K, AVX2 kernels.
pub(super) const Q4_K: PackedFormat = PackedFormat {
    ty: TensorType::Q4_K,
    group_block_bytes: Q4_K_GROUP_BLOCK,
    pack: pack_q4_k,
    gemm: gemm_q4_k,
};

/// Packed Q6_K, AVX2 kernels.
pub(super) const Q6_K: PackedFormat = PackedFormat {
    ty: TensorType::Q6_K,
    group_block_bytes: Q6_K_GROUP_BLOCK,
    pack: pack_q6_k,
    gemm: gemm_q6_k,
};

/// Four bytes at `p` in every 32-bit lane.
///
/// # Safety
/// `p` must be valid for reading 4 bytes.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn bcast4(p: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 4 readable bytes; the read is unaligned.
    _mm256_set1_epi32(unsafe { p.cast::<i32>().read_unaligned() })
}

/// Eight f16 at `p` as f32.
///
/// # Safety
/// `p` must be valid for reading 16 bytes.
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub(super) unsafe fn f16x8(p: *const u8) -> __m256 {
    // SAFETY: the caller guarantees 16 readable bytes; loadu needs no alignment.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.cast()) })
}

/// Eight bytes at `p` widened to i32 lanes (sign-extended if `signed`), each
/// lane holding the value in both 16-bit halves: a `vpmaddwd` operand that
/// multiplies both i16 of a lane by the same value.
///
/// # Safety
/// `p` must be valid for reading 8 bytes.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn pair8(p: *const u8, signed: bool) -> __m256i {
    // SAFETY: the caller guarantees 8 readable bytes.
    let bytes = unsafe { _mm_loadl_epi64(p.cast()) };
    let v = if signed {
        _mm256_cvtepi8_epi32(bytes)
    } else {
        _mm256_cvtepu8_epi32(bytes)
    };
    _mm256_or_si256(
        _mm256_and_si256(v, _mm256_set1_epi32(0xFFFF)),
        _mm256_slli_epi32::<16>(v),
    )
}

/// The activation scale of Q8_K super-block `b` of the row at `a`.
///
/// # Safety
/// `a` must be valid for `b + 1` Q8_K blocks.
#[inline]
unsafe fn q8k_d(a: *const u8, b: usize) -> f32 {
    // SAFETY: in bounds (caller); unaligned read.
    unsafe { a.add(b * Q8K_BLOCK).cast::<f32>().read_unaligned() }
}

/// One packed Q4_K group (`nb` super-blocks at `w`) × `N` Q8_K activation
/// rows `a`: `out[c][r] = dot(row r, activation c)`.
///
/// # Safety
/// `w` must be valid for `nb * Q4_K_GROUP_BLOCK` bytes and each `a[c]` for
/// `nb * 292`; the CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_k<const N: usize>(nb: usize, w: *const u8, a: [*const u8; N], out: &mut [GroupOut]) {
    let lo = _mm256_set1_epi8(0x0F);
    let zero = _mm256_setzero_si256();
    for h in 0..2 {
        let mut acc = [_mm256_setzero_ps(); N];
        for b in 0..nb {
            // SAFETY: super-block b of the group and of every activation row is
            // in bounds (caller); offsets are within Q4_K_GROUP_BLOCK and
            // Q8K_BLOCK.
            unsafe {
                let g = w.add(b * Q4_K_GROUP_BLOCK);
                let mut s1 = [zero; N];
                for p in 0..4 {
                    for half in 0..2 {
                        let q: [__m256i; 8] = std::array::from_fn(|i| {
                            let v = _mm256_loadu_si256(g.add(p * 512 + i * 64 + 32 * h).cast());
                            let v = if half == 0 {
                                v
                            } else {
                                _mm256_srli_epi16::<4>(v)
                            };
                            _mm256_and_si256(v, lo)
                        });
                        let sc = pair8(g.add(2048 + 16 * (2 * p + half) + 8 * h), false);
                        for c in 0..N {
                            let y = a[c].add(b * Q8K_BLOCK + Q8K_QS + 64 * p + 32 * half);
                            // Each i16 lane is at most 8 · 2 · 15 · 127 = 30480.
                            let mut s16 = _mm256_maddubs_epi16(q[0], bcast4(y));
                            for (i, &qi) in q.iter().enumerate().skip(1) {
                                s16 = _mm256_add_epi16(
                                    s16,
                                    _mm256_maddubs_epi16(qi, bcast4(y.add(4 * i))),
                                );
                            }
                            s1[c] = _mm256_add_epi32(s1[c], _mm256_madd_epi16(s16, sc));
                        }
                    }
                }
                // Minimums: per lane (min_2k, min_2k+1) · (Σ y of sub-block 2k,
                // of 2k + 1), the sub-block sums being pairs of bsums.
                let mins: [__m256i; 4] = std::array::from_fn(|k| {
                    _mm256_or_si256(
                        _mm256_cvtepu8_epi32(_mm_loadl_epi64(
                            g.add(2176 + 16 * (2 * k) + 8 * h).cast(),
                        )),
                        _mm256_slli_epi32::<16>(_mm256_cvtepu8_epi32(_mm_loadl_epi64(
                            g.add(2176 + 16 * (2 * k + 1) + 8 * h).cast(),
                        ))),
                    )
                });
                let d = f16x8(g.add(2304 + 16 * h));
                let dmin = f16x8(g.add(2336 + 16 * h));
                for c in 0..N {
                    let bs = _mm256_loadu_si256(a[c].add(b * Q8K_BLOCK + Q8K_BSUMS).cast());
                    // Σ y per 32-value sub-block: |Σ| ≤ 32 · 127 fits in i16.
                    let sums = _mm_hadd_epi16(
                        _mm256_castsi256_si128(bs),
                        _mm256_extracti128_si256::<1>(bs),
                    );
                    let mut s2 = zero;
                    for (k, &m) in mins.iter().enumerate() {
                        let pair = _mm256_set1_epi32(match k {
                            0 => _mm_extract_epi32::<0>(sums),
                            1 => _mm_extract_epi32::<1>(sums),
                            2 => _mm_extract_epi32::<2>(sums),
                            _ => _mm_extract_epi32::<3>(sums),
                        });
                        s2 = _mm256_add_epi32(s2, _mm256_madd_epi16(m, pair));
                    }
                    let r = _mm256_mul_ps(_mm256_cvtepi32_ps(s1[c]), d);
                    let r = _mm256_fnmadd_ps(dmin, _mm256_cvtepi32_ps(s2), r);
                    acc[c] = _mm256_fmadd_ps(r, _mm256_set1_ps(q8k_d(a[c], b)), acc[c]);
                }
            }
        }
        for (o, v) in out.iter_mut().zip(acc) {
            // SAFETY: `o` is 16 f32; this pass writes its rows 8h..8h + 8.
            unsafe { _mm256_storeu_ps(o.as_mut_ptr().add(8 * h), v) };
        }
    }
}

/// The four Q6_K chunks of sub-block `sub` (the 192 bytes of one 16-value
/// sub-block in `avx512_kquants`' layout), rows `8h..8h + 8`, as 6-bit values:
/// chunk `i`, lane `r`: values `4i..4i + 4` of row `8h + r`.
///
/// # Safety
/// `sub` must be valid for 192 bytes; AVX2.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn q6_quants(sub: *const u8, h: usize) -> [__m256i; 4] {
    let lo = _mm256_set1_epi8(0x0F);
    let hi2 = _mm256_set1_epi8(0x30);
    // SAFETY: 192 readable bytes (caller); unaligned loads.
    let (qa, qb, qh) = unsafe {
        (
            _mm256_loadu_si256(sub.add(32 * h).cast()),
            _mm256_loadu_si256(sub.add(64 + 32 * h).cast()),
            _mm256_loadu_si256(sub.add(128 + 32 * h).cast()),
        )
    };
    let with_high = |low: __m256i, high: __m256i| {
        _mm256_or_si256(_mm256_and_si256(low, lo), _mm256_and_si256(high, hi2))
    };
    [
        with_high(qa, _mm256_slli_epi16::<4>(qh)),
        with_high(_mm256_srli_epi16::<4>(qa), _mm256_slli_epi16::<2>(qh)),
        with_high(qb, qh),
        with_high(_mm256_srli_epi16::<4>(qb), _mm256_srli_epi16::<2>(qh)),
    ]
}

/// One packed Q6_K group × `N` Q8_K activation rows, as [`q4_k`]. The quants'
/// offset −32 is taken off per sub-block in integers: `−32 · scale · Σ y`
/// from the bsums.
///
/// # Safety
/// `w` must be valid for `nb * Q6_K_GROUP_BLOCK` bytes and each `a[c]` for
/// `nb * 292`; the CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6_k<const N: usize>(nb: usize, w: *const u8, a: [*const u8; N], out: &mut [GroupOut]) {
    let zero = _mm256_setzero_si256();
    for h in 0..2 {
        let mut acc = [_mm256_setzero_ps(); N];
        for b in 0..nb {
            // SAFETY: super-block b of the group and of every activation row is
            // in bounds (caller); offsets are within Q6_K_GROUP_BLOCK and
            // Q8K_BLOCK.
            unsafe {
                let g = w.add(b * Q6_K_GROUP_BLOCK);
                let mut s1 = [zero; N];
                for s in 0..16 {
                    let q = q6_quants(g.add(192 * s), h);
                    let sc = pair8(g.add(3072 + 16 * s + 8 * h), true);
                    for c in 0..N {
                        let y = a[c].add(b * Q8K_BLOCK + Q8K_QS + 16 * s);
                        // Each i16 lane is at most 4 · 2 · 63 · 127 = 64008:
                        // too much for one i16, so two partial sums.
                        let p01 = _mm256_add_epi16(
                            _mm256_maddubs_epi16(q[0], bcast4(y)),
                            _mm256_maddubs_epi16(q[1], bcast4(y.add(4))),
                        );
                        let p23 = _mm256_add_epi16(
                            _mm256_maddubs_epi16(q[2], bcast4(y.add(8))),
                            _mm256_maddubs_epi16(q[3], bcast4(y.add(12))),
                        );
                        let p = _mm256_add_epi32(
                            _mm256_madd_epi16(p01, sc),
                            _mm256_madd_epi16(p23, sc),
                        );
                        s1[c] = _mm256_add_epi32(s1[c], p);
                    }
                }
                // −32 · Σ_s scale_s · bsums[s], two sub-blocks per vpmaddwd.
                let scales: [__m256i; 8] = std::array::from_fn(|m| {
                    _mm256_or_si256(
                        _mm256_and_si256(
                            _mm256_cvtepi8_epi32(_mm_loadl_epi64(
                                g.add(3072 + 32 * m + 8 * h).cast(),
                            )),
                            _mm256_set1_epi32(0xFFFF),
                        ),
                        _mm256_slli_epi32::<16>(_mm256_cvtepi8_epi32(_mm_loadl_epi64(
                            g.add(3072 + 32 * m + 16 + 8 * h).cast(),
                        ))),
                    )
                });
                let d = f16x8(g.add(3328 + 16 * h));
                for c in 0..N {
                    let bs = a[c].add(b * Q8K_BLOCK + Q8K_BSUMS);
                    let mut t = zero;
                    for (m, &sc) in scales.iter().enumerate() {
                        t = _mm256_add_epi32(t, _mm256_madd_epi16(sc, bcast4(bs.add(4 * m))));
                    }
                    let s = _mm256_sub_epi32(s1[c], _mm256_slli_epi32::<5>(t));
                    let r = _mm256_mul_ps(_mm256_cvtepi32_ps(s), d);
                    acc[c] = _mm256_fmadd_ps(r, _mm256_set1_ps(q8k_d(a[c], b)), acc[c]);
                }
            }
        }
        for (o, v) in out.iter_mut().zip(acc) {
            // SAFETY: `o` is 16 f32; this pass writes its rows 8h..8h + 8.
            unsafe { _mm256_storeu_ps(o.as_mut_ptr().add(8 * h), v) };
        }
    }
}

/// A packed kernel for `N` tokens at a time.
pub(super) trait Tile {
    /// `out[c][r] = dot(row r of the group at w, activation row a[c])`.
    ///
    /// # Safety
    /// As [`super::packed::PackedGemm`] for the `N` rows `a`.
    unsafe fn tile<const N: usize>(
        nb: usize,
        w: *const u8,
        a: [*const u8; N],
        out: &mut [GroupOut],
    );

    /// `out = dot(row r of the group at w, activation row a)` for one token
    /// (`avx2_gemv.rs`: one pass over the group).
    ///
    /// # Safety
    /// As [`super::packed::PackedGemm`] for the one row `a`.
    unsafe fn one(nb: usize, w: *const u8, a: *const u8, out: &mut GroupOut);
}

/// All of `out`'s tokens in tiles of [`NC`], the last one narrower (a tile
/// of one token: the one-token kernel, same results).
///
/// # Safety
/// As [`super::packed::PackedGemm`].
pub(super) unsafe fn gemm<K: Tile>(
    nb: usize,
    w: *const u8,
    a: *const u8,
    a_row: usize,
    out: &mut [GroupOut],
) {
    let tile = |c: usize, out: &mut [GroupOut]| {
        // SAFETY: activation rows c..c + out.len() are in bounds (caller).
        unsafe {
            let row = |i: usize| a.add((c + i) * a_row);
            match out.len() {
                1 => K::one(nb, w, row(0), &mut out[0]),
                2 => K::tile::<2>(nb, w, [row(0), row(1)], out),
                3 => K::tile::<3>(nb, w, [row(0), row(1), row(2)], out),
                _ => K::tile::<4>(nb, w, [row(0), row(1), row(2), row(3)], out),
            }
        }
    };
    for (t, out) in out.chunks_mut(NC).enumerate() {
        tile(t * NC, out);
    }
}

pub(super) struct Q4K;
pub(super) struct Q6K;

impl Tile for Q4K {
    unsafe fn tile<const N: usize>(
        nb: usize,
        w: *const u8,
        a: [*const u8; N],
        out: &mut [GroupOut],
    ) {
        // SAFETY: forwarded contract; `packed::format` registers this only
        // where the CPU has AVX2, FMA and F16C.
        unsafe { q4_k::<N>(nb, w, a, out) }
    }

    unsafe fn one(nb: usize, w: *const u8, a: *const u8, out: &mut GroupOut) {
        // SAFETY: as for `tile`.
        unsafe { avx2_gemv::q4_k(nb, w, a, out) }
    }
}

impl Tile for Q6K {
    unsafe fn tile<const N: usize>(
        nb: usize,
        w: *const u8,
        a: [*const u8; N],
        out: &mut [GroupOut],
    ) {
        // SAFETY: as for Q4K.
        unsafe { q6_k::<N>(nb, w, a, out) }
    }

    unsafe fn one(nb: usize, w: *const u8, a: *const u8, out: &mut GroupOut) {
        // SAFETY: as for `tile`.
        unsafe { avx2_gemv::q6_k(nb, w, a, out) }
    }
}

/// Packed Q4_K × Q8_K activations.
///
/// # Safety
/// As [`super::packed::PackedGemm`].
unsafe fn gemm_q4_k(nb: usize, w: *const u8, a: *const u8, a_row: usize, out: &mut [GroupOut]) {
    // SAFETY: forwarded contract.
    unsafe { gemm::<Q4K>(nb, w, a, a_row, out) }
}

/// Packed Q6_K × Q8_K activations.
///
/// # Safety
/// As [`super::packed::PackedGemm`].
unsafe fn gemm_q6_k(nb: usize, w: *const u8, a: *const u8, a_row: usize, out: &mut [GroupOut]) {
    // SAFETY: forwarded contract.
    unsafe { gemm::<Q6K>(nb, w, a, a_row, out) }
}
