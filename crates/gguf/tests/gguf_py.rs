//! Compatibility with gguf-py: a file written by gguf-py's GGUFWriter
//! (tools/gguf-py/make_fixture.py) is read exactly, and our writer, given the
//! same metadata and tensors, reproduces it byte for byte.

use gguf::{Array, GgufFile, GgufWriter, TensorType, Value};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gguf_py.gguf");

#[test]
fn reads_every_value_gguf_py_wrote() {
    let file = GgufFile::open(FIXTURE).unwrap();
    let m = file.metadata();
    assert_eq!(file.version(), 3);
    assert_eq!(file.alignment(), 64);
    assert_eq!(m.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(m.get_str("general.name").unwrap(), "gguf-py fixture");
    assert_eq!(m.get("test.u8"), Some(&Value::U8(250)));
    assert_eq!(m.get("test.i8"), Some(&Value::I8(-100)));
    assert_eq!(m.get("test.u16"), Some(&Value::U16(60000)));
    assert_eq!(m.get("test.i16"), Some(&Value::I16(-30000)));
    assert_eq!(m.get("test.u32"), Some(&Value::U32(4_000_000_000)));
    assert_eq!(m.get("test.i32"), Some(&Value::I32(-2_000_000_000)));
    assert_eq!(m.get("test.f32"), Some(&Value::F32(0.25)));
    assert_eq!(m.get("test.u64"), Some(&Value::U64((1 << 63) + 5)));
    assert_eq!(m.get("test.i64"), Some(&Value::I64(-(1 << 62))));
    assert_eq!(m.get("test.f64"), Some(&Value::F64(-1.5e300)));
    assert!(m.get_bool("test.bool").unwrap());
    assert_eq!(m.get_str("test.str").unwrap(), "héllo ✓");
    assert_eq!(m.get_i32_array("test.arr_i32").unwrap(), &[1, -2, 3]);
    assert_eq!(m.get_f32_array("test.arr_f32").unwrap(), &[0.5, -0.25]);
    assert_eq!(m.get_str_array("test.arr_str").unwrap(), &["a", "", "ccc"]);
    assert_eq!(
        m.get_array("test.arr_bool").unwrap(),
        &Array::Bool(vec![true, false])
    );
    assert_eq!(
        m.get_array("test.arr_u64").unwrap(),
        &Array::U64(vec![7, 8])
    );
    let nested = Array::Array(vec![
        Array::I32(vec![1, 2]),
        Array::String(vec!["x".into(), "y".into(), "z".into()]),
    ]);
    assert_eq!(m.get_array("test.nested").unwrap(), &nested);

    let shapes: Vec<_> = file
        .tensors()
        .iter()
        .map(|t| (t.name.as_str(), t.ty, t.dims.clone()))
        .collect();
    assert_eq!(
        shapes,
        [
            ("f32", TensorType::F32, vec![3, 2]),
            ("f16", TensorType::F16, vec![3]),
            ("q8_0", TensorType::Q8_0, vec![32, 1]),
            ("i8", TensorType::I8, vec![2, 3]),
        ]
    );
    let f32s: Vec<f32> = file
        .tensor_data(file.tensor("f32").unwrap())
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(f32s, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    // f16 1.0, -2.0, 0.5.
    assert_eq!(
        file.tensor_data(file.tensor("f16").unwrap()),
        [0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38]
    );
    let q8 = file.tensor_data(file.tensor("q8_0").unwrap());
    assert_eq!((q8.len(), q8[1], q8[33]), (34, 0x3c, 31));
    assert_eq!(
        file.tensor_data(file.tensor("i8").unwrap()),
        [0xff, 2, 3, 0xfc, 5, 6]
    );
}

#[test]
fn our_writer_reproduces_gguf_py_bytes() {
    let original = std::fs::read(FIXTURE).unwrap();
    let file = GgufFile::from_bytes(original.clone()).unwrap();
    let mut w = GgufWriter::new();
    for (key, value) in file.metadata().iter() {
        w.add(key, value.clone());
    }
    for t in file.tensors() {
        w.add_tensor(&t.name, t.ty, &t.dims, file.tensor_data(t))
            .unwrap();
    }
    let mut ours = Vec::new();
    w.write(&mut ours).unwrap();
    assert_eq!(ours.len(), original.len());
    assert!(
        ours == original,
        "first difference at byte {:?}",
        ours.iter().zip(&original).position(|(a, b)| a != b)
    );
}
