//! The curl examples of README.md's "Serve" section, run as written against a
//! real `hearth serve` (only the address is swapped for the test server's)
//! with the real built-in model, and the answers the README promises checked.

mod serve_common;

use std::process::Command;

use serde_json::Value;
use serve_common::{Scratch, text};

/// The ```sh blocks of the section headed `## Serve`.
fn serve_examples(readme: &str) -> Vec<String> {
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Serve\n"))
        .expect("README.md has a '## Serve' section");
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(start) = rest.find("```sh\n") {
        let body = &rest[start + 6..];
        let end = body.find("```").expect("unterminated code block");
        blocks.push(body[..end].trim().to_owned());
        rest = &body[end + 3..];
    }
    blocks
}

#[test]
fn readme_curl_examples_work_as_shown() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let examples = serve_examples(&readme);
    assert!(examples.len() >= 4, "{examples:?}");
    assert!(
        examples
            .iter()
            .all(|e| e.starts_with("curl http://localhost:11434/"))
    );
    assert!(!readme.contains("sky blue"));

    let scratch = Scratch::new("readme");
    let server = scratch.serve(&[]);
    let base = format!("http://{}", server.host);
    let mut answers = Vec::new();
    for example in &examples {
        let command = example.replace("http://localhost:11434", &base);
        let out = Command::new("sh").args(["-c", &command]).output().unwrap();
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{example}\n{}", text(&out.stderr));
        // Every line is a JSON object, and none is an error.
        let lines: Vec<Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{example}: {e}: {l}")))
            .collect();
        assert!(!lines.is_empty(), "{example}");
        for line in &lines {
            assert!(
                line.is_object() && line.get("error").is_none(),
                "{example}\n{line}"
            );
        }
        if example.contains("/api/generate") && example.contains("\"prompt\"") {
            assert_eq!(lines.last().unwrap()["done"], true, "{example}");
        }
        // The answer: generate's pieces, chat's message, OpenAI's choice.
        let answer: String = lines
            .iter()
            .map(|l| {
                l["response"]
                    .as_str()
                    .or(l["message"]["content"].as_str())
                    .or(l["choices"][0]["message"]["content"].as_str())
                    .unwrap_or_default()
            })
            .collect();
        if !answer.is_empty() {
            answers.push(answer);
        }
    }
    // The answers README.md's text promises, in its order.
    assert_eq!(
        answers,
        [
            "37 plus 50 is 87, 87 plus 2 is 89, so 37 plus 52 is 89.",
            "The capital of Kenya is Nairobi.",
            "The opposite of heavy is light.",
            "3 hours is 180 minutes.",
        ]
    );
    for answer in &answers {
        assert!(
            readme.contains(answer.as_str()),
            "README.md lacks {answer:?}"
        );
    }
    // The last example unloaded the model.
    assert_eq!(server.get("/api/ps")["models"], serde_json::json!([]));
}
