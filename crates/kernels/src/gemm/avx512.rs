//! AVX-512 (F, BW, VL, VNNI) GEMM micro-kernels on 256-bit vectors: a tile of
//! four weight rows × up to four activation rows per call.
//!
//! Each weight block is loaded and unpacked once per tile and multiplied with
//! every activation row of the tile; each activation block once and used for
//! every weight row. The integer products use `vpdpbusd` (u8 × s8, four pairs
//! summed into i32) and, where sub-block scales apply, `vpmaddubsw` +
//! `vpdpwssd` so the scale multiply stays in integers until the super-block
//! ends — the scheme of ggml's AVX2 dot products (ggml-cpu/arch/x86/quants.c),
//! spread over a 4 × 4 register tile as llamafile's tinyBLAS does for Q8_0/Q4_0.
//!
//! Block layouts (ggml-common.h): Q4_0 `{d: f16, qs: [u8; 16]}`, Q8_0
//! `{d: f16, qs: [i8; 32]}`, Q4_K `{d, dmin: f16, scales: [u8; 12], qs: [u8; 128]}`,
//! Q6_K `{ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16}`, Q8_K
//! `{d: f32, qs: [i8; 256], bsums: [i16; 16]}`.

use std::arch::x86_64::*;

/// Weight rows per tile.
pub(super) const NR: usize = 4;

/// The tile of one kernel call: `out[c][r] = dot(weight row r, activation row c)`.
pub(super) type Tile = [[f32; NR]; 4];

/// Sum of the eight lanes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// An f16 read from `p` as f32.
///
/// # Safety
/// `p` must be valid for reading 2 bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: the caller guarantees 2 readable bytes; the read is unaligned.
    let bits = unsafe { p.cast::<u16>().read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

/// 32 bytes from `p`.
///
/// # Safety
/// `p` must be valid for reading 32 bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load(p: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 32 readable bytes; loadu needs no alignment.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

/// Writes the horizontal sums of `acc` into `out`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn store<const NC: usize>(acc: &[[__m256; NC]; NR], out: &mut Tile) {
    for (r, row) in acc.iter().enumerate() {
        for (c, &v) in row.iter().enumerate() {
            out[c][r] = hsum(v);
        }
    }
}

/// Q4_0 weights × Q8_0 activations over `nb` blocks of 32.
///
/// `Σ (q - 8)·y = Σ q·y - 8·Σ y`: the nibbles are unsigned, so `vpdpbusd` takes
/// them directly, starting from `-8·Σy` of the activation block.
///
/// # Safety
/// Each `w[r]` must be valid for `nb * 18` bytes and each `a[c]` for `nb * 34`;
/// the CPU must have the features enabled below.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn q4_0<const NC: usize>(
    nb: usize,
    w: [*const u8; NR],
    a: [*const u8; NC],
    out: &mut Tile,
) {
    let mut acc = [[_mm256_setzero_ps(); NC]; NR];
    let low = _mm256_set1_epi8(0x0F);
    let eight = _mm256_set1_epi8(8);
    for b in 0..nb {
        let mut y = [_mm256_setzero_si256(); NC];
        let mut start = [_mm256_setzero_si256(); NC];
        let mut dy = [_mm256_setzero_ps(); NC];
        for c in 0..NC {
            // SAFETY: block b of activation row c is in bounds (caller).
            unsafe {
                let p = a[c].add(b * 34);
                dy[c] = _mm256_set1_ps(f16_at(p));
                y[c] = load(p.add(2));
            }
            start[c] = _mm256_sub_epi32(
                _mm256_setzero_si256(),
                _mm256_dpbusd_epi32(_mm256_setzero_si256(), eight, y[c]),
            );
        }
        for r in 0..NR {
            // SAFETY: block b of weight row r is in bounds (caller).
            let (dw, q) = unsafe {
                let p = w[r].add(b * 18);
                let packed = _mm_loadu_si128(p.add(2).cast());
                let both = _mm256_set_m128i(_mm_srli_epi16::<4>(packed), packed);
                (_mm256_set1_ps(f16_at(p)), _mm256_and_si256(both, low))
            };
            for c in 0..NC {
                // tinyBLAS' order: fma(d_w·d_a, float(dot), acc).
                let dot = _mm256_dpbusd_epi32(start[c], q, y[c]);
                let d = _mm256_mul_ps(dw, dy[c]);
                acc[r][c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), acc[r][c]);
            }
        }
    }
    store(&acc, out);
}

