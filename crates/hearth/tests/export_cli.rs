//! `hearth export MODEL --merge OUT.gguf` as a real process: a stored model
//! with a Modelfile ADAPTER (and an extra `--lora FILE:SCALE`) written with
//! the adapters merged gives, through `hearth logits`, the logits the
//! unmerged model gives.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gguf::TensorType;
use model::synthetic::Spec;

fn dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearth-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn hearth(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .current_dir(dir)
        .env("HEARTH_MODELS", dir.join("models"))
        .output()
        .unwrap()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn logits(dir: &Path, model: &str, out: &str) -> Vec<f32> {
    ok(&hearth(
        dir,
        &["logits", model, "--tokens", "1,17,42,5,300,9", "--out", out],
    ));
    std::fs::read(dir.join(out))
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn merged_export_gives_the_logits_of_the_unmerged_adapters() {
    let dir = dir();
    let spec = Spec::tiny_llama();
    spec.write(&dir.join("base.gguf"), TensorType::F32).unwrap();
    let targets = [
        "blk.0.attn_q.weight",
        "blk.1.ffn_up.weight",
        "output.weight",
    ];
    for (file, seed) in [("a.gguf", 5), ("b.gguf", 6)] {
        spec.lora(&targets, 4, 8.0, TensorType::F32, seed)
            .unwrap()
            .write_file(dir.join(file))
            .unwrap();
    }
    std::fs::write(
        dir.join("Modelfile"),
        "FROM ./base.gguf\nADAPTER ./a.gguf\n",
    )
    .unwrap();
    ok(&hearth(&dir, &["create", "tuned", "-f", "Modelfile"]));
    let show = hearth(&dir, &["show", "tuned", "--modelfile"]);
    ok(&show);
    assert!(String::from_utf8_lossy(&show.stdout).contains("\nADAPTER "));

    let base = logits(&dir, "./base.gguf", "base.bin");
    let tuned = logits(&dir, "tuned", "tuned.bin");
    let max_diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    };
    assert!(
        max_diff(&base, &tuned) > 0.1,
        "the adapter changes the logits"
    );

    ok(&hearth(
        &dir,
        &["export", "tuned", "--merge", "merged.gguf"],
    ));
    let merged = logits(&dir, "./merged.gguf", "merged.bin");
    let diff = max_diff(&merged, &tuned);
    assert!(diff < 1e-3, "merged and unmerged differ by {diff}");

    // With another adapter at a scale: the store model's plus b at 0.5.
    ok(&hearth(
        &dir,
        &[
            "export",
            "tuned",
            "--merge",
            "merged2.gguf",
            "--lora",
            "b.gguf:0.5",
        ],
    ));
    let merged2 = logits(&dir, "./merged2.gguf", "merged2.bin");
    assert!(max_diff(&merged2, &merged) > 0.01);

    // A plain file has nothing to merge.
    let out = hearth(&dir, &["export", "./base.gguf", "--merge", "x.gguf"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no adapters to merge"));
}
