//! Killing `hearth create` while it copies a model leaves the store as it was:
//! no model, no blob under a final name, and the partial file cleared on the
//! next use of the store.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use gguf::{GgufWriter, TensorType};

/// A GGUF file large enough that copying it takes a while (64 MiB of F32).
fn write_big_gguf(path: &Path) {
    let mut w = GgufWriter::new();
    w.add_str("general.architecture", "llama");
    let n = 16 << 20;
    let data: Vec<u8> = (0..n as u32)
        .flat_map(|i| (i as f32).to_le_bytes())
        .collect();
    w.add_tensor("big.weight", TensorType::F32, &[n], &data)
        .unwrap();
    w.write_file(path).unwrap();
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn killed_create_leaves_no_model_and_no_blob() {
    let dir = std::env::temp_dir().join(format!("hearth-store-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    write_big_gguf(&dir.join("big.gguf"));
    std::fs::write(dir.join("Modelfile"), "FROM ./big.gguf\n").unwrap();
    let models = dir.join("models");
    let hearth = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
        cmd.args(args)
            .current_dir(&dir)
            .env("HEARTH_MODELS", &models)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };

    // The first use installs the built-in model; the create comes after.
    assert!(hearth(&["list"]).status().unwrap().success());
    let mut builtin_blobs = files_in(&models.join("blobs"));
    builtin_blobs.sort();

    let mut child = hearth(&["create", "big"]).spawn().unwrap();
    // Kill it as soon as the copy into tmp/ has started.
    let tmp = models.join("tmp");
    let mut killed_mid_copy = false;
    loop {
        if !files_in(&tmp).is_empty() {
            child.kill().unwrap();
            killed_mid_copy = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let status = child.wait().unwrap();

    let list = hearth(&["list"]).stdout(Stdio::piped()).output().unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    if killed_mid_copy && !status.success() {
        assert_eq!(list.lines().count(), 2, "only the built-in model:\n{list}");
        let mut blobs = files_in(&models.join("blobs"));
        blobs.sort();
        assert_eq!(blobs, builtin_blobs);
        // `hearth list` opened the store with nobody else using it: the
        // partial file is gone.
        assert!(files_in(&tmp).is_empty(), "{:?}", files_in(&tmp));
    } else {
        // The create finished before it could be killed: then it is complete.
        assert_eq!(list.lines().count(), 3, "{list}");
    }

    // Either way, creating again works and yields the whole file.
    assert!(hearth(&["create", "big"]).status().unwrap().success());
    let blobs = files_in(&models.join("blobs"));
    let size = std::fs::metadata(dir.join("big.gguf")).unwrap().len();
    assert!(blobs.iter().any(|b| {
        std::fs::metadata(models.join("blobs").join(b))
            .unwrap()
            .len()
            == size
    }));
    std::fs::remove_dir_all(&dir).unwrap();
}
