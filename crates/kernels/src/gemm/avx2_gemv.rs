//! One-token (decode) AVX2 kernels for the packed 16-row groups: one
//! activation row against all sixteen rows of a group in a single pass.
//!
//! The tile kernels (`avx2_kquants.rs`, `avx2_q0.rs`, `avx2_iq4.rs`) keep a
//! sub-block's unpacked weights in registers for up to four tokens, which caps
//! them at eight rows per pass; for one token that means two passes over the
//! group (the second from cache), every activation broadcast done twice, and
//! (K-quants) the weights of a 64-byte line unpacked in two visits. Here each
//! 64-byte line of the group is read once: its two 32-byte halves (rows 0..8
//! and 8..16, one row per 32-bit lane) are unpacked and multiplied with the
//! same broadcast of four activation bytes, so one broadcast serves sixteen
//! rows, and the nibble formats take both nibbles of a byte in the same visit.
//! Sub-block scales are widened for sixteen rows at a time (`vpunpck*bw` of
//! the group's scale bytes with themselves).
//!
//! Summation order: the same integer sums and the same float epilogue per
//! block as the tile kernel of the format with one token, so a token's results
//! are the same bits through either (and for Q4_0 and Q8_0 the same bits in a
//! batch of any size).

use std::arch::x86_64::*;

use super::avx2_iq4::{IQ4_XS_D, IQ4_XS_GROUP_BLOCK, IQ4_XS_SCALES};
use super::avx2_kquants::{bcast4, f16x8};
use super::avx512_kquants::{Q4_K_GROUP_BLOCK, Q6_K_GROUP_BLOCK, Q8K_BLOCK, Q8K_BSUMS, Q8K_QS};
use super::avx512_q0::{Q4_0_GROUP_BLOCK, Q8_0_BLOCK, Q8_0_GROUP_BLOCK};
use super::packed::GroupOut;
use crate::formats::iquants::KVALUES_IQ4NL;

/// Sixteen bytes at `p` (one per row) as two vectors of eight i32 lanes
/// (rows 0..8, rows 8..16), each lane holding its byte in both 16-bit halves:
/// a `vpmaddwd` operand that scales both i16 of a lane by the row's value.
///
/// # Safety
/// `p` must be valid for reading 16 bytes; AVX2.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn pairs16(p: *const u8, signed: bool) -> [__m256i; 2] {
    // SAFETY: 16 readable bytes (caller).
    let v = unsafe { _mm_loadu_si128(p.cast()) };
    let widen = |x: __m128i| {
        if signed {
            _mm256_cvtepi8_epi16(x)
        } else {
            _mm256_cvtepu8_epi16(x)
        }
    };
    [
        widen(_mm_unpacklo_epi8(v, v)),
        widen(_mm_unpackhi_epi8(v, v)),
    ]
}

/// The bytes of row `r` at `p` and at `q` (sixteen rows each) as the i16 pair
/// `(p[r], q[r])` of lane `r % 8` of vector `r / 8`.
///
/// # Safety
/// `p` and `q` must be valid for reading 16 bytes; AVX2.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn pairs16_of(p: *const u8, q: *const u8, signed: bool) -> [__m256i; 2] {
    // SAFETY: 16 readable bytes at each (caller).
    let (a, b) = unsafe { (_mm_loadu_si128(p.cast()), _mm_loadu_si128(q.cast())) };
    let widen = |x: __m128i| {
        if signed {
            _mm256_cvtepi8_epi16(x)
        } else {
            _mm256_cvtepu8_epi16(x)
        }
    };
    [
        widen(_mm_unpacklo_epi8(a, b)),
        widen(_mm_unpackhi_epi8(a, b)),
    ]
}

/// How far ahead of the line being read the kernels prefetch: about three
/// K-quant super-blocks of a group. The hardware prefetchers alone leave the
/// one-token kernels waiting on memory (Q4_K: 18 GB/s on one core of an AMD
/// EPYC against 33 with this, 45 from cache; 4 KiB ahead: 26, 16 KiB: 33).
const PREFETCH_AHEAD: usize = 9216;

