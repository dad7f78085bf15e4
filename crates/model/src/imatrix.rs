//! Activation statistics for importance matrices, as llama-imatrix collects them
//! (llama.cpp tools/imatrix/imatrix.cpp `collect_imatrix`): for every weight
//! matrix of a layer (`blk.*`), the sum over the tokens seen of each input
//! column's squared activation, and how many tokens were seen; per expert for
//! stacked expert matrices (which count only the tokens routed to them).
//!
//! Collection is process-wide and off unless [`start`] is called: the forward
//! pass checks one relaxed atomic per matrix product, nothing more. It is meant
//! for the one-model `hearth imatrix` command, not for a server running several.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Statistics of one weight matrix (or stack of expert matrices).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Entry {
    /// `n_in × n_mat` sums of squared input activations, matrix by matrix.
    pub sums: Vec<f32>,
    /// Tokens seen, per matrix (one for a dense matrix).
    pub counts: Vec<u64>,
}

static COLLECTING: AtomicBool = AtomicBool::new(false);
static STATS: Mutex<BTreeMap<String, Entry>> = Mutex::new(BTreeMap::new());

/// llama-imatrix ignores dense products over fewer rows than this.
const MIN_ROWS: usize = 16;

fn stats() -> MutexGuard<'static, BTreeMap<String, Entry>> {
    // A panic while holding the lock leaves plain numbers behind: keep them.
    STATS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Clears the statistics and starts collecting.
pub fn start() {
    stats().clear();
    COLLECTING.store(true, Ordering::Relaxed);
}

/// Stops collecting and returns what was collected, by weight name.
pub fn finish() -> BTreeMap<String, Entry> {
    COLLECTING.store(false, Ordering::Relaxed);
    std::mem::take(&mut *stats())
}

/// Whether a forward pass should report its products.
#[inline]
pub(crate) fn collecting() -> bool {
    COLLECTING.load(Ordering::Relaxed)
}

fn accumulate(acc: &mut [f32], rows: &[f32]) {
    for row in rows.chunks_exact(acc.len()) {
        for (a, &v) in acc.iter_mut().zip(row) {
            *a += v * v;
        }
    }
}

/// A dense product of weight `name` with `x`, rows of `n_in` activations.
pub(crate) fn record(name: &str, x: &[f32], n_in: usize) {
    let rows = x.len() / n_in.max(1);
    if rows < MIN_ROWS || !name.starts_with("blk.") {
        return;
    }
    let mut stats = stats();
    let e = stats.entry(name.to_owned()).or_default();
    if e.sums.len() != n_in {
        *e = Entry {
            sums: vec![0.0; n_in],
            counts: vec![0],
        };
    }
    accumulate(&mut e.sums, &x[..rows * n_in]);
    e.counts[0] += rows as u64;
}

/// A product of expert `expert` (of `n_expert`) of the stacked weight `name`
/// with the rows `x` routed to it.
pub(crate) fn record_expert(name: &str, expert: usize, n_expert: usize, x: &[f32], n_in: usize) {
    let mut stats = stats();
    let e = stats.entry(name.to_owned()).or_default();
    if e.sums.len() != n_in * n_expert {
        *e = Entry {
            sums: vec![0.0; n_in * n_expert],
            counts: vec![0; n_expert],
        };
    }
    accumulate(&mut e.sums[expert * n_in..(expert + 1) * n_in], x);
    e.counts[expert] += (x.len() / n_in.max(1)) as u64;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_squares_per_column_and_counts_rows() {
        start();
        let x: Vec<f32> = (0..32 * 2).map(|i| (i % 2 + 1) as f32).collect();
        record("blk.0.attn_q.weight", &x, 2);
        record("blk.0.attn_q.weight", &x[..4], 2); // 2 rows: ignored, as llama-imatrix does
        record("output.weight", &x, 2); // not a layer's weight
        record_expert("blk.0.ffn_up_exps.weight", 1, 3, &[1.0, 2.0, 3.0, 4.0], 2);
        let got = finish();
        assert_eq!(got.len(), 2);
        let q = &got["blk.0.attn_q.weight"];
        assert_eq!(
            (q.sums.clone(), q.counts.clone()),
            (vec![32.0, 128.0], vec![32])
        );
        let up = &got["blk.0.ffn_up_exps.weight"];
        assert_eq!(up.sums, vec![0.0, 0.0, 10.0, 20.0, 0.0, 0.0]);
        assert_eq!(up.counts, vec![0, 2, 0]);
        assert!(!collecting());
    }
}
