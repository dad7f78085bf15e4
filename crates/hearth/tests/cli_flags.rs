//! docs/ollama-cli.md lists every command and flag of Ollama's command line
//! with what hearth does with it. Each row is checked here against the real
//! binary's help: the command exists (aliases included) and takes the flag,
//! in its long and short forms. What each flag does is tested where the
//! table's last column says.

use std::path::Path;
use std::process::Command;

/// One row: the command, and the flag's forms (empty for the command alone).
struct Row {
    command: String,
    flags: Vec<String>,
}

fn rows() -> Vec<Row> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/ollama-cli.md");
    let text = std::fs::read_to_string(&doc).expect("docs/ollama-cli.md");
    let mut rows = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 4, "a row has four cells: {line}");
        let command = cells[0].trim_matches('`').to_owned();
        let flags = cells[1]
            .trim_matches('`')
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect();
        assert!(!cells[2].is_empty() && !cells[3].is_empty(), "{line}");
        rows.push(Row { command, flags });
    }
    rows
}

fn help(command: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args([command, "--help"])
        .output()
        .expect("run hearth");
    assert!(
        out.status.success(),
        "hearth {command} --help failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 help")
}

/// Whether `help` lists `flag` as an option (at the start of an option line,
/// or after the short form).
fn lists_flag(help: &str, flag: &str) -> bool {
    help.lines().any(|line| {
        let line = line.trim_start();
        line.starts_with(flag)
            && line[flag.len()..]
                .chars()
                .next()
                .is_none_or(|c| matches!(c, ' ' | ',' | '=' | '[' | '<'))
            || line.starts_with('-') && line.contains(&format!(", {flag}"))
    })
}

#[test]
fn every_ollama_command_and_flag_is_accepted() {
    let rows = rows();
    assert!(rows.len() >= 20, "the table lost rows: {}", rows.len());
    for row in &rows {
        let help = help(&row.command);
        for flag in &row.flags {
            assert!(
                lists_flag(&help, flag),
                "hearth {} has no {flag}:\n{help}",
                row.command
            );
        }
    }
}

#[test]
fn the_check_tells_a_missing_flag() {
    let run = help("run");
    assert!(lists_flag(&run, "--think"));
    assert!(!lists_flag(&run, "--thinkx"));
    assert!(!lists_flag(&run, "--no-such-flag"));
}

#[test]
fn think_takes_its_value_only_after_an_equals_sign() {
    // `--think "prompt"` must leave the prompt a prompt, as Ollama's
    // `--think` (a flag with a default value) does.
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["run", "--think=maybe", "hello"])
        .env("HEARTH_HOST", "127.0.0.1:9")
        .output()
        .expect("run hearth");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--think=maybe"), "{err}");
}
