//! Helpers shared by the store's integration tests: scratch directories and
//! small GGUF files written by our own writer.

use std::path::{Path, PathBuf};

use gguf::{GgufWriter, TensorType};
use store::{Digest, ModelName, Modelfile, Store};

/// A fresh, empty directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearth-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a tiny "llama" GGUF (file type Q8_0, two tensors) whose bytes depend
/// on `seed`, and returns its path.
pub fn write_gguf(dir: &Path, file_name: &str, seed: u8) -> PathBuf {
    let mut w = GgufWriter::new();
    w.add_str("general.architecture", "llama");
    w.add_str("general.name", "store test");
    w.add_u32("general.file_type", 7);
    w.add_u32("llama.context_length", 2048);
    w.add_u32("llama.embedding_length", 64);
    w.add_u32("llama.block_count", 1);
    let norm: Vec<u8> = (0..64u32)
        .flat_map(|i| (i as f32 + f32::from(seed)).to_le_bytes())
        .collect();
    w.add_tensor("output_norm.weight", TensorType::F32, &[64], &norm)
        .unwrap();
    // Q8_0: 34 bytes per block of 32.
    let q8 = vec![seed; 34 * 2 * 64];
    w.add_tensor("output.weight", TensorType::Q8_0, &[64, 64], &q8)
        .unwrap();
    let path = dir.join(file_name);
    w.write_file(&path).unwrap();
    path
}

/// Parses a model name, panicking on a bad one (test inputs are fixed).
pub fn name(s: &str) -> ModelName {
    ModelName::parse(s).unwrap()
}

/// Creates `model` from Modelfile text, with FROM paths relative to `dir`.
pub fn create(store: &Store, model: &str, dir: &Path, modelfile: &str) -> store::Manifest {
    let modelfile = Modelfile::parse(modelfile).unwrap();
    store
        .create(&name(model), &modelfile, dir, &mut |_| {})
        .unwrap()
}

/// The digests of the blobs on disk, sorted.
pub fn blobs_on_disk(store: &Store) -> Vec<Digest> {
    let mut blobs: Vec<Digest> = std::fs::read_dir(store.root().join("blobs"))
        .unwrap()
        .map(|e| Digest::parse(e.unwrap().file_name().to_str().unwrap()).unwrap())
        .collect();
    blobs.sort();
    blobs
}
