//! IQ4_XS weights repacked into groups of [`GROUP`] rows, and their AVX2
//! kernel against Q8_K activations (there is no AVX-512 one: at that level
//! IQ4_XS keeps ggml's `vec_dot` and tiled orders).
//!
//! The layout follows `avx512_kquants.rs`' Q4_K: a 64-byte vector holds four
//! bytes of each of the sixteen rows (one row per 32-bit lane), read by AVX2
//! as two halves of eight rows. Per 32-value sub-block the kernel turns the
//! nibbles into the non-linear levels with one `vpshufb` each (kept in
//! registers for up to [`NC`](super::avx2_kquants::NC) tokens), and
//! multiplies them with broadcasts of four activation bytes as
//! `vpmaddubsw(|y|, sign(level, y))` (both sides signed: each pair is at most
//! 2 · 127 · 127), then `vpmaddwd` with the sub-block scale into i32.
//!
//! Summation order: an exact integer sum per super-block, row and token, then
//! one `fma(d · d_y, f32(sum), acc)`; ggml sums in other float orders.

use std::arch::x86_64::*;

use gguf::TensorType;

use super::avx2_gemv;
use super::avx2_kquants::{Tile, bcast4, f16x8, gemm, pair8};
use super::avx512_kquants::{Q8K_BLOCK, Q8K_QS};
use super::packed::{GROUP, GroupOut, PackedFormat};
use crate::formats::iquants::KVALUES_IQ4NL;

/// Packed IQ4_XS, AVX2 kernels.
pub(super) const IQ4_XS: PackedFormat = PackedFormat {
    ty: TensorType::IQ4_XS,
    group_block_bytes: IQ4_XS_GROUP_BLOCK,
    pack: pack_iq4_xs,
    gemm: gemm_iq4_xs,
};

/// Bytes of one IQ4_XS super-block (d, scales_h, scales_l, qs).
const IQ4_XS_BLOCK: usize = 136;
/// Bytes of one super-block of a group: quants (16 × 128), sub-block scales
/// minus 32 (8 × 16 i8), d (16 f16).
pub(super) const IQ4_XS_GROUP_BLOCK: usize = GROUP * 128 + 8 * GROUP + 2 * GROUP;
/// Offsets of the scales and of d in a group block.
pub(super) const IQ4_XS_SCALES: usize = GROUP * 128;
pub(super) const IQ4_XS_D: usize = IQ4_XS_SCALES + 8 * GROUP;

/// Sub-block `ib`'s 6-bit scale of an IQ4_XS block (ggml's `ls`).
fn block_scale(blk: &[u8], ib: usize) -> u8 {
    let high = u16::from_le_bytes([blk[2], blk[3]]);
    ((blk[4 + ib / 2] >> (4 * (ib % 2))) & 0xF) | ((((high >> (2 * ib)) & 3) as u8) << 4)
}

/// Writes the `nb` IQ4_XS group blocks of the sixteen rows `rows` into `dst`.
///
/// Group block `b` (at `b * IQ4_XS_GROUP_BLOCK`):
/// - quants: sub-block `ib`, chunk `m` (0..4), row `r` at `256ib + 64m + 4r`:
///   the bytes `qs[16ib + 4m..16ib + 4m + 4]` of row `r` (low nibbles: values
///   `32ib + 4m..`, high nibbles: values `32ib + 16 + 4m..`);
/// - at 2048: `scale − 32` (i8) of sub-block `ib`, row `r` at `16ib + r`;
/// - at 2176: d of each row (f16).
fn pack_iq4_xs(rows: &[&[u8]; GROUP], nb: usize, dst: &mut [u8]) {
    for (r, row) in rows.iter().enumerate() {
        for (b, src) in row.chunks_exact(IQ4_XS_BLOCK).take(nb).enumerate() {
            let dst = &mut dst[b * IQ4_XS_GROUP_BLOCK..][..IQ4_XS_GROUP_BLOCK];
            let qs = &src[8..];
            for ib in 0..8 {
                for m in 0..4 {
                    let at = 256 * ib + 64 * m + 4 * r;
                    dst[at..at + 4].copy_from_slice(&qs[16 * ib + 4 * m..16 * ib + 4 * m + 4]);
                }
                dst[IQ4_XS_SCALES + 16 * ib + r] = block_scale(src, ib).wrapping_sub(32);
            }
            dst[IQ4_XS_D + 2 * r..IQ4_XS_D + 2 * r + 2].copy_from_slice(&src[..2]);
        }
    }
}

/// Row `r`'s IQ4_XS block from a packed group block (the inverse of
/// [`pack_iq4_xs`]).
pub(super) fn unpack_iq4_xs(group_block: &[u8], r: usize, dst: &mut [u8]) {
    let g = &group_block[..IQ4_XS_GROUP_BLOCK];
    dst[..2].copy_from_slice(&g[IQ4_XS_D + 2 * r..IQ4_XS_D + 2 * r + 2]);
    let ls: [u8; 8] = std::array::from_fn(|ib| g[IQ4_XS_SCALES + 16 * ib + r].wrapping_add(32));
    let high = ls
        .iter()
        .enumerate()
        .fold(0u16, |h, (ib, &l)| h | (u16::from(l >> 4) & 3) << (2 * ib));
    dst[2..4].copy_from_slice(&high.to_le_bytes());
    for k in 0..4 {
        dst[4 + k] = (ls[2 * k] & 0xF) | (ls[2 * k + 1] & 0xF) << 4;
    }
    for ib in 0..8 {
        for m in 0..4 {
            let at = 256 * ib + 64 * m + 4 * r;
            dst[8 + 16 * ib + 4 * m..][..4].copy_from_slice(&g[at..at + 4]);
        }
    }
}

