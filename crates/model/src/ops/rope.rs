//! Rotary position embeddings (RoPE) with linear, llama3 (frequency factors) and
//! YaRN scaling, transliterated from ggml's CPU op (ggml/src/ggml-cpu/ops.cpp:
//! `ggml_rope_cache_init`, `rope_yarn`, `rotate_pairs`; ggml.c:
//! `ggml_rope_yarn_corr_dims`) so that angles round the same way.
//!
//! The angle of pair `i` at position `p` is `p · base^(-2i/n_dims)`, accumulated
//! by repeated multiplication as ggml does, divided by the pair's frequency
//! factor (llama3 scaling ships these as `rope_freqs.weight`), then interpolated
//! by `freq_scale` (linear scaling) and, with YaRN, blended back towards the
//! unscaled angle for the fast-rotating pairs.

use kernels::formats::float::{f16_to_f32, f32_to_f16};

/// Which elements form a rotated pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeMode {
    /// Adjacent elements `(2i, 2i+1)` (ggml `GGML_ROPE_TYPE_NORMAL`; llama).
    Normal,
    /// Elements `(i, i + n_dims/2)` (ggml `GGML_ROPE_TYPE_NEOX`; qwen2, phi3, gemma).
    Neox,
}

/// Everything that fixes the rotation for a given position.
#[derive(Clone, Debug, PartialEq)]
pub struct Rope {
    /// Pairing of elements.
    pub mode: RopeMode,
    /// Leading elements of each head that are rotated (`rope.dimension_count`).
    pub n_dims: usize,
    /// `rope.freq_base`.
    pub freq_base: f32,
    /// `1 / rope.scaling.factor` for linear and YaRN scaling, else 1.
    pub freq_scale: f32,
    /// YaRN extrapolation mix: 1 with YaRN scaling, else 0.
    pub ext_factor: f32,
    /// Magnitude scale applied to cos and sin (llama.cpp's `yarn_attn_factor`).
    pub attn_factor: f32,
    /// YaRN `beta_fast` (32 unless the file says otherwise).
    pub beta_fast: f32,
    /// YaRN `beta_slow` (1 unless the file says otherwise).
    pub beta_slow: f32,
    /// Training context before scaling (`rope.scaling.original_context_length`).
    pub n_ctx_orig: usize,
}

impl Rope {
    /// The YaRN correction range `[low, high]` in pair indices
    /// (`ggml_rope_yarn_corr_dims`).
    fn corr_dims(&self) -> [f32; 2] {
        let n_dims = self.n_dims as f32;
        let corr_dim = |n_rot: f32| {
            n_dims * (self.n_ctx_orig as f32 / (n_rot * 2.0 * std::f32::consts::PI)).ln()
                / (2.0 * self.freq_base.ln())
        };
        let start = corr_dim(self.beta_fast).floor();
        let end = corr_dim(self.beta_slow).ceil();
        [start.max(0.0), end.min(n_dims - 1.0)]
    }

    /// Fills `cache` (`n_dims` floats: cos, sin interleaved per pair) for position
    /// `pos`; `freq_factors` (`n_dims / 2`) divide each pair's base angle.
    /// `sin_sign` -1 gives the inverse rotation.
    pub fn fill_cache(
        &self,
        pos: f32,
        freq_factors: Option<&[f32]>,
        sin_sign: f32,
        cache: &mut [f32],
    ) {
        let theta_scale = self.freq_base.powf(-2.0 / self.n_dims as f32);
        let corr = self.corr_dims();
        let mut theta = pos;
        for i0 in (0..self.n_dims).step_by(2) {
            let ff = freq_factors.map_or(1.0, |f| f[i0 / 2]);
            let (cos, sin) = self.yarn(theta / ff, corr, i0);
            cache[i0] = cos;
            cache[i0 + 1] = sin * sin_sign;
            theta *= theta_scale;
        }
    }

