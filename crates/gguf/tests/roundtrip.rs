//! Writer → reader round trips, and the layout gguf-py produces.

mod common;

use common::{bytes, sample_bytes, sample_writer};
use gguf::{Array, Error, GgufFile, GgufWriter, TensorType, Value};

#[test]
fn sample_round_trips() {
    let w = sample_writer();
    let file = GgufFile::from_bytes(sample_bytes()).unwrap();
    assert_eq!(file.version(), 3);
    assert_eq!(file.alignment(), 32);
    assert_eq!(file.data_offset() % 32, 0);
    assert_eq!(file.metadata(), w.metadata());
    assert_eq!(
        file.metadata().get_str("general.name").unwrap(),
        "sample ünïcode"
    );
    assert_eq!(
        file.metadata().get_u32("llama.embedding_length").unwrap(),
        64
    );
    assert_eq!(file.tensors().len(), 6);
    let mut expected_offset = 0;
    for (i, t) in file.tensors().iter().enumerate() {
        assert_eq!(t.offset, expected_offset, "{}", t.name);
        assert_eq!(
            file.tensor_data(t),
            bytes(t.size as usize, i as u8),
            "{}",
            t.name
        );
        expected_offset = (t.offset + t.size).div_ceil(32) * 32;
    }
    let q4k = file.tensor("blk.0.ffn_up.weight").unwrap();
    assert_eq!(
        (q4k.ty, q4k.dims.as_slice(), q4k.size, q4k.n_elements()),
        (TensorType::Q4_K, &[256, 1][..], 144, 256)
    );
    assert!(file.tensor("nope").is_none());
    assert_eq!(file.file_size(), file.data_offset() + expected_offset);
}

#[test]
fn custom_alignment_pads_every_tensor() {
    let mut w = GgufWriter::new();
    w.set_alignment(64).unwrap();
    w.add_tensor("a", TensorType::F32, &[3], &bytes(12, 1))
        .unwrap();
    w.add_tensor("b", TensorType::F16, &[5, 1, 1, 2], &bytes(20, 2))
        .unwrap();
    let mut out = Vec::new();
    w.write(&mut out).unwrap();
    let file = GgufFile::from_bytes(out).unwrap();
    assert_eq!(file.alignment(), 64);
    assert_eq!(
        file.metadata().get("general.alignment"),
        Some(&Value::U32(64))
    );
    assert_eq!(file.data_offset() % 64, 0);
    assert_eq!(file.tensors()[1].offset, 64);
    assert_eq!(file.tensors()[1].dims, [5, 1, 1, 2]);
    assert_eq!(file.file_size(), file.data_offset() + 128);
    assert_eq!(file.tensor_data(&file.tensors()[1]), bytes(20, 2));
    assert!(matches!(
        w.set_alignment(48),
        Err(Error::BadAlignment { .. })
    ));
    assert!(matches!(
        w.set_alignment(0),
        Err(Error::BadAlignment { .. })
    ));
}

#[test]
fn empty_file_round_trips() {
    let mut out = Vec::new();
    GgufWriter::new().write(&mut out).unwrap();
    // magic, version, two counts: 24 bytes, padded to 32 like gguf-py does.
    assert_eq!(out.len(), 32);
    let file = GgufFile::from_bytes(out).unwrap();
    assert!(file.metadata().is_empty() && file.tensors().is_empty());
}

#[test]
fn writer_rejects_bad_tensors() {
    let mut w = GgufWriter::new();
    w.add_tensor("a", TensorType::F32, &[2], &bytes(8, 0))
        .unwrap();
    assert!(matches!(
        w.add_tensor("a", TensorType::F32, &[2], &bytes(8, 0)),
        Err(Error::DuplicateTensor { name }) if name == "a"
    ));
    assert!(matches!(
        w.add_tensor("b", TensorType::F32, &[2], &bytes(7, 0)),
        Err(Error::TensorSizeMismatch {
            expected: 8,
            found: 7,
            ..
        })
    ));
    assert!(matches!(
        w.add_tensor("c", TensorType::Q4_0, &[48], &bytes(27, 0)),
        Err(Error::PartialBlock {
            ne0: 48,
            block_size: 32,
            ..
        })
    ));
    assert!(matches!(
        w.add_tensor("d", TensorType::F32, &[1, 1, 1, 1, 1], &bytes(4, 0)),
        Err(Error::TooManyDims { n_dims: 5, .. })
    ));
    assert!(matches!(
        w.add_tensor("e", TensorType::F32, &[u64::MAX, 2], &[]),
        Err(Error::DimOverflow { .. })
    ));
    let long = "x".repeat(64);
    assert!(matches!(
        w.add_tensor(&long, TensorType::F32, &[1], &bytes(4, 0)),
        Err(Error::BadTensorName { .. })
    ));
}

