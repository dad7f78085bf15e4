//! GEMM micro-kernels: a tile of [`NR`] weight rows × up to four activation
//! rows per call, for the quantized formats that dominate real models (Q8_0,
//! Q4_0, Q4_K, Q6_K) against their `vec_dot_type` activations, on AVX-512 VNNI
//! and on NEON (`neon.rs`). (F16 and F32 go through [`f16_tinyblas`] on AVX2
//! and AVX-512.)
//!
//! [`crate::matmul`] uses a tile kernel where one exists for the weight format
//! and the CPU level, and the per-pair `vec_dot` of the dispatch table
//! otherwise. A tile reads each weight block once for up to four tokens and each
//! activation block once for four weight rows, which is what turns prefill from
//! N matrix-vector products into a GEMM; for one token (decode) it streams four
//! weight rows at once. Results equal the `vec_dot` ones up to the order of the
//! float additions (integer block sums are exact).
//!
//! Weights repacked at load time into 16-row groups ([`packed`]) replace the
//! tiles for the formats registered there, on AVX-512 VNNI and on AVX2 (which
//! has no tile kernels); its module documentation is the contract for adding
//! a format (Q4_0 and Q8_0 in `avx512_q0.rs` and `avx2_q0.rs`).

use std::sync::OnceLock;

use gguf::TensorType;

use crate::simd::{Cpu, cpu_level};

#[cfg(target_arch = "x86_64")]
mod avx2_gemv;
#[cfg(target_arch = "x86_64")]
mod avx2_iq4;
#[cfg(target_arch = "x86_64")]
mod avx2_kquants;
#[cfg(target_arch = "x86_64")]
mod avx2_q0;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod avx512_kquants;
#[cfg(target_arch = "x86_64")]
mod avx512_q0;
#[cfg(target_arch = "x86_64")]
pub(crate) mod f16_tinyblas;
#[cfg(target_arch = "x86_64")]
mod kquants_rows;
#[cfg(target_arch = "aarch64")]
mod neon;
pub(crate) mod packed;

/// Weight rows per tile.
#[cfg(target_arch = "x86_64")]
pub(crate) const NR: usize = avx512::NR;
/// Weight rows per tile.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) const NR: usize = 4;

/// Activation rows per tile, at most.
pub(crate) const NC: usize = 4;

/// One tile's results: `out[c][r] = dot(weight row r, activation row c)`.
pub(crate) type Tile = [[f32; NR]; NC];

/// The formats with a tile kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Q8_0,
    Q4_0,
    Q4K,
    Q6K,
}

/// A tile kernel for one weight format.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Kernel {
    format: Format,
    /// Values per weight block (and per activation block).
    block: usize,
    /// Bytes per weight block.
    w_bytes: usize,
    /// Bytes per activation block.
    a_bytes: usize,
}

/// Whether this CPU runs the AVX-512 VNNI kernels at the selected level.
fn avx512_vnni() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            cpu_level() == Cpu::Avx512 && std::arch::is_x86_feature_detected!("avx512vnni")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (cpu_level(), Cpu::Scalar);
            false
        }
    })
}

/// Whether the selected level is a NEON one (aarch64).
fn neon() -> bool {
    matches!(cpu_level(), Cpu::Neon | Cpu::NeonDotprod)
}

/// Whether this CPU runs the AVX2 packed kernels at the selected level: AVX2
/// (with FMA and F16C) and no AVX-512 VNNI kernels to run instead.
#[cfg(target_arch = "x86_64")]
fn avx2_packed() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| cpu_level() >= Cpu::Avx2 && !avx512_vnni())
}

/// The tile kernel for weights of format `ty`, if this CPU level has one.
pub(crate) fn kernel(ty: TensorType) -> Option<Kernel> {
    let (format, block, w_bytes, a_bytes) = match ty {
        _ if !avx512_vnni() && !neon() => return None,
        TensorType::Q8_0 => (Format::Q8_0, 32, 34, 34),
        TensorType::Q4_0 => (Format::Q4_0, 32, 18, 34),
        TensorType::Q4_K => (Format::Q4K, 256, 144, 292),
        TensorType::Q6_K => (Format::Q6K, 256, 210, 292),
        _ => return None,
    };
    Some(Kernel {
        format,
        block,
        w_bytes,
        a_bytes,
    })
}