/// Asks for the line at `p` + [`PREFETCH_AHEAD`] to be brought into L1
/// (a prefetch never faults, so the address may lie past the buffer). Each
/// kernel asks for one line ahead per line it reads.
#[target_feature(enable = "avx2")]
#[inline]
fn prefetch(p: *const u8) {
    _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH_AHEAD).cast());
}

/// [`prefetch`] for each line of the `bytes` at `p`.
#[target_feature(enable = "avx2")]
#[inline]
fn prefetch_lines(p: *const u8, bytes: usize) {
    for off in (0..bytes).step_by(64) {
        prefetch(p.wrapping_add(off));
    }
}

/// Writes the two eight-row accumulators into `out`.
#[target_feature(enable = "avx2")]
#[inline]
fn store(acc: [__m256; 2], out: &mut GroupOut) {
    // SAFETY: `out` is 16 f32.
    unsafe {
        _mm256_storeu_ps(out.as_mut_ptr(), acc[0]);
        _mm256_storeu_ps(out.as_mut_ptr().add(8), acc[1]);
    }
}

/// One packed Q4_K group (`nb` super-blocks at `w`, layout of
/// `avx512_kquants::pack_q4_k`) × the Q8_K activation row `a`.
///
/// # Safety
/// `w` must be valid for `nb * Q4_K_GROUP_BLOCK` bytes and `a` for `nb * 292`;
/// the CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q4_k(nb: usize, w: *const u8, a: *const u8, out: &mut GroupOut) {
    let lo = _mm256_set1_epi8(0x0F);
    let zero = _mm256_setzero_si256();
    let mut acc = [_mm256_setzero_ps(); 2];
    for b in 0..nb {
        // SAFETY: super-block b of the group and of the activation row is in
        // bounds (caller); offsets are within Q4_K_GROUP_BLOCK and Q8K_BLOCK.
        unsafe {
            let g = w.add(b * Q4_K_GROUP_BLOCK);
            let y = a.add(b * Q8K_BLOCK);
            let mut s1 = [zero; 2];
            for p in 0..4 {
                // Low nibbles: sub-block 2p; high nibbles: sub-block 2p + 1.
                // Each i16 lane is at most 8 · 2 · 15 · 128 = 30720.
                let (mut sl, mut sh) = ([zero; 2], [zero; 2]);
                for i in 0..8 {
                    let line = g.add(512 * p + 64 * i);
                    prefetch(line);
                    let yl = bcast4(y.add(Q8K_QS + 64 * p + 4 * i));
                    let yh = bcast4(y.add(Q8K_QS + 64 * p + 32 + 4 * i));
                    for h in 0..2 {
                        let v = _mm256_loadu_si256(line.add(32 * h).cast());
                        let ql = _mm256_and_si256(v, lo);
                        let qh = _mm256_and_si256(_mm256_srli_epi16::<4>(v), lo);
                        sl[h] = _mm256_add_epi16(sl[h], _mm256_maddubs_epi16(ql, yl));
                        sh[h] = _mm256_add_epi16(sh[h], _mm256_maddubs_epi16(qh, yh));
                    }
                }
                let scl = pairs16(g.add(2048 + 16 * (2 * p)), false);
                let sch = pairs16(g.add(2048 + 16 * (2 * p + 1)), false);
                for h in 0..2 {
                    s1[h] = _mm256_add_epi32(
                        s1[h],
                        _mm256_add_epi32(
                            _mm256_madd_epi16(sl[h], scl[h]),
                            _mm256_madd_epi16(sh[h], sch[h]),
                        ),
                    );
                }
            }
            prefetch_lines(g.add(2048), Q4_K_GROUP_BLOCK - 2048);
            // Minimums: Σ_k (min_2k, min_2k+1) · (Σ y of sub-blocks 2k, 2k + 1),
            // the sub-block sums being pairs of bsums.
            let bs = _mm256_loadu_si256(y.add(Q8K_BSUMS).cast());
            let sums = _mm_hadd_epi16(
                _mm256_castsi256_si128(bs),
                _mm256_extracti128_si256::<1>(bs),
            );
            let sums: [i32; 4] = std::mem::transmute(sums);
            let mut s2 = [zero; 2];
            for (k, &pair) in sums.iter().enumerate() {
                let m = pairs16_of(g.add(2176 + 32 * k), g.add(2176 + 32 * k + 16), false);
                let pair = _mm256_set1_epi32(pair);
                for h in 0..2 {
                    s2[h] = _mm256_add_epi32(s2[h], _mm256_madd_epi16(m[h], pair));
                }
            }
            let dy = _mm256_set1_ps(y.cast::<f32>().read_unaligned());
            for h in 0..2 {
                let d = f16x8(g.add(2304 + 16 * h));
                let dmin = f16x8(g.add(2336 + 16 * h));
                let r = _mm256_mul_ps(_mm256_cvtepi32_ps(s1[h]), d);
                let r = _mm256_fnmadd_ps(dmin, _mm256_cvtepi32_ps(s2[h]), r);
                acc[h] = _mm256_fmadd_ps(r, dy, acc[h]);
            }
        }
    }
    store(acc, out);
}

