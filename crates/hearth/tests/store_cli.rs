//! `hearth create / list / show NAME / cp / rm` run as real processes against a
//! store in a scratch directory (`HEARTH_MODELS`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gguf::{GgufWriter, TensorType};

/// A scratch directory with a GGUF file, a store root, and the binary.
struct Env {
    dir: PathBuf,
}

impl Env {
    fn new(name: &str) -> Env {
        let dir =
            std::env::temp_dir().join(format!("hearth-store-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        write_gguf(&dir.join("tiny.gguf"));
        Env { dir }
    }

    fn models(&self) -> PathBuf {
        self.dir.join("models")
    }

    /// Runs `hearth args` in the scratch directory with the store under it.
    fn hearth(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(args)
            .current_dir(&self.dir)
            .env("HEARTH_MODELS", self.models())
            .output()
            .unwrap()
    }

    /// Runs `hearth args`, asserts success and returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.hearth(args);
        assert!(
            out.status.success(),
            "hearth {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `hearth args`, asserts failure and returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.hearth(args);
        assert!(!out.status.success(), "hearth {args:?} succeeded");
        String::from_utf8(out.stderr).unwrap()
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.join(name), text).unwrap();
    }

    /// `hearth list` without the built-in model's row.
    fn list(&self) -> String {
        self.ok(&["list"])
            .lines()
            .filter(|l| !l.starts_with("hearth-tiny:latest "))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    fn blobs(&self) -> usize {
        std::fs::read_dir(self.models().join("blobs"))
            .unwrap()
            .count()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A tiny "qwen2" GGUF with a chat template, file type Q8_0.
fn write_gguf(path: &Path) {
    let mut w = GgufWriter::new();
    w.add_str("general.architecture", "qwen2");
    w.add_u32("general.file_type", 7);
    w.add_u32("qwen2.context_length", 4096);
    w.add_u32("qwen2.embedding_length", 64);
    w.add_str("tokenizer.chat_template", "{{ file_template }}");
    w.add_tensor(
        "output.weight",
        TensorType::Q8_0,
        &[64, 64],
        &vec![1; 34 * 2 * 64],
    )
    .unwrap();
    w.write_file(path).unwrap();
}

const MODELFILE: &str = "FROM ./tiny.gguf\n\
    PARAMETER temperature 0.25\n\
    PARAMETER stop \"<|im_end|>\"\n\
    SYSTEM \"\"\"You are terse.\"\"\"\n\
    LICENSE \"\"\"Apache-2.0\nsee LICENSE\nthird line\"\"\"\n";

#[test]
fn create_list_show_cp_rm() {
    let env = Env::new("lifecycle");
    env.write("Modelfile", MODELFILE);
    // The first command installs the built-in model.
    assert_eq!(env.list().lines().count(), 1);
    let builtin_blobs = env.blobs();
    let out = env.hearth(&["create", "me/tiny:stable"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let progress = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = progress.lines().collect();
    assert!(lines.contains(&"transferring model data"), "{progress}");
    assert_eq!(lines[lines.len() - 2..], ["writing manifest", "success"]);

    let list = env.list();
    let rows: Vec<Vec<&str>> = list
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAME", "ID", "SIZE", "MODIFIED"]);
    assert_eq!(rows.len(), 2, "{list}");
    assert_eq!(rows[1][0], "me/tiny:stable");
    assert_eq!(rows[1][1].len(), 12);
    assert!(rows[1][1].chars().all(|c| c.is_ascii_hexdigit()));
    assert!(list.contains(" KB "), "{list}");
    assert!(list.trim_end().ends_with("ago"), "{list}");

    let show = env.ok(&["show", "me/tiny:stable"]);
    for expected in [
        "architecture        qwen2",
        "context length      4096",
        "embedding length    64",
        "quantization        Q8_0",
        "temperature         0.25",
        "stop                \"<|im_end|>\"",
        "You are terse.",
        "Apache-2.0",
    ] {
        assert!(show.contains(expected), "missing {expected:?} in:\n{show}");
    }
    assert!(
        !show.contains("third line"),
        "long licenses are cut:\n{show}"
    );

    assert_eq!(
        env.ok(&["show", "me/tiny:stable", "--system"]),
        "You are terse.\n"
    );
    assert_eq!(
        env.ok(&["show", "me/tiny:stable", "--license"]),
        "Apache-2.0\nsee LICENSE\nthird line\n"
    );
    // No TEMPLATE in the Modelfile: the file's own template.
    assert_eq!(
        env.ok(&["show", "me/tiny:stable", "--template"]),
        "{{ file_template }}\n"
    );
    // As /api/show's `parameters` lists them (the same through a server).
    let params = env.ok(&["show", "me/tiny:stable", "--parameters"]);
    assert_eq!(
        params,
        format!(
            "{:<30} \"<|im_end|>\"\n{:<30} 0.25\n",
            "stop", "temperature"
        )
    );

    // --modelfile output builds the same model again, reusing every blob.
    let modelfile = env.ok(&["show", "me/tiny:stable", "--modelfile"]);
    assert!(modelfile.starts_with("# Modelfile generated by \"hearth show\""));
    assert!(modelfile.contains("# FROM me/tiny:stable\n"), "{modelfile}");
    env.write("Modelfile.again", &modelfile);
    let blobs = env.blobs();
    env.ok(&["create", "again", "-f", "Modelfile.again"]);
    assert_eq!(env.blobs(), blobs, "nothing new stored");
    let list = env.list();
    let ids: Vec<&str> = list
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1], "same manifest:\n{list}");

    // Tags are pointers: keep stable, try experimental, roll back.
    assert_eq!(
        env.ok(&["cp", "me/tiny:stable", "me/tiny:experimental"]),
        "copied 'me/tiny:stable' to 'me/tiny:experimental'\n"
    );
    env.write(
        "Modelfile.exp",
        "FROM me/tiny:experimental\nSYSTEM Be verbose.\n",
    );
    env.ok(&["create", "me/tiny:experimental", "-f", "Modelfile.exp"]);
    assert_eq!(
        env.ok(&["show", "me/tiny:experimental", "--system"]),
        "Be verbose.\n"
    );
    env.ok(&["cp", "me/tiny:stable", "me/tiny:experimental"]);
    assert_eq!(
        env.ok(&["show", "me/tiny:experimental", "--system"]),
        "You are terse.\n"
    );

    assert_eq!(
        env.ok(&["rm", "me/tiny:stable", "again"]),
        "deleted 'me/tiny:stable'\ndeleted 'again'\n"
    );
    assert!(
        env.blobs() > builtin_blobs,
        "still used by me/tiny:experimental"
    );
    env.ok(&["rm", "me/tiny:experimental"]);
    assert_eq!(env.blobs(), builtin_blobs);
    assert_eq!(env.list().lines().count(), 1);
}

#[test]
fn errors_exit_non_zero_with_a_message() {
    let env = Env::new("errors");
    env.write(
        "Modelfile",
        "FROM ./tiny.gguf\nPARAMETER temperature warm\n",
    );
    let e = env.fails(&["create", "x"]);
    assert!(
        e.starts_with("error: ") && e.contains("line 2") && e.contains("temperature"),
        "{e}"
    );
    env.write("Modelfile", "FROM ./missing.gguf\n");
    let e = env.fails(&["create", "x"]);
    assert!(e.contains("missing.gguf"), "{e}");
    env.write("Modelfile", "FROM ./tiny.gguf\n");
    let e = env.fails(&["create", "bad name"]);
    assert!(e.contains("invalid model name"), "{e}");
    let e = env.fails(&["create", "x", "-f", "nope"]);
    assert!(e.contains("nope"), "{e}");

    let e = env.fails(&["rm", "ghost"]);
    assert_eq!(e, "error: model 'ghost:latest' not found\n");
    let e = env.fails(&["show", "ghost"]);
    assert_eq!(e, "error: model 'ghost:latest' not found\n");
    let e = env.fails(&["cp", "ghost", "other"]);
    assert_eq!(e, "error: model 'ghost:latest' not found\n");
    let e = env.fails(&["show", "./tiny.gguf", "--modelfile"]);
    assert!(e.contains("apply to models in the store"), "{e}");
    assert!(
        env.fails(&["show", "x", "--system", "--license"])
            .contains("cannot be used with")
    );

    // A file argument still shows the file, store or not.
    let out = env.ok(&["show", "tiny.gguf"]);
    assert!(out.contains("architecture      qwen2"), "{out}");
}

/// The built-in model's GGUF, as compiled into the binary.
const BUILTIN_GGUF: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../models/hearth-tiny/hearth-tiny.gguf"
);

#[test]
fn every_command_that_takes_a_model_takes_a_store_name_or_a_path() {
    let env = Env::new("names");
    let text = "What is 12 plus 7?";
    let by_name = env.ok(&["tokenize", "hearth-tiny", text, "--json"]);
    assert!(by_name.starts_with('[') && by_name.len() > 4, "{by_name}");
    assert_eq!(by_name, env.ok(&["tokenize", BUILTIN_GGUF, text, "--json"]));

    let (a, b) = (env.dir.join("a.f32"), env.dir.join("b.f32"));
    let (a_s, b_s) = (a.to_str().unwrap(), b.to_str().unwrap());
    env.ok(&["logits", "hearth-tiny", "--tokens", "1,2,3", "--out", a_s]);
    env.ok(&["logits", BUILTIN_GGUF, "--tokens", "1,2,3", "--out", b_s]);
    let logits = std::fs::read(&a).unwrap();
    assert!(!logits.is_empty() && logits.len() % (3 * 4) == 0);
    assert_eq!(logits, std::fs::read(&b).unwrap());

    let table = env.ok(&["bench", "hearth-tiny", "-p", "8", "-n", "2", "-r", "1"]);
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("| llama "))
        .collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(
        rows[0].contains("pp8") && rows[1].contains("tg2"),
        "{table}"
    );

    // An unknown name: one error saying how to get a model and where the
    // store is, and nothing else (bench prints no table header first).
    for args in [
        &["run", "llama3.2", "hi"][..],
        &["bench", "llama3.2"],
        &["tokenize", "llama3.2", "hi"],
        &["logits", "llama3.2", "--tokens", "1", "--out", a_s],
    ] {
        let out = env.hearth(args);
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let e = String::from_utf8(out.stderr).unwrap();
        assert!(
            e.starts_with("error: model 'llama3.2:latest' not found")
                && e.contains("hearth pull llama3.2")
                && e.contains("hearth create")
                && e.contains(".gguf")
                && e.contains(env.models().to_str().unwrap()),
            "{args:?}: {e}"
        );
    }
}

#[test]
fn removing_the_builtin_model_is_remembered_until_it_is_used() {
    let env = Env::new("rm-builtin");
    assert!(env.ok(&["list"]).contains("hearth-tiny:latest"));
    let out = env.ok(&["rm", "hearth-tiny"]);
    assert_eq!(
        out,
        "deleted 'hearth-tiny' (built in: `hearth run hearth-tiny` brings it back)\n"
    );
    assert!(!env.ok(&["list"]).contains("hearth-tiny"));
    assert!(!env.ok(&["list"]).contains("hearth-tiny"));
    let answer = env.ok(&["run", "hearth-tiny", "What is 12 plus 7?"]);
    assert!(answer.contains("19"), "{answer}");
    assert!(env.ok(&["list"]).contains("hearth-tiny:latest"));
}

#[test]
fn serve_help_names_both_apis() {
    let env = Env::new("help");
    let help = env.ok(&["serve", "--help"]);
    assert!(help.contains("Ollama and OpenAI HTTP APIs"), "{help}");
}