/// Q8_0 weights × Q8_0 activations over `nb` blocks of 32.
///
/// `vpdpbusd` needs an unsigned operand: `q + 128` (a sign-bit flip) times `y`,
/// starting from `-128·Σy`.
///
/// # Safety
/// Each `w[r]` and `a[c]` must be valid for `nb * 34` bytes; the CPU must have
/// the features enabled below.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn q8_0<const NC: usize>(
    nb: usize,
    w: [*const u8; NR],
    a: [*const u8; NC],
    out: &mut Tile,
) {
    let mut acc = [[_mm256_setzero_ps(); NC]; NR];
    let flip = _mm256_set1_epi8(i8::MIN);
    for b in 0..nb {
        let mut y = [_mm256_setzero_si256(); NC];
        let mut start = [_mm256_setzero_si256(); NC];
        let mut dy = [_mm256_setzero_ps(); NC];
        for c in 0..NC {
            // SAFETY: block b of activation row c is in bounds (caller).
            unsafe {
                let p = a[c].add(b * 34);
                dy[c] = _mm256_set1_ps(f16_at(p));
                y[c] = load(p.add(2));
            }
            start[c] = _mm256_sub_epi32(
                _mm256_setzero_si256(),
                _mm256_dpbusd_epi32(_mm256_setzero_si256(), flip, y[c]),
            );
        }
        for r in 0..NR {
            // SAFETY: block b of weight row r is in bounds (caller).
            let (dw, q) = unsafe {
                let p = w[r].add(b * 34);
                (
                    _mm256_set1_ps(f16_at(p)),
                    _mm256_xor_si256(load(p.add(2)), flip),
                )
            };
            for c in 0..NC {
                // tinyBLAS' order: fma(d_w·d_a, float(dot), acc).
                let dot = _mm256_dpbusd_epi32(start[c], q, y[c]);
                let d = _mm256_mul_ps(dw, dy[c]);
                acc[r][c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), acc[r][c]);
            }
        }
    }
    store(&acc, out);
}

/// Q8_K super-block offsets: d (f32), qs, bsums.
const Q8K_QS: usize = 4;
const Q8K_BSUMS: usize = 260;
const Q8K_SIZE: usize = 292;

/// Q4_K's eight 6-bit scales and eight 6-bit minimums from the 12 packed
/// bytes, as ggml's AVX code unpacks them (four 32-bit words and three masks,
/// equivalent to `get_scale_min_k4` for every sub-block).
#[inline]
fn q4_k_scales(q: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const LOW2: u32 = 0x0303_0303;
    let word = |i: usize| u32::from_le_bytes([q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]]);
    let (w0, w1, w2) = (word(0), word(1), word(2));
    let sc_lo = w0 & LOW6;
    let sc_hi = (w2 & LOW4) | (((w0 >> 6) & LOW2) << 4);
    let mn_lo = w1 & LOW6;
    let mn_hi = ((w2 >> 4) & LOW4) | (((w1 >> 6) & LOW2) << 4);
    let join = |lo: u32, hi: u32| (u64::from(lo) | u64::from(hi) << 32).to_le_bytes();
    (join(sc_lo, sc_hi), join(mn_lo, mn_hi))
}