/// One packed Q6_K group (`nb` super-blocks at `w`, layout of
/// `avx512_kquants::pack_q6_k`) × the Q8_K activation row `a`. The quants'
/// offset −32 is taken off per super-block in integers: `−32 · Σ_s scale_s ·
/// Σ y_s` from the bsums.
///
/// # Safety
/// `w` must be valid for `nb * Q6_K_GROUP_BLOCK` bytes and `a` for `nb * 292`;
/// the CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q6_k(nb: usize, w: *const u8, a: *const u8, out: &mut GroupOut) {
    let lo = _mm256_set1_epi8(0x0F);
    let hi2 = _mm256_set1_epi8(0x30);
    let zero = _mm256_setzero_si256();
    let mut acc = [_mm256_setzero_ps(); 2];
    for b in 0..nb {
        // SAFETY: super-block b of the group and of the activation row is in
        // bounds (caller); offsets are within Q6_K_GROUP_BLOCK and Q8K_BLOCK.
        unsafe {
            let g = w.add(b * Q6_K_GROUP_BLOCK);
            let y = a.add(b * Q8K_BLOCK);
            let mut s1 = [zero; 2];
            for s in 0..16 {
                let sub = g.add(192 * s);
                prefetch_lines(sub, 192);
                let ys = y.add(Q8K_QS + 16 * s);
                let yv = [
                    bcast4(ys),
                    bcast4(ys.add(4)),
                    bcast4(ys.add(8)),
                    bcast4(ys.add(12)),
                ];
                let sc = pairs16(g.add(3072 + 16 * s), true);
                for h in 0..2 {
                    let qa = _mm256_loadu_si256(sub.add(32 * h).cast());
                    let qb = _mm256_loadu_si256(sub.add(64 + 32 * h).cast());
                    let qh = _mm256_loadu_si256(sub.add(128 + 32 * h).cast());
                    let with_high = |low: __m256i, high: __m256i| {
                        _mm256_or_si256(_mm256_and_si256(low, lo), _mm256_and_si256(high, hi2))
                    };
                    let q0 = with_high(qa, _mm256_slli_epi16::<4>(qh));
                    let q1 = with_high(_mm256_srli_epi16::<4>(qa), _mm256_slli_epi16::<2>(qh));
                    let q2 = with_high(qb, qh);
                    let q3 = with_high(_mm256_srli_epi16::<4>(qb), _mm256_srli_epi16::<2>(qh));
                    // Two products per i16 lane at most 4 · 63 · 128 = 32256.
                    let p01 = _mm256_add_epi16(
                        _mm256_maddubs_epi16(q0, yv[0]),
                        _mm256_maddubs_epi16(q1, yv[1]),
                    );
                    let p23 = _mm256_add_epi16(
                        _mm256_maddubs_epi16(q2, yv[2]),
                        _mm256_maddubs_epi16(q3, yv[3]),
                    );
                    s1[h] = _mm256_add_epi32(
                        s1[h],
                        _mm256_add_epi32(
                            _mm256_madd_epi16(p01, sc[h]),
                            _mm256_madd_epi16(p23, sc[h]),
                        ),
                    );
                }
            }
            prefetch_lines(g.add(3072), Q6_K_GROUP_BLOCK - 3072);
            // −32 · Σ_s scale_s · bsums[s], two sub-blocks per vpmaddwd.
            let bs = y.add(Q8K_BSUMS);
            let mut t = [zero; 2];
            for m in 0..8 {
                let sc = pairs16_of(g.add(3072 + 32 * m), g.add(3072 + 32 * m + 16), true);
                let pair = bcast4(bs.add(4 * m));
                for h in 0..2 {
                    t[h] = _mm256_add_epi32(t[h], _mm256_madd_epi16(sc[h], pair));
                }
            }
            let dy = _mm256_set1_ps(y.cast::<f32>().read_unaligned());
            for h in 0..2 {
                let s = _mm256_sub_epi32(s1[h], _mm256_slli_epi32::<5>(t[h]));
                let r = _mm256_mul_ps(_mm256_cvtepi32_ps(s), f16x8(g.add(3328 + 16 * h)));
                acc[h] = _mm256_fmadd_ps(r, dy, acc[h]);
            }
        }
    }
    store(acc, out);
}