#[test]
fn writer_rejects_unreadable_metadata() {
    let mut w = GgufWriter::new();
    w.add("general.alignment", Value::U64(32));
    assert!(matches!(
        w.write(&mut Vec::new()),
        Err(Error::BadAlignment { .. })
    ));
    let mut w = GgufWriter::new();
    w.add("", Value::U8(0));
    assert!(matches!(
        w.write(&mut Vec::new()),
        Err(Error::EmptyKey { index: 0 })
    ));
    let mut deep = Array::U8(vec![1]);
    for _ in 0..8 {
        deep = Array::Array(vec![deep]);
    }
    let mut w = GgufWriter::new();
    w.add("deep", Value::Array(deep));
    assert!(matches!(
        w.write(&mut Vec::new()),
        Err(Error::NestingTooDeep { .. })
    ));
}

#[test]
fn write_file_is_atomic_and_readable() {
    let dir = std::env::temp_dir().join(format!("gguf-write-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sample.gguf");
    sample_writer().write_file(&path).unwrap();
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.tensors().len(), 6);
    assert_eq!(std::fs::read(&path).unwrap(), sample_bytes());
    // A failed write leaves the existing file and no temporary behind.
    let mut bad = GgufWriter::new();
    bad.add("", Value::U8(0));
    assert!(bad.write_file(&path).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), sample_bytes());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn open_reports_missing_file() {
    let err = GgufFile::open("/nonexistent/model.gguf").unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/model.gguf"), "{err}");
}

mod properties {
    use gguf::{Array, GgufFile, GgufWriter, Value};
    use proptest::prelude::*;

    /// Floats without NaN, so that `==` compares them.
    fn f32s() -> impl Strategy<Value = f32> {
        any::<f32>().prop_filter("NaN", |x| !x.is_nan())
    }

    fn f64s() -> impl Strategy<Value = f64> {
        any::<f64>().prop_filter("NaN", |x| !x.is_nan())
    }

    fn arrays() -> impl Strategy<Value = Array> {
        let leaf = prop_oneof![
            prop::collection::vec(any::<u8>(), 0..5).prop_map(Array::U8),
            prop::collection::vec(any::<i16>(), 0..5).prop_map(Array::I16),
            prop::collection::vec(any::<i32>(), 0..5).prop_map(Array::I32),
            prop::collection::vec(any::<u64>(), 0..5).prop_map(Array::U64),
            prop::collection::vec(f32s(), 0..5).prop_map(Array::F32),
            prop::collection::vec(f64s(), 0..5).prop_map(Array::F64),
            prop::collection::vec(any::<bool>(), 0..5).prop_map(Array::Bool),
            prop::collection::vec(".{0,6}", 0..5).prop_map(Array::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop::collection::vec(inner, 0..4).prop_map(Array::Array)
        })
    }

    fn values() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<u8>().prop_map(Value::U8),
            any::<i8>().prop_map(Value::I8),
            any::<u16>().prop_map(Value::U16),
            any::<i16>().prop_map(Value::I16),
            any::<u32>().prop_map(Value::U32),
            any::<i32>().prop_map(Value::I32),
            any::<u64>().prop_map(Value::U64),
            any::<i64>().prop_map(Value::I64),
            f32s().prop_map(Value::F32),
            f64s().prop_map(Value::F64),
            any::<bool>().prop_map(Value::Bool),
            ".{0,12}".prop_map(Value::String),
            arrays().prop_map(Value::Array),
        ]
    }

    proptest! {
        #[test]
        fn any_metadata_round_trips(entries in prop::collection::vec(("[a-z.]{1,12}", values()), 0..12)) {
            let mut w = GgufWriter::new();
            for (key, value) in &entries {
                if key != "general.alignment" {
                    w.add(key, value.clone());
                }
            }
            let mut out = Vec::new();
            w.write(&mut out).unwrap();
            let file = GgufFile::from_bytes(out).unwrap();
            prop_assert_eq!(file.metadata(), w.metadata());
        }
    }
}
