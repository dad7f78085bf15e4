//! Packed Q4_0 and Q8_0 kernels (AVX-512 VNNI) for 16-row groups (see
//! `packed.rs` for the contract).
//!
//! Group block layouts (16 rows × one 32-value block):
//! - Q8_0, 544 bytes: the 16 row scales (f16), then eight 64-byte vectors
//!   `j = 0..8` whose 32-bit lane `r` holds `qs[4j..4j+4] ^ 0x80` of row `r`
//!   (the sign bit flipped: `vpdpbusd` wants the weights unsigned).
//! - Q4_0, 288 bytes: the 16 row scales, then four 64-byte vectors `m = 0..4`
//!   whose lane `r` holds the packed bytes `qs[4m..4m+4]` of row `r`: the low
//!   nibbles are values `4m..4m+4` (group `j = m`), the high nibbles values
//!   `16+4m..` (group `j = 4 + m`).
//!
//! Summation order: llama.cpp's tinyBLAS (`tinyBLAS_Q0_AVX` in
//! llamafile/sgemm.cpp) keeps, per (row, token), eight f32 lanes; lane `j`
//! accumulates `fma(d_w·d_a, float(Σ of the four products 4j..4j+4), acc)`
//! over the blocks, and the result is its horizontal sum
//! `((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7))`. Here lane `j` of one (row, token)
//! is lane `r` of accumulator `j` of that token, so the kernels keep eight
//! accumulators per token and add them in that order at the end: the results
//! are bit for bit tinyBLAS' (integer sums are exact, the scale product of
//! two f16 values is exact in f32).
//!
//! The weight offset (Q4_0's `-8`, Q8_0's flipped `+128`) is taken off in
//! integers: each `vpdpbusd` starts from `-k·Σ` of the four activation bytes.

use std::arch::x86_64::*;

use super::packed::{GROUP, GroupOut, PackedFormat};
use gguf::TensorType;

/// Packed Q8_0 (x86_64 AVX-512 VNNI).
pub(super) const Q8_0: PackedFormat = PackedFormat {
    ty: TensorType::Q8_0,
    group_block_bytes: Q8_0_GROUP_BLOCK,
    pack: pack_q8_0,
    gemm: gemm_q8_0,
};

/// Packed Q4_0 (x86_64 AVX-512 VNNI).
pub(super) const Q4_0: PackedFormat = PackedFormat {
    ty: TensorType::Q4_0,
    group_block_bytes: Q4_0_GROUP_BLOCK,
    pack: pack_q4_0,
    gemm: gemm_q4_0,
};

pub(super) const Q8_0_BLOCK: usize = 34;
pub(super) const Q4_0_BLOCK: usize = 18;
pub(super) const Q8_0_GROUP_BLOCK: usize = 2 * GROUP + GROUP * 32;
pub(super) const Q4_0_GROUP_BLOCK: usize = 2 * GROUP + GROUP * 16;

/// Tokens per register tile: eight accumulators per token.
const NC: usize = 2;

/// Blocks whose activation terms are prepared at a time.
const CHUNK: usize = 32;

pub(super) fn pack_q8_0(rows: &[&[u8]; GROUP], nb: usize, dst: &mut [u8]) {
    for (b, out) in dst.chunks_exact_mut(Q8_0_GROUP_BLOCK).take(nb).enumerate() {
        let (scales, qs) = out.split_at_mut(2 * GROUP);
        for (r, row) in rows.iter().enumerate() {
            let blk = &row[b * Q8_0_BLOCK..(b + 1) * Q8_0_BLOCK];
            scales[2 * r..2 * r + 2].copy_from_slice(&blk[..2]);
            for j in 0..8 {
                for i in 0..4 {
                    qs[64 * j + 4 * r + i] = blk[2 + 4 * j + i] ^ 0x80;
                }
            }
        }
    }
}

pub(super) fn pack_q4_0(rows: &[&[u8]; GROUP], nb: usize, dst: &mut [u8]) {
    for (b, out) in dst.chunks_exact_mut(Q4_0_GROUP_BLOCK).take(nb).enumerate() {
        let (scales, qs) = out.split_at_mut(2 * GROUP);
        for (r, row) in rows.iter().enumerate() {
            let blk = &row[b * Q4_0_BLOCK..(b + 1) * Q4_0_BLOCK];
            scales[2 * r..2 * r + 2].copy_from_slice(&blk[..2]);
            for m in 0..4 {
                qs[64 * m + 4 * r..64 * m + 4 * r + 4].copy_from_slice(&blk[2 + 4 * m..6 + 4 * m]);
            }
        }
    }
}

