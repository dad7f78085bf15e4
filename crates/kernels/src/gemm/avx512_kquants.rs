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

/// Tokens per tile: each unpacked weight vector serves this many tokens.
const NC: usize = 10;
/// Values per super-block.
const QK_K: usize = 256;

/// Bytes of one Q4_K super-block of a group: quants (16 × 128), scales and
/// minimums unpacked to one byte per sub-block and row (2 × 8 × 16), d and dmin
/// (2 × 16 f16).
const Q4_K_GROUP_BLOCK: usize = GROUP * 128 + 2 * 8 * GROUP + 2 * 2 * GROUP;
/// Bytes of one Q6_K super-block of a group: quants (16 × 192), scales
/// (16 × 16 i8), d (16 f16), and 32 bytes of padding so that every group
/// block starts on a cache line (the 64-byte loads never split one).
const Q6_K_GROUP_BLOCK: usize = GROUP * 192 + 16 * GROUP + 2 * GROUP + 32;

const Q4_K_BLOCK: usize = 144;
const Q6_K_BLOCK: usize = 210;
/// Q8_K super-block: d (f32), qs (256 i8), bsums (16 i16).
const Q8K_QS: usize = 4;
const Q8K_BSUMS: usize = 260;
const Q8K_BLOCK: usize = 292;

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
fn pack_q4_k(rows: &[&[u8]; GROUP], nb: usize, dst: &mut [u8]) {
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
fn pack_q6_k(rows: &[&[u8]; GROUP], nb: usize, dst: &mut [u8]) {
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

/// One repacked Q4_K group (`nb` super-blocks at `w`) × `N` Q8_K activation
/// rows: `out[c][r] = dot(row r of the group, activation row c)`.
///
/// Per sub-block `j` and token: eight `vpdpbusd` (nibbles × activation bytes;
/// odd sub-blocks use the high nibble in place, `16·q`, and a scale divided by
/// 16), one conversion and one FMA with `d·scale_j`. The minimums' part is
/// `dmin · Σ_j min_j · (bsums[2j] + bsums[2j+1])`, eight `vpdpwssd` per
/// super-block with `(min_j, min_j)` in each lane.
///
/// # Safety
/// `w` must be valid for `nb * Q4_K_GROUP_BLOCK` bytes and each `a[c]` for
/// `nb * 292`; the CPU must have AVX-512 F, BW and VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma,f16c")]
unsafe fn q4_k<const N: usize>(nb: usize, w: *const u8, a: [*const u8; N], out: &mut [GroupOut]) {
    let mut acc = [_mm512_setzero_ps(); N];
    let lo = _mm512_set1_epi8(0x0F);
    let hi = _mm512_set1_epi8(0xF0u8 as i8);
    let zero = _mm512_setzero_si512();
    for b in 0..nb {
        // SAFETY: super-block b of the group and of every activation row is in
        // bounds (caller); offsets are within Q4_K_GROUP_BLOCK and Q8K_BLOCK.
        unsafe {
            let g = w.add(b * Q4_K_GROUP_BLOCK);
            let d = f16x16(g.add(2304));
            let dmin = f16x16(g.add(2336));
            let d16 = _mm512_mul_ps(d, _mm512_set1_ps(1.0 / 16.0));
            let mut dsc = [_mm512_setzero_ps(); 8];
            for (j, s) in dsc.iter_mut().enumerate() {
                let sc = _mm512_cvtepi32_ps(u8x16(g.add(2048 + 16 * j)));
                *s = _mm512_mul_ps(sc, if j % 2 == 0 { d } else { d16 });
            }
            let mut fsum = [_mm512_setzero_ps(); N];
            {
                let mut imin = [zero; N];
                for j in 0..8 {
                    let m = u8x16(g.add(2176 + 16 * j));
                    let mm = _mm512_or_si512(m, _mm512_slli_epi32::<16>(m));
                    for c in 0..N {
                        let bs = bcast4(a[c].add(b * Q8K_BLOCK + Q8K_BSUMS + 4 * j));
                        imin[c] = _mm512_dpwssd_epi32(imin[c], mm, bs);
                    }
                }
                for c in 0..N {
                    fsum[c] = _mm512_mul_ps(_mm512_cvtepi32_ps(imin[c]), dmin);
                    fsum[c] = _mm512_sub_ps(_mm512_setzero_ps(), fsum[c]);
                }
            }
            for p in 0..4 {
                for half in 0..2 {
                    let mask = if half == 0 { lo } else { hi };
                    let q: [__m512i; 8] = std::array::from_fn(|i| {
                        _mm512_and_si512(_mm512_loadu_si512(g.add(p * 512 + i * 64).cast()), mask)
                    });
                    let s = dsc[2 * p + half];
                    for c in 0..N {
                        let y = a[c].add(b * Q8K_BLOCK + Q8K_QS + 64 * p + 32 * half);
                        let mut isum = zero;
                        for (i, &qi) in q.iter().enumerate() {
                            isum = _mm512_dpbusd_epi32(isum, qi, bcast4(y.add(4 * i)));
                        }
                        fsum[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), s, fsum[c]);
                    }
                }
            }
            for c in 0..N {
                let dy = _mm512_set1_ps(a[c].add(b * Q8K_BLOCK).cast::<f32>().read_unaligned());
                acc[c] = _mm512_fmadd_ps(fsum[c], dy, acc[c]);
            }
        }
    }
    for (o, v) in out.iter_mut().zip(acc) {
        // SAFETY: `o` is 16 f32.
        unsafe { _mm512_storeu_ps(o.as_mut_ptr(), v) };
    }
}

/// One repacked Q6_K group (`nb` super-blocks at `w`) × `N` Q8_K activation
/// rows: `out[c][r] = dot(row r of the group, activation row c)`.
///
/// Per 16-value sub-block and token: four `vpdpbusd` of the 6-bit quants
/// (0..64) starting from `-32·bsums[s]` (so the sum is of `q - 32`), one
/// conversion and one FMA with `d·scale_s`.
///
/// # Safety
/// `w` must be valid for `nb * Q6_K_GROUP_BLOCK` bytes and each `a[c]` for
/// `nb * 292`; the CPU must have AVX-512 F, BW and VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma,f16c")]
unsafe fn q6_k<const N: usize>(nb: usize, w: *const u8, a: [*const u8; N], out: &mut [GroupOut]) {
    let mut acc = [_mm512_setzero_ps(); N];
    let lo = _mm512_set1_epi8(0x0F);
    let hi2 = _mm512_set1_epi8(0x30);
    for b in 0..nb {
        // SAFETY: super-block b of the group and of every activation row is in
        // bounds (caller); offsets are within Q6_K_GROUP_BLOCK and Q8K_BLOCK.
        unsafe {
            let g = w.add(b * Q6_K_GROUP_BLOCK);
            let d = f16x16(g.add(3328));
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
            let mut fsum = [_mm512_setzero_ps(); N];
            // `s` indexes the group block, the scales and every token's starts.
            #[allow(clippy::needless_range_loop)]
            for s in 0..16 {
                let sub = g.add(192 * s);
                let qa = _mm512_loadu_si512(sub.cast());
                let qb = _mm512_loadu_si512(sub.add(64).cast());
                let qh = _mm512_loadu_si512(sub.add(128).cast());
                // (x & 0x0F) | y, y already masked to bits 4..5.
                let q = [
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
                ];
                let sc = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                    g.add(3072 + 16 * s).cast(),
                )));
                let ds = _mm512_mul_ps(sc, d);
                for c in 0..N {
                    let y = a[c].add(b * Q8K_BLOCK + Q8K_QS + 16 * s);
                    let mut isum = _mm512_set1_epi32(start[c][s]);
                    for (i, &qi) in q.iter().enumerate() {
                        isum = _mm512_dpbusd_epi32(isum, qi, bcast4(y.add(4 * i)));
                    }
                    fsum[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), ds, fsum[c]);
                }
            }
            for c in 0..N {
                let dy = _mm512_set1_ps(a[c].add(b * Q8K_BLOCK).cast::<f32>().read_unaligned());
                acc[c] = _mm512_fmadd_ps(fsum[c], dy, acc[c]);
            }
        }
    }
    for (o, v) in out.iter_mut().zip(acc) {
        // SAFETY: `o` is 16 f32.
        unsafe { _mm512_storeu_ps(o.as_mut_ptr(), v) };
    }
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
    /// output equals the scalar `vec_dot` up to float rounding.
    #[test]
    fn kernels_match_the_scalar_dot_products() {
        if !(std::is_x86_feature_detected!("avx512vnni")
            && std::is_x86_feature_detected!("avx512bw"))
        {
            eprintln!("no AVX-512 VNNI on this CPU; skipped");
            return;
        }
        let (n_in, n_out) = (768, 21);
        let nb = n_in / QK_K;
        for format in [&Q4_K, &Q6_K] {
            let ty = format.ty;
            let scalar = traits_for(Cpu::Scalar, ty).unwrap();
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
                            let want = (scalar.vec_dot.unwrap())(n_in, rows[r], act);
                            assert!(
                                (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                                "{ty} group {g} row {r} token {c} of {n}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
