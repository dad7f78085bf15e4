//! Activation conversion against ggml-cpu's run-time `from_float`.
//!
//! Before a matmul ggml converts the f32 activations to the weight format's
//! `vec_dot_type` with `type_traits_cpu[t].from_float`, which on x86 is not the
//! reference quantizer llama-quantize writes weights with: Q8_0 and Q8_1 use the
//! AVX `quantize_row_q8_{0,1}` (ggml-cpu/arch/x86/quants.c), scale `127/amax`,
//! round half to even. The fixture (tools/reference/gen_kernel_fixtures.py,
//! `activation_from_float`) holds what ggml's no-AMX x86 build writes for the
//! shared stress input; every SIMD level's `activation_quantizer` must write the
//! same bytes, and for Q8_0 / Q8_1 those must differ from the weight quantizer's
//! somewhere on that input (else the test would not tell the two apart).

mod common;

use common::{bytes, f32s, fixture_dir, index, str_field, tensor_type, usize_field};
use kernels::{Cpu, traits_for};

#[test]
fn activation_quantizers_write_ggml_cpu_bytes_at_every_level() {
    let dir = fixture_dir("kernels");
    let index = index(&dir);
    let input = f32s(&dir, str_field(&index, "input"));
    assert_eq!(
        input.len(),
        usize_field(&index, "n_per_row") * usize_field(&index, "n_rows")
    );
    let formats = index["activation_from_float"]
        .as_object()
        .expect("activation_from_float in index.json");
    assert!(formats.len() >= 5, "{formats:?}");
    for (name, file) in formats {
        let ty = tensor_type(name);
        let want = bytes(&dir, file.as_str().unwrap());
        for level in Cpu::available() {
            let tr = traits_for(level, ty).unwrap();
            let convert = tr.activation_quantizer().unwrap();
            let mut ours = vec![0u8; want.len()];
            convert(&input, &mut ours);
            let differ = ours.iter().zip(&want).filter(|(a, b)| a != b).count();
            assert_eq!(
                differ, 0,
                "{name} at {level}: {differ} bytes differ from ggml-cpu's"
            );
            if tr.from_f32_act.is_some() {
                let mut weight = vec![0u8; want.len()];
                (tr.from_f32.unwrap())(&input, &mut weight);
                assert_ne!(weight, want, "{name}: the input has no rounding ties");
            }
        }
    }
}
