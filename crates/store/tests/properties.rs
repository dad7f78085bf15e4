//! Properties of name parsing and Modelfile rendering over generated inputs.

use proptest::prelude::*;
use store::{Message, ModelName, Modelfile};

/// A valid namespace/model/tag-like part.
fn part(dots: bool) -> impl Strategy<Value = String> {
    let re = if dots {
        "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"
    } else {
        "[A-Za-z0-9_][A-Za-z0-9_-]{0,20}"
    };
    proptest::string::string_regex(re).unwrap()
}

/// Text for a Modelfile value: printable ASCII, spaces, tabs, quotes, newlines
/// and some non-ASCII; no '\r' (line endings are normalised).
fn text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[ -~\t\n\"é漢]{0,40}").unwrap()
}

/// Whether `s` can be written in a `"""` block: no line but the last may end
/// with `"""` (it would close the block), as in Ollama's format.
fn blockable(s: &str) -> bool {
    let lines: Vec<&str> = s.split('\n').collect();
    lines[..lines.len() - 1]
        .iter()
        .all(|l| !l.trim_end_matches([' ', '\t']).ends_with("\"\"\""))
}

proptest! {
    #[test]
    fn parse_never_panics_and_display_round_trips(s in "\\PC{0,40}") {
        if let Ok(name) = ModelName::parse(&s) {
            prop_assert_eq!(ModelName::parse(&name.to_string()).unwrap(), name.clone());
            let short = ModelName::parse(&name.display_short()).unwrap();
            prop_assert!(short.eq_fold(&name));
        }
    }

    #[test]
    fn valid_parts_parse(
        host in part(true),
        namespace in part(false),
        model in part(true),
        tag in part(true),
    ) {
        let full = format!("{host}/{namespace}/{model}:{tag}");
        let name = ModelName::parse(&full).unwrap();
        prop_assert_eq!(&name.host, &host);
        prop_assert_eq!(&name.namespace, &namespace);
        prop_assert_eq!(&name.model, &model);
        prop_assert_eq!(&name.tag, &tag);
        prop_assert_eq!(name.to_string(), full);
    }

    #[test]
    fn modelfile_render_parse_round_trip(
        system in text().prop_filter("blockable", |s| blockable(s)),
        template in proptest::option::of(text().prop_filter("blockable", |s| blockable(s))),
        stops in proptest::collection::vec(
            text().prop_filter("non-empty, blockable", |s| !s.is_empty() && blockable(s)),
            0..3,
        ),
        message in text().prop_filter("non-empty, blockable", |s| !s.is_empty() && blockable(s)),
        license in text().prop_filter("blockable", |s| blockable(s)),
    ) {
        let mut m = Modelfile::new("./model.gguf");
        m.system = Some(system);
        m.template = template;
        for stop in &stops {
            m.parameters.set("stop", stop).unwrap();
        }
        m.messages.push(Message { role: "user".into(), content: message });
        m.licenses.push(license);
        let text = m.render();
        prop_assert_eq!(Modelfile::parse(&text).unwrap(), m, "{}", text);
    }
}
