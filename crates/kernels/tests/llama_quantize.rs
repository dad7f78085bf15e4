//! "Same bytes as llama-quantize": tests/fixtures/llama_quantize holds, for each
//! llama-quantize preset, the first rows of a few tensors of a small llama-shaped
//! F32 model and the bytes llama-quantize wrote for them (written by
//! tools/reference/gen_llama_quantize_fixtures.py). Our quantizer for the type the
//! preset chose must reproduce them exactly.

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;

use common::{bytes, f32s, fixture_dir, index, str_field, tensor_type, usize_field};
use kernels::quantize;

#[test]
fn quantizer_reproduces_llama_quantize_bytes() {
    let dir = fixture_dir("llama_quantize");
    let index = index(&dir);
    let sources: HashMap<&str, Vec<f32>> = index["tensors"]
        .as_array()
        .expect("fixture index lists tensors")
        .iter()
        .map(|t| {
            let src = f32s(&dir, str_field(t, "source"));
            let n = usize_field(&index, "rows") * usize_field(t, "n_per_row");
            assert_eq!(src.len(), n, "{t}: source holds {} values", src.len());
            (str_field(t, "name"), src)
        })
        .collect();
    let presets = index["presets"]
        .as_array()
        .expect("fixture index lists presets");
    assert!(!presets.is_empty(), "fixture index lists no presets");
    let mut report = String::new();
    let mut failed = false;
    for preset in presets {
        for t in preset["tensors"].as_array().expect("preset lists tensors") {
            let (name, ty) = (str_field(t, "name"), tensor_type(str_field(t, "type")));
            let expected = bytes(&dir, str_field(t, "bytes"));
            let src = &sources[name];
            let mut ours = vec![0u8; expected.len()];
            let outcome = match quantize(ty, src, &mut ours) {
                Err(e) => Err(e.to_string()),
                Ok(()) if ours == expected => Ok(()),
                Ok(()) => {
                    let at = ours
                        .iter()
                        .zip(&expected)
                        .position(|(a, b)| a != b)
                        .unwrap_or(0);
                    Err(format!(
                        "bytes differ from byte {at} (block {})",
                        at / ty.type_size()
                    ))
                }
            };
            let preset = str_field(preset, "preset");
            match outcome {
                Ok(()) => {
                    let _ = writeln!(report, "ok   {preset:7} {name:24} {ty}");
                }
                Err(e) => {
                    failed = true;
                    let _ = writeln!(report, "FAIL {preset:7} {name:24} {ty}: {e}");
                }
            }
        }
    }
    println!("{report}");
    assert!(!failed, "quantizer differs from llama-quantize:\n{report}");
}