    /// cos and sin of one pair's angle, with YaRN's ramp and magnitude scaling
    /// (`rope_yarn`, after LlamaYaRNScaledRotaryEmbedding.py by J. Quesnelle).
    fn yarn(&self, theta_extrap: f32, corr: [f32; 2], i0: usize) -> (f32, f32) {
        let theta_interp = self.freq_scale * theta_extrap;
        let mut theta = theta_interp;
        let mut mscale = self.attn_factor;
        if self.ext_factor != 0.0 {
            let y = ((i0 / 2) as f32 - corr[0]) / (corr[1] - corr[0]).max(0.001);
            let ramp = 1.0 - y.clamp(0.0, 1.0);
            let mix = ramp * self.ext_factor;
            // GCC contracts ggml's `theta_interp * (1 - ramp_mix) + theta_extrap
            // * ramp_mix` into one FMA, the first product fused (one angle of
            // the tiny mistral3 F16 fixture rounds the other way without).
            theta = theta_interp.mul_add(1.0 - mix, theta_extrap * mix);
            mscale *= 1.0 + 0.1 * (1.0 / self.freq_scale).ln();
        }
        (theta.cos() * mscale, theta.sin() * mscale)
    }

    /// The index pairs rotated by pair `i0 / 2`.
    fn pair(&self, i0: usize) -> (usize, usize) {
        match self.mode {
            RopeMode::Normal => (i0, i0 + 1),
            RopeMode::Neox => (i0 / 2, i0 / 2 + self.n_dims / 2),
        }
    }

    /// Rotates one head (`head_dim >= n_dims` floats) in place with a filled cache.
    pub fn rotate(&self, head: &mut [f32], cache: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        if super::has_fma() {
            // SAFETY: the CPU has FMA.
            return unsafe { self.rotate_fma(head, cache) };
        }
        self.rotate_body(head, cache)
    }

    /// [`Rope::rotate`] with hardware FMA (see [`super::has_fma`]).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "fma")]
    fn rotate_fma(&self, head: &mut [f32], cache: &[f32]) {
        self.rotate_body(head, cache)
    }

    #[inline(always)]
    fn rotate_body(&self, head: &mut [f32], cache: &[f32]) {
        for i0 in (0..self.n_dims).step_by(2) {
            let (a, b) = self.pair(i0);
            let (cos, sin) = (cache[i0], cache[i0 + 1]);
            let (x0, x1) = (head[a], head[b]);
            // ggml-cpu is built with -march=native and GCC contracts
            // `x0*cos - x1*sin` and `x0*sin + x1*cos` (ops.cpp, rotate_pairs)
            // into one FMA each, the first product fused (vfmsub / vfmadd in
            // libggml-cpu.so); the same roundings keep q and k bit-identical.
            head[a] = x0.mul_add(cos, -(x1 * sin));
            head[b] = x0.mul_add(sin, x1 * cos);
        }
    }

    /// Rotates one f16 head in place (ggml's rope on an f16 tensor: each value
    /// widened, rotated in f32, rounded back), as llama.cpp's K-shift does.
    pub fn rotate_f16(&self, head: &mut [u16], cache: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        if super::has_fma() {
            // SAFETY: the CPU has FMA.
            return unsafe { self.rotate_f16_fma(head, cache) };
        }
        self.rotate_f16_body(head, cache)
    }

    /// [`Rope::rotate_f16`] with hardware FMA (see [`super::has_fma`]).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "fma")]
    fn rotate_f16_fma(&self, head: &mut [u16], cache: &[f32]) {
        self.rotate_f16_body(head, cache)
    }