impl Kernel {
    /// Dot products of the [`NR`] weight rows `rows` (format of this kernel,
    /// `n_in` values each) with the 1 to [`NC`] activation rows `acts` (its
    /// `vec_dot_type`) into `out[c][r]`.
    ///
    /// Panics if a row's length is not `n_in` values in its format, or `acts`
    /// holds no row or more than [`NC`]: [`crate::matmul`] checks both first.
    pub(crate) fn tile(&self, n_in: usize, rows: [&[u8]; NR], acts: &[&[u8]], out: &mut Tile) {
        assert!(n_in.is_multiple_of(self.block), "partial block");
        let nb = n_in / self.block;
        assert!(rows.iter().all(|r| r.len() == nb * self.w_bytes));
        assert!(acts.iter().all(|a| a.len() == nb * self.a_bytes));
        let w = rows.map(<[u8]>::as_ptr);
        #[cfg(target_arch = "x86_64")]
        {
            macro_rules! call {
                ($f:ident) => {
                    // SAFETY: every row holds `nb` blocks of the kernel's format
                    // (asserted above) and `kernel` only returns this kernel when
                    // the CPU has AVX-512 F/BW/VL and VNNI.
                    unsafe {
                        match *acts {
                            [a0] => avx512::$f::<1>(nb, w, [a0.as_ptr()], out),
                            [a0, a1] => avx512::$f::<2>(nb, w, [a0.as_ptr(), a1.as_ptr()], out),
                            [a0, a1, a2] => {
                                avx512::$f::<3>(nb, w, [a0.as_ptr(), a1.as_ptr(), a2.as_ptr()], out)
                            }
                            [a0, a1, a2, a3] => avx512::$f::<4>(
                                nb,
                                w,
                                [a0.as_ptr(), a1.as_ptr(), a2.as_ptr(), a3.as_ptr()],
                                out,
                            ),
                            _ => panic!("1 to {NC} activation rows per tile, got {}", acts.len()),
                        }
                    }
                };
            }
            match self.format {
                Format::Q8_0 => call!(q8_0),
                Format::Q4_0 => call!(q4_0),
                Format::Q4K => call!(q4_k),
                Format::Q6K => call!(q6_k),
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            let format = match self.format {
                Format::Q8_0 => neon::Format::Q8_0,
                Format::Q4_0 => neon::Format::Q4_0,
                Format::Q4K => neon::Format::Q4K,
                Format::Q6K => neon::Format::Q6K,
            };
            let dotprod = cpu_level() == Cpu::NeonDotprod;
            // SAFETY: every row holds `nb` blocks of the kernel's format
            // (asserted above); `kernel` returns this kernel only at a NEON
            // level, and the level is NeonDotprod only where the CPU has it.
            unsafe { neon::tile(format, dotprod, nb, w, acts, out) }
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            let _ = (w, out, self.format);
            unreachable!("no tile kernels on this architecture");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traits_for;

    use crate::test_data::{quantized, values};

    #[test]
    #[cfg_attr(
        not(any(hearth_avx512_vnni, target_arch = "aarch64")),
        ignore = "needs AVX-512 VNNI or NEON (tile kernels)"
    )]
    fn tiles_match_the_scalar_dot_products() {
        let n_in = 512;
        for ty in [
            TensorType::Q8_0,
            TensorType::Q4_0,
            TensorType::Q4_K,
            TensorType::Q6_K,
        ] {
            let k = kernel(ty).unwrap_or_else(|| panic!("no tile kernel for {ty}"));
            let scalar = traits_for(Cpu::Scalar, ty).unwrap();
            let vt = scalar.vec_dot_type;
            let rows: Vec<Vec<u8>> = (0..NR)
                .map(|r| quantized(ty, &values(n_in, 10 + r as u64)))
                .collect();
            let acts: Vec<Vec<u8>> = (0..NC)
                .map(|c| quantized(vt, &values(n_in, 100 + c as u64)))
                .collect();
            for n_act in 1..=NC {
                let act_refs: Vec<&[u8]> = acts[..n_act].iter().map(Vec::as_slice).collect();
                let mut out = [[f32::NAN; NR]; NC];
                k.tile(
                    n_in,
                    [&rows[0], &rows[1], &rows[2], &rows[3]],
                    &act_refs,
                    &mut out,
                );
                for (c, act) in act_refs.iter().enumerate() {
                    for (r, row) in rows.iter().enumerate() {
                        let want = (scalar.vec_dot.unwrap())(n_in, row, act);
                        let got = out[c][r];
                        // Same integer sums; only the float additions differ.
                        let tol = 1e-4 * (1.0 + want.abs());
                        assert!(
                            (got - want).abs() <= tol,
                            "{ty} row {r} act {c} of {n_act}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn formats_without_a_tile_kernel_have_none() {
        assert!(kernel(TensorType::Q5_K).is_none());
        assert!(kernel(TensorType::IQ4_XS).is_none());
    }
}
