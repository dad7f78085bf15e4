//! The key/value cache of one sequence, stored as f16 like llama.cpp's default
//! (`type_k = type_v = GGML_TYPE_F16`) or block-quantized to q8_0 or q4_0 (its
//! `-ctk/-ctv`, Ollama's `OLLAMA_KV_CACHE_TYPE`): every key and value row is
//! converted when it is stored, and attention reads the stored form back
//! ([`KvType`]).
//!
//! Layout: per layer, `n_ctx` rows of `kv_dim = n_head_kv * head_dim` values for
//! K and the same for V, row `p` holding position `p`. A quantized row is
//! ggml's blocks of 32 values one after another (34 bytes each for q8_0, 18 for
//! q4_0), so each head's slice of the row is whole blocks; every layout is kept
//! in 16-bit units (both block sizes are even). The buffers are allocated once,
//! zeroed (so untouched pages cost no resident memory).
//!
//! Like llama.cpp (`attn_rot_k` / `attn_rot_v` in src/llama-kv-cache.cpp), a
//! quantized cache of heads of a multiple of 64 values stores its keys and
//! values turned by an orthonormal Walsh-Hadamard rotation ([`hadamard`]),
//! which spreads an outlier over its whole block before the block shares one
//! scale: keys (and the queries, so `q·k` is unchanged) in chunks of the
//! largest power of two dividing the head, values in chunks of 64, turned
//! back after attention (the rotation is its own inverse).
//!
//! [`KvPool`] is the paged form shared by many sequences (vLLM's PagedAttention):
//! fixed-size blocks of `block_len` positions, the same block id in every
//! layer; a sequence's block table lists its blocks in position order, and
//! attention reads position `p` from row `p % block_len` of block
//! `table[p / block_len]`. Which sequence holds which block is the engine's
//! business (`engine::blocks`).

use kernels::TensorType;
use kernels::formats::float::f32_to_f16;

use crate::ops::rope::Rope;

/// How the cache stores keys and values (llama.cpp's `type_k` / `type_v`,
/// here one type for both, as Ollama's `OLLAMA_KV_CACHE_TYPE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KvType {
    /// Half precision, llama.cpp's default.
    #[default]
    F16,
    /// ggml's Q8_0 blocks: 32 values as int8 with one f16 scale (8.5 bits a
    /// value).
    Q8_0,
    /// ggml's Q4_0 blocks: 32 values as 4-bit integers with one f16 scale (4.5
    /// bits a value).
    Q4_0,
}

impl KvType {
    /// Every type, in order of size.
    pub const ALL: [KvType; 3] = [KvType::F16, KvType::Q8_0, KvType::Q4_0];

    /// The name llama.cpp and Ollama use (`f16`, `q8_0`, `q4_0`).
    pub fn name(self) -> &'static str {
        match self {
            KvType::F16 => "f16",
            KvType::Q8_0 => "q8_0",
            KvType::Q4_0 => "q4_0",
        }
    }

    /// The type named `name` (case-insensitive), if it is one of [`KvType::ALL`].
    pub fn parse(name: &str) -> Option<KvType> {
        KvType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The tensor format of the stored rows.
    pub fn tensor_type(self) -> TensorType {
        match self {
            KvType::F16 => TensorType::F16,
            KvType::Q8_0 => TensorType::Q8_0,
            KvType::Q4_0 => TensorType::Q4_0,
        }
    }

    /// Values per block: a head's size must be a multiple of it.
    pub fn block_size(self) -> usize {
        self.tensor_type().block_size()
    }

    /// Bytes of one stored row of `kv_dim` values (a multiple of
    /// [`KvType::block_size`]).
    pub fn row_bytes(self, kv_dim: usize) -> usize {
        kv_dim / self.block_size() * self.tensor_type().type_size()
    }

    /// 16-bit units of one stored row.
    fn row_len(self, kv_dim: usize) -> usize {
        self.row_bytes(kv_dim) / 2
    }
}

