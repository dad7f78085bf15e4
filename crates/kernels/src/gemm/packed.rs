//! Weights repacked at load time into row-interleaved groups, and the GEMM
//! kernels that read them.
//!
//! A [`PackedMatrix`] is a copy of a weight matrix in which [`GROUP`] (16)
//! consecutive rows are interleaved block by block, so that one 512-bit vector
//! holds the same four k-bytes of 16 rows (one 32-bit lane per row). A kernel
//! then broadcasts four activation bytes and one `vpdpbusd` does 16 rows × 4
//! values for one token; scales of the 16 rows load as one vector. This is
//! llama.cpp's "repack" idea (ggml-cpu/repack.cpp, `block_q4_0x8` and
//! friends), laid out for AVX-512 VNNI. The AVX2 kernels (`avx2_*.rs`) read
//! the same layouts as two 256-bit halves of eight rows each, with
//! `vpmaddubsw` + `vpmaddwd` for the integer dots; IQ4_XS is packed for AVX2
//! only.
//!
//! # Layout
//!
//! Rows are cut into groups of [`GROUP`]: group `g` holds rows
//! `16g .. 16g + 16`; the last group is padded with all-zero rows (every ggml
//! format decodes an all-zero block to zeros, so padded rows give 0 and
//! [`crate::matmul`] drops them). A group is `nb` *group blocks* one after the
//! other (`nb = n_in / block`), each [`PackedFormat::group_block_bytes`]
//! long and holding block `b` of all 16 rows in whatever arrangement the
//! format's kernel wants. Groups follow each other, so group `g` starts at
//! byte `g · nb · group_block_bytes` of a 64-byte aligned buffer.
//!
//! # Adding a format
//!
//! 1. In the format's own file (e.g. `avx512_kquants.rs`, x86_64 only) write
//!    - `fn pack(rows: &[&[u8]; GROUP], nb: usize, dst: &mut [u8])`: writes the
//!      `nb` group blocks of the 16 rows `rows[i]` (each `nb` blocks in the
//!      ggml layout; padding rows are all zeros) into `dst`
//!      (`nb · group_block_bytes` bytes, zero-filled on entry).
//!    - `unsafe fn gemm(nb, w, a, a_row, out)`: see [`PackedGemm`]. It reads
//!      the group at `w` and `out.len()` activation rows (already converted to
//!      the format's `vec_dot_type`: Q8_0 for Q4_0/Q8_0, Q8_K for K-quants) at
//!      `a + c · a_row`, and writes `out[c][r] = dot(row r, activation c)`
//!      for every `c` and all 16 `r`. It picks its own token tile width.
//!    - `pub(super) const FORMAT: PackedFormat = PackedFormat { .. }`.
//!    - `fn unpack(group_block: &[u8], r: usize, dst: &mut [u8])`: see
//!      [`UnpackFn`]; the inverse of `pack` for one row and one block (it may
//!      live in another file, as the K-quants' do in `kquants_rows.rs`).
//! 2. Add it to the level's list below (`AVX512_VNNI` or `AVX2`; the AVX2
//!    kernels may reuse an AVX-512 format's `pack`), and one arm to
//!    [`unpack_fn`].
//! 3. Test: the kernel against the scalar `vec_dot` for token counts that hit
//!    every tile width and a row count that is not a multiple of 16 (see this
//!    file's tests, which run for every format of every level the CPU runs —
//!    `HEARTH_CPU=avx2` for the AVX2 ones alone — and also check that
//!    `unpack` gives back every byte that `pack` was given).
//!
//! Nothing else changes: the model loader asks [`PackedMatrix::new`] for every
//! 2-D matmul weight and keeps the copy where one is returned; `matmul` uses it
//! whenever a [`crate::matmul::Matrix`] carries one. The loader then drops the
//! file's pages of that matrix from the resident set, so single rows (the
//! embedding rows of a token_embd that is also the output head) are read back
//! from the copy with [`PackedMatrix::dequantize_row`], not from the file.
//!
//! Packing is only done where the CPU runs the kernels (AVX-512 VNNI, or
//! AVX2 with FMA and F16C, `HEARTH_CPU=avx2` included) and
//! `HEARTH_NO_REPACK` is unset (an A/B switch for measurements); everywhere
//! else matrices are read in place as before.

use std::fmt;

use gguf::TensorType;

#[cfg(target_arch = "x86_64")]
use super::{avx2_packed, avx512_vnni};
use crate::KernelError;

