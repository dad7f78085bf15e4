//! The built-in model `hearth-tiny`, through the real binary on an empty store:
//! listed and shown without a pull, answering on the command line (as README's
//! first command asks it) and through `hearth serve`.

mod serve_common;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use serve_common::{Scratch, free_port, text};

/// An address no server listens on, so that the CLI works on the store.
fn standalone() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// The integers in `s`, in order.
fn numbers(s: &str) -> Vec<u64> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// The last number of an answer, which the model's worked sums end with
/// ("12 plus 7 is 19.").
fn final_number(answer: &str) -> Option<u64> {
    numbers(answer).last().copied()
}

#[test]
fn fresh_store_lists_and_shows_hearth_tiny() {
    let scratch = Scratch::new("builtin-list");
    let host = standalone();
    let list = scratch.ok(&host, &["list"]);
    assert!(list.contains("hearth-tiny:latest"), "{list}");
    let show = scratch.ok(&host, &["show", "hearth-tiny"]);
    assert!(show.contains("llama"), "{show}");
    let params = scratch.ok(&host, &["show", "hearth-tiny", "--parameters"]);
    assert!(params.contains("temperature"), "{params}");
    assert!(params.contains("repeat_penalty"), "{params}");

    // Removed, it stays gone from listings until it is used again.
    scratch.ok(&host, &["rm", "hearth-tiny"]);
    let list = scratch.ok(&host, &["list"]);
    assert!(!list.contains("hearth-tiny"), "{list}");
    scratch.ok(&host, &["show", "hearth-tiny"]);
    let list = scratch.ok(&host, &["list"]);
    assert!(list.contains("hearth-tiny:latest"), "{list}");
}

#[test]
fn run_answers_arithmetic() {
    let scratch = Scratch::new("builtin-run");
    let answer = scratch.ok(&standalone(), &["run", "hearth-tiny", "What is 12 plus 7?"]);
    assert_eq!(final_number(&answer), Some(19), "{answer}");
}

/// Questions whose correct answer repeats a number of the question. With
/// hearth's default sampler (Ollama's `repeat_penalty 1.1` over the last 64
/// tokens, prompt included, applied at temperature 0 too) the committed GGUF
/// gets them wrong ("25 is bigger than 23.", "16 is bigger than 13."); with
/// the built-in's `repeat_penalty 1` right. Found by asking
/// `hearth run models/hearth-tiny/hearth-tiny.gguf QUESTION --temperature 0`
/// with `--repeat-penalty 1` and with `--repeat-penalty 1.1` over comparison
/// questions of neighbouring numbers (3 of 160 differed).
const PENALTY_SENSITIVE: &[(&str, &str)] = &[
    ("Compare 24 and 25.", "25 is bigger than 24."),
    ("Which is bigger, 13 or 14?", "14 is bigger than 13."),
];

#[test]
fn builtin_parameters_reach_the_sampler() {
    let scratch = Scratch::new("builtin-params");
    let host = standalone();
    let params = scratch.ok(&host, &["show", "hearth-tiny", "--parameters"]);
    let pairs: Vec<Vec<&str>> = params
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    for expected in [["temperature", "0"], ["repeat_penalty", "1"]] {
        assert!(
            pairs.contains(&expected.to_vec()),
            "{expected:?} in {params}"
        );
    }

    for (question, expected) in PENALTY_SENSITIVE {
        let answer = scratch.ok(&host, &["run", "hearth-tiny", question]);
        assert_eq!(answer.trim(), *expected, "{question}");
        // The question shows the parameter at work only if the penalty
        // changes its answer; if a retrained GGUF answers it right anyway,
        // pick another question the same way.
        let penalised = scratch.ok(
            &host,
            &["run", "hearth-tiny", question, "--repeat-penalty", "1.1"],
        );
        assert_ne!(penalised.trim(), *expected, "{question} with the penalty");
    }
}

#[test]
fn run_without_a_model_chats_with_hearth_tiny() {
    let scratch = Scratch::new("builtin-chat");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("run")
        .env("HEARTH_MODELS", scratch.models())
        .env("HEARTH_HOST", standalone())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"What is 7 times 8?\n/bye\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(numbers(&stdout).contains(&56), "{stdout}");
}

#[test]
fn readme_first_command_answers_its_question() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let setup = readme
        .split("\n## ")
        .find(|s| s.starts_with("Set up\n"))
        .expect("README.md has a '## Set up' section");
    let start = setup.find("```sh\n").expect("a sh block") + 6;
    let block = &setup[start..];
    let command = block[..block.find("```").unwrap()].trim();
    let (build, run) = command
        .split_once(" && ")
        .expect("the command builds, then runs");
    assert_eq!(build, "cargo build --release");
    let run = run
        .strip_prefix("./target/release/hearth run hearth-tiny ")
        .unwrap_or_else(|| panic!("asks the built-in model: {command}"));
    let question = run.trim_matches('"');
    let operands = numbers(question);
    assert!(
        question.contains(" plus ") && operands.len() == 2,
        "{question}"
    );

    let scratch = Scratch::new("builtin-readme");
    let answer = scratch.ok(&standalone(), &["run", "hearth-tiny", question]);
    assert_eq!(
        final_number(&answer),
        Some(operands[0] + operands[1]),
        "{question} -> {answer}"
    );
}

#[test]
fn server_lists_and_serves_hearth_tiny() {
    let scratch = Scratch::new("builtin-serve");
    let server = scratch.serve(&[]);
    let tags = server.get("/api/tags");
    let names: Vec<&str> = tags["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hearth-tiny:latest"], "{tags}");
    let models = server.get("/v1/models");
    assert!(
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "hearth-tiny:latest"),
        "{models}"
    );

    let (status, body) = server.post(
        "/api/generate",
        &json!({"model": "hearth-tiny", "prompt": "What is 12 plus 7?", "stream": false}),
    );
    assert_eq!(status, 200, "{body}");
    let answer = body["response"].as_str().unwrap();
    assert_eq!(final_number(answer), Some(19), "{body}");
    assert_eq!(body["model"], Value::from("hearth-tiny"));

    // `hearth run` with a server up asks it.
    let answer = scratch.ok(&server.host, &["run", "hearth-tiny", "What is 30 plus 45?"]);
    assert_eq!(final_number(&answer), Some(75), "{answer}");
}
