//! Attention over a block-quantized (q8_0, q4_0) KV cache, as llama.cpp's CPU
//! flash attention computes it (`ggml_compute_forward_flash_attn_ext_f16_one_chunk`
//! in ggml-cpu/ops.cpp), the only path on which llama.cpp reads a quantized V
//! cache:
//!
//! - each query head is converted to the K type's `vec_dot_type` (Q8_0 for both
//!   types, with ggml-cpu's run-time quantizer) and `K·q` is the format's
//!   integer dot product (`vec_dot`), one key at a time;
//! - `s = K·q · scale`, or with soft-capping `cap · tanh(K·q · scale / cap)`,
//!   plus ALiBi's `slope · -(pos - j)` (llama.cpp's mask value times the slope);
//! - an online softmax over the keys in position order (Milakov and
//!   Gimelshein 2018): a new maximum `M` scales the running output and sum by
//!   `exp(M_old - M)`, otherwise the key's weight is `exp(s - M)`;
//! - each value row is dequantized to f32 and added with that weight by a
//!   fused multiply-add (`ggml_vec_mad_f32`);
//! - a head's attention sink (gpt-oss) then joins the sum as one more logit
//!   with no value, rescaling the output if it is the new maximum;
//! - the output is multiplied by `1 / sum`.
//!
//! A cache that stores its keys and values Hadamard-rotated
//! ([`crate::kv_cache::hadamard`], llama.cpp's `attn_rot_k` / `attn_rot_v`)
//! has the queries rotated the same way before they are converted, and the
//! output turned back after the division, as llama.cpp's graph does around
//! its flash-attention node.
//!
//! The query heads sharing a key/value head (up to [`GROUP`]) are processed
//! together so each key and value row is read, and each value row
//! dequantized, once for all of them; every head keeps its own maximum, sum
//! and output, updated in the same order as llama.cpp's loop over one head.

use kernels::TensorType;

use super::attention::{AttentionShape, GROUP, HeadTerms};
use crate::kv_cache::{KvLayer, as_bytes, hadamard};

/// Floats of scratch one call of [`attend`] uses for heads of `hd` values: the
/// converted queries, the outputs and one dequantized value row.
pub(super) fn scratch_floats(hd: usize) -> usize {
    2 * GROUP * hd + hd
}