/// Weight rows per packed group (one per 32-bit lane of a 512-bit vector).
pub const GROUP: usize = 16;

/// Results of one group for a run of tokens: `out[c][r]` for token `c`, row `r`.
pub(crate) type GroupOut = [f32; GROUP];

/// A packed kernel: `out[c][r] = dot(row r of the group at w, activation row c)`
/// for `c < out.len()`, where activation row `c` starts at `a + c * a_row` and
/// holds `nb` blocks of the format's `vec_dot_type`.
///
/// # Safety
/// `w` must be valid for `nb * group_block_bytes` bytes, each activation row
/// for `nb` activation blocks, and the CPU must have the features the kernel
/// was written for (guaranteed by [`format`]).
pub(crate) type PackedGemm =
    unsafe fn(nb: usize, w: *const u8, a: *const u8, a_row: usize, out: &mut [GroupOut]);

/// A format's repacking function (see the module documentation).
pub(crate) type PackFn = fn(rows: &[&[u8]; GROUP], nb: usize, dst: &mut [u8]);

/// A format's row reader: writes row `r`'s block (the format's ggml bytes,
/// `dst.len()` = one block) from the group block `group_block`. The inverse
/// of [`PackFn`] for one row and block.
///
/// Kept apart from [`PackedFormat`] so that a format's kernels and its row
/// reader can live in different files.
pub(crate) type UnpackFn = fn(group_block: &[u8], r: usize, dst: &mut [u8]);

/// One registered packed format.
#[derive(Clone, Copy)]
pub(crate) struct PackedFormat {
    /// The weight format this packs.
    pub ty: TensorType,
    /// Bytes of one group block (16 rows × one block of `ty`, plus whatever
    /// the kernel precomputes).
    pub group_block_bytes: usize,
    /// Writes a group.
    pub pack: PackFn,
    /// Multiplies a group with activation rows.
    pub gemm: PackedGemm,
}

/// The packed formats of the AVX-512 VNNI kernels.
#[cfg(target_arch = "x86_64")]
static AVX512_VNNI: [PackedFormat; 4] = {
    use super::{avx512_kquants, avx512_q0};
    [
        avx512_q0::Q4_0,
        avx512_q0::Q8_0,
        avx512_kquants::Q4_K,
        avx512_kquants::Q6_K,
    ]
};

/// The packed formats of the AVX2 kernels (same layouts as AVX-512's).
#[cfg(target_arch = "x86_64")]
static AVX2: [PackedFormat; 5] = {
    use super::{avx2_iq4, avx2_kquants, avx2_q0};
    [
        avx2_q0::Q4_0,
        avx2_q0::Q8_0,
        avx2_kquants::Q4_K,
        avx2_kquants::Q6_K,
        avx2_iq4::IQ4_XS,
    ]
};

/// The packed formats of the best kernels this CPU runs at the selected level.
fn formats() -> &'static [PackedFormat] {
    #[cfg(target_arch = "x86_64")]
    {
        if avx512_vnni() {
            return &AVX512_VNNI;
        }
        if avx2_packed() {
            return &AVX2;
        }
    }
    &[]
}

/// Every set of packed formats this CPU runs at the selected level, for the
/// tests (the AVX2 kernels also run where the AVX-512 ones are chosen).
#[cfg(test)]
fn runnable_sets() -> Vec<(&'static str, &'static [PackedFormat])> {
    #[cfg(target_arch = "x86_64")]
    {
        let mut sets: Vec<(&'static str, &'static [PackedFormat])> = Vec::new();
        if avx512_vnni() {
            sets.push(("AVX-512 VNNI", &AVX512_VNNI));
        }
        if crate::simd::cpu_level() >= crate::simd::Cpu::Avx2 {
            sets.push(("AVX2", &AVX2));
        }
        sets
    }
    #[cfg(not(target_arch = "x86_64"))]
    Vec::new()
}

/// The packed format for weights of type `ty`, where this CPU runs one.
///
/// Every AVX2 format is packed, Q6_K included: with the one-token kernels
/// (`avx2_gemv.rs`) decode reads the groups faster than `vec_dot` reads the
/// rows (Q6_K: 35 GB/s against 26 on one core of an AMD EPYC, Llama-3.2-1B
/// shapes, `examples/gemv.rs`), and prefill is twice `vec_dot`'s.
pub(crate) fn format(ty: TensorType) -> Option<&'static PackedFormat> {
    formats().iter().find(|f| f.ty == ty)
}

