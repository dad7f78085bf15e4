//! Properties every pre-tokenizer must have, on arbitrary text: the words are
//! non-empty and concatenate back to the input.

use model::tokenizer::pretokenize::PreTokenizer;
use proptest::prelude::*;

/// Text biased towards what the splitters branch on: spaces and newlines, case,
/// digits, apostrophes, marks, non-ASCII whitespace, CJK and emoji.
fn text() -> impl Strategy<Value = String> {
    let interesting = prop::sample::select(vec![
        ' ',
        ' ',
        '\t',
        '\n',
        '\r',
        '\u{0B}',
        'a',
        's',
        'L',
        'É',
        'ǅ',
        '1',
        '٣',
        '\'',
        '.',
        '/',
        '$',
        '`',
        '\u{A0}',
        '\u{3000}',
        '\u{85}',
        '\u{301}',
        '中',
        '한',
        '😀',
        '\u{200D}',
        '\u{E000}',
        '\u{10FFFF}',
    ]);
    prop::collection::vec(prop_oneof![3 => interesting, 1 => any::<char>()], 0..64)
        .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn words_are_nonempty_and_cover_the_text(text in text()) {
        for pre in PreTokenizer::ALL {
            let mut words = Vec::new();
            pre.split(&text, &mut words);
            prop_assert!(words.iter().all(|w| !w.is_empty()), "{:?}: empty word in {:?}", pre, words);
            prop_assert_eq!(words.concat(), text.as_str(), "{:?}", pre);
        }
    }

    #[test]
    fn split_appends_after_existing_words(text in text()) {
        for pre in PreTokenizer::ALL {
            let mut words = vec!["kept"];
            pre.split(&text, &mut words);
            prop_assert_eq!(words[0], "kept");
            prop_assert_eq!(words[1..].concat(), text.as_str(), "{:?}", pre);
        }
    }
}
