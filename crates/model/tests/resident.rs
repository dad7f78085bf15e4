//! Resident memory of a loaded model (Linux, read from /proc/self/smaps): the
//! file pages of the matrices repacked at load leave the resident set and stay
//! out while the model runs, a tied embedding table included (its rows are
//! read from the packed copy).
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};

use gguf::{GgufFile, TensorType};
use kernels::matmul::PackedMatrix;
use model::synthetic::Spec;
use model::{LoadOptions, Logits, Model};

/// Resident KiB of the mappings of `path` in this process.
fn mapped_rss_kib(path: &Path) -> u64 {
    gguf::mapped_resident_kib(path).expect("/proc/self/smaps")
}

#[test]
#[cfg_attr(
    any(not(hearth_avx2), hearth_no_repack),
    ignore = "needs AVX2 and repacking (nothing is released without packed kernels)"
)]
fn repacked_weights_leave_the_resident_set_and_stay_out() {
    assert!(
        PackedMatrix::new(TensorType::Q8_0, 32, 16, &[0; 16 * 34]).is_some(),
        "no packed Q8_0 kernel"
    );
    // Tied head over 4096 rows: a 1 MiB Q8_0 embedding table, packed as the head.
    let spec = Spec {
        n_vocab: 4096,
        tied_output: true,
        ..Spec::tiny_llama()
    };
    let path: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("resident-tied.gguf");
    spec.write(&path, TensorType::Q8_0).unwrap();
    let path = path.canonicalize().unwrap();
    let file = GgufFile::open(&path).unwrap();
    let size_kib = |name: &str| file.tensor(name).unwrap().size >> 10;
    let embd_kib = size_kib("token_embd.weight");
    let matrices_kib: u64 = file
        .tensors()
        .iter()
        .filter(|t| t.dims.len() == 2)
        .map(|t| t.size >> 10)
        .sum();
    drop(file);

    let model = Model::load_with(&path, &LoadOptions { threads: Some(2) }).unwrap();
    let loaded = mapped_rss_kib(&path);
    // What is left: the norm vectors' pages (copied to f32 at load).
    assert!(
        loaded < matrices_kib / 16,
        "{loaded} KiB of the file resident after load ({matrices_kib} KiB of matrices)"
    );

    // 256 tokens spread over the whole table.
    let tokens: Vec<u32> = (0..256).map(|i| i * 16 + i % 16).collect();
    let mut state = model.new_state(256).unwrap();
    model.forward(&mut state, &tokens, Logits::Last).unwrap();
    let ran = mapped_rss_kib(&path);
    assert!(
        ran < loaded + embd_kib / 16,
        "{ran} KiB resident after a forward pass, {loaded} after load (table {embd_kib} KiB)"
    );
}