/// The row reader of the packed format for `ty` (every format [`format`]
/// returns has one).
fn unpack_fn(ty: TensorType) -> Option<UnpackFn> {
    #[cfg(target_arch = "x86_64")]
    {
        use super::{avx2_iq4, avx512_q0, kquants_rows};
        match ty {
            TensorType::IQ4_XS => Some(avx2_iq4::unpack_iq4_xs),
            TensorType::Q4_0 => Some(avx512_q0::unpack_q4_0),
            TensorType::Q8_0 => Some(avx512_q0::unpack_q8_0),
            TensorType::Q4_K => Some(kquants_rows::unpack_q4_k),
            TensorType::Q6_K => Some(kquants_rows::unpack_q6_k),
            _ => None,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = ty;
        None
    }
}

/// Bytes of ggml blocks rebuilt at a time by [`PackedMatrix::dequantize_row`]
/// (at least one block of every format).
const ROW_CHUNK: usize = 1024;

/// 64 bytes, 64-byte aligned: the unit of a packed buffer.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// A weight matrix repacked into groups of [`GROUP`] rows (module docs).
pub struct PackedMatrix {
    format: &'static PackedFormat,
    n_in: usize,
    n_out: usize,
    /// Blocks per row.
    nb: usize,
    data: Vec<Line>,
}

impl fmt::Debug for PackedMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackedMatrix")
            .field("ty", &self.format.ty)
            .field("n_in", &self.n_in)
            .field("n_out", &self.n_out)
            .finish_non_exhaustive()
    }
}

impl PackedMatrix {
    /// The packed copy of one expert's matrix (a slice of a 3-D stack that
    /// [`crate::matmul::matmul_expert`] multiplies), like [`PackedMatrix::new`]
    /// but only for formats whose packed kernels follow ggml's `mul_mat_id`
    /// orders: `vec_dot`'s for fewer than 8 rows and the tiled kernels' for
    /// more, as the K-quant kernels do per call. The Q4_0 and Q8_0 kernels
    /// follow tinyBLAS' order for batches, which ggml never uses for experts,
    /// so those experts stay unpacked.
    pub fn new_expert(
        ty: TensorType,
        n_in: usize,
        n_out: usize,
        data: &[u8],
    ) -> Option<PackedMatrix> {
        if !matches!(ty, TensorType::Q4_K | TensorType::Q6_K) {
            return None;
        }
        Self::new(ty, n_in, n_out, data)
    }

    /// The packed copy of `ty` weights `data` (`n_out` rows of `n_in`), or
    /// `None` where this CPU has no packed kernel for `ty` (or packing is
    /// switched off with `HEARTH_NO_REPACK`).
    ///
    /// Panics if `data` is not `n_out` rows of whole blocks: callers pass a
    /// checked [`crate::matmul::Matrix`]'s fields.
    pub fn new(ty: TensorType, n_in: usize, n_out: usize, data: &[u8]) -> Option<PackedMatrix> {
        if std::env::var_os("HEARTH_NO_REPACK").is_some() {
            return None;
        }
        Self::with_format(format(ty)?, n_in, n_out, data)
    }