/// The query heads in `q` (all sharing key/value head `kv_head`, at most
/// [`GROUP`]) at position `pos` attending over the cache's rows up to `pos`,
/// into `out` (the same shape as `q`). `terms`: the heads' sinks and ALiBi
/// slopes, if any. `tmp` holds [`scratch_floats`].
#[allow(clippy::too_many_arguments)]
pub(super) fn attend(
    shape: &AttentionShape,
    terms: HeadTerms<'_>,
    cache: KvLayer<'_>,
    q: &[f32],
    pos: usize,
    kv_head: usize,
    tmp: &mut [f32],
    out: &mut [f32],
) {
    let hd = shape.head_dim;
    let n = q.len() / hd;
    let k_traits = kernels::traits(cache.ty.tensor_type()).expect("KV cache types have kernels");
    let dot = k_traits.vec_dot.expect("q8_0 and q4_0 have dot products");
    let to_f32 = k_traits.to_f32;
    let q_type: TensorType = k_traits.vec_dot_type;
    let to_q = kernels::traits(q_type)
        .and_then(|t| t.activation_quantizer())
        .expect("the dot products' activation formats have quantizers");
    let q_row = hd / q_type.block_size() * q_type.type_size();
    // 16-bit units of one head's slice of a stored row.
    let head_units = cache.ty.row_bytes(hd) / 2;
    let kv_off = kv_head * head_units;
    let first = shape.window.map_or(0, |w| (pos + 1).saturating_sub(w));

    let (q_floats, rest) = tmp.split_at_mut(GROUP * hd);
    let (acc, rest) = rest.split_at_mut(GROUP * hd);
    let v32 = &mut rest[..hd];
    // SAFETY: f32 storage viewed as bytes: alignment 1, any value valid; the
    // length covers the same memory.
    let q_bytes = unsafe {
        std::slice::from_raw_parts_mut(q_floats.as_mut_ptr().cast::<u8>(), q_floats.len() * 4)
    };
    for h in 0..n {
        let head = &q[h * hd..(h + 1) * hd];
        let dst = &mut q_bytes[h * q_row..(h + 1) * q_row];
        if cache.k_rot > 0 {
            v32.copy_from_slice(head);
            hadamard(v32, cache.k_rot);
            to_q(v32, dst);
        } else {
            to_q(head, dst);
        }
    }
    let acc = &mut acc[..n * hd];
    acc.fill(0.0);
    let (scale, cap) = match shape.softcap {
        Some(cap) => (shape.kq_scale / cap, cap),
        None => (shape.kq_scale, 0.0),
    };
    let mut max = [f32::NEG_INFINITY; GROUP];
    let mut sum = [0f32; GROUP];
    let fma = fma_usable();
    for j in first..=pos {
        let at = cache.row(j) * cache.row_len + kv_off;
        let k = as_bytes(&cache.k[at..at + head_units]);
        to_f32(as_bytes(&cache.v[at..at + head_units]), v32);
        for h in 0..n {
            let mut s = dot(hd, k, &q_bytes[h * q_row..(h + 1) * q_row]) * scale;
            if cap != 0.0 {
                s = cap * s.tanh();
            }
            if let Some(slopes) = terms.alibi {
                s += slopes[h] * -((pos - j) as f32);
            }
            let out_h = &mut acc[h * hd..(h + 1) * hd];
            let vs = online_step(s, &mut max[h], &mut sum[h], out_h);
            mad(fma, out_h, v32, vs);
        }
    }
    if let Some(sinks) = terms.sinks {
        // The sink's weight joins the sum; it has no value. ggml keeps the
        // running maximum as it was (nothing follows).
        for h in 0..n {
            let mut m = max[h];
            online_step(
                sinks[h],
                &mut m,
                &mut sum[h],
                &mut acc[h * hd..(h + 1) * hd],
            );
        }
    }
    for h in 0..n {
        let inv = if sum[h] == 0.0 { 0.0 } else { 1.0 / sum[h] };
        let out_h = &mut out[h * hd..(h + 1) * hd];
        for (o, &a) in out_h.iter_mut().zip(&acc[h * hd..(h + 1) * hd]) {
            *o = a * inv;
        }
        if cache.v_rot > 0 {
            hadamard(out_h, cache.v_rot);
        }
    }
}

/// One logit `s` of the online softmax: a new maximum rescales the running
/// output and sum by `exp(max - s)` and weighs `s` by 1, else `s` weighs
/// `exp(s - max)`; the weight is added to `sum` and returned (for the value
/// row the caller adds to `out`).
fn online_step(s: f32, max: &mut f32, sum: &mut f32, out: &mut [f32]) -> f32 {
    let (mut ms, mut vs) = (1.0f32, 1.0f32);
    if s > *max {
        ms = (*max - s).exp();
        *max = s;
        out.iter_mut().for_each(|a| *a *= ms);
    } else {
        vs = (s - *max).exp();
    }
    *sum = *sum * ms + vs;
    vs
}