/// Q4_K weights × Q8_K activations over `nb` super-blocks of 256.
///
/// Per 32-value sub-block `j`: `vpmaddubsw(q, y)` (pairs, ≤ 2·15·127) then
/// `vpdpwssd` with the sub-block scale accumulates in i32; the minimums use
/// the activation's 16-value sums (`bsums`), paired per sub-block.
///
/// # Safety
/// Each `w[r]` must be valid for `nb * 144` bytes and each `a[c]` for
/// `nb * 292`; the CPU must have the features enabled below.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn q4_k<const NC: usize>(
    nb: usize,
    w: [*const u8; NR],
    a: [*const u8; NC],
    out: &mut Tile,
) {
    let mut acc = [[_mm256_setzero_ps(); NC]; NR];
    let low = _mm256_set1_epi8(0x0F);
    for b in 0..nb {
        let mut dy = [0f32; NC];
        let mut bsums = [_mm256_setzero_si256(); NC];
        for c in 0..NC {
            // SAFETY: super-block b of activation row c is in bounds (caller).
            unsafe {
                let p = a[c].add(b * Q8K_SIZE);
                dy[c] = p.cast::<f32>().read_unaligned();
                bsums[c] = _mm256_loadu_si256(p.add(Q8K_BSUMS).cast());
            }
        }
        let mut isum = [[_mm256_setzero_si256(); NC]; NR];
        let mut dw = [0f32; NR];
        let mut sc = [[0u8; 8]; NR];
        for r in 0..NR {
            // SAFETY: super-block b of weight row r is in bounds (caller).
            unsafe {
                let p = w[r].add(b * 144);
                dw[r] = f16_at(p);
                let dmin = f16_at(p.add(2));
                let (s, m) = q4_k_scales(&*p.add(4).cast::<[u8; 12]>());
                sc[r] = s;
                // The minimums' part goes into the accumulators right away,
                // which keeps the tile's registers for the products. Each min
                // in two i16 lanes meets the two 16-value sums of its sub-block:
                // lane j of the product is min_j · (bsums[2j] + bsums[2j+1]).
                let m8 = _mm_loadl_epi64(m.as_ptr().cast());
                let mins = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
                for c in 0..NC {
                    let min_term = _mm256_cvtepi32_ps(_mm256_madd_epi16(mins, bsums[c]));
                    let m = _mm256_set1_ps(dmin * dy[c]);
                    acc[r][c] = _mm256_fnmadd_ps(min_term, m, acc[r][c]);
                }
            }
        }
        for k in 0..4 {
            let mut ylo = [_mm256_setzero_si256(); NC];
            let mut yhi = [_mm256_setzero_si256(); NC];
            for c in 0..NC {
                // SAFETY: values 64k..64k+64 of super-block b (caller).
                unsafe {
                    let p = a[c].add(b * Q8K_SIZE + Q8K_QS + 64 * k);
                    ylo[c] = load(p);
                    yhi[c] = load(p.add(32));
                }
            }
            for r in 0..NR {
                // SAFETY: bytes 32k..32k+32 of the super-block's qs (caller).
                let packed = unsafe { load(w[r].add(b * 144 + 16 + 32 * k)) };
                let qlo = _mm256_and_si256(packed, low);
                let qhi = _mm256_and_si256(_mm256_srli_epi16::<4>(packed), low);
                let slo = _mm256_set1_epi16(i16::from(sc[r][2 * k]));
                let shi = _mm256_set1_epi16(i16::from(sc[r][2 * k + 1]));
                for c in 0..NC {
                    let plo = _mm256_maddubs_epi16(qlo, ylo[c]);
                    let phi = _mm256_maddubs_epi16(qhi, yhi[c]);
                    isum[r][c] = _mm256_dpwssd_epi32(isum[r][c], plo, slo);
                    isum[r][c] = _mm256_dpwssd_epi32(isum[r][c], phi, shi);
                }
            }
        }
        for r in 0..NR {
            for c in 0..NC {
                let d = _mm256_set1_ps(dw[r] * dy[c]);
                acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r][c]), d, acc[r][c]);
            }
        }
    }
    store(&acc, out);
}

