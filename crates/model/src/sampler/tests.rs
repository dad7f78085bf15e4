//! Stage tests with hand-computed expectations, and chain tests.

use super::stages::{self, Penalties};
use super::*;

/// Candidates whose softmax is exactly `probs` (logits are their logarithms).
fn from_probs(probs: &[f32]) -> Candidates {
    let logits: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
    let mut c = Candidates::default();
    c.fill(&logits);
    c
}

fn ids(c: &Candidates) -> Vec<u32> {
    c.as_slice().iter().map(|x| x.id).collect()
}

fn logits(c: &Candidates) -> Vec<f32> {
    c.as_slice().iter().map(|x| x.logit).collect()
}

/// Probabilities 1/2, 1/4, 1/8, 1/8 for ids 0..4.
const HALVES: [f32; 4] = [0.5, 0.25, 0.125, 0.125];

#[test]
fn top_k_keeps_the_k_best_sorted() {
    let mut c = Candidates::default();
    c.fill(&[1.0, 5.0, 3.0, 4.0, 2.0]);
    stages::top_k(&mut c, 2);
    assert_eq!(ids(&c), [1, 3]);
    assert!(c.is_sorted());

    let mut all = Candidates::default();
    all.fill(&[1.0, 5.0, 3.0]);
    stages::top_k(&mut all, 0);
    assert_eq!(ids(&all), [0, 1, 2], "k = 0 keeps everything, unsorted");
}

#[test]
fn top_p_cuts_at_the_cumulative_probability() {
    // Cumulative: 0.5, 0.75, 0.875, 1.0.
    for (p, kept) in [(0.5, 1), (0.7, 2), (0.8, 3), (0.9, 4)] {
        let mut c = from_probs(&[0.125, 0.5, 0.125, 0.25]);
        stages::top_p(&mut c, p, 0);
        assert_eq!(c.len(), kept, "top_p {p}");
        assert_eq!(ids(&c)[..2.min(kept)], [1, 3][..2.min(kept)]);
    }
    // min_keep wins over the cut.
    let mut c = from_probs(&HALVES);
    stages::top_p(&mut c, 0.5, 3);
    assert_eq!(ids(&c), [0, 1, 2]);
    // p >= 1 is off.
    let mut c = from_probs(&HALVES);
    stages::top_p(&mut c, 1.0, 0);
    assert_eq!(c.len(), 4);
}

#[test]
fn top_p_on_a_large_vocabulary_keeps_the_same_set_as_a_full_sort() {
    // 5000 tokens: the adaptive path sorts 256 first. Both a cut inside the first
    // 256 and one beyond them must equal the cut over a fully sorted array.
    let vocab: Vec<f32> = (0..5000u32)
        .map(|i| ((i.wrapping_mul(2_654_435_761) % 1000) as f32) / 100.0)
        .collect();
    for p in [0.3, 0.99] {
        let mut fast = Candidates::default();
        fast.fill(&vocab);
        stages::top_p(&mut fast, p, 0);

        let mut full = Candidates::default();
        full.fill(&vocab);
        full.softmax(true);
        let mut cum = 0.0;
        let n = full
            .as_slice()
            .iter()
            .position(|x| {
                cum += x.p;
                cum >= p
            })
            .unwrap()
            + 1;
        let mut want: Vec<f32> = full.as_slice()[..n].iter().map(|x| x.logit).collect();
        let mut got = logits(&fast);
        want.sort_by(f32::total_cmp);
        got.sort_by(f32::total_cmp);
        assert_eq!(got, want, "top_p {p}");
    }
}

#[test]
fn min_p_cuts_relative_to_the_best_token() {
    // min_p 0.3 of the best (0.5) is 0.15: ids 0 (0.5) and 1 (0.25) remain, in
    // their original order since the array was not sorted.
    let mut c = from_probs(&[0.25, 0.125, 0.5, 0.125]);
    stages::min_p(&mut c, 0.3, 0);
    assert_eq!(ids(&c), [0, 2]);
    // Exactly at the threshold (0.25 = 0.5 * 0.5) is kept.
    let mut c = from_probs(&HALVES);
    stages::min_p(&mut c, 0.5, 0);
    assert_eq!(ids(&c), [0, 1]);
    // When too few pass, the sorted path keeps min_keep.
    let mut c = from_probs(&[0.125, 0.5, 0.25, 0.125]);
    stages::min_p(&mut c, 0.9, 3);
    assert_eq!(ids(&c)[..2], [1, 2]);
    assert_eq!(c.len(), 3);
}

