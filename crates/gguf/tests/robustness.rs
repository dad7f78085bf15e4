//! Malformed input: every truncation, thousands of random mutations, and one test
//! per error variant. A panic anywhere fails the test.

mod common;

use common::{Raw, sample_bytes};
use gguf::{Error, GgufFile};

fn parse(raw: Raw) -> Result<GgufFile, Error> {
    GgufFile::from_bytes(raw.0)
}

/// Reads everything a parsed file offers, so mutations reach accessors too.
fn exercise(file: &GgufFile) {
    for (key, value) in file.metadata().iter() {
        let _ = (key.len(), value.type_name(), file.metadata().get_u64(key));
    }
    for t in file.tensors() {
        assert_eq!(file.tensor_data(t).len() as u64, t.size, "{}", t.name);
        let _ = t.n_elements();
    }
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = sample_bytes();
    exercise(&GgufFile::from_bytes(bytes.clone()).unwrap());
    for n in 0..bytes.len() {
        let result = GgufFile::from_bytes(bytes[..n].to_vec());
        assert!(result.is_err(), "prefix of {n} bytes parsed");
    }
}

#[test]
fn truncation_names_the_field() {
    let bytes = sample_bytes();
    match GgufFile::from_bytes(bytes[..10].to_vec()) {
        Err(Error::Truncated {
            what,
            offset: 8,
            needed: 8,
            available: 2,
        }) => {
            assert_eq!(what, "tensor count")
        }
        other => panic!("{other:?}"),
    }
    // Cut inside the value of a key: the message names the key.
    let key = b"tokenizer.ggml.tokens";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 20;
    let err = GgufFile::from_bytes(bytes[..at].to_vec()).unwrap_err();
    assert!(matches!(err, Error::ArrayTooLong { len: 5, .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("value of key 'tokenizer.ggml.tokens'"),
        "{err}"
    );
    let last = bytes.len() - 1;
    match GgufFile::from_bytes(bytes[..last].to_vec()) {
        Err(Error::TensorOutOfBounds { tensor, .. }) => assert_eq!(tensor, "output_norm.weight"),
        other => panic!("{other:?}"),
    }
}

/// SplitMix64, so the mutations are the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_mutations_never_panic() {
    let original = sample_bytes();
    let mut rng = Rng(0x6767_7566);
    let (mut ok, mut err) = (0, 0);
    for _ in 0..5000 {
        let mut bytes = original.clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(bytes.len());
            // Mostly single-bit flips; sometimes a whole random byte, or 0xff runs
            // that turn lengths and counts huge.
            match rng.below(4) {
                0 => bytes[i] = rng.next() as u8,
                1 => bytes[i..(i + 8).min(original.len())].fill(0xff),
                _ => bytes[i] ^= 1 << rng.below(8),
            }
        }
        match GgufFile::from_bytes(bytes) {
            Ok(file) => {
                exercise(&file);
                ok += 1;
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                err += 1;
            }
        }
    }
    // Both outcomes occur: flips in tensor data or values parse, flips in
    // lengths and type ids do not.
    assert!(ok > 100 && err > 100, "ok {ok}, err {err}");
}

#[test]
fn bad_magic() {
    let err = parse(Raw::default().bytes(b"GGUX").u32(3).u64(0).u64(0)).unwrap_err();
    assert!(matches!(err, Error::BadMagic { found } if &found == b"GGUX"));
}

#[test]
fn unsupported_versions() {
    for v in [0, 1, 4, 0x0300_0000] {
        let err = parse(Raw::header(v, 0, 0)).unwrap_err();
        assert!(
            matches!(err, Error::UnsupportedVersion(found) if found == v),
            "{err}"
        );
    }
    assert!(parse(Raw::header(2, 0, 0)).is_ok());
}

#[test]
fn huge_string_length() {
    let err = parse(Raw::header(3, 0, 1).u64(1 << 40).bytes(b"key\x04\0\0\0")).unwrap_err();
    assert!(
        matches!(err, Error::StringTooLong { len, available: 7, .. } if len == 1 << 40),
        "{err}"
    );
}

