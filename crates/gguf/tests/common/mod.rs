//! Files shared by the integration tests: a sample written by our writer, and a
//! raw byte builder for hand-made (often malformed) headers.

#![allow(dead_code)] // each test binary uses a different subset

use gguf::{Array, GgufWriter, TensorType, Value};

/// Deterministic filler bytes.
pub fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A writer holding several metadata types (nested arrays included) and tensors
/// of several types. The last tensor's size is a multiple of the alignment, so the
/// file has no trailing padding: every strict prefix of it is invalid.
pub fn sample_writer() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.add_str("general.architecture", "llama");
    w.add_str("general.name", "sample ünïcode");
    w.add_u32("llama.context_length", 2048);
    w.add_u64("llama.embedding_length", 64);
    w.add("general.u8", Value::U8(200));
    w.add("general.i8", Value::I8(-7));
    w.add("general.u16", Value::U16(65000));
    w.add("general.i16", Value::I16(-300));
    w.add_i32("general.i32", -123456);
    w.add("general.i64", Value::I64(i64::MIN));
    w.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-5);
    w.add("general.f64", Value::F64(std::f64::consts::PI));
    w.add_bool("general.flag", true);
    w.add_str_array("tokenizer.ggml.tokens", &["<s>", "</s>", "a", "b", "ab"]);
    w.add_f32_array("tokenizer.ggml.scores", &[0.0, 0.0, -1.0, -2.0, -3.5]);
    w.add_i32_array("tokenizer.ggml.token_type", &[3, 3, 1, 1, 1]);
    w.add(
        "general.bools",
        Value::Array(Array::Bool(vec![true, false, true])),
    );
    w.add("general.empty", Value::Array(Array::U64(vec![])));
    w.add(
        "general.nested",
        Value::Array(Array::Array(vec![
            Array::I32(vec![1, 2, 3]),
            Array::String(vec!["x".into()]),
            Array::Array(vec![Array::F64(vec![0.5])]),
        ])),
    );
    let tensors: [(&str, TensorType, &[u64]); 6] = [
        ("token_embd.weight", TensorType::Q8_0, &[32, 5]),
        ("blk.0.attn_q.weight", TensorType::Q4_0, &[64, 2]),
        ("blk.0.ffn_up.weight", TensorType::Q4_K, &[256, 1]),
        ("blk.0.attn_norm.weight", TensorType::F16, &[24]),
        ("positions", TensorType::I32, &[5]),
        ("output_norm.weight", TensorType::F32, &[8, 2]),
    ];
    for (i, (name, ty, dims)) in tensors.into_iter().enumerate() {
        let rows: u64 = dims[1..].iter().product();
        let size = ty.row_size(dims[0]).unwrap() * rows;
        w.add_tensor(name, ty, dims, &bytes(size as usize, i as u8))
            .unwrap();
    }
    w
}

/// The sample serialised.
pub fn sample_bytes() -> Vec<u8> {
    let mut out = Vec::new();
    sample_writer().write(&mut out).unwrap();
    out
}

/// Builds GGUF bytes field by field.
#[derive(Default)]
pub struct Raw(pub Vec<u8>);

impl Raw {
    /// Magic, version, counts.
    pub fn header(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        Raw::default()
            .bytes(b"GGUF")
            .u32(version)
            .u64(n_tensors)
            .u64(n_kv)
    }
    pub fn bytes(mut self, b: &[u8]) -> Raw {
        self.0.extend_from_slice(b);
        self
    }
    pub fn u32(self, v: u32) -> Raw {
        self.bytes(&v.to_le_bytes())
    }
    pub fn u64(self, v: u64) -> Raw {
        self.bytes(&v.to_le_bytes())
    }
    pub fn str(self, s: &str) -> Raw {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }
    /// A `u32` metadata entry.
    pub fn kv_u32(self, key: &str, v: u32) -> Raw {
        self.str(key).u32(4).u32(v)
    }
    /// A tensor descriptor.
    pub fn tensor(self, name: &str, dims: &[u64], ty: u32, offset: u64) -> Raw {
        let mut r = self.str(name).u32(dims.len() as u32);
        for &d in dims {
            r = r.u64(d);
        }
        r.u32(ty).u64(offset)
    }
    /// Zero padding to `align`, then `n` data bytes.
    pub fn data(mut self, align: usize, n: usize) -> Raw {
        let len = self.0.len().div_ceil(align) * align;
        self.0.resize(len + n, 0);
        self
    }
}