/// Q6_K weights × Q8_K activations over `nb` super-blocks of 256.
///
/// Quants are `q - 32` with `q` in 0..64 (4 low bits in `ql`, 2 high in `qh`):
/// `Σ sc·(q - 32)·y = Σ sc·q·y - 32·Σ sc·bsum` over the 16-value sub-blocks.
///
/// # Safety
/// Each `w[r]` must be valid for `nb * 210` bytes and each `a[c]` for
/// `nb * 292`; the CPU must have the features enabled below.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn q6_k<const NC: usize>(
    nb: usize,
    w: [*const u8; NR],
    a: [*const u8; NC],
    out: &mut Tile,
) {
    let mut acc = [[_mm256_setzero_ps(); NC]; NR];
    let low = _mm256_set1_epi8(0x0F);
    let high2 = _mm256_set1_epi8(0x30);
    for b in 0..nb {
        let mut dy = [0f32; NC];
        let mut bsums = [_mm256_setzero_si256(); NC];
        for c in 0..NC {
            // SAFETY: super-block b of activation row c is in bounds (caller).
            unsafe {
                let p = a[c].add(b * Q8K_SIZE);
                dy[c] = p.cast::<f32>().read_unaligned();
                bsums[c] = _mm256_loadu_si256(p.add(Q8K_BSUMS).cast());
            }
        }
        let mut isum = [[_mm256_setzero_si256(); NC]; NR];
        let mut dw = [0f32; NR];
        let mut scales = [_mm256_setzero_si256(); NR];
        for r in 0..NR {
            // SAFETY: super-block b of weight row r is in bounds (caller).
            unsafe {
                let p = w[r].add(b * 210);
                dw[r] = f16_at(p.add(208));
                scales[r] = _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(192).cast()));
            }
            for c in 0..NC {
                // -32·Σ sc·bsum, as i32 lanes.
                let corr = _mm256_madd_epi16(scales[r], bsums[c]);
                isum[r][c] = _mm256_sub_epi32(isum[r][c], _mm256_slli_epi32::<5>(corr));
            }
        }
        for h in 0..2 {
            let mut y = [[_mm256_setzero_si256(); NC]; 4];
            for (k, yk) in y.iter_mut().enumerate() {
                for c in 0..NC {
                    // SAFETY: values 128h + 32k.. of super-block b (caller).
                    yk[c] = unsafe { load(a[c].add(b * Q8K_SIZE + Q8K_QS + 128 * h + 32 * k)) };
                }
            }
            for r in 0..NR {
                // SAFETY: ql[64h..64h+64] and qh[32h..32h+32] of super-block b.
                let (ql0, ql1, qh) = unsafe {
                    let p = w[r].add(b * 210);
                    (
                        load(p.add(64 * h)),
                        load(p.add(64 * h + 32)),
                        load(p.add(128 + 32 * h)),
                    )
                };
                let q = [
                    _mm256_or_si256(
                        _mm256_and_si256(ql0, low),
                        _mm256_and_si256(_mm256_slli_epi16::<4>(qh), high2),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(ql1, low),
                        _mm256_and_si256(_mm256_slli_epi16::<2>(qh), high2),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), low),
                        _mm256_and_si256(qh, high2),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), low),
                        _mm256_and_si256(_mm256_srli_epi16::<2>(qh), high2),
                    ),
                ];
                for (k, &qk) in q.iter().enumerate() {
                    // Scales 8h + 2k (first 16 values) and 8h + 2k + 1 (last 16),
                    // each in eight i16 lanes.
                    let sc = scale_pair(scales[r], 8 * h + 2 * k);
                    for c in 0..NC {
                        let p = _mm256_maddubs_epi16(qk, y[k][c]);
                        isum[r][c] = _mm256_dpwssd_epi32(isum[r][c], p, sc);
                    }
                }
            }
        }
        for r in 0..NR {
            for c in 0..NC {
                let d = _mm256_set1_ps(dw[r] * dy[c]);
                acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r][c]), d, acc[r][c]);
            }
        }
    }
    store(&acc, out);
}

/// A vector whose low eight i16 lanes are scale `s` and high eight scale `s + 1`
/// of the sixteen i16 scales in `scales`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
#[inline]
fn scale_pair(scales: __m256i, s: usize) -> __m256i {
    let idx_lo = s as i16;
    let idx_hi = (s + 1) as i16;
    let idx = _mm256_setr_epi16(
        idx_lo, idx_lo, idx_lo, idx_lo, idx_lo, idx_lo, idx_lo, idx_lo, idx_hi, idx_hi, idx_hi,
        idx_hi, idx_hi, idx_hi, idx_hi, idx_hi,
    );
    _mm256_permutexvar_epi16(idx, scales)
}

#[cfg(test)]
mod tests {
    use super::q4_k_scales;

    /// ggml's `get_scale_min_k4`, one sub-block at a time.
    fn scale_min(j: usize, q: &[u8; 12]) -> (u8, u8) {
        if j < 4 {
            (q[j] & 63, q[j + 4] & 63)
        } else {
            (
                (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
                (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
            )
        }
    }

    #[test]
    fn q4_k_scale_unpacking_matches_get_scale_min_k4() {
        let mut s = 0x1234_5678_9abc_def1u64;
        for _ in 0..1000 {
            let mut q = [0u8; 12];
            for b in &mut q {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                *b = s as u8;
            }
            let (sc, mn) = q4_k_scales(&q);
            for j in 0..8 {
                assert_eq!((sc[j], mn[j]), scale_min(j, &q), "{q:?} sub-block {j}");
            }
        }
    }
}
