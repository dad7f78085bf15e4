//! The curl examples of README.md's "Serve" section, run as written against a
//! real `hearth serve` (only the address is swapped for the test server's),
//! with the tiny test model created under the README's name `hearth-tiny`.

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

    let scratch = Scratch::new("readme");
    let server = scratch.serve(&[]);
    scratch.ok(&server.host, &["create", "hearth-tiny", "-f", "Modelfile"]);
    let base = format!("http://{}", server.host);
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
    }
    // The last example unloaded the model.
    assert_eq!(server.get("/api/ps")["models"], serde_json::json!([]));
}