/// The f16 scale of the Q8_0 activation block at `p`, as f32.
///
/// # Safety
/// `p` must be valid for reading 2 bytes; F16C.
#[target_feature(enable = "avx2,f16c")]
#[inline]
unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: the caller guarantees 2 readable bytes; the read is unaligned.
    let bits = unsafe { p.cast::<u16>().read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

/// One packed Q8_0 group (`nb` blocks at `w`, layout of
/// `avx512_q0::pack_q8_0`: weights stored with the sign bit flipped) × the
/// Q8_0 activation row `a`. Signed × signed bytes as
/// `vpmaddubsw(|y|, sign(w, y))` (each pair at most 2 · 128 · 127), one
/// `vpmaddwd` with ones per four values.
///
/// # Safety
/// `w` must be valid for `nb * Q8_0_GROUP_BLOCK` bytes and `a` for `nb` Q8_0
/// blocks; the CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q8_0(nb: usize, w: *const u8, a: *const u8, out: &mut GroupOut) {
    let flip = _mm256_set1_epi8(i8::MIN);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); 2];
    for b in 0..nb {
        // SAFETY: block b of the group and of the activation row is in bounds
        // (caller); offsets are within Q8_0_GROUP_BLOCK and the block.
        unsafe {
            let g = w.add(b * Q8_0_GROUP_BLOCK);
            let p = a.add(b * Q8_0_BLOCK);
            let dy = _mm256_set1_ps(f16_at(p));
            let ya: [u8; 32] =
                std::mem::transmute(_mm256_abs_epi8(_mm256_loadu_si256(p.add(2).cast())));
            let mut sum = [_mm256_setzero_si256(); 2];
            prefetch(g.add(Q8_0_GROUP_BLOCK - 64));
            for j in 0..8 {
                prefetch(g.add(64 * j));
                let ys = bcast4(p.add(2 + 4 * j));
                let ya = bcast4(ya.as_ptr().add(4 * j));
                for (h, sum) in sum.iter_mut().enumerate() {
                    let q = _mm256_xor_si256(
                        _mm256_loadu_si256(g.add(32 + 64 * j + 32 * h).cast()),
                        flip,
                    );
                    let prod = _mm256_maddubs_epi16(ya, _mm256_sign_epi8(q, ys));
                    *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(prod, ones));
                }
            }
            for h in 0..2 {
                let d = _mm256_mul_ps(f16x8(g.add(16 * h)), dy);
                acc[h] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sum[h]), acc[h]);
            }
        }
    }
    store(acc, out);
}