#[test]
fn huge_array_length() {
    let raw = Raw::header(3, 0, 1)
        .str("a")
        .u32(9)
        .u32(4)
        .u64(1 << 60)
        .u32(1);
    let err = parse(raw).unwrap_err();
    assert!(
        matches!(err, Error::ArrayTooLong { len, available: 4, .. } if len == 1 << 60),
        "{err}"
    );
    // Multiplying the count by the element size must not wrap around.
    let raw = Raw::header(3, 0, 1)
        .str("a")
        .u32(9)
        .u32(10)
        .u64(u64::MAX / 4)
        .u32(1);
    assert!(matches!(
        parse(raw),
        Err(Error::ArrayTooLong {
            needed: u64::MAX,
            ..
        })
    ));
    // Strings take at least their 8-byte length each.
    let raw = Raw::header(3, 0, 1).str("a").u32(9).u32(8).u64(2).str("x");
    assert!(matches!(
        parse(raw),
        Err(Error::ArrayTooLong {
            len: 2,
            needed: 16,
            available: 9,
            ..
        })
    ));
}

#[test]
fn huge_counts() {
    let err = parse(Raw::header(3, u64::MAX, 0)).unwrap_err();
    assert!(matches!(
        err,
        Error::TooManyEntries {
            what: "tensors",
            count: u64::MAX,
            ..
        }
    ));
    let err = parse(Raw::header(3, 0, 1 << 62).kv_u32("a", 1)).unwrap_err();
    assert!(matches!(
        err,
        Error::TooManyEntries {
            what: "metadata entries",
            ..
        }
    ));
}

#[test]
fn unknown_value_type() {
    let err = parse(Raw::header(3, 0, 1).str("k").u32(13).u32(0)).unwrap_err();
    assert!(matches!(&err, Error::UnknownValueType { key, id: 13 } if key == "k"));
    let err = parse(Raw::header(3, 0, 1).str("k").u32(9).u32(77).u64(0)).unwrap_err();
    assert!(matches!(&err, Error::UnknownValueType { key, id: 77 } if key == "k"));
}

#[test]
fn nesting_too_deep() {
    let mut raw = Raw::header(3, 0, 1).str("deep").u32(9);
    for _ in 0..20 {
        raw = raw.u32(9).u64(1);
    }
    let err = parse(raw.u32(0).u64(0)).unwrap_err();
    assert!(
        matches!(&err, Error::NestingTooDeep { key, max: 8 } if key == "deep"),
        "{err}"
    );
}

#[test]
fn strings_must_be_utf8() {
    let raw = Raw::header(3, 0, 1)
        .u64(2)
        .bytes(&[0xc3, 0x28])
        .u32(0)
        .bytes(&[1]);
    assert!(
        matches!(parse(raw), Err(Error::InvalidUtf8 { what }) if what == "key of metadata entry 0")
    );
    let raw = Raw::header(3, 0, 1).str("s").u32(8).u64(1).bytes(&[0xff]);
    assert!(matches!(parse(raw), Err(Error::InvalidUtf8 { what }) if what == "value of key 's'"));
}

#[test]
fn empty_and_duplicate_keys() {
    let raw = Raw::header(3, 0, 1).kv_u32("", 1);
    assert!(matches!(parse(raw), Err(Error::EmptyKey { index: 0 })));
    let raw = Raw::header(3, 0, 2).kv_u32("a", 1).kv_u32("a", 2);
    assert!(matches!(parse(raw), Err(Error::DuplicateKey { key }) if key == "a"));
}

#[test]
fn unknown_tensor_type() {
    let raw = Raw::header(3, 1, 0).tensor("t", &[4], 4, 0).data(32, 32);
    assert!(matches!(parse(raw), Err(Error::UnknownTensorType { tensor, id: 4 }) if tensor == "t"));
}