impl std::fmt::Display for KvType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The orthonormal Walsh-Hadamard rotation of each `n`-value chunk of `x`
/// (`n` a power of two), computed as ggml-cpu's fast transform does
/// (`ggml_compute_forward_fwht`): the values scaled by `1/sqrt(n)` first,
/// then butterflies `(u + v, u - v)` at distances 1, 2, 4, ... `n / 2`.
pub fn hadamard(x: &mut [f32], n: usize) {
    debug_assert!(n.is_power_of_two() && x.len().is_multiple_of(n));
    let scale = 1.0 / (n as f32).sqrt();
    for chunk in x.chunks_exact_mut(n) {
        chunk.iter_mut().for_each(|v| *v *= scale);
        let mut len = 1;
        while len < n {
            for pair in chunk.chunks_exact_mut(2 * len) {
                let (a, b) = pair.split_at_mut(len);
                for (u, v) in a.iter_mut().zip(b) {
                    (*u, *v) = (*u + *v, *u - *v);
                }
            }
            len <<= 1;
        }
    }
}

/// The chunk sizes of the rotations a cache of `ty` with heads of
/// `head_dim` values applies to keys and to values (0: none), as llama.cpp
/// chooses them.
fn rotations(ty: KvType, head_dim: usize) -> (usize, usize) {
    if ty == KvType::F16 || head_dim == 0 || !head_dim.is_multiple_of(64) {
        return (0, 0);
    }
    // The largest power of two dividing the head (at least 64).
    (1 << head_dim.trailing_zeros(), 64)
}

/// Stores `src` as one row of `ty` in `dst`, first rotated in chunks of
/// `rot` values (0: as it is) in `scratch`.
fn store_rotated(ty: KvType, rot: usize, src: &[f32], scratch: &mut Vec<f32>, dst: &mut [u16]) {
    if rot == 0 {
        store_row(ty, src, dst);
        return;
    }
    scratch.clear();
    scratch.extend_from_slice(src);
    hadamard(scratch, rot);
    store_row(ty, scratch, dst);
}

/// Views a cache buffer as the little-endian bytes the kernels read.
pub(crate) fn as_bytes(units: &[u16]) -> &[u8] {
    // SAFETY: u8 has alignment 1 and every byte pattern is valid; the length
    // covers exactly the same memory.
    unsafe { std::slice::from_raw_parts(units.as_ptr().cast::<u8>(), units.len() * 2) }
}

/// [`as_bytes`], writable.
fn as_bytes_mut(units: &mut [u16]) -> &mut [u8] {
    // SAFETY: as in `as_bytes`; the borrow is exclusive.
    unsafe { std::slice::from_raw_parts_mut(units.as_mut_ptr().cast::<u8>(), units.len() * 2) }
}

// Cache rows are handed to the kernels as little-endian bytes.
const _: () = assert!(cfg!(target_endian = "little"));

/// Stores one row of `src` (`kv_dim` values) as `ty` into `dst` (its
/// [`KvType::row_len`] units): f16 rounding, or ggml-cpu's run-time quantizer
/// for the type (`from_float`, what its `set_rows` into a quantized cache
/// uses).
fn store_row(ty: KvType, src: &[f32], dst: &mut [u16]) {
    match ty {
        KvType::F16 => {
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = f32_to_f16(s);
            }
        }
        _ => {
            let quantize = kernels::traits(ty.tensor_type())
                .and_then(|t| t.activation_quantizer())
                .expect("q8_0 and q4_0 have quantizers");
            quantize(src, as_bytes_mut(dst));
        }
    }
}

/// Reads one stored row of `ty` back into `dst` (`kv_dim` floats).
fn load_row(ty: KvType, src: &[u16], dst: &mut [f32]) {
    let to_f32 = kernels::traits(ty.tensor_type())
        .expect("the cache types have kernels")
        .to_f32;
    to_f32(as_bytes(src), dst);
}

/// Keys and values for every layer and position of one sequence.
#[derive(Clone, Debug)]
pub struct KvCache {
    n_layer: usize,
    n_ctx: usize,
    kv_dim: usize,
    ty: KvType,
    /// 16-bit units per stored row.
    row_len: usize,
    /// Rotation chunks of keys and values (see [`hadamard`]; 0: none).
    k_rot: usize,
    v_rot: usize,
    /// A row being rotated before it is stored.
    scratch: Vec<f32>,
    /// (n_layer, n_ctx, row_len) units of stored keys.
    k: Vec<u16>,
    /// (n_layer, n_ctx, row_len) units of stored values.
    v: Vec<u16>,
}

