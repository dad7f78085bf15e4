//! The key/value cache of one sequence, stored as f16 like llama.cpp's default
//! (`type_k = type_v = GGML_TYPE_F16`): every key and value is rounded to f16 when
//! it is stored, and attention reads the rounded values back.
//!
//! Layout: per layer, `n_ctx` rows of `kv_dim = n_head_kv * head_dim` values for
//! K and the same for V, row `p` holding position `p`. The buffers are allocated
//! once, zeroed (so untouched pages cost no resident memory).
//!
//! [`KvPool`] is the paged form shared by many sequences (vLLM's PagedAttention):
//! fixed-size blocks of `block_len` positions, the same block id in every
//! layer; a sequence's block table lists its blocks in position order, and
//! attention reads position `p` from row `p % block_len` of block
//! `table[p / block_len]`. Which sequence holds which block is the engine's
//! business (`engine::blocks`).

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
    /// (rows, kv_dim) f16 keys.
    pub k: &'a [u16],
    /// (rows, kv_dim) f16 values.
    pub v: &'a [u16],
    /// Values per position: `n_head_kv * head_dim`.
    pub kv_dim: usize,
    /// Positions the sequence may hold.
    pub n_ctx: usize,
    /// Where each position's row is: row `p` without a table.
    pub table: Option<BlockTable<'a>>,
}

/// A sequence's blocks in a [`KvPool`] layer, in position order.
#[derive(Clone, Copy, Debug)]
pub struct BlockTable<'a> {
    /// Block ids.
    pub blocks: &'a [u32],
    /// log2 of the positions per block.
    pub shift: u32,
}

impl KvLayer<'_> {
    /// The row of `k` and `v` holding position `pos`.
    #[inline]
    pub fn row(&self, pos: usize) -> usize {
        match self.table {
            None => pos,
            Some(t) => {
                let mask = (1usize << t.shift) - 1;
                ((t.blocks[pos >> t.shift] as usize) << t.shift) | (pos & mask)
            }
        }
    }

    /// Panics unless the rows of positions `0..end` are within `k` and `v`.
    pub fn check(&self, end: usize) {
        let rows = self.k.len().min(self.v.len()) / self.kv_dim.max(1);
        match self.table {
            None => assert!(end <= rows, "{end} positions in a cache of {rows}"),
            Some(t) => {
                let blocks = end.div_ceil(1 << t.shift);
                assert!(
                    blocks <= t.blocks.len(),
                    "{end} positions in {} blocks",
                    t.blocks.len()
                );
                let n_blocks = rows >> t.shift;
                assert!(
                    t.blocks[..blocks].iter().all(|&b| (b as usize) < n_blocks),
                    "a block id beyond the pool's {n_blocks}"
                );
            }
        }
    }
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
            n_ctx: self.n_ctx,
            table: None,
        }
    }

    /// Drops positions `keep..keep + discard` of the first `n_past`, moves the later
    /// ones down by `discard`, and re-rotates their keys by `-discard` positions with
    /// each layer's RoPE (llama.cpp's K-shift: `ggml_rope_ext` on the f16 cache
    /// with the position delta). `rope_for` gives a layer's RoPE and frequency
    /// factors, `None` for a layer without RoPE (its keys only move);
    /// `head_dim` is the size of one key head.
    pub fn shift(
        &mut self,
        n_past: usize,
        keep: usize,
        discard: usize,
        head_dim: usize,
        rope_for: &dyn Fn(usize) -> Option<(Rope, Option<Vec<f32>>)>,
    ) {
        let tail = n_past - keep - discard;
        let mut cache = vec![0f32; head_dim];
        for layer in 0..self.n_layer {
            let src = self.row(layer, keep + discard);
            let dst = self.row(layer, keep);
            let len = tail * self.kv_dim;
            self.k.copy_within(src..src + len, dst);
            self.v.copy_within(src..src + len, dst);
            let Some((rope, factors)) = rope_for(layer) else {
                continue;
            };
            rope.fill_cache(-(discard as f32), factors.as_deref(), 1.0, &mut cache);
            for head in self.k[dst..dst + len].chunks_exact_mut(head_dim) {
                rope.rotate_f16(head, &cache);
            }
        }
    }
}

