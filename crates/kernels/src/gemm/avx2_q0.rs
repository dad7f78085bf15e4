//! AVX2 kernels for the Q8_0 and Q4_0 16-row groups of `avx512_q0.rs` (same
//! packing, same row readers), for CPUs without AVX-512 VNNI.
//!
//! As in `avx2_kquants.rs`, a group runs as two passes of eight rows (one per
//! 32-bit lane of a ymm), the weights of a block unpacked once into eight
//! registers (lane `r` of register `j`: values `4j..4j + 4` of row `r`) and
//! reused for up to [`NC`](super::avx2_kquants::NC) tokens:
//! - Q4_0: eight `vpmaddubsw` of the nibbles with broadcasts of four
//!   activation bytes, summed in 16 bits (at most 8 · 2 · 15 · 127), one
//!   `vpmaddwd` to i32, minus `8 · Σ y` for the weights' offset;
//! - Q8_0: the signed weights against `|y|` (`vpmaddubsw(|y|, sign(w, y))`,
//!   ggml's trick for signed × signed bytes: each pair is at most
//!   2 · 127 · 128, no saturation), one `vpmaddwd` per four values.
//!
//! Summation order: each (row, token) block sum is an exact integer; per
//! block one `fma(d_w · d_y, f32(sum), acc)`. The order does not depend on
//! the number of tokens, so a token's results are the same bits in any batch
//! (the batch tests check that for Q8_0 and Q4_0); tinyBLAS, which llama.cpp
//! uses for these formats, keeps eight partial sums per output instead, so
//! results agree with it up to float rounding.

use std::arch::x86_64::*;

use gguf::TensorType;

use super::avx2_gemv;
use super::avx2_kquants::{Tile, bcast4, f16x8, gemm};
use super::avx512_q0::{Q4_0_GROUP_BLOCK, Q8_0_BLOCK, Q8_0_GROUP_BLOCK, pack_q4_0, pack_q8_0};
use super::packed::{GroupOut, PackedFormat};

/// Packed Q8_0, AVX2 kernels.
pub(super) const Q8_0: PackedFormat = PackedFormat {
    ty: TensorType::Q8_0,
    group_block_bytes: Q8_0_GROUP_BLOCK,
    pack: pack_q8_0,
    gemm: gemm_q8_0,
};

/// Packed Q4_0, AVX2 kernels.
pub(super) const Q4_0: PackedFormat = PackedFormat {
    ty: TensorType::Q4_0,
    group_block_bytes: Q4_0_GROUP_BLOCK,
    pack: pack_q4_0,
    gemm: gemm_q4_0,
};

/// The f16 scale of the Q8_0 activation block at `p`.
///
/// # Safety
/// `p` must be valid for reading 2 bytes.
#[target_feature(enable = "avx2,f16c")]
#[inline]
unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: the caller guarantees 2 readable bytes; the read is unaligned.
    let bits = unsafe { p.cast::<u16>().read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

/// `x` summed over its eight i32 lanes, in every lane.
#[target_feature(enable = "avx2")]
#[inline]
fn hsum_broadcast(x: __m256i) -> __m256i {
    let x = _mm256_add_epi32(x, _mm256_permute2x128_si256::<1>(x, x));
    let x = _mm256_add_epi32(x, _mm256_shuffle_epi32::<0b0100_1110>(x));
    _mm256_add_epi32(x, _mm256_shuffle_epi32::<0b1011_0001>(x))
}

/// One packed Q8_0 group (`nb` blocks at `w`) × `N` Q8_0 activation rows.
///
/// # Safety
/// `w` must be valid for `nb * Q8_0_GROUP_BLOCK` bytes and each `a[c]` for
/// `nb` Q8_0 blocks; the CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0<const N: usize>(nb: usize, w: *const u8, a: [*const u8; N], out: &mut [GroupOut]) {
    let flip = _mm256_set1_epi8(i8::MIN);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); N]; 2];
    // |y| of the block's activations, per token.
    let mut abs_y = [[0u8; 32]; N];
    for b in 0..nb {
        // SAFETY: block b of the group and of every activation row is in
        // bounds (caller); offsets are within Q8_0_GROUP_BLOCK and the block.
        unsafe {
            let g = w.add(b * Q8_0_GROUP_BLOCK);
            let mut dy = [0f32; N];
            for c in 0..N {
                let p = a[c].add(b * Q8_0_BLOCK);
                dy[c] = f16_at(p);
                let y = _mm256_loadu_si256(p.add(2).cast());
                _mm256_storeu_si256(abs_y[c].as_mut_ptr().cast(), _mm256_abs_epi8(y));
            }
            for (h, acc) in acc.iter_mut().enumerate() {
                let q: [__m256i; 8] = std::array::from_fn(|j| {
                    _mm256_xor_si256(_mm256_loadu_si256(g.add(32 + 64 * j + 32 * h).cast()), flip)
                });
                let dw = f16x8(g.add(16 * h));
                for c in 0..N {
                    let y = a[c].add(b * Q8_0_BLOCK + 2);
                    let ya = abs_y[c].as_ptr();
                    let mut sum = _mm256_setzero_si256();
                    for (j, &qj) in q.iter().enumerate() {
                        let signed = _mm256_sign_epi8(qj, bcast4(y.add(4 * j)));
                        let p = _mm256_maddubs_epi16(bcast4(ya.add(4 * j)), signed);
                        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p, ones));
                    }
                    let d = _mm256_mul_ps(dw, _mm256_set1_ps(dy[c]));
                    acc[c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sum), acc[c]);
                }
            }
        }
    }
    for (c, o) in out.iter_mut().enumerate() {
        // SAFETY: `o` is 16 f32.
        unsafe {
            _mm256_storeu_ps(o.as_mut_ptr(), acc[0][c]);
            _mm256_storeu_ps(o.as_mut_ptr().add(8), acc[1][c]);
        }
    }
}