/// One packed Q4_0 group (`nb` blocks at `w`, layout of
/// `avx512_q0::pack_q4_0`) × the Q8_0 activation row `a`: both nibbles of a
/// line against two broadcasts, summed in 16 bits (at most 8 · 2 · 15 · 128),
/// minus `8 · Σ y` for the weights' offset.
///
/// # Safety
/// `w` must be valid for `nb * Q4_0_GROUP_BLOCK` bytes and `a` for `nb` Q8_0
/// blocks; the CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q4_0(nb: usize, w: *const u8, a: *const u8, out: &mut GroupOut) {
    let lo = _mm256_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    let eights = _mm256_set1_epi8(8);
    let mut acc = [_mm256_setzero_ps(); 2];
    for b in 0..nb {
        // SAFETY: block b of the group and of the activation row is in bounds
        // (caller); offsets are within Q4_0_GROUP_BLOCK and the block.
        unsafe {
            let g = w.add(b * Q4_0_GROUP_BLOCK);
            let p = a.add(b * Q8_0_BLOCK);
            let dy = _mm256_set1_ps(f16_at(p));
            let yv = _mm256_loadu_si256(p.add(2).cast());
            // 8 · Σ y of the block, in every lane.
            let offset = _mm256_madd_epi16(_mm256_maddubs_epi16(eights, yv), ones);
            let offset = _mm256_add_epi32(offset, _mm256_permute2x128_si256::<1>(offset, offset));
            let offset = _mm256_add_epi32(offset, _mm256_shuffle_epi32::<0b0100_1110>(offset));
            let offset = _mm256_add_epi32(offset, _mm256_shuffle_epi32::<0b1011_0001>(offset));
            let mut s16 = [_mm256_setzero_si256(); 2];
            prefetch(g.add(Q4_0_GROUP_BLOCK - 64));
            for m in 0..4 {
                prefetch(g.add(64 * m));
                let yl = bcast4(p.add(2 + 4 * m));
                let yh = bcast4(p.add(2 + 16 + 4 * m));
                for (h, s16) in s16.iter_mut().enumerate() {
                    let v = _mm256_loadu_si256(g.add(32 + 64 * m + 32 * h).cast());
                    let ql = _mm256_and_si256(v, lo);
                    let qh = _mm256_and_si256(_mm256_srli_epi16::<4>(v), lo);
                    *s16 = _mm256_add_epi16(*s16, _mm256_maddubs_epi16(ql, yl));
                    *s16 = _mm256_add_epi16(*s16, _mm256_maddubs_epi16(qh, yh));
                }
            }
            for h in 0..2 {
                let sum = _mm256_sub_epi32(_mm256_madd_epi16(s16[h], ones), offset);
                let d = _mm256_mul_ps(f16x8(g.add(16 * h)), dy);
                acc[h] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sum), acc[h]);
            }
        }
    }
    store(acc, out);
}

/// One packed IQ4_XS group (`nb` super-blocks at `w`, layout of
/// `avx2_iq4::pack_iq4_xs`) × the Q8_K activation row `a`: both nibbles of a
/// line looked up in the non-linear levels (`vpshufb`), multiplied as
/// `vpmaddubsw(|y|, sign(level, y))` (each pair at most 2 · 128 · 127), one
/// `vpmaddwd` with the sub-block scale per four values.
///
/// # Safety
/// `w` must be valid for `nb * IQ4_XS_GROUP_BLOCK` bytes and `a` for
/// `nb * 292`; the CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn iq4_xs(nb: usize, w: *const u8, a: *const u8, out: &mut GroupOut) {
    let lo = _mm256_set1_epi8(0x0F);
    // SAFETY: the table is 16 bytes.
    let table = unsafe { _mm_loadu_si128(KVALUES_IQ4NL.as_ptr().cast()) };
    let levels = _mm256_broadcastsi128_si256(table);
    let mut acc = [_mm256_setzero_ps(); 2];
    for b in 0..nb {
        // SAFETY: super-block b of the group and of the activation row is in
        // bounds (caller); offsets are within IQ4_XS_GROUP_BLOCK and
        // Q8K_BLOCK.
        unsafe {
            let g = w.add(b * IQ4_XS_GROUP_BLOCK);
            let y = a.add(b * Q8K_BLOCK);
            let mut sum = [_mm256_setzero_si256(); 2];
            for ib in 0..8 {
                let ys = y.add(Q8K_QS + 32 * ib);
                let yv = _mm256_loadu_si256(ys.cast());
                let ya: [u8; 32] = std::mem::transmute(_mm256_abs_epi8(yv));
                let sc = pairs16(g.add(IQ4_XS_SCALES + 16 * ib), true);
                for m in 0..4 {
                    prefetch(g.add(256 * ib + 64 * m));
                    let (yl, yh) = (bcast4(ys.add(4 * m)), bcast4(ys.add(16 + 4 * m)));
                    let (al, ah) = (
                        bcast4(ya.as_ptr().add(4 * m)),
                        bcast4(ya.as_ptr().add(16 + 4 * m)),
                    );
                    for h in 0..2 {
                        let v = _mm256_loadu_si256(g.add(256 * ib + 64 * m + 32 * h).cast());
                        let ql = _mm256_shuffle_epi8(levels, _mm256_and_si256(v, lo));
                        let qh = _mm256_shuffle_epi8(
                            levels,
                            _mm256_and_si256(_mm256_srli_epi16::<4>(v), lo),
                        );
                        let pl = _mm256_maddubs_epi16(al, _mm256_sign_epi8(ql, yl));
                        let ph = _mm256_maddubs_epi16(ah, _mm256_sign_epi8(qh, yh));
                        sum[h] = _mm256_add_epi32(
                            sum[h],
                            _mm256_add_epi32(
                                _mm256_madd_epi16(pl, sc[h]),
                                _mm256_madd_epi16(ph, sc[h]),
                            ),
                        );
                    }
                }
            }
            prefetch_lines(g.add(IQ4_XS_SCALES), IQ4_XS_GROUP_BLOCK - IQ4_XS_SCALES);
            let dy = _mm256_set1_ps(y.cast::<f32>().read_unaligned());
            for h in 0..2 {
                let dd = _mm256_mul_ps(f16x8(g.add(IQ4_XS_D + 16 * h)), dy);
                acc[h] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(sum[h]), acc[h]);
            }
        }
    }
    store(acc, out);
}

