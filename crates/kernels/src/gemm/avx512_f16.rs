//! Packed F16 kernel (AVX-512) for 16-row groups (see `packed.rs` for the
//! contract).
//!
//! F16 is a one-value block, so a group block is the 16 rows' values at one
//! k: 32 bytes, one `vcvtph2ps` away from a vector of 16 rows. Per k the
//! kernel converts that vector once and does one FMA per token with the
//! token's activation value broadcast from memory (`{1to16}`). Activations
//! arrive as F16; a run of [`KC`] values of each token of the tile is
//! converted to f32 into a stack buffer first, so the main loop only
//! broadcasts.
//!
//! Summation order: lane `r` of accumulator `(j, c)` adds, in k order, the
//! products of row `r` and token `c` for the k with `k mod 2 = j`; the two
//! partial sums are then added. The order is the same for every tile width,
//! so a token's result does not depend on how many tokens share its batch;
//! two chains per token also keep two FMAs in flight for a lone token
//! (decode).

use std::arch::x86_64::*;

use super::packed::{GROUP, GroupOut, PackedFormat};
use gguf::TensorType;

/// Packed F16 (x86_64 AVX-512).
pub(super) const F16: PackedFormat = PackedFormat {
    ty: TensorType::F16,
    group_block_bytes: GROUP_BLOCK,
    pack: pack_f16,
    gemm: gemm_f16,
};

/// Bytes of one group block: one f16 of each of the 16 rows.
const GROUP_BLOCK: usize = 2 * GROUP;

/// Tokens per full register tile.
const NC: usize = 12;

/// Activation values converted to f32 at a time (per token).
const KC: usize = 256;

/// Partial sums per (row, token): k is split by `k mod NK` (module docs).
const NK: usize = 2;

fn pack_f16(rows: &[&[u8]; GROUP], nb: usize, dst: &mut [u8]) {
    for (k, out) in dst.chunks_exact_mut(GROUP_BLOCK).take(nb).enumerate() {
        for (r, row) in rows.iter().enumerate() {
            out[2 * r..2 * r + 2].copy_from_slice(&row[2 * k..2 * k + 2]);
        }
    }
}

/// Row `r`'s value (an f16) from a packed group block (the inverse of
/// [`pack_f16`]).
pub(super) fn unpack_f16(group_block: &[u8], r: usize, dst: &mut [u8]) {
    dst[..2].copy_from_slice(&group_block[2 * r..2 * r + 2]);
}

/// `NT` tokens × 16 rows over `nb` values.
///
/// # Safety
/// `w` valid for `nb` group blocks, each `a[c]` for `nb` f16 values;
/// AVX-512 F/VL and F16C.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn tile<const NT: usize>(nb: usize, w: *const u8, a: [*const u8; NT], out: &mut [GroupOut]) {
    let mut acc = [[_mm512_setzero_ps(); NT]; NK];
    let mut buf = [[0f32; KC]; NT];
    for k0 in (0..nb).step_by(KC) {
        let n = KC.min(nb - k0);
        for c in 0..NT {
            let mut i = 0;
            // SAFETY: values k0 + i.. of activation row c are in bounds
            // (caller); `buf[c]` has KC >= n floats.
            unsafe {
                while i + 16 <= n {
                    let v = _mm512_cvtph_ps(_mm256_loadu_si256(a[c].add(2 * (k0 + i)).cast()));
                    _mm512_storeu_ps(buf[c].as_mut_ptr().add(i), v);
                    i += 16;
                }
                while i < n {
                    let bits = a[c].add(2 * (k0 + i)).cast::<u16>().read_unaligned();
                    buf[c][i] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))));
                    i += 1;
                }
            }
        }
        let wk = |i: usize| {
            // SAFETY: group block k0 + i is in bounds (caller, i < n).
            unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(w.add(GROUP_BLOCK * (k0 + i)).cast())) }
        };
        let mut i = 0;
        while i + NK <= n {
            for j in 0..NK {
                let x = wk(i + j);
                for c in 0..NT {
                    acc[j][c] = _mm512_fmadd_ps(x, _mm512_set1_ps(buf[c][i + j]), acc[j][c]);
                }
            }
            i += NK;
        }
        while i < n {
            let x = wk(i);
            // The tail's values belong to the split `(k0 + i) mod NK`; KC is a
            // multiple of NK, so that is `i mod NK`.
            let j = i % NK;
            for c in 0..NT {
                acc[j][c] = _mm512_fmadd_ps(x, _mm512_set1_ps(buf[c][i]), acc[j][c]);
            }
            i += 1;
        }
    }
    for c in 0..NT {
        let mut sum = acc[0][c];
        for part in &acc[1..] {
            sum = _mm512_add_ps(sum, part[c]);
        }
        // SAFETY: out[c] is 16 floats.
        unsafe { _mm512_storeu_ps(out[c].as_mut_ptr(), sum) };
    }
}

/// All of `out`'s tokens: tiles of [`NC`], then one tile for the rest.
///
/// # Safety
/// As [`super::packed::PackedGemm`].
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn gemm(nb: usize, w: *const u8, a: *const u8, a_row: usize, out: &mut [GroupOut]) {
    let n = out.len();
    let rows = |c: usize| -> [*const u8; NC] {
        // SAFETY: only rows below `n` are formed (the pointers of a tail tile
        // beyond it are never read: the tile's width is the tail's).
        std::array::from_fn(|i| unsafe { a.add((c + i).min(n - 1) * a_row) })
    };
    let mut c = 0;
    while c + NC <= n {
        // SAFETY: rows c..c + NC are in bounds (caller).
        unsafe { tile::<NC>(nb, w, rows(c), &mut out[c..c + NC]) };
        c += NC;
    }
    macro_rules! tail {
        ($($nt:literal),*) => {
            match n - c {
                0 => {}
                $($nt => {
                    let r = rows(c);
                    let r: [*const u8; $nt] = std::array::from_fn(|i| r[i]);
                    // SAFETY: rows c..n are in bounds (caller).
                    unsafe { tile::<$nt>(nb, w, r, &mut out[c..]) };
                })*
                _ => unreachable!("a tail is shorter than a tile"),
            }
        };
    }
    tail!(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11);
}

/// Packed F16 × F16 activations.
///
/// # Safety
/// As [`super::packed::PackedGemm`].
unsafe fn gemm_f16(nb: usize, w: *const u8, a: *const u8, a_row: usize, out: &mut [GroupOut]) {
    // SAFETY: as the caller's; `format` only hands this out on AVX-512 CPUs.
    unsafe { gemm(nb, w, a, a_row, out) }
}