#[test]
fn dims_overflow_and_too_many_dims() {
    let raw = Raw::header(3, 1, 0)
        .tensor("t", &[1 << 32, 1 << 32], 0, 0)
        .data(32, 0);
    assert!(matches!(parse(raw), Err(Error::DimOverflow { tensor, .. }) if tensor == "t"));
    let raw = Raw::header(3, 1, 0)
        .tensor("t", &[u64::MAX], 24, 0)
        .data(32, 0);
    assert!(matches!(parse(raw), Err(Error::DimOverflow { .. })));
    // Elements fit in i64 but bytes do not.
    let raw = Raw::header(3, 1, 0)
        .tensor("t", &[1 << 62], 28, 0)
        .data(32, 0);
    assert!(matches!(parse(raw), Err(Error::DimOverflow { .. })));
    let raw = Raw::header(3, 1, 0)
        .tensor("t", &[1, 1, 1, 1, 1], 0, 0)
        .data(32, 4);
    assert!(matches!(
        parse(raw),
        Err(Error::TooManyDims { n_dims: 5, .. })
    ));
}

#[test]
fn partial_block() {
    let raw = Raw::header(3, 1, 0)
        .tensor("q", &[33, 2], 2, 0)
        .data(32, 64);
    assert!(
        matches!(parse(raw), Err(Error::PartialBlock { tensor, ne0: 33, block_size: 32, .. }) if tensor == "q")
    );
}

#[test]
fn duplicate_tensor() {
    let raw = Raw::header(3, 2, 0)
        .tensor("t", &[8], 0, 0)
        .tensor("t", &[8], 0, 32)
        .data(32, 64);
    assert!(matches!(parse(raw), Err(Error::DuplicateTensor { name }) if name == "t"));
}

#[test]
fn misaligned_offset() {
    let raw = Raw::header(3, 1, 0).tensor("t", &[2], 0, 8).data(32, 32);
    assert!(matches!(
        parse(raw),
        Err(Error::MisalignedTensor {
            offset: 8,
            alignment: 32,
            ..
        })
    ));
    // With a custom alignment of 8 the same offset is fine.
    let raw = Raw::header(3, 1, 1)
        .kv_u32("general.alignment", 8)
        .tensor("t", &[2], 0, 8)
        .data(8, 16);
    assert!(parse(raw).is_ok());
}

#[test]
fn overlapping_tensors() {
    let raw = Raw::header(3, 2, 0)
        .tensor("a", &[8], 0, 0)
        .tensor("b", &[8], 0, 32)
        .data(32, 64);
    assert!(parse(raw).is_ok());
    let raw = Raw::header(3, 2, 0)
        .tensor("a", &[16], 0, 32)
        .tensor("b", &[16], 0, 0)
        .data(32, 96);
    assert!(matches!(parse(raw), Err(Error::OverlappingTensors { a, b }) if a == "b" && b == "a"));
}

#[test]
fn data_beyond_end() {
    let raw = Raw::header(3, 1, 0).tensor("t", &[16], 0, 0).data(32, 32);
    let err = parse(raw).unwrap_err();
    assert!(
        matches!(&err, Error::TensorOutOfBounds { tensor, end: 64, data_size: 32 } if tensor == "t")
    );
    let raw = Raw::header(3, 1, 0)
        .tensor("t", &[16], 0, u64::MAX - 31)
        .data(32, 64);
    assert!(matches!(
        parse(raw),
        Err(Error::TensorOutOfBounds { end: u64::MAX, .. })
    ));
}

#[test]
fn bad_alignment() {
    for a in [0, 3, 48] {
        let raw = Raw::header(3, 0, 1).kv_u32("general.alignment", a);
        assert!(matches!(parse(raw), Err(Error::BadAlignment { .. })), "{a}");
    }
    let raw = Raw::header(3, 0, 1)
        .str("general.alignment")
        .u32(10)
        .u64(32);
    assert!(matches!(parse(raw), Err(Error::BadAlignment { found }) if found == "u64"));
}