/// One layer's cache, read-only, as attention sees it.
#[derive(Clone, Copy, Debug)]
pub struct KvLayer<'a> {
    /// (rows, row_len) stored keys.
    pub k: &'a [u16],
    /// (rows, row_len) stored values.
    pub v: &'a [u16],
    /// Values per position: `n_head_kv * head_dim`.
    pub kv_dim: usize,
    /// How the rows are stored.
    pub ty: KvType,
    /// 16-bit units per stored row (`kv_dim` for f16).
    pub row_len: usize,
    /// The chunk of the keys' rotation ([`hadamard`]), which queries must
    /// share; 0 for none.
    pub k_rot: usize,
    /// The chunk of the values' rotation, which attention's output must be
    /// turned back by; 0 for none.
    pub v_rot: usize,
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
        let rows = self.k.len().min(self.v.len()) / self.row_len.max(1);
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

/// Panics unless rows of `kv_dim` values can be stored as `ty`.
fn check_dim(ty: KvType, kv_dim: usize) {
    assert!(
        kv_dim.is_multiple_of(ty.block_size()),
        "rows of {kv_dim} values cannot be stored as {ty} (blocks of {})",
        ty.block_size()
    );
}

impl KvCache {
    /// An f16 cache for `n_layer` layers of `n_ctx` positions of `kv_dim` values.
    pub fn new(n_layer: usize, n_ctx: usize, kv_dim: usize) -> KvCache {
        KvCache::with_type(n_layer, n_ctx, kv_dim, KvType::F16, 0)
    }

    /// A cache storing its rows as `ty`, for heads of `head_dim` values (which
    /// decides the rotation of a quantized cache). Panics unless `kv_dim` is
    /// whole blocks of `ty` ([`crate::Model::set_kv_type`] checks the heads
    /// first).
    pub fn with_type(
        n_layer: usize,
        n_ctx: usize,
        kv_dim: usize,
        ty: KvType,
        head_dim: usize,
    ) -> KvCache {
        check_dim(ty, kv_dim);
        let row_len = ty.row_len(kv_dim);
        let len = n_layer * n_ctx * row_len;
        let (k_rot, v_rot) = rotations(ty, head_dim);
        KvCache {
            n_layer,
            n_ctx,
            kv_dim,
            ty,
            row_len,
            k_rot,
            v_rot,
            scratch: Vec::new(),
            k: vec![0; len],
            v: vec![0; len],
        }
    }

    /// Positions the cache holds.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// How the rows are stored.
    pub fn kv_type(&self) -> KvType {
        self.ty
    }

    /// Bytes held by keys and values together.
    pub fn size_bytes(&self) -> usize {
        (self.k.len() + self.v.len()) * 2
    }

    fn row(&self, layer: usize, pos: usize) -> usize {
        (layer * self.n_ctx + pos) * self.row_len
    }

    /// Stores the key and value of position `pos` in `layer`, converted to the
    /// cache's type.
    pub fn store(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        let at = self.row(layer, pos);
        let (n, d, s) = (self.row_len, self.kv_dim, &mut self.scratch);
        store_rotated(self.ty, self.k_rot, &k[..d], s, &mut self.k[at..at + n]);
        store_rotated(self.ty, self.v_rot, &v[..d], s, &mut self.v[at..at + n]);
    }