    #[inline(always)]
    fn rotate_f16_body(&self, head: &mut [u16], cache: &[f32]) {
        for i0 in (0..self.n_dims).step_by(2) {
            let (a, b) = self.pair(i0);
            let (cos, sin) = (cache[i0], cache[i0 + 1]);
            let (x0, x1) = (f16_to_f32(head[a]), f16_to_f32(head[b]));
            head[a] = f32_to_f16(x0.mul_add(cos, -(x1 * sin)));
            head[b] = f32_to_f16(x0.mul_add(sin, x1 * cos));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(mode: RopeMode) -> Rope {
        Rope {
            mode,
            n_dims: 8,
            freq_base: 10000.0,
            freq_scale: 1.0,
            ext_factor: 0.0,
            attn_factor: 1.0,
            beta_fast: 32.0,
            beta_slow: 1.0,
            n_ctx_orig: 4096,
        }
    }

    #[test]
    fn position_zero_is_identity_and_norm_is_kept() {
        let rope = plain(RopeMode::Normal);
        let mut cache = [0.0; 8];
        rope.fill_cache(0.0, None, 1.0, &mut cache);
        let x: Vec<f32> = (1..=8).map(|v| v as f32).collect();
        let mut y = x.clone();
        rope.rotate(&mut y, &cache);
        assert_eq!(x, y);
        rope.fill_cache(7.0, None, 1.0, &mut cache);
        rope.rotate(&mut y, &cache);
        let n = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>();
        assert!((n(&x) - n(&y)).abs() < 1e-3);
        assert_ne!(x, y);
    }

    #[test]
    fn first_pair_turns_by_the_position_in_radians() {
        for mode in [RopeMode::Normal, RopeMode::Neox] {
            let rope = plain(mode);
            let mut cache = [0.0; 8];
            rope.fill_cache(1.0, None, 1.0, &mut cache);
            let mut x = [0.0f32; 8];
            let (a, b) = rope.pair(0);
            x[a] = 1.0;
            rope.rotate(&mut x, &cache);
            assert!(
                (x[a] - 1f32.cos()).abs() < 1e-6 && (x[b] - 1f32.sin()).abs() < 1e-6,
                "{mode:?}"
            );
        }
    }

    #[test]
    fn inverse_rotation_undoes_and_freq_factors_slow_down() {
        let rope = plain(RopeMode::Neox);
        let mut fwd = [0.0; 8];
        let mut inv = [0.0; 8];
        rope.fill_cache(5.0, None, 1.0, &mut fwd);
        rope.fill_cache(5.0, None, -1.0, &mut inv);
        let x: Vec<f32> = (0..8).map(|v| v as f32 - 3.5).collect();
        let mut y = x.clone();
        rope.rotate(&mut y, &fwd);
        rope.rotate(&mut y, &inv);
        assert!(x.iter().zip(&y).all(|(a, b)| (a - b).abs() < 1e-5));

        let ff = [2.0f32; 4];
        let mut slow = [0.0; 8];
        rope.fill_cache(5.0, Some(&ff), 1.0, &mut slow);
        let mut half = [0.0; 8];
        rope.fill_cache(2.5, None, 1.0, &mut half);
        assert!(slow.iter().zip(&half).all(|(a, b)| (a - b).abs() < 1e-6));
    }

    #[test]
    fn yarn_keeps_fast_pairs_and_interpolates_slow_ones() {
        let mut rope = plain(RopeMode::Normal);
        rope.n_dims = 64;
        rope.freq_scale = 0.25;
        rope.ext_factor = 1.0;
        let mut yarn = [0.0; 64];
        rope.fill_cache(100.0, None, 1.0, &mut yarn);
        let mscale = 1.0 + 0.1 * 4f32.ln();
        // Pair 0 rotates fastest: fully extrapolated (unscaled angle 100 rad).
        assert!((yarn[0] - 100f32.cos() * mscale).abs() < 1e-4);
        // The last pair is fully interpolated: angle scaled by 1/4.
        let theta = 100.0 * 10000f32.powf(-62.0 / 64.0) * 0.25;
        assert!((yarn[62] - theta.cos() * mscale).abs() < 1e-4);
    }
}