/// One packed Q4_0 group (`nb` blocks at `w`) × `N` Q8_0 activation rows.
///
/// # Safety
/// `w` must be valid for `nb * Q4_0_GROUP_BLOCK` bytes and each `a[c]` for
/// `nb` Q8_0 blocks; the CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_0<const N: usize>(nb: usize, w: *const u8, a: [*const u8; N], out: &mut [GroupOut]) {
    let lo = _mm256_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    let eights = _mm256_set1_epi8(8);
    let mut acc = [[_mm256_setzero_ps(); N]; 2];
    for b in 0..nb {
        // SAFETY: block b of the group and of every activation row is in
        // bounds (caller); offsets are within Q4_0_GROUP_BLOCK and the block.
        unsafe {
            let g = w.add(b * Q4_0_GROUP_BLOCK);
            let mut dy = [0f32; N];
            // 8 · Σ y of the block (the weights' offset), in every lane.
            let mut offset = [_mm256_setzero_si256(); N];
            for c in 0..N {
                let p = a[c].add(b * Q8_0_BLOCK);
                dy[c] = f16_at(p);
                let y = _mm256_loadu_si256(p.add(2).cast());
                offset[c] =
                    hsum_broadcast(_mm256_madd_epi16(_mm256_maddubs_epi16(eights, y), ones));
            }
            for (h, acc) in acc.iter_mut().enumerate() {
                let packed: [__m256i; 4] =
                    std::array::from_fn(|m| _mm256_loadu_si256(g.add(32 + 64 * m + 32 * h).cast()));
                let q: [__m256i; 8] = std::array::from_fn(|j| {
                    if j < 4 {
                        _mm256_and_si256(packed[j], lo)
                    } else {
                        _mm256_and_si256(_mm256_srli_epi16::<4>(packed[j - 4]), lo)
                    }
                });
                let dw = f16x8(g.add(16 * h));
                for c in 0..N {
                    let y = a[c].add(b * Q8_0_BLOCK + 2);
                    let mut s16 = _mm256_maddubs_epi16(q[0], bcast4(y));
                    for (j, &qj) in q.iter().enumerate().skip(1) {
                        s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(qj, bcast4(y.add(4 * j))));
                    }
                    let sum = _mm256_sub_epi32(_mm256_madd_epi16(s16, ones), offset[c]);
                    let d = _mm256_mul_ps(dw, _mm256_set1_ps(dy[c]));
                    acc[c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sum), acc[c]);
                }
            }
        }
    }
    for (c, o) in out.iter_mut().enumerate() {
        // SAFETY: `o` is 16 f32.
        unsafe {
            _mm256_storeu_ps(o.as_mut_ptr(), acc[0][c]);
            _mm256_storeu_ps(o.as_mut_ptr().add(8), acc[1][c]);
        }
    }
}

pub(super) struct Q8;
pub(super) struct Q4;

impl Tile for Q8 {
    unsafe fn tile<const N: usize>(
        nb: usize,
        w: *const u8,
        a: [*const u8; N],
        out: &mut [GroupOut],
    ) {
        // SAFETY: forwarded contract; `packed::format` registers this only
        // where the CPU has AVX2, FMA and F16C.
        unsafe { q8_0::<N>(nb, w, a, out) }
    }

    unsafe fn one(nb: usize, w: *const u8, a: *const u8, out: &mut GroupOut) {
        // SAFETY: as for `tile`.
        unsafe { avx2_gemv::q8_0(nb, w, a, out) }
    }
}

impl Tile for Q4 {
    unsafe fn tile<const N: usize>(
        nb: usize,
        w: *const u8,
        a: [*const u8; N],
        out: &mut [GroupOut],
    ) {
        // SAFETY: as for Q8.
        unsafe { q4_0::<N>(nb, w, a, out) }
    }

    unsafe fn one(nb: usize, w: *const u8, a: *const u8, out: &mut GroupOut) {
        // SAFETY: as for `tile`.
        unsafe { avx2_gemv::q4_0(nb, w, a, out) }
    }
}

/// Packed Q8_0 × Q8_0 activations.
///
/// # Safety
/// As [`super::packed::PackedGemm`].
unsafe fn gemm_q8_0(nb: usize, w: *const u8, a: *const u8, a_row: usize, out: &mut [GroupOut]) {
    // SAFETY: forwarded contract.
    unsafe { gemm::<Q8>(nb, w, a, a_row, out) }
}

/// Packed Q4_0 × Q8_0 activations.
///
/// # Safety
/// As [`super::packed::PackedGemm`].
unsafe fn gemm_q4_0(nb: usize, w: *const u8, a: *const u8, a_row: usize, out: &mut [GroupOut]) {
    // SAFETY: forwarded contract.
    unsafe { gemm::<Q4>(nb, w, a, a_row, out) }
}