/// Whether `y += x · v` runs with fused multiply-adds, as ggml's
/// `ggml_vec_mad_f32` does on CPUs that have them.
fn fma_usable() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        matches!(
            kernels::cpu_level(),
            kernels::Cpu::Avx2 | kernels::Cpu::Avx512
        )
    }
    #[cfg(target_arch = "aarch64")]
    {
        true
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// `y += x · v`, each term with one rounding where `fma` (see [`fma_usable`]).
fn mad(fma: bool, y: &mut [f32], x: &[f32], v: f32) {
    #[cfg(target_arch = "x86_64")]
    if fma {
        // SAFETY: `fma_usable` saw AVX2 and FMA in the selected CPU level.
        unsafe { mad_fma(y, x, v) };
        return;
    }
    #[cfg(target_arch = "aarch64")]
    if fma {
        // Every aarch64 CPU fuses multiply-adds in hardware.
        for (a, &b) in y.iter_mut().zip(x) {
            *a = b.mul_add(v, *a);
        }
        return;
    }
    let _ = fma;
    for (a, &b) in y.iter_mut().zip(x) {
        *a += b * v;
    }
}

/// [`mad`] compiled for AVX2 and FMA, so `mul_add` becomes `vfmadd` (and is
/// vectorised) instead of a library call.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn mad_fma(y: &mut [f32], x: &[f32], v: f32) {
    for (a, &b) in y.iter_mut().zip(x) {
        *a = b.mul_add(v, *a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv_cache::{KvCache, KvType};
    use crate::ops::attention::{attention, scratch_len};
    use kernels::pool::ThreadPool;

    fn rng(seed: u32) -> impl FnMut() -> f32 {
        let mut s = seed;
        move || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
        }
    }

    /// One head's attention in f64 with a plain softmax over the visible row:
    /// `k(j, d)`, `v(j, d)` and `q(d)` as given.
    #[allow(clippy::too_many_arguments)]
    fn direct(
        sh: &AttentionShape,
        k: &dyn Fn(usize, usize) -> f64,
        v: &dyn Fn(usize, usize) -> f64,
        q: &dyn Fn(usize) -> f64,
        pos: usize,
    ) -> Vec<f64> {
        let hd = sh.head_dim;
        let first = sh.window.map_or(0, |w| (pos + 1).saturating_sub(w));
        let s: Vec<f64> = (first..=pos)
            .map(|j| {
                let dot: f64 = (0..hd).map(|d| q(d) * k(j, d)).sum();
                match sh.softcap {
                    Some(cap) => {
                        let cap = f64::from(cap);
                        cap * (dot * f64::from(sh.kq_scale) / cap).tanh()
                    }
                    None => dot * f64::from(sh.kq_scale),
                }
            })
            .collect();
        let m = s.iter().copied().fold(f64::MIN, f64::max);
        let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
        (0..hd)
            .map(|d| {
                (first..=pos)
                    .zip(&s)
                    .map(|(j, x)| (x - m).exp() / z * v(j, d))
                    .sum()
            })
            .collect()
    }

    /// Quantized caches against two references: the same arithmetic in f64 on
    /// the stored (dequantized) keys and values and the q8_0-rounded query
    /// (float noise only), and plain f32 attention on the unrounded inputs
    /// (the quantization error, which `f32_rms` bounds).
    fn case(ty: KvType, hd: usize, f32_rms: f64) {
        let pool = ThreadPool::new(2);
        let (n_head, n_head_kv, n) = (10, 2, 150);
        let kv_dim = n_head_kv * hd;
        let mut next = rng(hd as u32 + 3);
        let keys: Vec<Vec<f32>> = (0..n)
            .map(|_| (0..kv_dim).map(|_| next()).collect())
            .collect();
        let values: Vec<Vec<f32>> = (0..n)
            .map(|_| (0..kv_dim).map(|_| next()).collect())
            .collect();
        let mut kv = KvCache::with_type(1, n, kv_dim, ty, hd);
        for j in 0..n {
            kv.store(0, j, &keys[j], &values[j]);
        }
        // What the cache holds, dequantized.
        let layer = kv.layer(0);
        let to_f32 = kernels::traits(ty.tensor_type()).unwrap().to_f32;
        let stored = |buf: &[u16], j: usize| {
            let mut row = vec![0f32; kv_dim];
            to_f32(
                as_bytes(&buf[j * layer.row_len..(j + 1) * layer.row_len]),
                &mut row,
            );
            row
        };
        let k_st: Vec<Vec<f32>> = (0..n).map(|j| stored(layer.k, j)).collect();
        let v_st: Vec<Vec<f32>> = (0..n).map(|j| stored(layer.v, j)).collect();
        let q: Vec<f32> = (0..3 * n_head * hd).map(|_| next() * 0.5).collect();
        let q8 = kernels::traits(TensorType::Q8_0).unwrap();
        let mut scratch = vec![0f32; scratch_len(&pool, n, hd)];
        for (window, softcap) in [(None, None), (Some(40), None), (None, Some(5.0))] {
            let sh = AttentionShape {
                n_head,
                n_head_kv,
                head_dim: hd,
                kq_scale: 1.0 / (hd as f32).sqrt(),
                window,
                softcap,
            };
            let mut out = vec![0f32; q.len()];
            attention(&pool, &sh, layer, &q, n - 3, &mut out, &mut scratch);
            let (mut sq, mut count) = (0f64, 0usize);
            for t in 0..3 {
                for h in 0..n_head {
                    let at = (t * n_head + h) * hd;
                    let off = h / (n_head / n_head_kv) * hd;
                    let qh = &q[at..at + hd];
                    let mut qb = vec![0u8; hd / 32 * 34];
                    // The query turned like the keys before it is converted.
                    let mut q_turned = qh.to_vec();
                    if layer.k_rot > 0 {
                        hadamard(&mut q_turned, layer.k_rot);
                    }
                    (q8.activation_quantizer().unwrap())(&q_turned, &mut qb);
                    let mut q_st = vec![0f32; hd];
                    (q8.to_f32)(&qb, &mut q_st);
                    let pos = n - 3 + t;
                    let near = direct(
                        &sh,
                        &|j, d| f64::from(k_st[j][off + d]),
                        &|j, d| f64::from(v_st[j][off + d]),
                        &|d| f64::from(q_st[d]),
                        pos,
                    );
                    // The output turned back like the values.
                    let mut near: Vec<f32> = near.iter().map(|&x| x as f32).collect();
                    if layer.v_rot > 0 {
                        hadamard(&mut near, layer.v_rot);
                    }
                    let exact = direct(
                        &sh,
                        &|j, d| f64::from(keys[j][off + d]),
                        &|j, d| f64::from(values[j][off + d]),
                        &|d| f64::from(qh[d]),
                        pos,
                    );
                    for d in 0..hd {
                        let got = f64::from(out[at + d]);
                        assert!(
                            (got - f64::from(near[d])).abs() < 1e-4,
                            "{ty} hd {hd} {window:?} {softcap:?} t{t} h{h} d{d}: {got} vs {}",
                            near[d]
                        );
                        sq += (got - exact[d]).powi(2);
                        count += 1;
                    }
                }
            }
            let rms = (sq / count as f64).sqrt();
            assert!(
                rms < f32_rms,
                "{ty} hd {hd} {window:?} {softcap:?}: rms {rms} from f32 attention"
            );
        }
    }

    #[test]
    fn q8_0_cache_matches_its_dequantized_values_and_f32_within_quantization() {
        for hd in [32, 64, 128] {
            case(KvType::Q8_0, hd, 3e-3);
        }
    }

    #[test]
    fn q4_0_cache_matches_its_dequantized_values_and_f32_within_quantization() {
        for hd in [32, 64] {
            case(KvType::Q4_0, hd, 4e-2);
        }
    }

    #[test]
    #[should_panic(expected = "heads of 16 values in a q8_0 cache")]
    fn heads_of_partial_blocks_are_refused() {
        let pool = ThreadPool::new(1);
        let kv = KvCache::with_type(1, 4, 32, KvType::Q8_0, 16);
        let sh = AttentionShape {
            n_head: 2,
            n_head_kv: 2,
            head_dim: 16,
            kq_scale: 1.0,
            window: None,
            softcap: None,
        };
        let q = [0f32; 32];
        let mut out = [0f32; 32];
        let mut scratch = vec![0f32; scratch_len(&pool, 4, 16)];
        attention(&pool, &sh, kv.layer(0), &q, 0, &mut out, &mut scratch);
    }
}
