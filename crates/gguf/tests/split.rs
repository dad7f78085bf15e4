//! Split models: shards found from any of them, and every inconsistency reported.

mod common;

use std::path::{Path, PathBuf};

use common::bytes;
use gguf::{Error, GgufModel, GgufWriter, TensorType, Value};

/// A fresh directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gguf-split-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Shard `no` (0-based) of `count`, holding the named tensors (`[8]` of f32 each).
fn shard(no: u16, count: u16, n_total: i32, tensors: &[&str]) -> GgufWriter {
    let mut w = GgufWriter::new();
    if no == 0 {
        w.add_str("general.architecture", "llama");
    }
    w.add("split.no", Value::U16(no));
    w.add("split.count", Value::U16(count));
    w.add("split.tensors.count", Value::I32(n_total));
    for (i, name) in tensors.iter().enumerate() {
        w.add_tensor(
            name,
            TensorType::F32,
            &[8],
            &bytes(32, no as u8 * 16 + i as u8),
        )
        .unwrap();
    }
    w
}

fn shard_path(dir: &Path, i: usize, n: usize) -> PathBuf {
    dir.join(format!("m-{i:05}-of-{n:05}.gguf"))
}

/// Writes a three-shard model: a, b | c | d, e.
fn write_three(dir: &Path) {
    let layout: [&[&str]; 3] = [&["a", "b"], &["c"], &["d", "e"]];
    for (i, tensors) in layout.iter().enumerate() {
        shard(i as u16, 3, 5, tensors)
            .write_file(shard_path(dir, i + 1, 3))
            .unwrap();
    }
}

#[test]
fn opens_from_any_shard() {
    let dir = temp_dir("any");
    write_three(&dir);
    for i in 1..=3 {
        let model = GgufModel::open(shard_path(&dir, i, 3)).unwrap();
        assert_eq!(model.files().len(), 3);
        assert_eq!(
            model.metadata().get_str("general.architecture").unwrap(),
            "llama"
        );
        let names: Vec<(usize, &str)> =
            model.tensors().map(|(s, t)| (s, t.name.as_str())).collect();
        assert_eq!(names, [(0, "a"), (0, "b"), (1, "c"), (2, "d"), (2, "e")]);
        assert_eq!(model.tensor_data("d").unwrap(), bytes(32, 32));
        assert_eq!(model.tensor("c").unwrap().dims, [8]);
        assert!(
            matches!(model.tensor_data("z"), Err(Error::TensorNotFound { name }) if name == "z")
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn single_file_is_one_shard() {
    let dir = temp_dir("single");
    let path = dir.join("plain.gguf");
    let mut w = GgufWriter::new();
    w.add_tensor("t", TensorType::F32, &[8], &bytes(32, 1))
        .unwrap();
    w.write_file(&path).unwrap();
    let model = GgufModel::open(&path).unwrap();
    assert_eq!((model.files().len(), model.n_tensors()), (1, 1));
    assert_eq!(model.tensor_data("t").unwrap(), bytes(32, 1));
    assert_eq!(model.file_size(), std::fs::metadata(&path).unwrap().len());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn missing_shard_is_named() {
    let dir = temp_dir("missing");
    write_three(&dir);
    std::fs::remove_file(shard_path(&dir, 2, 3)).unwrap();
    match GgufModel::open(shard_path(&dir, 1, 3)) {
        Err(Error::MissingShard { path }) => assert_eq!(path, shard_path(&dir, 2, 3)),
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn shard_count_mismatch() {
    let dir = temp_dir("count");
    write_three(&dir);
    // Shard 2 claims the model has four shards.
    shard(1, 4, 5, &["c"])
        .write_file(shard_path(&dir, 2, 3))
        .unwrap();
    let err = GgufModel::open(shard_path(&dir, 1, 3)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::SplitMismatch {
                key: "split.count",
                expected: 3,
                found: 4,
                ..
            }
        ),
        "{err}"
    );
    // A shard whose split.no disagrees with its name.
    shard(2, 3, 5, &["c"])
        .write_file(shard_path(&dir, 2, 3))
        .unwrap();
    let err = GgufModel::open(shard_path(&dir, 1, 3)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::SplitMismatch {
                key: "split.no",
                expected: 1,
                found: 2,
                ..
            }
        ),
        "{err}"
    );
    // A file name that disagrees with split.count.
    let odd = dir.join("m-00001-of-00002.gguf");
    std::fs::copy(shard_path(&dir, 1, 3), &odd).unwrap();
    assert!(matches!(
        GgufModel::open(&odd),
        Err(Error::SplitMismatch {
            key: "split.count",
            ..
        })
    ));
    // A split file not named like one.
    let plain = dir.join("renamed.gguf");
    std::fs::copy(shard_path(&dir, 1, 3), &plain).unwrap();
    assert!(matches!(
        GgufModel::open(&plain),
        Err(Error::SplitName { count: 3, .. })
    ));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn tensor_in_two_shards() {
    let dir = temp_dir("twice");
    write_three(&dir);
    shard(2, 3, 5, &["d", "a"])
        .write_file(shard_path(&dir, 3, 3))
        .unwrap();
    let err = GgufModel::open(shard_path(&dir, 3, 3)).unwrap_err();
    assert!(
        matches!(&err, Error::TensorInTwoShards { tensor, first: 0, second: 2 } if tensor == "a"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn split_tensor_count_disagrees() {
    let dir = temp_dir("total");
    write_three(&dir);
    shard(0, 3, 6, &["a", "b"])
        .write_file(shard_path(&dir, 1, 3))
        .unwrap();
    let err = GgufModel::open(shard_path(&dir, 1, 3)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::SplitTensorCount {
                expected: 6,
                found: 5
            }
        ),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