#[test]
fn typical_keeps_tokens_closest_to_the_entropy() {
    // Entropy H = 1.75 ln2; surprisals ln2, 2 ln2, 3 ln2, 3 ln2, so the distances
    // are 0.75, 0.25, 1.25, 1.25 (× ln2): id 1 first, then id 0, then 2 and 3.
    let mut bufs = (Vec::new(), Vec::new(), Vec::new());
    let mut run = |p: f32, min_keep: usize| {
        let mut c = from_probs(&HALVES);
        stages::typical(&mut c, p, min_keep, &mut bufs.0, &mut bufs.1, &mut bufs.2);
        ids(&c)
    };
    assert_eq!(run(0.2, 0), [1]);
    assert_eq!(run(0.5, 0), [1, 0], "0.25 is not > 0.5; 0.75 is");
    assert_eq!(run(0.2, 2), [1, 0], "min_keep");
    assert_eq!(run(1.0, 0), [0, 1, 2, 3], "p >= 1 is off");
}

#[test]
fn penalties_follow_llama_cpp_arithmetic() {
    let mut pen = Penalties::new(3, 2.0, 0.5, 0.25);
    for t in [0, 1, 0] {
        pen.accept(t);
    }
    let mut c = Candidates::default();
    c.fill(&[2.0, -2.0, 1.0, 0.5]);
    pen.apply(&mut c);
    // id 0 seen twice: 2 / 2 - (2 * 0.5 + 0.25) = -0.25.
    // id 1 seen once, negative: -2 * 2 - (0.5 + 0.25) = -4.75.
    assert_eq!(logits(&c), [-0.25, -4.75, 1.0, 0.5]);

    // The window holds the last 3 tokens: after accepting 2 and 3, only one 0
    // and no 1 remain.
    pen.accept(2);
    pen.accept(3);
    let mut c = Candidates::default();
    c.fill(&[2.0, -2.0, 1.0, 0.5]);
    pen.apply(&mut c);
    assert_eq!(
        logits(&c),
        [2.0 / 2.0 - 0.75, -2.0, 1.0 / 2.0 - 0.75, 0.5 / 2.0 - 0.75]
    );

    pen.reset();
    let mut c = Candidates::default();
    c.fill(&[2.0, -2.0]);
    pen.apply(&mut c);
    assert_eq!(logits(&c), [2.0, -2.0]);
}

#[test]
fn disabled_penalties_change_nothing() {
    let mut pen = Penalties::new(0, 2.0, 1.0, 1.0);
    pen.accept(0);
    let mut c = Candidates::default();
    c.fill(&[2.0]);
    pen.apply(&mut c);
    assert_eq!(logits(&c), [2.0]);
}

#[test]
fn logit_bias_adds_and_finds_moved_tokens() {
    let mut c = Candidates::default();
    c.fill(&[1.0, 2.0, 3.0]);
    stages::logit_bias(&mut c, &[(0, 10.0), (2, -1.0), (99, 5.0)]);
    assert_eq!(logits(&c), [11.0, 2.0, 2.0]);
    // After sorting, ids no longer match positions; the bias still lands.
    stages::top_k(&mut c, 3);
    stages::logit_bias(&mut c, &[(1, 0.5)]);
    assert_eq!(ids(&c)[1], 1);
    assert_eq!(c.as_slice()[1].logit, 2.5);
}

#[test]
fn temperature_divides_logits() {
    let mut c = Candidates::default();
    c.fill(&[2.0, -4.0]);
    stages::temperature(&mut c, 2.0);
    assert_eq!(logits(&c), [1.0, -2.0]);
}

fn flat_params(seed: u64) -> SamplerParams {
    SamplerParams {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        repeat_penalty: 1.0,
        seed: Some(seed),
        ..SamplerParams::default()
    }
}