    /// The whole of `layer` (all `n_ctx` rows; only the first `n_past` are valid).
    pub fn layer(&self, layer: usize) -> KvLayer<'_> {
        let (a, b) = (self.row(layer, 0), self.row(layer + 1, 0));
        KvLayer {
            k: &self.k[a..b],
            v: &self.v[a..b],
            kv_dim: self.kv_dim,
            ty: self.ty,
            row_len: self.row_len,
            k_rot: self.k_rot,
            v_rot: self.v_rot,
            n_ctx: self.n_ctx,
            table: None,
        }
    }

    /// Drops positions `keep..keep + discard` of the first `n_past`, moves the later
    /// ones down by `discard`, and re-rotates their keys by `-discard` positions with
    /// each layer's RoPE (llama.cpp's K-shift: `ggml_rope_ext` on the f16 cache
    /// with the position delta; on a quantized cache it dequantizes the keys to
    /// f32, turns back their Hadamard rotation, applies RoPE, rotates and
    /// quantizes them again, as `build_rope_shift` does).
    /// `rope_for` gives a layer's RoPE and frequency factors, `None` for a
    /// layer without RoPE (its keys only move); `head_dim` is the size of one
    /// key head.
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
        let mut row = vec![0f32; self.kv_dim];
        for layer in 0..self.n_layer {
            let src = self.row(layer, keep + discard);
            let dst = self.row(layer, keep);
            let len = tail * self.row_len;
            self.k.copy_within(src..src + len, dst);
            self.v.copy_within(src..src + len, dst);
            let Some((rope, factors)) = rope_for(layer) else {
                continue;
            };
            rope.fill_cache(-(discard as f32), factors.as_deref(), 1.0, &mut cache);
            if self.ty == KvType::F16 {
                for head in self.k[dst..dst + len].chunks_exact_mut(head_dim) {
                    rope.rotate_f16(head, &cache);
                }
                continue;
            }
            for stored in self.k[dst..dst + len].chunks_exact_mut(self.row_len) {
                load_row(self.ty, stored, &mut row);
                if self.k_rot > 0 {
                    hadamard(&mut row, self.k_rot);
                }
                for head in row.chunks_exact_mut(head_dim) {
                    rope.rotate(head, &cache);
                }
                if self.k_rot > 0 {
                    hadamard(&mut row, self.k_rot);
                }
                store_row(self.ty, &row, stored);
            }
        }
    }
}

/// The paged KV cache of one model: `n_blocks` blocks of `block_len` positions
/// per layer, stored like [`KvCache`], shared by every sequence through block
/// tables.
#[derive(Debug)]
pub struct KvPool {
    n_layer: usize,
    n_blocks: usize,
    shift: u32,
    kv_dim: usize,
    ty: KvType,
    /// 16-bit units per stored row.
    row_len: usize,
    /// Rotation chunks of keys and values (see [`hadamard`]; 0: none).
    k_rot: usize,
    v_rot: usize,
    /// A row being rotated before it is stored.
    scratch: Vec<f32>,
    /// (n_layer, n_blocks, block_len, row_len) units of stored keys.
    k: Vec<u16>,
    /// (n_layer, n_blocks, block_len, row_len) units of stored values.
    v: Vec<u16>,
}

impl KvPool {
    /// An f16 pool of `n_blocks` blocks of `block_len` (a power of two)
    /// positions for `n_layer` layers of `kv_dim` values.
    pub fn new(n_layer: usize, kv_dim: usize, block_len: usize, n_blocks: usize) -> KvPool {
        KvPool::with_type(n_layer, kv_dim, block_len, n_blocks, KvType::F16, 0)
    }

    /// A pool storing its rows as `ty`, for heads of `head_dim` values (which
    /// decides the rotation of a quantized cache). Panics unless `kv_dim` is
    /// whole blocks of `ty`.
    pub fn with_type(
        n_layer: usize,
        kv_dim: usize,
        block_len: usize,
        n_blocks: usize,
        ty: KvType,
        head_dim: usize,
    ) -> KvPool {
        assert!(
            block_len.is_power_of_two(),
            "block_len must be a power of two"
        );
        check_dim(ty, kv_dim);
        let row_len = ty.row_len(kv_dim);
        let len = n_layer * n_blocks * block_len * row_len;
        let (k_rot, v_rot) = rotations(ty, head_dim);
        KvPool {
            n_layer,
            n_blocks,
            shift: block_len.trailing_zeros(),
            kv_dim,
            ty,
            row_len,
            k_rot,
            v_rot,
            scratch: Vec::new(),
            k: vec![0; len],
            v: vec![0; len],
        }
    }