/// The paged KV cache of one model: `n_blocks` blocks of `block_len` positions
/// per layer, f16 like [`KvCache`], shared by every sequence through block
/// tables.
#[derive(Debug)]
pub struct KvPool {
    n_layer: usize,
    n_blocks: usize,
    shift: u32,
    kv_dim: usize,
    /// (n_layer, n_blocks, block_len, kv_dim) f16 bits.
    k: Vec<u16>,
    /// (n_layer, n_blocks, block_len, kv_dim) f16 bits.
    v: Vec<u16>,
}

impl KvPool {
    /// A pool of `n_blocks` blocks of `block_len` (a power of two) positions
    /// for `n_layer` layers of `kv_dim` values.
    pub fn new(n_layer: usize, kv_dim: usize, block_len: usize, n_blocks: usize) -> KvPool {
        assert!(
            block_len.is_power_of_two(),
            "block_len must be a power of two"
        );
        let len = n_layer * n_blocks * block_len * kv_dim;
        KvPool {
            n_layer,
            n_blocks,
            shift: block_len.trailing_zeros(),
            kv_dim,
            k: vec![0; len],
            v: vec![0; len],
        }
    }

    /// Bytes of keys and values one block holds over all layers.
    pub fn block_bytes(n_layer: usize, kv_dim: usize, block_len: usize) -> usize {
        2 * 2 * n_layer * block_len * kv_dim
    }

    /// Layers of the pool.
    pub fn n_layer(&self) -> usize {
        self.n_layer
    }

    /// Values per position: `n_head_kv * head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.kv_dim
    }

    /// Blocks in the pool.
    pub fn n_blocks(&self) -> usize {
        self.n_blocks
    }

    /// Positions per block.
    pub fn block_len(&self) -> usize {
        1 << self.shift
    }

    /// Bytes held by keys and values together.
    pub fn size_bytes(&self) -> usize {
        (self.k.len() + self.v.len()) * 2
    }

    fn layer_len(&self) -> usize {
        self.n_blocks * self.block_len() * self.kv_dim
    }

    /// Stores the key and value of position `pos` of the sequence with block
    /// table `blocks` in `layer`, rounded to f16.
    pub fn store(&mut self, layer: usize, blocks: &[u32], pos: usize, k: &[f32], v: &[f32]) {
        let table = BlockTable {
            blocks,
            shift: self.shift,
        };
        let view = KvLayer {
            k: &[],
            v: &[],
            kv_dim: self.kv_dim,
            n_ctx: 0,
            table: Some(table),
        };
        let block = blocks[pos >> self.shift] as usize;
        assert!(block < self.n_blocks, "block {block} of {}", self.n_blocks);
        let at = layer * self.layer_len() + view.row(pos) * self.kv_dim;
        for (d, &s) in self.k[at..at + self.kv_dim].iter_mut().zip(k) {
            *d = f32_to_f16(s);
        }
        for (d, &s) in self.v[at..at + self.kv_dim].iter_mut().zip(v) {
            *d = f32_to_f16(s);
        }
    }

    /// `layer` as the sequence with block table `blocks` sees it, for up to
    /// `n_ctx` positions.
    pub fn layer<'a>(&'a self, layer: usize, blocks: &'a [u32], n_ctx: usize) -> KvLayer<'a> {
        let (a, b) = (layer * self.layer_len(), (layer + 1) * self.layer_len());
        KvLayer {
            k: &self.k[a..b],
            v: &self.v[a..b],
            kv_dim: self.kv_dim,
            n_ctx,
            table: Some(BlockTable {
                blocks,
                shift: self.shift,
            }),
        }
    }

    /// Copies block `from` to block `to` in every layer (copy-on-write).
    pub fn copy_block(&mut self, from: u32, to: u32) {
        let n = self.block_len() * self.kv_dim;
        for layer in 0..self.n_layer {
            let base = layer * self.layer_len();
            let (src, dst) = (base + from as usize * n, base + to as usize * n);
            self.k.copy_within(src..src + n, dst);
            self.v.copy_within(src..src + n, dst);
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
        kv.shift(6, 1, 2, 2, &|_| Some((rope.clone(), None)));
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
