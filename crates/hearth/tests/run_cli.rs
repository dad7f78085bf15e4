//! `hearth run` as a real process on a tiny random-weight Llama written by the
//! synthetic-model builder (its SPM vocabulary plus a ChatML chat template).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use gguf::{Array, TensorType, Value};
use model::synthetic::Spec;

const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + \
                      message['content'] + '<|im_end|>' + '\n'}}{% endfor %}\
                      {% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Writes the tiny model once per test process.
fn tiny_model() -> &'static Path {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hearth-run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tiny.gguf");
        let mut w = Spec::tiny_llama().build(&|_| TensorType::Q8_0).unwrap();
        w.add_str("tokenizer.chat_template", CHATML);
        w.write_file(&path).unwrap();
        path
    })
}

/// The tiny model with `</s>` renamed and `<s>` as end of sequence: greedy
/// decoding does not produce it (3000 tokens checked), so an answer runs until
/// interrupted or the context is full.
fn endless_model() -> &'static Path {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hearth-run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("endless.gguf");
        let spec = Spec::tiny_llama();
        let mut w = spec.build(&|_| TensorType::Q8_0).unwrap();
        let Some(Value::Array(Array::String(tokens))) =
            w.metadata().get("tokenizer.ggml.tokens").cloned()
        else {
            panic!("the synthetic model has a token list");
        };
        let mut tokens = tokens;
        tokens[2] = "<end>".into();
        w.add_str_array("tokenizer.ggml.tokens", &tokens);
        w.add_u32("tokenizer.ggml.eos_token_id", 1);
        w.add_str("tokenizer.chat_template", CHATML);
        w.write_file(&path).unwrap();
        path
    })
}

/// A ChatML template that opens a thinking block for the answer unless
/// `enable_thinking` is false, as Qwen 3's does.
const THINKING: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + \
                        message['content'] + '<|im_end|>' + '\n'}}{% endfor %}\
                        {% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}\
                        {% if enable_thinking is defined and enable_thinking is false %}\
                        {{ '<think>\n\n</think>\n\n' }}{% else %}{{ '<think>\n' }}{% endif %}\
                        {% endif %}";

/// The tiny model with [`THINKING`] as its template: its answers start inside
/// a thinking block, and its vocabulary cannot write `</think>`, so all of an
/// answer is thinking unless thinking is switched off.
fn thinking_model() -> &'static Path {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hearth-run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("thinking.gguf");
        let mut w = Spec::tiny_llama().build(&|_| TensorType::Q8_0).unwrap();
        w.add_str("tokenizer.chat_template", THINKING);
        w.write_file(&path).unwrap();
        path
    })
}