    /// Bytes of keys and values one block holds over all layers when stored
    /// as `ty`.
    pub fn block_bytes(n_layer: usize, kv_dim: usize, block_len: usize, ty: KvType) -> usize {
        2 * n_layer * block_len * ty.row_bytes(kv_dim)
    }

    /// Layers of the pool.
    pub fn n_layer(&self) -> usize {
        self.n_layer
    }

    /// Values per position: `n_head_kv * head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.kv_dim
    }

    /// How the rows are stored.
    pub fn kv_type(&self) -> KvType {
        self.ty
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
        self.n_blocks * self.block_len() * self.row_len
    }

    /// Stores the key and value of position `pos` of the sequence with block
    /// table `blocks` in `layer`, converted to the pool's type.
    pub fn store(&mut self, layer: usize, blocks: &[u32], pos: usize, k: &[f32], v: &[f32]) {
        let table = BlockTable {
            blocks,
            shift: self.shift,
        };
        let view = KvLayer {
            k: &[],
            v: &[],
            kv_dim: self.kv_dim,
            ty: self.ty,
            row_len: self.row_len,
            k_rot: self.k_rot,
            v_rot: self.v_rot,
            n_ctx: 0,
            table: Some(table),
        };
        let block = blocks[pos >> self.shift] as usize;
        assert!(block < self.n_blocks, "block {block} of {}", self.n_blocks);
        let at = layer * self.layer_len() + view.row(pos) * self.row_len;
        let (n, d, s) = (self.row_len, self.kv_dim, &mut self.scratch);
        store_rotated(self.ty, self.k_rot, &k[..d], s, &mut self.k[at..at + n]);
        store_rotated(self.ty, self.v_rot, &v[..d], s, &mut self.v[at..at + n]);
    }

    /// `layer` as the sequence with block table `blocks` sees it, for up to
    /// `n_ctx` positions.
    pub fn layer<'a>(&'a self, layer: usize, blocks: &'a [u32], n_ctx: usize) -> KvLayer<'a> {
        let (a, b) = (layer * self.layer_len(), (layer + 1) * self.layer_len());
        KvLayer {
            k: &self.k[a..b],
            v: &self.v[a..b],
            kv_dim: self.kv_dim,
            ty: self.ty,
            row_len: self.row_len,
            k_rot: self.k_rot,
            v_rot: self.v_rot,
            n_ctx,
            table: Some(BlockTable {
                blocks,
                shift: self.shift,
            }),
        }
    }

    /// Copies block `from` to block `to` in every layer (copy-on-write).
    pub fn copy_block(&mut self, from: u32, to: u32) {
        let n = self.block_len() * self.row_len;
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

    fn row(seed: u32, n: usize) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 * 6.0 - 3.0
            })
            .collect()
    }

    fn read(ty: KvType, units: &[u16], kv_dim: usize) -> Vec<f32> {
        let mut out = vec![0f32; kv_dim];
        load_row(ty, units, &mut out);
        out
    }

    #[test]
    fn type_names_and_sizes_follow_ggml() {
        assert_eq!(KvType::parse("Q8_0"), Some(KvType::Q8_0));
        assert_eq!(KvType::parse(" q4_0"), Some(KvType::Q4_0));
        assert_eq!(KvType::parse("q5_1"), None);
        assert_eq!(KvType::default().name(), "f16");
        // 128 values: f16 256 bytes, q8_0 4 blocks of 34, q4_0 4 of 18.
        let sizes: Vec<usize> = KvType::ALL.iter().map(|t| t.row_bytes(128)).collect();
        assert_eq!(sizes, [256, 136, 72]);
        let cache = |t| KvCache::with_type(2, 16, 128, t, 64).size_bytes();
        assert_eq!(cache(KvType::F16), 2 * 2 * 16 * 256);
        assert_eq!(cache(KvType::Q8_0), 2 * 2 * 16 * 136);
        assert_eq!(cache(KvType::Q4_0), 2 * 2 * 16 * 72);
        for t in KvType::ALL {
            assert_eq!(
                KvPool::with_type(2, 128, 16, 3, t, 64).size_bytes(),
                3 * KvPool::block_bytes(2, 128, 16, t)
            );
        }
    }

    #[test]
    fn quantized_rows_read_back_within_one_step_of_their_block() {
        let kv_dim = 96;
        for (ty, steps) in [(KvType::Q8_0, 127.0), (KvType::Q4_0, 8.0)] {
            // Heads of 32: no rotation, the rows are stored as given.
            let mut kv = KvCache::with_type(2, 5, kv_dim, ty, 32);
            let (k, v) = (row(1, kv_dim), row(2, kv_dim));
            kv.store(1, 4, &k, &v);
            let l = kv.layer(1);
            let n = l.row_len;
            assert_eq!(n * 2, ty.row_bytes(kv_dim));
            for (stored, want) in [(&l.k[4 * n..5 * n], &k), (&l.v[4 * n..5 * n], &v)] {
                let got = read(ty, stored, kv_dim);
                for (b, (g, w)) in got.chunks(32).zip(want.chunks(32)).enumerate() {
                    let amax = w.iter().fold(0f32, |m, x| m.max(x.abs()));
                    for (g, w) in g.iter().zip(w) {
                        // One quantization step (half for q8_0's rounding),
                        // plus the f16 rounding of the block's scale.
                        assert!(
                            (g - w).abs() <= amax / steps * 1.01,
                            "{ty} block {b}: {g} for {w}"
                        );
                    }
                }
                // The other rows and layer stay untouched.
                assert!(l.k[..4 * n].iter().all(|&u| u == 0));
            }
            assert!(kv.layer(0).k.iter().all(|&u| u == 0));
        }
    }

    #[test]
    fn a_pool_stores_the_same_rows_as_a_cache_through_its_table() {
        let (kv_dim, block_len) = (64, 4);
        for ty in KvType::ALL {
            let mut pool = KvPool::with_type(2, kv_dim, block_len, 3, ty, 64);
            let mut own = KvCache::with_type(2, 8, kv_dim, ty, 64);
            let table = [2u32, 0];
            for pos in 0..8 {
                let (k, v) = (
                    row(pos as u32 * 2 + 7, kv_dim),
                    row(pos as u32 * 2 + 8, kv_dim),
                );
                pool.store(1, &table, pos, &k, &v);
                own.store(1, pos, &k, &v);
            }
            let (p, o) = (pool.layer(1, &table, 8), own.layer(1));
            assert_eq!(p.row_len, o.row_len);
            let n = o.row_len;
            for pos in 0..8 {
                let at = p.row(pos) * n;
                assert_eq!(&p.k[at..at + n], &o.k[pos * n..(pos + 1) * n], "{ty} {pos}");
                assert_eq!(&p.v[at..at + n], &o.v[pos * n..(pos + 1) * n], "{ty} {pos}");
            }
            // Copy-on-write copies whole quantized rows.
            pool.copy_block(2, 1);
            let q = pool.layer(1, &[1], 4);
            let at = block_len * n;
            assert_eq!(&q.k[at..at + block_len * n], &o.k[..block_len * n]);
        }
    }

    #[test]
    fn hadamard_is_orthonormal_its_own_inverse_and_sylvester_s_matrix() {
        let n = 64;
        let x = row(3, 2 * n);
        let mut y = x.clone();
        hadamard(&mut y, n);
        // H[i][j] = (-1)^popcount(i & j) / sqrt(n), chunk by chunk.
        for c in 0..2 {
            for i in 0..n {
                let want: f32 = (0..n)
                    .map(|j| {
                        let sign = if (i & j).count_ones() % 2 == 0 {
                            1.0
                        } else {
                            -1.0
                        };
                        sign * x[c * n + j]
                    })
                    .sum::<f32>()
                    / (n as f32).sqrt();
                assert!((y[c * n + i] - want).abs() < 1e-4, "{c} {i}");
            }
        }
        let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>();
        assert!((norm(&x) - norm(&y)).abs() < 1e-3 * norm(&x));
        hadamard(&mut y, n);
        assert!(x.iter().zip(&y).all(|(a, b)| (a - b).abs() < 1e-5));
        // Only quantized caches of heads of a multiple of 64 rotate, keys by
        // the largest power of two dividing the head, values by 64.
        assert_eq!(rotations(KvType::F16, 128), (0, 0));
        assert_eq!(rotations(KvType::Q8_0, 96), (0, 0));
        assert_eq!(rotations(KvType::Q8_0, 192), (64, 64));
        assert_eq!(rotations(KvType::Q4_0, 128), (128, 64));
    }

    #[test]
    fn rotated_rows_are_stored_turned_and_read_back_unturned() {
        let (kv_dim, hd) = (128, 64);
        let mut kv = KvCache::with_type(1, 2, kv_dim, KvType::Q8_0, hd);
        let (k, v) = (row(5, kv_dim), row(6, kv_dim));
        kv.store(0, 1, &k, &v);
        let l = kv.layer(0);
        assert_eq!((l.k_rot, l.v_rot), (64, 64));
        let n = l.row_len;
        let mut got = read(KvType::Q8_0, &l.k[n..2 * n], kv_dim);
        let mut turned = k.clone();
        hadamard(&mut turned, 64);
        let amax = turned.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(
            got.iter()
                .zip(&turned)
                .all(|(g, w)| (g - w).abs() <= amax / 127.0)
        );
        hadamard(&mut got, 64);
        assert!(got.iter().zip(&k).all(|(g, w)| (g - w).abs() < 0.05));
    }

    #[test]
    fn quantized_shift_dequantizes_rotates_and_requantizes_keys() {
        for hd in [32, 64] {
            quantized_shift(hd);
        }
    }

    fn quantized_shift(hd: usize) {
        let rope = Rope {
            mode: RopeMode::Normal,
            n_dims: hd,
            freq_base: 10000.0,
            freq_scale: 1.0,
            ext_factor: 0.0,
            attn_factor: 1.0,
            beta_fast: 32.0,
            beta_slow: 1.0,
            n_ctx_orig: 16,
        };
        let mut c = vec![0f32; hd];
        let base = row(9, hd);
        let rotated = |p: usize, c: &mut [f32]| {
            rope.fill_cache(p as f32, None, 1.0, c);
            let mut k = base.clone();
            rope.rotate(&mut k, c);
            k
        };
        for (ty, tol) in [(KvType::Q8_0, 0.06), (KvType::Q4_0, 0.8)] {
            let mut kv = KvCache::with_type(1, 8, hd, ty, hd);
            for p in 0..6 {
                let mut v = vec![0f32; hd];
                v[0] = p as f32;
                kv.store(0, p, &rotated(p, &mut c), &v);
            }
            kv.shift(6, 1, 2, hd, &|_| Some((rope.clone(), None)));
            let l = kv.layer(0);
            let n = l.row_len;
            let values: Vec<f32> = (0..4)
                .map(|p| {
                    let mut v = read(ty, &l.v[p * n..(p + 1) * n], hd);
                    if l.v_rot > 0 {
                        hadamard(&mut v, l.v_rot);
                    }
                    v[0]
                })
                .collect();
            for (got, want) in values.iter().zip([0.0, 3.0, 4.0, 5.0]) {
                assert!(
                    (got - want).abs() < 0.05 * want.max(1.0),
                    "{ty}: {values:?}"
                );
            }
            // Position 3's key now sits at row 1, rotated as position 1, up to
            // two quantizations (before and after the rotation).
            let mut got = read(ty, &l.k[n..2 * n], hd);
            if l.k_rot > 0 {
                hadamard(&mut got, l.k_rot);
            }
            let want = rotated(1, &mut c);
            let err = got
                .iter()
                .zip(&want)
                .fold(0f32, |m, (g, w)| m.max((g - w).abs()));
            assert!(err < tol, "{ty}: error {err}");
            let unshifted = rotated(3, &mut c);
            let far = got
                .iter()
                .zip(&unshifted)
                .fold(0f32, |m, (g, w)| m.max((g - w).abs()));
            assert!(far > 2.0 * tol, "{ty}: the key was not rotated ({far})");
        }
    }
}
