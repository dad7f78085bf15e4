//! Fuzzes the GGUF reader: any input must parse or fail with an error, never
//! panic, abort or allocate without bound. Inputs that parse are rewritten by our
//! writer, and the rewritten file must parse and rewrite to the same bytes.
#![no_main]

use gguf::{GgufFile, GgufWriter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    let Some(first) = rewrite(&file) else {
        return;
    };
    let reparsed = GgufFile::from_bytes(first.clone()).expect("our own output must parse");
    let second = rewrite(&reparsed).expect("our own output must be rewritable");
    assert_eq!(first, second, "rewrite is not a fixed point");
});

/// Largest alignment rewritten: a valid tensor-less file may declare up to 2^31,
/// and its rewrite would be gigabytes of padding.
const MAX_REWRITE_ALIGNMENT: u64 = 1 << 16;

/// The file's metadata and tensors written anew, or `None` if the writer refuses
/// something the reader tolerates (e.g. tensor names of 64 bytes or more).
fn rewrite(file: &GgufFile) -> Option<Vec<u8>> {
    if file.alignment() > MAX_REWRITE_ALIGNMENT {
        return None;
    }
    let mut w = GgufWriter::new();
    for (key, value) in file.metadata().iter() {
        w.add(key, value.clone());
    }
    for t in file.tensors() {
        let data = file.tensor_data(t);
        assert_eq!(
            data.len() as u64,
            t.size,
            "tensor bounds were validated at open"
        );
        w.add_tensor(&t.name, t.ty, &t.dims, data).ok()?;
    }
    let mut out = Vec::new();
    w.write(&mut out).ok()?;
    Some(out)
}
