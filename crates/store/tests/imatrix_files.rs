//! llama-imatrix's two file formats, read: the same importance matrix written
//! by llama-imatrix as GGUF and as a legacy `.dat` file
//! (tests/fixtures/quantize/imatrix-ref-tiny-llama.*, from
//! tools/reference/gen_llama_quantize_fixtures.py) loads to the same
//! per-column means, chunk count and dataset, as llama-quantize reads them.

use std::path::Path;

use store::quantize::Imatrix;

/// The legacy file stores `sums / count · ncall` in f32 and the loader divides
/// by `ncall` again: a few ulps apart from the GGUF's `sums / count`.
const FORMAT_TOLERANCE: f32 = 1e-5;

#[test]
fn gguf_and_legacy_files_give_the_same_importance() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quantize");
    let gguf = Imatrix::load(&dir.join("imatrix-ref-tiny-llama.gguf")).unwrap();
    let dat = Imatrix::load(&dir.join("imatrix-ref-tiny-llama.dat")).unwrap();
    assert_eq!(gguf.entries.len(), 14, "7 matrices in each of 2 layers");
    assert_eq!(
        gguf.entries.keys().collect::<Vec<_>>(),
        dat.entries.keys().collect::<Vec<_>>()
    );
    assert_eq!((gguf.chunk_count, dat.chunk_count), (3, 3));
    assert_eq!(gguf.datasets, vec!["imatrix-corpus.txt".to_owned()]);
    assert_eq!(dat.datasets, gguf.datasets);
    for (name, g) in &gguf.entries {
        let d = &dat.entries[name];
        assert_eq!(g.len(), d.len(), "{name}");
        assert!(
            g.iter().all(|&v| v > 0.0),
            "{name}: means of squares are positive"
        );
        for (j, (a, b)) in g.iter().zip(d).enumerate() {
            assert!(
                (a - b).abs() <= FORMAT_TOLERANCE * a.abs(),
                "{name}[{j}]: {a} (gguf) vs {b} (dat)"
            );
        }
    }
}

#[test]
fn a_file_of_neither_format_is_a_named_error() {
    let dir = std::env::temp_dir().join(format!("hearth-imatrix-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.dat");
    std::fs::write(&path, [0u8, 0, 0, 0]).unwrap();
    let err = Imatrix::load(&path).unwrap_err().to_string();
    assert!(err.contains("bad.dat") && err.contains("no data"), "{err}");
    std::fs::write(&path, [1u8, 0, 0, 0, 200, 0, 0, 0]).unwrap();
    let err = Imatrix::load(&path).unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