    fn with_format(
        format: &'static PackedFormat,
        n_in: usize,
        n_out: usize,
        data: &[u8],
    ) -> Option<PackedMatrix> {
        let ty = format.ty;
        if n_out == 0 || !n_in.is_multiple_of(ty.block_size()) {
            return None;
        }
        let nb = n_in / ty.block_size();
        let row = nb * ty.type_size();
        assert_eq!(data.len(), row * n_out, "{ty}: {n_out} rows of {n_in}");
        let group_bytes = nb * format.group_block_bytes;
        let n_groups = n_out.div_ceil(GROUP);
        let mut lines = vec![Line([0; 64]); (n_groups * group_bytes).div_ceil(64)];
        // SAFETY: `Line` is 64 plain bytes; the byte view covers exactly the vector.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast::<u8>(), lines.len() * 64)
        };
        let zero = vec![0u8; row];
        let pack_range = |first: usize, dst: &mut [u8]| {
            for (i, out) in dst.chunks_exact_mut(group_bytes).enumerate() {
                let g = first + i;
                let rows: [&[u8]; GROUP] = std::array::from_fn(|r| {
                    let o = g * GROUP + r;
                    if o < n_out {
                        &data[o * row..(o + 1) * row]
                    } else {
                        &zero
                    }
                });
                (format.pack)(&rows, nb, out);
            }
        };
        // Large matrices are packed on all cores: it is a pass over the file.
        let n_threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_thread = n_groups.div_ceil(n_threads).max(1);
        let used = &mut bytes[..n_groups * group_bytes];
        if n_threads > 1 && n_groups * group_bytes >= 1 << 20 {
            std::thread::scope(|s| {
                for (t, chunk) in used.chunks_mut(per_thread * group_bytes).enumerate() {
                    let pack_range = &pack_range;
                    s.spawn(move || pack_range(t * per_thread, chunk));
                }
            });
        } else {
            pack_range(0, used);
        }
        Some(PackedMatrix {
            format,
            n_in,
            n_out,
            nb,
            data: lines,
        })
    }

    /// The weight format that was packed.
    pub fn ty(&self) -> TensorType {
        self.format.ty
    }

    /// Row length.
    pub fn n_in(&self) -> usize {
        self.n_in
    }

    /// Number of rows (without padding).
    pub fn n_out(&self) -> usize {
        self.n_out
    }

    /// Row `i` dequantized into `out` (`n_in` values): its blocks rebuilt from
    /// the groups in the file's format and dequantized as the file's row
    /// would be, so the values are the same bit for bit. For reading single
    /// rows of a matrix whose file pages were released (embedding lookups in
    /// a token_embd that is also the output head).
    pub fn dequantize_row(&self, i: usize, out: &mut [f32]) -> Result<(), KernelError> {
        let ty = self.format.ty;
        if i >= self.n_out {
            return Err(KernelError::Length {
                ty,
                expected: self.n_out,
                found: i,
            });
        }
        if out.len() != self.n_in {
            return Err(KernelError::Length {
                ty,
                expected: self.n_in,
                found: out.len(),
            });
        }
        let unpack = unpack_fn(ty).expect("every packed format has a row reader");
        let (bs, ts) = (ty.block_size(), ty.type_size());
        let gbb = self.format.group_block_bytes;
        let group = &self.bytes()[i / GROUP * self.nb * gbb..][..self.nb * gbb];
        let mut blocks = [0u8; ROW_CHUNK];
        let per_chunk = ROW_CHUNK / ts;
        for (c, out) in out.chunks_mut(per_chunk * bs).enumerate() {
            let n = out.len() / bs;
            for (j, dst) in blocks[..n * ts].chunks_exact_mut(ts).enumerate() {
                unpack(&group[(c * per_chunk + j) * gbb..][..gbb], i % GROUP, dst);
            }
            crate::dequantize(ty, &blocks[..n * ts], out)?;
        }
        Ok(())
    }

    /// The packed buffer as bytes.
    fn bytes(&self) -> &[u8] {
        // SAFETY: `Line` is 64 plain bytes; the view covers exactly the vector.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr().cast::<u8>(), self.data.len() * 64) }
    }

    /// Number of groups (the last one may be padded).
    pub(crate) fn n_groups(&self) -> usize {
        self.n_out.div_ceil(GROUP)
    }

    /// `out[c][r] = dot(row 16g + r, activation c)` for the activation rows
    /// `acts` (`out.len()` rows of `a_row` bytes in the `vec_dot_type`).
    ///
    /// Panics if `g` is out of range or `acts` is shorter than `out` needs.
    pub(crate) fn gemm_group(&self, g: usize, acts: &[u8], a_row: usize, out: &mut [GroupOut]) {
        assert!(g < self.n_groups());
        let a_ty = crate::traits(self.format.ty)
            .map(|t| t.vec_dot_type)
            .expect("packed formats have a dot product");
        assert_eq!(a_row, self.nb * a_ty.type_size());
        assert!(acts.len() >= out.len() * a_row);
        let group_bytes = self.nb * self.format.group_block_bytes;
        // SAFETY: group g lies within `data` (n_groups groups were packed); the
        // activation rows are in bounds (asserted); `format` only returned this
        // kernel on a CPU that runs it.
        unsafe {
            let w = self.data.as_ptr().cast::<u8>().add(g * group_bytes);
            (self.format.gemm)(self.nb, w, acts.as_ptr(), a_row, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::Cpu;
    use crate::traits_for;

    use crate::test_data::{quantized, values};

    /// Every packed format this CPU runs, with the name of its kernel set;
    /// at least the formats of the selected level.
    fn formats_to_check() -> Vec<(&'static str, &'static PackedFormat)> {
        let all: Vec<_> = runnable_sets()
            .into_iter()
            .flat_map(|(name, set)| set.iter().map(move |f| (name, f)))
            .collect();
        for f in formats() {
            assert!(all.iter().any(|(_, g)| std::ptr::eq(*g, f)));
        }
        assert!(format(TensorType::Q4_K).is_some(), "no packed Q4_K kernel");
        all
    }

    /// `n` pseudo-random bytes.
    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        values(n, seed)
            .iter()
            .map(|v| ((v + 1.0) * 128.0) as u8)
            .collect()
    }

    /// Every registered format: each row's blocks come back byte for byte from
    /// the groups (arbitrary bytes, so every bit of a block must survive the
    /// packing), and `dequantize_row` of the packed copy equals the
    /// dequantization of the file's row bit for bit. 2048 values per row take
    /// several `ROW_CHUNK`s in every format; 37 rows pad the last group.
    #[test]
    #[cfg_attr(not(hearth_avx2), ignore = "needs AVX2 (packed kernels)")]
    fn packed_rows_read_back_as_the_file_rows() {
        let (n_in, n_out) = (2048, 37);
        for (set, fmt) in formats_to_check() {
            let ty = fmt.ty;
            let unpack = unpack_fn(ty).unwrap();
            let (nb, ts) = (n_in / ty.block_size(), ty.type_size());
            let row = nb * ts;

            let w = bytes(n_out * row, 11);
            let p = PackedMatrix::with_format(fmt, n_in, n_out, &w).unwrap();
            let gbb = fmt.group_block_bytes;
            let mut block = vec![0u8; ts];
            for o in 0..n_out {
                for b in 0..nb {
                    let g = &p.bytes()[(o / GROUP * nb + b) * gbb..][..gbb];
                    unpack(g, o % GROUP, &mut block);
                    let want = &w[o * row + b * ts..][..ts];
                    assert_eq!(block, want, "{set} {ty} row {o} block {b}");
                }
            }

            let w = quantized(ty, &values(n_in * n_out, 3));
            let p = PackedMatrix::with_format(fmt, n_in, n_out, &w).unwrap();
            let (mut got, mut want) = (vec![f32::NAN; n_in], vec![0f32; n_in]);
            for o in 0..n_out {
                p.dequantize_row(o, &mut got).unwrap();
                crate::dequantize(ty, &w[o * row..(o + 1) * row], &mut want).unwrap();
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{set} {ty} row {o}");
            }
            assert!(p.dequantize_row(n_out, &mut got).is_err());
            assert!(p.dequantize_row(0, &mut got[1..]).is_err());
        }
    }

    /// Every format of every level this CPU runs, every token count up to 11
    /// (all tile widths and their tails at both levels), 37 rows (a padded
    /// last group), against the scalar dot.
    #[test]
    #[cfg_attr(not(hearth_avx2), ignore = "needs AVX2 (packed kernels)")]
    fn packed_kernels_match_the_scalar_dot_products() {
        let (n_in, n_out) = (512, 37);
        for (set, fmt) in formats_to_check() {
            let ty = fmt.ty;
            let scalar = traits_for(Cpu::Scalar, ty).unwrap();
            let vt = scalar.vec_dot_type;
            let w = quantized(ty, &values(n_in * n_out, 7));
            let row = w.len() / n_out;
            let p = PackedMatrix::with_format(fmt, n_in, n_out, &w).unwrap();
            let a_row = vt.row_size(n_in as u64).unwrap() as usize;
            for n_tok in 1..=11 {
                let acts: Vec<u8> = (0..n_tok)
                    .flat_map(|c| quantized(vt, &values(n_in, 100 + c as u64)))
                    .collect();
                for g in 0..p.n_groups() {
                    let mut out = vec![[f32::NAN; GROUP]; n_tok];
                    p.gemm_group(g, &acts, a_row, &mut out);
                    for (c, outs) in out.iter().enumerate() {
                        for (r, &got) in outs.iter().enumerate() {
                            let o = g * GROUP + r;
                            let act = &acts[c * a_row..(c + 1) * a_row];
                            let want = if o < n_out {
                                (scalar.vec_dot.unwrap())(n_in, &w[o * row..(o + 1) * row], act)
                            } else {
                                0.0
                            };
                            // Same integer sums; only the float additions differ.
                            let tol = 1e-4 * (1.0 + want.abs());
                            assert!(
                                (got - want).abs() <= tol,
                                "{set} {ty} row {o} token {c} of {n_tok}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