#[test]
fn same_seed_gives_the_same_tokens() {
    let logits = [0.0f32; 50];
    let draw = |seed| {
        let mut s = Sampler::new(flat_params(seed));
        (0..100)
            .map(|_| s.sample(&logits).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(7), draw(7));
    assert_ne!(draw(7), draw(8));
}

#[test]
fn draws_follow_the_softmax() {
    let logits = [0.5f32.ln(), 0.25f32.ln(), 0.25f32.ln()];
    let mut s = Sampler::new(flat_params(1));
    let mut counts = [0usize; 3];
    let n = 20_000;
    for _ in 0..n {
        counts[s.sample(&logits).unwrap() as usize] += 1;
    }
    for (count, want) in counts.iter().zip([0.5, 0.25, 0.25]) {
        let freq = *count as f64 / n as f64;
        assert!((freq - want).abs() < 0.02, "{counts:?}");
    }
    // After a draw, the kept candidates carry normalised probabilities.
    let total: f32 = s.candidates().as_slice().iter().map(|c| c.p).sum();
    assert!((total - 1.0).abs() < 1e-5);
}

#[test]
fn mirostat_v2_keeps_tokens_below_mu_and_steers_mu() {
    // Surprises 1, 2, 3, 3 bits; mu 2.5 keeps the first two.
    let mut c = from_probs(&HALVES);
    let mut mu = 2.5;
    let mut rng = Rng::from_seed(3);
    let index = stages::mirostat_v2(&mut c, 2.0, 0.5, &mut mu, &mut rng).unwrap();
    assert_eq!(ids(&c), [0, 1]);
    // Renormalised over the kept pair: 2/3 and 1/3.
    let p = c.as_slice()[index].p;
    assert!((p - [2.0 / 3.0, 1.0 / 3.0][index]).abs() < 1e-6);
    // mu moves by eta times (observed surprise - tau).
    let want = 2.5 - 0.5 * (-p.log2() - 2.0);
    assert!((mu - want).abs() < 1e-6, "{mu} {want}");
    // A mu below every surprise still keeps the most likely token.
    let mut c = from_probs(&HALVES);
    let mut mu = 0.1;
    stages::mirostat_v2(&mut c, 2.0, 0.5, &mut mu, &mut rng).unwrap();
    assert_eq!(ids(&c), [0]);
}

#[test]
fn mirostat_v1_estimates_the_zipf_exponent() {
    // p_i proportional to 1 / i^1.2 over 1000 tokens: the estimate of s is
    // exact, so k follows the closed form for mu.
    let s = 1.2f32;
    let weights: Vec<f32> = (1..=1000).map(|i| (i as f32).powf(-s)).collect();
    let total: f32 = weights.iter().sum();
    let probs: Vec<f32> = weights.iter().map(|w| w / total).collect();
    let mut c = from_probs(&probs);
    let mut mu = 6.0;
    let mut rng = Rng::from_seed(5);
    stages::mirostat_v1(&mut c, 1000, 3.0, 0.1, 100, &mut mu, &mut rng).unwrap();
    let e = s - 1.0;
    let k = ((e * 2f32.powf(6.0)) / (1.0 - 1000f32.powf(-e))).powf(1.0 / s) as usize;
    assert!(
        (c.len() as isize - k as isize).abs() <= 1,
        "{} vs {k}",
        c.len()
    );
}

#[test]
fn mirostat_holds_the_average_surprise_near_tau() {
    // On a long-tailed distribution, the drawn tokens' mean surprise (under
    // the truncated distribution they are drawn from, which is what Mirostat
    // measures) settles near the target: the property Mirostat exists for.
    let weights: Vec<f32> = (1..=2000).map(|i| (i as f32).powf(-1.1)).collect();
    let logits: Vec<f32> = weights.iter().map(|w| w.ln()).collect();
    for mirostat in [1u8, 2] {
        for tau in [3.0f32, 5.0] {
            let mut sampler = Sampler::new(SamplerParams {
                mirostat,
                mirostat_tau: tau,
                mirostat_eta: 0.1,
                seed: Some(11),
                ..flat_params(11)
            });
            let n = 3000;
            let mut surprise = 0.0f64;
            for step in 0..n + 200 {
                let id = sampler.sample(&logits).unwrap();
                let kept = sampler.candidates().as_slice();
                let p = kept.iter().find(|c| c.id == id).unwrap().p;
                if step >= 200 {
                    surprise += f64::from(-p.log2());
                }
            }
            let mean = surprise / n as f64;
            assert!(
                (mean - f64::from(tau)).abs() < 0.6,
                "mirostat {mirostat}, tau {tau}: mean surprise {mean}"
            );
        }
    }
}

#[test]
fn chain_applies_top_k_before_drawing() {
    // With top_k 1, only the best token can come out, at any temperature.
    let params = SamplerParams {
        temperature: 5.0,
        top_k: 1,
        seed: Some(3),
        ..SamplerParams::default()
    };
    let mut s = Sampler::new(params);
    for _ in 0..50 {
        assert_eq!(s.sample(&[1.0, 1.5, 1.4]).unwrap(), 1);
    }
}

#[test]
fn zero_temperature_is_greedy_after_penalties() {
    let params = SamplerParams {
        temperature: 0.0,
        repeat_penalty: 2.0,
        seed: Some(0),
        ..SamplerParams::default()
    };
    let mut s = Sampler::new(params);
    assert_eq!(s.sample(&[1.0, 3.0, 2.0]).unwrap(), 1);
    s.accept(1);
    // 3 / 2 = 1.5 < 2: the penalised favourite loses.
    assert_eq!(s.sample(&[1.0, 3.0, 2.0]).unwrap(), 2);
    s.reset();
    assert_eq!(s.sample(&[1.0, 3.0, 2.0]).unwrap(), 1);
}

#[test]
fn banned_and_empty_logits_are_errors() {
    let mut s = Sampler::new(SamplerParams {
        logit_bias: vec![(0, f32::NEG_INFINITY), (1, f32::NEG_INFINITY)],
        seed: Some(0),
        ..SamplerParams::default()
    });
    assert_eq!(s.sample(&[]), Err(SamplerError::NoLogits));
    assert_eq!(s.sample(&[1.0, 2.0]), Err(SamplerError::NoFiniteLogit));
    assert_eq!(
        s.sample(&[1.0, 2.0, -50.0]),
        Ok(2),
        "only the unbanned token"
    );
    let mut greedy = Sampler::new(SamplerParams {
        temperature: 0.0,
        ..s.params().clone()
    });
    assert_eq!(greedy.sample(&[1.0, 2.0]), Err(SamplerError::NoFiniteLogit));
}

/// llama.cpp's own expectations (tests/test-sampling.cpp): candidates whose
/// logits are `ln(probs)`, one stage, then (except for typical) a draw, whose
/// softmax leaves the probabilities compared here within 1e-5, position by
/// position.
mod llama_cpp_cases {
    use super::*;

    const PROBS: [f32; 4] = [0.1, 0.2, 0.3, 0.4];

    fn check(c: &Candidates, want: &[f32]) {
        let got: Vec<f32> = c.as_slice().iter().map(|x| x.p).collect();
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }

    fn after(probs: &[f32], stage: impl FnOnce(&mut Candidates)) -> Candidates {
        let mut c = from_probs(probs);
        stage(&mut c);
        stages::dist(&mut c, &mut Rng::from_seed(0)).unwrap();
        c
    }

    #[test]
    fn temperature_one() {
        check(&after(&PROBS, |c| stages::temperature(c, 1.0)), &PROBS);
    }

    #[test]
    fn top_k() {
        let cases: [(usize, &[f32]); 4] = [
            (1, &[1.0]),
            (3, &[0.44444, 0.33333, 0.22222]),
            (4, &[0.4, 0.3, 0.2, 0.1]),
            (0, &[0.1, 0.2, 0.3, 0.4]),
        ];
        for (k, want) in cases {
            check(&after(&PROBS, |c| stages::top_k(c, k)), want);
        }
    }

    #[test]
    fn top_p() {
        let cases: [(f32, &[f32]); 4] = [
            (0.0, &[1.0]),
            (0.7, &[0.571429, 0.428571]),
            (0.8, &[0.44444, 0.33333, 0.22222]),
            (1.0, &[0.1, 0.2, 0.3, 0.4]),
        ];
        for (p, want) in cases {
            check(&after(&PROBS, |c| stages::top_p(c, p, 0)), want);
        }
    }

    #[test]
    fn min_p() {
        let all = [0.1, 0.2, 0.3, 0.4];
        let top3 = [0.2 / 0.9, 0.3 / 0.9, 0.4 / 0.9];
        let top2 = [0.3 / 0.7, 0.4 / 0.7];
        let cases: [(f32, &[f32]); 9] = [
            (0.00, &all),
            (0.24, &all),
            (0.26, &top3),
            (0.49, &top3),
            (0.51, &top2),
            (0.74, &top2),
            (0.76, &[1.0]),
            (1.00, &[1.0]),
            (1.05, &[1.0]),
        ];
        for (p, want) in cases {
            check(&after(&PROBS, |c| stages::min_p(c, p, 0)), want);
        }
    }

    #[test]
    fn typical() {
        let cases: [(&[f32], &[f32]); 2] = [
            (&[0.97, 0.01, 0.01, 0.01], &[0.97]),
            (&[0.4, 0.2, 0.2, 0.2], &[0.2, 0.2, 0.2]),
        ];
        for (probs, want) in cases {
            let mut c = from_probs(probs);
            let mut bufs = (Vec::new(), Vec::new(), Vec::new());
            stages::typical(&mut c, 0.5, 0, &mut bufs.0, &mut bufs.1, &mut bufs.2);
            check(&c, want);
        }
    }

    #[test]
    fn penalties() {
        let flat = [0.2f32; 5];
        type Case<'a> = (&'a [u32], &'a [f32], f32, f32, f32);
        let cases: [Case; 6] = [
            (&[0], &[0.0, 0.25, 0.25, 0.25, 0.25], 50.0, 0.0, 0.0),
            (&[0, 1, 2], &[0.0, 0.0, 0.0, 0.5, 0.5], 50.0, 0.0, 0.0),
            (&[0, 1, 2, 0, 0], &[0.0, 0.0, 0.0, 0.5, 0.5], 50.0, 0.0, 0.0),
            (
                &[0],
                &[0.000011, 0.249997, 0.249997, 0.249997, 0.249997],
                1.0,
                5.0,
                5.0,
            ),
            (
                &[0, 1, 2],
                &[0.000023, 0.000023, 0.000023, 0.499966, 0.499966],
                1.0,
                5.0,
                5.0,
            ),
            (
                &[0, 1, 2, 0, 0],
                &[0.0, 0.000023, 0.000023, 0.499977, 0.499977],
                1.0,
                5.0,
                5.0,
            ),
        ];
        for (last, want, repeat, frequency, presence) in cases {
            // The window is exactly the accepted tokens, as in the reference.
            let mut pen = Penalties::new(last.len(), repeat, frequency, presence);
            for &t in last {
                pen.accept(t);
            }
            check(&after(&flat, |c| pen.apply(c)), want);
        }
    }
}

#[test]
fn a_mask_limits_every_draw_to_the_allowed_tokens() {
    let logits = [5.0, 1.0, 4.0, 0.5, 3.0];
    // Tokens 1 and 3 only.
    let allowed = [0b01010u32];
    let mut greedy = Sampler::new(SamplerParams {
        temperature: 0.0,
        ..SamplerParams::default()
    });
    assert_eq!(greedy.sample_allowed(&logits, &allowed), Ok(1));
    let mut random = Sampler::new(SamplerParams {
        temperature: 1.5,
        top_k: 0,
        top_p: 1.0,
        seed: Some(7),
        ..SamplerParams::default()
    });
    let mut seen = [0usize; 5];
    for _ in 0..200 {
        seen[random.sample_allowed(&logits, &allowed).unwrap() as usize] += 1;
    }
    assert_eq!(seen[0] + seen[2] + seen[4], 0, "{seen:?}");
    assert!(seen[1] > 0 && seen[3] > 0, "{seen:?}");
    assert_eq!(
        random.sample_allowed(&logits, &[0, 1]),
        Err(SamplerError::NothingAllowed),
        "a mask past the vocabulary allows nothing"
    );
}