/// Row `r`'s Q8_0 block from a packed group block (the inverse of
/// [`pack_q8_0`]).
pub(super) fn unpack_q8_0(group_block: &[u8], r: usize, dst: &mut [u8]) {
    let (scales, qs) = group_block[..Q8_0_GROUP_BLOCK].split_at(2 * GROUP);
    dst[..2].copy_from_slice(&scales[2 * r..2 * r + 2]);
    for j in 0..8 {
        for i in 0..4 {
            dst[2 + 4 * j + i] = qs[64 * j + 4 * r + i] ^ 0x80;
        }
    }
}

/// Row `r`'s Q4_0 block from a packed group block (the inverse of
/// [`pack_q4_0`]).
pub(super) fn unpack_q4_0(group_block: &[u8], r: usize, dst: &mut [u8]) {
    let (scales, qs) = group_block[..Q4_0_GROUP_BLOCK].split_at(2 * GROUP);
    dst[..2].copy_from_slice(&scales[2 * r..2 * r + 2]);
    for m in 0..4 {
        dst[2 + 4 * m..6 + 4 * m].copy_from_slice(&qs[64 * m + 4 * r..64 * m + 4 * r + 4]);
    }
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

/// One group block's eight weight vectors (lane `r`: four bytes of group `j`
/// of row `r`, unsigned) and the 16 row scales.
trait Weights {
    /// Bytes per group block.
    const BYTES: usize;
    /// The weight offset `k`: the true weight is `stored - k`.
    const OFFSET: i8;
    /// Scales and the eight vectors of the group block at `p`.
    ///
    /// # Safety
    /// `p` must be valid for [`Self::BYTES`] bytes; AVX-512 F/BW.
    unsafe fn load(p: *const u8) -> (__m512, [__m512i; 8]);
}

struct Q8;
struct Q4;

impl Weights for Q8 {
    const BYTES: usize = Q8_0_GROUP_BLOCK;
    const OFFSET: i8 = i8::MIN;
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn load(p: *const u8) -> (__m512, [__m512i; 8]) {
        // SAFETY: 544 readable bytes (caller); unaligned loads; AVX-512 F (caller).
        unsafe {
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()));
            let q = std::array::from_fn(|j| _mm512_loadu_si512(p.add(32 + 64 * j).cast()));
            (d, q)
        }
    }
}

impl Weights for Q4 {
    const BYTES: usize = Q4_0_GROUP_BLOCK;
    const OFFSET: i8 = 8;
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn load(p: *const u8) -> (__m512, [__m512i; 8]) {
        // SAFETY: 288 readable bytes (caller); unaligned loads; AVX-512 F/BW (caller).
        unsafe {
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()));
            let low = _mm512_set1_epi8(0x0F);
            let packed: [__m512i; 4] =
                std::array::from_fn(|m| _mm512_loadu_si512(p.add(32 + 64 * m).cast()));
            let q = std::array::from_fn(|j| {
                if j < 4 {
                    _mm512_and_si512(packed[j], low)
                } else {
                    _mm512_and_si512(_mm512_srli_epi16::<4>(packed[j - 4]), low)
                }
            });
            (d, q)
        }
    }
}

