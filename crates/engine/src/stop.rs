//! Stop sequences matched on the decoded text, across token boundaries.
//!
//! Text is released only once it can no longer be the start of a stop string:
//! the longest suffix of the pending text that is a prefix of some stop string is
//! held back. When a stop string completes, the text before it is released and
//! the stop string and everything after it are dropped (Ollama's and
//! llama-server's behaviour).

/// Incremental stop-string matcher. Its buffers are reused across pushes.
#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Decoded text not yet released.
    pending: String,
    /// What the last push released.
    out: String,
}

/// What a push released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released<'a> {
    /// Text that is now safe to emit (possibly empty).
    pub text: &'a str,
    /// Whether a stop string completed; generation should end.
    pub stopped: bool,
}

impl StopMatcher {
    /// A matcher for `stops`; empty strings are ignored.
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            pending: String::new(),
            out: String::new(),
        }
    }

    /// Adds decoded text and returns what may be emitted now.
    pub fn push(&mut self, text: &str) -> Released<'_> {
        self.out.clear();
        self.pending.push_str(text);
        if self.stops.is_empty() {
            std::mem::swap(&mut self.out, &mut self.pending);
            return Released {
                text: &self.out,
                stopped: false,
            };
        }
        // The earliest completed stop string wins.
        let hit = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min();
        if let Some(at) = hit {
            self.out.push_str(&self.pending[..at]);
            self.pending.clear();
            return Released {
                text: &self.out,
                stopped: true,
            };
        }
        let keep_from = self.held_back_start();
        self.out.push_str(&self.pending[..keep_from]);
        self.pending.drain(..keep_from);
        Released {
            text: &self.out,
            stopped: false,
        }
    }

    /// Releases whatever is held back (the stream ended without a stop).
    pub fn flush(&mut self) -> &str {
        self.out.clear();
        std::mem::swap(&mut self.out, &mut self.pending);
        &self.out
    }

    /// Forgets held-back text (a new generation starts).
    pub fn clear(&mut self) {
        self.pending.clear();
    }

    /// Byte offset where the longest suffix of `pending` that begins some stop
    /// string starts (`pending.len()` when none does).
    fn held_back_start(&self) -> usize {
        let p = &self.pending;
        let longest = self.stops.iter().map(String::len).max().unwrap_or(0);
        let first = p.len().saturating_sub(longest.saturating_sub(1));
        p.char_indices()
            .map(|(i, _)| i)
            .skip_while(|&i| i < first)
            .find(|&i| self.stops.iter().any(|s| s.starts_with(&p[i..])))
            .unwrap_or(p.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes `pieces`, returning the released text and whether a stop hit.
    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut m = StopMatcher::new(&stops);
        let mut text = String::new();
        for piece in pieces {
            let r = m.push(piece);
            text.push_str(r.text);
            if r.stopped {
                return (text, true);
            }
        }
        text.push_str(m.flush());
        (text, false)
    }

    #[test]
    fn stop_split_over_three_pieces_is_not_emitted() {
        assert_eq!(
            run(&["</end>"], &["Hello </", "en", "d> trailing"]),
            ("Hello ".into(), true)
        );
    }

    #[test]
    fn partial_match_then_divergence_releases_the_text() {
        assert_eq!(
            run(&["STOP"], &["a ST", "O", "RM b"]),
            ("a STORM b".into(), false)
        );
        // Nothing of a possible stop is released early.
        let mut m = StopMatcher::new(&["STOP".into()]);
        assert_eq!(m.push("x ST").text, "x ");
        assert_eq!(m.push("O").text, "");
        assert_eq!(m.push("w").text, "STOw");
    }

    #[test]
    fn overlapping_prefix_keeps_only_the_live_suffix() {
        // "aab" against "aaab": after "aaa" only "aa" can still start a stop.
        let mut m = StopMatcher::new(&["aab".into()]);
        assert_eq!(m.push("a").text, "");
        assert_eq!(m.push("a").text, "");
        assert_eq!(m.push("a").text, "a");
        let r = m.push("b");
        assert_eq!((r.text, r.stopped), ("", true));
    }

    #[test]
    fn earliest_of_several_stops_wins_within_one_piece() {
        assert_eq!(
            run(&["World", "lo"], &["Hello World"]),
            ("Hel".into(), true)
        );
    }

    #[test]
    fn multibyte_text_is_held_on_char_boundaries() {
        assert_eq!(run(&["éé"], &["café", "é!"]), ("caf".into(), true));
        assert_eq!(run(&["éx"], &["café", "é!"]), ("caféé!".into(), false));
    }

    #[test]
    fn no_stops_releases_everything() {
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
        assert_eq!(run(&[""], &["a"]), ("a".into(), false));
    }
}
