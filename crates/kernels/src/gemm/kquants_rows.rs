//! Rows of packed Q4_K and Q6_K groups read back in the file's block format:
//! the inverses of `pack_q4_k` and `pack_q6_k`, written from the group block
//! layouts documented in `avx512_kquants.rs`. Both packings keep every bit of
//! the original blocks (Q4_K's 6-bit scales and minimums are only spread out
//! to a byte each), so a row comes back byte for byte.

/// Row `r`'s Q4_K super-block (144 bytes: d, dmin, 12 bytes of 6-bit scales
/// and minimums, 128 bytes of nibbles) from a packed group block laid out as
/// `pack_q4_k` documents: quants of row `r` at `512p + 64i + 4r`, scales at
/// `2048 + 16j + r`, minimums at `2176 + 16j + r`, d at `2304 + 2r`, dmin at
/// `2336 + 2r`.
pub(super) fn unpack_q4_k(group_block: &[u8], r: usize, dst: &mut [u8]) {
    let g = group_block;
    let dst = &mut dst[..144];
    dst[0..2].copy_from_slice(&g[2304 + 2 * r..2304 + 2 * r + 2]);
    dst[2..4].copy_from_slice(&g[2336 + 2 * r..2336 + 2 * r + 2]);
    let scale = |j: usize| g[2048 + 16 * j + r];
    let min = |j: usize| g[2176 + 16 * j + r];
    // ggml's 12-byte packing (`get_scale_min_k4` reads it): sub-blocks 0..4
    // in the low six bits of bytes 0..4 (scales) and 4..8 (minimums);
    // sub-blocks 4..8 in the nibbles of bytes 8..12 and the top two bits of
    // bytes 0..8.
    let q = &mut dst[4..16];
    for j in 0..4 {
        q[j] = (scale(j) & 63) | (scale(j + 4) >> 4) << 6;
        q[j + 4] = (min(j) & 63) | (min(j + 4) >> 4) << 6;
        q[j + 8] = (scale(j + 4) & 15) | (min(j + 4) & 15) << 4;
    }
    let qs = &mut dst[16..144];
    for p in 0..4 {
        for i in 0..8 {
            let at = p * 512 + i * 64 + r * 4;
            qs[32 * p + 4 * i..32 * p + 4 * i + 4].copy_from_slice(&g[at..at + 4]);
        }
    }
}

/// Row `r`'s Q6_K super-block (210 bytes: 128 bytes of low nibbles, 64 of high
/// bit pairs, 16 scales, d) from a packed group block laid out as `pack_q6_k`
/// documents: per 16-value sub-block `s` (192 bytes at `192s`) the nibbles of
/// values `t` and `4 + t` at `4r + t`, of `8 + t` and `12 + t` at
/// `64 + 4r + t`, their high bit pairs at `128 + 4r + t`; scales at
/// `3072 + 16s + r`, d at `3328 + 2r`.
pub(super) fn unpack_q6_k(group_block: &[u8], r: usize, dst: &mut [u8]) {
    let g = group_block;
    let dst = &mut dst[..210];
    // The 6-bit quants in value order.
    let mut q = [0u8; 256];
    for s in 0..16 {
        let sub = &g[192 * s..192 * s + 192];
        let q = &mut q[16 * s..16 * s + 16];
        for t in 0..4 {
            let (lo, lo2, hi) = (sub[4 * r + t], sub[64 + 4 * r + t], sub[128 + 4 * r + t]);
            q[t] = (lo & 15) | (hi & 3) << 4;
            q[4 + t] = (lo >> 4) | ((hi >> 2) & 3) << 4;
            q[8 + t] = (lo2 & 15) | ((hi >> 4) & 3) << 4;
            q[12 + t] = (lo2 >> 4) | (hi >> 6) << 4;
        }
        dst[192 + s] = g[3072 + 16 * s + r];
    }
    dst[208..210].copy_from_slice(&g[3328 + 2 * r..3328 + 2 * r + 2]);
    // ggml's block_q6_K: per half h, ql holds values l and l + 64 (bytes l)
    // and l + 32 and l + 96 (bytes l + 32) as nibbles; qh byte l holds the
    // high bit pairs of values l, l + 32, l + 64, l + 96.
    let (ql, qh) = dst[..192].split_at_mut(128);
    for h in 0..2 {
        let (ql, qh, q) = (&mut ql[64 * h..], &mut qh[32 * h..], &q[128 * h..]);
        for l in 0..32 {
            ql[l] = (q[l] & 15) | (q[l + 64] & 15) << 4;
            ql[l + 32] = (q[l + 32] & 15) | (q[l + 96] & 15) << 4;
            qh[l] =
                q[l] >> 4 | (q[l + 32] >> 4) << 2 | (q[l + 64] >> 4) << 4 | (q[l + 96] >> 4) << 6;
        }
    }
}