/// One packed IQ4_XS group (`nb` super-blocks at `w`) × `N` Q8_K activation
/// rows: `out[c][r] = dot(row r, activation c)`.
///
/// # Safety
/// `w` must be valid for `nb * IQ4_XS_GROUP_BLOCK` bytes and each `a[c]` for
/// `nb * 292`; the CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq4_xs<const N: usize>(nb: usize, w: *const u8, a: [*const u8; N], out: &mut [GroupOut]) {
    let lo = _mm256_set1_epi8(0x0F);
    // SAFETY: the table is 16 bytes.
    let table = unsafe { _mm_loadu_si128(KVALUES_IQ4NL.as_ptr().cast()) };
    let levels = _mm256_broadcastsi128_si256(table);
    let mut acc = [[_mm256_setzero_ps(); N]; 2];
    // |y| of the super-block's activations, per token.
    let mut abs_y = [[0u8; 256]; N];
    for b in 0..nb {
        // SAFETY: super-block b of the group and of every activation row is
        // in bounds (caller); offsets are within IQ4_XS_GROUP_BLOCK and
        // Q8K_BLOCK.
        unsafe {
            let g = w.add(b * IQ4_XS_GROUP_BLOCK);
            for (c, abs) in abs_y.iter_mut().enumerate() {
                let y = a[c].add(b * Q8K_BLOCK + Q8K_QS);
                for k in 0..8 {
                    let v = _mm256_abs_epi8(_mm256_loadu_si256(y.add(32 * k).cast()));
                    _mm256_storeu_si256(abs.as_mut_ptr().add(32 * k).cast(), v);
                }
            }
            for (h, acc) in acc.iter_mut().enumerate() {
                let mut sums = [_mm256_setzero_si256(); N];
                for ib in 0..8 {
                    let packed: [__m256i; 4] = std::array::from_fn(|m| {
                        _mm256_loadu_si256(g.add(256 * ib + 64 * m + 32 * h).cast())
                    });
                    let q: [__m256i; 8] = std::array::from_fn(|j| {
                        let idx = if j < 4 {
                            _mm256_and_si256(packed[j], lo)
                        } else {
                            _mm256_and_si256(_mm256_srli_epi16::<4>(packed[j - 4]), lo)
                        };
                        _mm256_shuffle_epi8(levels, idx)
                    });
                    // (scale − 32) of each row in both i16 halves of its lane.
                    let sc = pair8(g.add(IQ4_XS_SCALES + 16 * ib + 8 * h), true);
                    for c in 0..N {
                        let y = a[c].add(b * Q8K_BLOCK + Q8K_QS + 32 * ib);
                        let ya = abs_y[c].as_ptr().add(32 * ib);
                        for (j, &qj) in q.iter().enumerate() {
                            let signed = _mm256_sign_epi8(qj, bcast4(y.add(4 * j)));
                            let p = _mm256_maddubs_epi16(bcast4(ya.add(4 * j)), signed);
                            sums[c] = _mm256_add_epi32(sums[c], _mm256_madd_epi16(p, sc));
                        }
                    }
                }
                let d = f16x8(g.add(IQ4_XS_D + 16 * h));
                for c in 0..N {
                    let dy = a[c].add(b * Q8K_BLOCK).cast::<f32>().read_unaligned();
                    let dd = _mm256_mul_ps(d, _mm256_set1_ps(dy));
                    acc[c] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(sums[c]), acc[c]);
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

pub(super) struct Iq4Xs;

impl Tile for Iq4Xs {
    unsafe fn tile<const N: usize>(
        nb: usize,
        w: *const u8,
        a: [*const u8; N],
        out: &mut [GroupOut],
    ) {
        // SAFETY: forwarded contract; `packed::format` registers this only
        // where the CPU has AVX2, FMA and F16C.
        unsafe { iq4_xs::<N>(nb, w, a, out) }
    }

    unsafe fn one(nb: usize, w: *const u8, a: *const u8, out: &mut GroupOut) {
        // SAFETY: as for `tile`.
        unsafe { avx2_gemv::iq4_xs(nb, w, a, out) }
    }
}

/// Packed IQ4_XS × Q8_K activations.
///
/// # Safety
/// As [`super::packed::PackedGemm`].
unsafe fn gemm_iq4_xs(nb: usize, w: *const u8, a: *const u8, a_row: usize, out: &mut [GroupOut]) {
    // SAFETY: forwarded contract.
    unsafe { gemm::<Iq4Xs>(nb, w, a, a_row, out) }
}