fn hearth(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run_once(extra: &[&str]) -> Output {
    let model = tiny_model().to_str().unwrap();
    let mut args = vec!["run", model, "Hello there"];
    args.extend_from_slice(extra);
    hearth(&args, "")
}

#[test]
fn one_shot_prints_the_answer_and_exits() {
    let out = run_once(&["--num-predict", "12", "--seed", "7", "--verbose"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    // The synthetic vocabulary's pieces are "▁t<N>", printed as " t<N>".
    assert!(
        stdout.contains('t') && stdout.trim().len() > 2,
        "{stdout:?}"
    );
    assert!(stderr.contains("prompt eval count:"), "{stderr}");
    assert!(
        stderr.contains("eval count:           12 token(s)"),
        "{stderr}"
    );
    assert!(stderr.contains("eval rate:"), "{stderr}");
}

#[test]
fn the_same_seed_gives_the_same_answer() {
    let a = run_once(&[
        "--num-predict",
        "10",
        "--seed",
        "42",
        "--temperature",
        "1.5",
    ]);
    let b = run_once(&[
        "--num-predict",
        "10",
        "--seed",
        "42",
        "--temperature",
        "1.5",
    ]);
    assert!(a.status.success(), "{}", text(&a.stderr));
    assert_eq!(text(&a.stdout), text(&b.stdout));
    let greedy = run_once(&["--num-predict", "10", "--temperature", "0"]);
    let greedy_again = run_once(&["--num-predict", "10", "--temperature", "0", "--seed", "9"]);
    assert_eq!(text(&greedy.stdout), text(&greedy_again.stdout));
}

#[test]
fn repl_takes_commands_and_questions_from_stdin() {
    let model = tiny_model().to_str().unwrap();
    let input = "/set parameter num_predict 6\n\
                 /set parameter seed 3\n\
                 /set parameter num_ctx 128\n\
                 /set parameter presence_penalty 0.5\n\
                 /set parameter warmth 2\n\
                 /set system You are terse.\n\
                 Who are you?\n\
                 \"\"\"Tell me\n\
                 more.\"\"\"\n\
                 /show info\n\
                 /clear\n\
                 /bye\n\
                 never read\n";
    let out = hearth(&["run", model], input);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("Set parameter 'num_predict' to '6'"),
        "{stdout}"
    );
    assert!(stdout.contains("Set parameter 'seed' to '3'"), "{stdout}");
    assert!(
        stdout.contains("error: option 'warmth': unknown parameter"),
        "{stdout}"
    );
    assert!(stdout.contains("Set system message."), "{stdout}");
    assert!(stdout.contains("architecture        llama"), "{stdout}");
    assert!(stdout.contains("num_predict         6"), "{stdout}");
    assert!(stdout.contains("num_ctx             128"), "{stdout}");
    assert!(stdout.contains("presence_penalty    0.5"), "{stdout}");
    assert!(stdout.contains("Cleared session context"), "{stdout}");
    // Two answers, each followed by a blank line, between the commands.
    let answers = stdout
        .split("Set system message.\n")
        .nth(1)
        .and_then(|rest| rest.split("  Model\n").next())
        .unwrap();
    let answers: Vec<&str> = answers
        .split("\n\n")
        .filter(|a| !a.trim().is_empty())
        .collect();
    assert_eq!(answers.len(), 2, "{stdout:?}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn a_system_message_can_span_lines() {
    let model = tiny_model().to_str().unwrap();
    let input = "/set system \"\"\"You are terse.\n\
                 Answer in one word.\n\
                 \"\"\"\n\
                 /show system\n";
    let out = hearth(&["run", model], input);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        stdout,
        "Set system message.\nYou are terse.\nAnswer in one word.\n"
    );
}

#[test]
fn num_thread_reloads_the_model_and_keeps_the_conversation() {
    let model = tiny_model().to_str().unwrap();
    let input = "/set parameter num_predict 4\n\
                 /set system Be brief.\n\
                 /set verbose\n\
                 Hello\n\
                 /set parameter num_thread 1\n\
                 /show info\n\
                 /show system\n\
                 Hello\n";
    let out = hearth(
        &["run", model, "--threads", "2", "--temperature", "0"],
        input,
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("Set parameter 'num_thread' to '1'"),
        "{stdout}"
    );
    let after = stdout.split("to '1'\n").nth(1).unwrap();
    // The reloaded model runs on one thread with the same settings, system
    // message and conversation: the same question again is a longer prompt,
    // as it carries the first exchange (and a fresh cache runs all of it).
    assert!(after.contains("num_thread          1"), "{after}");
    assert!(after.contains("num_predict         4"), "{after}");
    assert!(after.contains("Be brief.\n"), "{after}");
    let counts: Vec<usize> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("prompt eval count:"))
        .map(|l| l.trim().trim_end_matches(" token(s)").parse().unwrap())
        .collect();
    assert_eq!(counts.len(), 2, "{stderr}");
    assert!(counts[1] > counts[0], "{counts:?}");
}

#[test]
fn end_of_input_leaves_the_repl() {
    let model = tiny_model().to_str().unwrap();
    let out = hearth(&["run", model, "--num-predict", "3"], "Hi\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).trim().is_empty());
}

#[test]
fn an_over_long_prompt_is_a_clear_error() {
    let long = "word ".repeat(200);
    let model = tiny_model().to_str().unwrap();
    let out = hearth(&["run", model, &long, "--ctx", "32"], "");
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("the context holds 32"), "{stderr}");
}

#[test]
fn with_context_shift_an_over_long_prompt_is_cut_to_fit() {
    let long = "word ".repeat(200);
    let model = tiny_model().to_str().unwrap();
    let args = [
        "run",
        model,
        &long,
        "--ctx",
        "32",
        "--num-predict",
        "40",
        "--context-shift",
        "--temperature",
        "0",
        "--verbose",
    ];
    let out = hearth(&args, "");
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // All but one of the 32 positions hold the cut prompt; 40 tokens then
    // come out of a context shifted as it fills.
    assert!(
        stderr.contains("prompt eval count:    31 token(s)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("eval count:           40 token(s)"),
        "{stderr}"
    );
}

#[test]
fn an_answer_cut_by_a_full_context_ends_its_line_before_the_error() {
    let model = endless_model().to_str().unwrap();
    let args = ["run", model, "Hello", "--ctx", "100", "--temperature", "0"];
    let out = hearth(&args, "");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success());
    assert!(
        stderr.starts_with("error: the context (100 tokens) is full"),
        "{stderr}"
    );
    assert!(stdout.len() > 1 && stdout.ends_with('\n'), "{stdout:?}");
}

#[test]
fn a_missing_model_is_an_error() {
    let out = hearth(&["run", "/nonexistent/model.gguf", "hi"], "");
    assert!(!out.status.success());
    assert!(text(&out.stderr).starts_with("error: loading /nonexistent/model.gguf"));
}

#[test]
fn ctrl_c_stops_the_answer_and_keeps_the_session() {
    let model = endless_model().to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args([
            "run",
            model,
            "--temperature",
            "0",
            "--ctx",
            "4096",
            "--verbose",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    stdin.write_all(b"Hello\n").unwrap();
    stdin.flush().unwrap();
    // Wait until the answer is streaming, then press Ctrl-C.
    let mut first = [0u8; 16];
    assert!(stdout.read(&mut first).unwrap() > 0);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    // The session goes on: the next commands are answered.
    stdin.write_all(b"/show info\n/bye\n").unwrap();
    drop(stdin);
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    let rest = text(&rest);
    assert!(status.success(), "{status:?}: {rest}");
    assert!(rest.contains("architecture        llama"), "{rest}");
    // The answer ended early and cleanly (statistics, no context-full error).
    assert!(stderr.contains("eval count:"), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
}

#[test]
fn thinking_is_shown_hidden_or_switched_off() {
    let model = thinking_model().to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            model,
            "Hello",
            "--num-predict",
            "6",
            "--temperature",
            "0",
        ];
        args.extend_from_slice(extra);
        let out = hearth(&args, "");
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let shown = run(&[]);
    assert!(shown.starts_with("Thinking...\n"), "{shown:?}");
    assert!(shown.ends_with("\n...done thinking.\n\n\n"), "{shown:?}");
    let thought = &shown["Thinking...\n".len()..shown.len() - "\n...done thinking.\n\n\n".len()];
    assert!(!thought.trim().is_empty(), "{shown:?}");
    // --think asks for what the template does by default here.
    assert_eq!(run(&["--think"]), shown);
    assert_eq!(run(&["--hidethinking"]), "\n");
    let off = run(&["--think=false"]);
    assert!(!off.contains("Thinking..."), "{off:?}");
    assert!(!off.trim().is_empty(), "{off:?}");
}

#[test]
fn repl_switches_thinking_and_format() {
    let model = thinking_model().to_str().unwrap();
    let input = "/set parameter num_predict 6\n\
                 /set parameter temperature 0\n\
                 /set nothink\n\
                 Hello\n\
                 /set think\n\
                 Hello\n\
                 /set think loudly\n\
                 /set nothink\n\
                 /set format json\n\
                 Hello\n\
                 /set noformat\n\
                 /bye\n";
    let out = hearth(&["run", model], input);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let (before, after) = stdout
        .split_once("Set 'think' mode.")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(before.contains("Set 'nothink' mode."), "{stdout}");
    assert!(!before.contains("Thinking..."), "{stdout}");
    let (thinking, rest) = after
        .split_once("Invalid think level 'loudly'")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(thinking.contains("Thinking..."), "{stdout}");
    let (_, json) = rest
        .split_once("Set format to 'json' mode.\n")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(json.trim_start().starts_with('{'), "{stdout}");
    assert!(json.contains("Disabled format."), "{stdout}");
}