/// `NT` tokens (≤ [`NC`]) × 16 rows over `nb` blocks.
///
/// # Safety
/// `w` valid for `nb` group blocks of `W`, each `a[c]` for `nb` Q8_0 blocks;
/// AVX-512 F/BW/VL/VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile<W: Weights, const NT: usize>(
    nb: usize,
    w: *const u8,
    a: [*const u8; NT],
    out: &mut [GroupOut],
) {
    let mut acc = [[_mm512_setzero_ps(); 8]; NT];
    let offset = _mm256_set1_epi8(W::OFFSET);
    // Per (token, block): the activation scale and `-k·Σ` of each four
    // activation bytes, where each vpdpbusd starts. Written to memory for a run
    // of blocks first, so the main loop broadcasts them with loads rather than
    // shuffles.
    let mut dy = [[0f32; CHUNK]; NT];
    let mut start = [[[0i32; 8]; CHUNK]; NT];
    for b0 in (0..nb).step_by(CHUNK) {
        let n = CHUNK.min(nb - b0);
        for c in 0..NT {
            for i in 0..n {
                // SAFETY: activation block b0 + i is in bounds (caller).
                unsafe {
                    let p = a[c].add((b0 + i) * Q8_0_BLOCK);
                    dy[c][i] = f16_at(p);
                    let y = _mm256_loadu_si256(p.add(2).cast());
                    let k_sum = _mm256_dpbusd_epi32(_mm256_setzero_si256(), offset, y);
                    let neg = _mm256_sub_epi32(_mm256_setzero_si256(), k_sum);
                    _mm256_storeu_si256(start[c][i].as_mut_ptr().cast(), neg);
                }
            }
        }
        for i in 0..n {
            let b = b0 + i;
            // SAFETY: group block b and activation block b are in bounds (caller).
            unsafe {
                let (dw, q) = W::load(w.add(b * W::BYTES));
                let dd: [__m512; NT] =
                    std::array::from_fn(|c| _mm512_mul_ps(dw, _mm512_set1_ps(dy[c][i])));
                for j in 0..8 {
                    for c in 0..NT {
                        let y = a[c].add(b * Q8_0_BLOCK + 2 + 4 * j).cast::<i32>();
                        let sum = _mm512_dpbusd_epi32(
                            _mm512_set1_epi32(start[c][i][j]),
                            q[j],
                            _mm512_set1_epi32(y.read_unaligned()),
                        );
                        acc[c][j] = _mm512_fmadd_ps(dd[c], _mm512_cvtepi32_ps(sum), acc[c][j]);
                    }
                }
            }
        }
    }
    for (c, acc) in acc.iter().enumerate() {
        // tinyBLAS' hsum of the eight lanes of each (row, token).
        let t0 = _mm512_add_ps(acc[0], acc[4]);
        let t1 = _mm512_add_ps(acc[1], acc[5]);
        let t2 = _mm512_add_ps(acc[2], acc[6]);
        let t3 = _mm512_add_ps(acc[3], acc[7]);
        let sum = _mm512_add_ps(_mm512_add_ps(t0, t2), _mm512_add_ps(t1, t3));
        // SAFETY: out[c] is 16 floats.
        unsafe { _mm512_storeu_ps(out[c].as_mut_ptr(), sum) };
    }
}

/// All of `out`'s tokens in tiles of [`NC`].
///
/// # Safety
/// As [`super::packed::PackedGemm`].
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn gemm<W: Weights>(
    nb: usize,
    w: *const u8,
    a: *const u8,
    a_row: usize,
    out: &mut [GroupOut],
) {
    let n = out.len();
    let mut c = 0;
    // SAFETY: rows c.. of the activations are in bounds (caller).
    unsafe {
        while c + NC <= n {
            let rows = std::array::from_fn(|i| a.add((c + i) * a_row));
            tile::<W, NC>(nb, w, rows, &mut out[c..c + NC]);
            c += NC;
        }
        if c < n {
            tile::<W, 1>(nb, w, [a.add(c * a_row)], &mut out[c..]);
        }
    }
}

/// Packed Q8_0 × Q8_0 activations.
///
/// # Safety
/// As [`super::packed::PackedGemm`].
unsafe fn gemm_q8_0(nb: usize, w: *const u8, a: *const u8, a_row: usize, out: &mut [GroupOut]) {
    // SAFETY: forwarded contract; `format` registers this only with VNNI.
    unsafe { gemm::<Q8>(nb, w, a, a_row, out) }
}

/// Packed Q4_0 × Q8_0 activations.
///
/// # Safety
/// As [`super::packed::PackedGemm`].
unsafe fn gemm_q4_0(nb: usize, w: *const u8, a: *const u8, a_row: usize, out: &mut [GroupOut]) {
    // SAFETY: forwarded contract; `format` registers this only with VNNI.
    unsafe { gemm::<Q4>(nb, w, a, a_row, out) }
}
