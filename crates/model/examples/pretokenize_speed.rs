//! Pre-tokenizer throughput on 1 MiB of mixed text (English prose with contractions,
//! code, digits, whitespace runs, CJK, Cyrillic, Arabic, emoji).
//!
//! `cargo run --release -p model --example pretokenize_speed` prints MB/s per
//! pre-tokenizer (best of 5 passes, one thread).

use model::tokenizer::pretokenize::PreTokenizer;
use std::time::Instant;

const FRAGMENTS: &[&str] = &[
    "The quick brown fox jumps over the lazy dog. ",
    "I'm sure they'll say it's fine, but we've seen what HTTPServer does. ",
    "fn main() {\n    let x = vec![1, 2, 3];\n    println!(\"{:?}\", x);\n}\n",
    "    if (a[i] >= 42 && b != NULL) { return -1; }\n",
    "Prices rose 3.75% to $1,234,567.89 in 2024-06-07T12:00:00Z. ",
    "\n\n\t  \r\n",
    "自然言語処理は面白いです。我们正在测试分词器。",
    "Привет, как дела? Всё хорошо. ",
    "مرحبا بالعالم، هذا اختبار. ",
    "👋🏽 emoji 👨‍👩‍👧 and café naïve résumé. ",
];

fn mixed_text(len: usize) -> String {
    let mut text = String::with_capacity(len + 128);
    let mut state: u32 = 0x1234_5678;
    while text.len() < len {
        // xorshift: a fixed, reproducible mix of fragments
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        text.push_str(FRAGMENTS[state as usize % FRAGMENTS.len()]);
    }
    text
}

fn main() {
    let text = mixed_text(1 << 20);
    let mut words = Vec::with_capacity(text.len() / 2);
    for pre in PreTokenizer::ALL {
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            words.clear();
            let start = Instant::now();
            pre.split(&text, &mut words);
            best = best.min(start.elapsed().as_secs_f64());
        }
        let mb_per_s = text.len() as f64 / 1e6 / best;
        println!("{pre:?}: {mb_per_s:.1} MB/s ({} words)", words.len());
    }
}
