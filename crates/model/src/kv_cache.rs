//! The key/value cache of one sequence, stored as f16 like llama.cpp's default
//! (`type_k = type_v = GGML_TYPE_F16`): every key and value is rounded to f16 when
//! it is stored, and attention reads the rounded values back.
//!
//! Layout: per layer, `n_ctx` rows of `kv_dim = n_head_kv * head_dim` values for
//! K and the same for V, row `p` holding position `p`. The buffers are allocated
//! once, zeroed (so untouched pages cost no resident memory).

use kernels::formats::float::f32_to_f16;

use crate::ops::rope::Rope;

/// f16 keys and values for every layer and position of one sequence.
#[derive(Clone, Debug)]
pub struct KvCache {
    n_layer: usize,
    n_ctx: usize,
    kv_dim: usize,
    /// (n_layer, n_ctx, kv_dim) f16 bits.
    k: Vec<u16>,
    /// (n_layer, n_ctx, kv_dim) f16 bits.
    v: Vec<u16>,
}

/// One layer's cache, read-only, as attention sees it.
#[derive(Clone, Copy, Debug)]
pub struct KvLayer<'a> {
    /// (n_ctx, kv_dim) f16 keys.
    pub k: &'a [u16],
    /// (n_ctx, kv_dim) f16 values.
    pub v: &'a [u16],
    /// Values per position: `n_head_kv * head_dim`.
    pub kv_dim: usize,
}

impl KvCache {
    /// A cache for `n_layer` layers of `n_ctx` positions of `kv_dim` values.
    pub fn new(n_layer: usize, n_ctx: usize, kv_dim: usize) -> KvCache {
        let len = n_layer * n_ctx * kv_dim;
        KvCache {
            n_layer,
            n_ctx,
            kv_dim,
            k: vec![0; len],
            v: vec![0; len],
        }
    }

    /// Positions the cache holds.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Bytes held by keys and values together.
    pub fn size_bytes(&self) -> usize {
        (self.k.len() + self.v.len()) * 2
    }

    fn row(&self, layer: usize, pos: usize) -> usize {
        (layer * self.n_ctx + pos) * self.kv_dim
    }

    /// Stores the key and value of position `pos` in `layer`, rounded to f16.
    pub fn store(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        let at = self.row(layer, pos);
        for (d, &s) in self.k[at..at + self.kv_dim].iter_mut().zip(k) {
            *d = f32_to_f16(s);
        }
        for (d, &s) in self.v[at..at + self.kv_dim].iter_mut().zip(v) {
            *d = f32_to_f16(s);
        }
    }

    /// The whole of `layer` (all `n_ctx` rows; only the first `n_past` are valid).
    pub fn layer(&self, layer: usize) -> KvLayer<'_> {
        let (a, b) = (self.row(layer, 0), self.row(layer + 1, 0));
        KvLayer {
            k: &self.k[a..b],
            v: &self.v[a..b],
            kv_dim: self.kv_dim,
        }
    }

    /// Drops positions `keep..keep + discard` of the first `n_past`, moves the later
    /// ones down by `discard`, and re-rotates their keys by `-discard` positions with
    /// each layer's RoPE (llama.cpp's K-shift: `ggml_rope_ext` on the f16 cache
    /// with the position delta). `rope_for` gives a layer's RoPE and frequency
    /// factors; `head_dim` is the size of one key head.
    pub fn shift(
        &mut self,
        n_past: usize,
        keep: usize,
        discard: usize,
        head_dim: usize,
        rope_for: &dyn Fn(usize) -> (Rope, Option<Vec<f32>>),
    ) {
        let tail = n_past - keep - discard;
        let mut cache = vec![0f32; head_dim];
        for layer in 0..self.n_layer {
            let (rope, factors) = rope_for(layer);
            rope.fill_cache(-(discard as f32), factors.as_deref(), 1.0, &mut cache);
            let src = self.row(layer, keep + discard);
            let dst = self.row(layer, keep);
            let len = tail * self.kv_dim;
            self.k.copy_within(src..src + len, dst);
            self.v.copy_within(src..src + len, dst);
            for head in self.k[dst..dst + len].chunks_exact_mut(head_dim) {
                rope.rotate_f16(head, &cache);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::rope::RopeMode;
    use kernels::formats::float::f16_to_f32;

    #[test]
    fn stores_rounded_to_f16() {
        let mut kv = KvCache::new(2, 4, 2);
        kv.store(1, 3, &[1.0, 0.1], &[-2.0, 1e-8]);
        let l = kv.layer(1);
        assert_eq!(f16_to_f32(l.k[6]), 1.0);
        assert_eq!(f16_to_f32(l.k[7]), f16_to_f32(f32_to_f16(0.1)));
        assert_eq!(f16_to_f32(l.v[6]), -2.0);
        assert!(kv.layer(0).k.iter().all(|&b| b == 0));
    }

    #[test]
    fn shift_moves_rows_and_rotates_keys_back() {
        let rope = Rope {
            mode: RopeMode::Normal,
            n_dims: 2,
            freq_base: 10000.0,
            freq_scale: 1.0,
            ext_factor: 0.0,
            attn_factor: 1.0,
            beta_fast: 32.0,
            beta_slow: 1.0,
            n_ctx_orig: 16,
        };
        let mut kv = KvCache::new(1, 8, 2);
        let mut c = [0f32; 2];
        // Key (1, 0) rotated to its position, value = position.
        for p in 0..6 {
            rope.fill_cache(p as f32, None, 1.0, &mut c);
            let mut k = [1.0f32, 0.0];
            rope.rotate(&mut k, &c);
            kv.store(0, p, &k, &[p as f32, 0.0]);
        }
        kv.shift(6, 1, 2, 2, &|_| (rope.clone(), None));
        let l = kv.layer(0);
        let values: Vec<f32> = (0..4).map(|p| f16_to_f32(l.v[p * 2])).collect();
        assert_eq!(values, [0.0, 3.0, 4.0, 5.0]);
        // Position 3's key now sits at row 1 and is rotated as position 1.
        let (x, y) = (f16_to_f32(l.k[2]), f16_to_f32(l.k[3]));
        assert!(
            (x - 1f32.cos()).abs() < 2e-3 && (y - 1f32.sin()).abs() < 2e-3,
            "{x} {y}"
        );
    }
}
