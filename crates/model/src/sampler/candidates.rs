//! The candidates array every sampler stage works on: llama.cpp's
//! `llama_token_data_array` (llama.h) — token id, logit, probability, and whether
//! the array is sorted by logit, highest first.

use std::cmp::Ordering;

/// One token still in the running.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Token id.
    pub id: u32,
    /// The (possibly adjusted) logit.
    pub logit: f32,
    /// Probability; meaningful only after a stage that computes a softmax.
    pub p: f32,
}

/// The candidates for one sampling step; the buffer is reused from step to step.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    pub(super) data: Vec<Candidate>,
    /// Whether `data` is ordered by logit, highest first.
    pub(super) sorted: bool,
}

/// Highest logit first; `total_cmp` so that a NaN cannot break the sort.
pub(super) fn by_logit_desc(a: &Candidate, b: &Candidate) -> Ordering {
    b.logit.total_cmp(&a.logit)
}

impl Candidates {
    /// Refills the array with one candidate per vocabulary entry, `id == index`.
    pub fn fill(&mut self, logits: &[f32]) {
        self.data.clear();
        self.data
            .extend(logits.iter().enumerate().map(|(i, &logit)| Candidate {
                id: i as u32,
                logit,
                p: 0.0,
            }));
        self.sorted = false;
    }

    /// Refills the array with the tokens whose bit is set in `allowed` (bit
    /// `i % 32` of word `i / 32` for token `i`, as a grammar's token mask is
    /// laid out), in id order; bits past the end of `logits` are ignored.
    pub fn fill_allowed(&mut self, logits: &[f32], allowed: &[u32]) {
        self.data.clear();
        for (w, &word) in allowed.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let id = w * 32 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if let Some(&logit) = logits.get(id) {
                    self.data.push(Candidate {
                        id: id as u32,
                        logit,
                        p: 0.0,
                    });
                }
            }
        }
        self.sorted = false;
    }

    /// The remaining candidates.
    pub fn as_slice(&self) -> &[Candidate] {
        &self.data
    }

    /// Number of remaining candidates.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether no candidate remains.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Whether the candidates are ordered by logit, highest first.
    pub fn is_sorted(&self) -> bool {
        self.sorted
    }

    /// Sorts the `k` best candidates to the front and drops the rest
    /// (`llama_token_data_array_partial_sort_inplace`).
    pub(super) fn keep_top(&mut self, k: usize) {
        let k = k.min(self.data.len());
        if k == 0 {
            self.data.clear();
        } else if !self.sorted {
            if k < self.data.len() {
                self.data.select_nth_unstable_by(k - 1, by_logit_desc);
            }
            self.data.truncate(k);
            self.data.sort_unstable_by(by_logit_desc);
        } else {
            self.data.truncate(k);
        }
        self.sorted = true;
    }

    /// Fills `p` with the softmax of the logits, sorting first when `sort` is set
    /// (`llama_sampler_softmax_impl`).
    pub(super) fn softmax(&mut self, sort: bool) {
        if self.data.is_empty() {
            return;
        }
        if sort && !self.sorted {
            self.data.sort_unstable_by(by_logit_desc);
            self.sorted = true;
        }
        let max_logit = if self.sorted {
            self.data[0].logit
        } else {
            self.data
                .iter()
                .map(|c| c.logit)
                .fold(f32::NEG_INFINITY, f32::max)
        };
        let mut sum = 0.0f32;
        for c in &mut self.data {
            c.p = (c.logit - max_logit).exp();
            sum += c.p;
        }
        for c in &mut self.data {
            c.p /= sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_top_sorts_the_best_k() {
        let mut c = Candidates::default();
        c.fill(&[0.5, 3.0, -1.0, 2.0, 1.0]);
        c.keep_top(3);
        let ids: Vec<u32> = c.as_slice().iter().map(|c| c.id).collect();
        assert_eq!(ids, [1, 3, 4]);
        assert!(c.is_sorted());
        c.keep_top(10);
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn fill_allowed_keeps_only_set_bits_within_the_logits() {
        let mut c = Candidates::default();
        let logits: Vec<f32> = (0..40).map(|i| i as f32).collect();
        // Tokens 1, 3, 33 and 50 (past the logits).
        let allowed = [0b1010u32, 0b10, 1 << 18];
        c.fill_allowed(&logits, &allowed);
        let ids: Vec<u32> = c.as_slice().iter().map(|c| c.id).collect();
        assert_eq!(ids, [1, 3, 33]);
        assert_eq!(c.as_slice()[2].logit, 33.0);
    }

    #[test]
    fn softmax_matches_hand_computation() {
        let mut c = Candidates::default();
        c.fill(&[0.0, 2f32.ln(), 0.0]);
        c.softmax(true);
        let got: Vec<(u32, f32)> = c.as_slice().iter().map(|c| (c.id, c.p)).collect();
        assert_eq!(got[0].0, 1);
        assert!((got[0].1 - 0.5).abs() < 1e-6);
        assert!((got[1].1 - 0.25).abs() < 1e-6 && (got[2].1 - 0.25).abs() < 1e-6);
    }
}