#[cfg(test)]
mod tests {
    use super::super::avx2_iq4::Iq4Xs;
    use super::super::avx2_kquants::{Q4K, Q6K, Tile};
    use super::super::avx2_q0::{Q4, Q8};
    use super::super::packed::{GROUP, PackedFormat};
    use crate::simd::{Cpu, cpu_level};
    use crate::test_data::{quantized, values};
    use crate::traits_for;

    /// Each one-token kernel against the tile kernel with one token: the
    /// same bits (same integer sums, same float epilogue), on a group with a
    /// padding row and 8 super-blocks (2048 values). Their agreement with the
    /// scalar dot is checked by `packed.rs`' tests, which reach these kernels
    /// through every one-token call.
    #[test]
    #[cfg_attr(not(hearth_avx2), ignore = "needs AVX2")]
    fn one_token_kernels_equal_the_one_token_tiles_bit_for_bit() {
        if cpu_level() < Cpu::Avx2 {
            return;
        }
        fn check<K: Tile>(fmt: &PackedFormat) {
            let ty = fmt.ty;
            let n_in = 2048;
            let nb = n_in / ty.block_size();
            let vt = traits_for(Cpu::Scalar, ty).unwrap().vec_dot_type;
            let w = quantized(ty, &values(n_in * (GROUP - 1), 5));
            let row = w.len() / (GROUP - 1);
            let zero = vec![0u8; row];
            let rows: [&[u8]; GROUP] = std::array::from_fn(|r| {
                if r < GROUP - 1 {
                    &w[r * row..(r + 1) * row]
                } else {
                    &zero
                }
            });
            let mut group = vec![0u8; nb * fmt.group_block_bytes];
            (fmt.pack)(&rows, nb, &mut group);
            for seed in 0..3 {
                let a = quantized(vt, &values(n_in, 50 + seed));
                let (mut one, mut tile) = ([f32::NAN; GROUP], [[f32::NAN; GROUP]; 1]);
                // SAFETY: the group holds nb group blocks, the activation row
                // nb blocks of the vec_dot_type; the CPU has AVX2 (checked),
                // FMA and F16C (the AVX2 level requires them).
                unsafe {
                    K::one(nb, group.as_ptr(), a.as_ptr(), &mut one);
                    K::tile::<1>(nb, group.as_ptr(), [a.as_ptr()], &mut tile);
                }
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&one), bits(&tile[0]), "{ty} seed {seed}");
                assert_eq!(one[GROUP - 1], 0.0, "{ty}: the padding row");
            }
        }
        check::<Q4>(&super::super::avx2_q0::Q4_0);
        check::<Q8>(&super::super::avx2_q0::Q8_0);
        check::<Q4K>(&super::super::avx2_kquants::Q4_K);
        check::<Q6K>(&super::super::avx2_kquants::Q6_K);
        check::<Iq4Xs>(&super::super::avx2_iq4::IQ4_XS);
    }
}
