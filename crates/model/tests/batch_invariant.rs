//! The batch-invariant mode ([`model::set_batch_invariant`], served as
//! `HEARTH_DETERMINISTIC=1`): every product and attention sum in one order
//! whatever the batch holds, so a sequence's logits are the same bits alone,
//! batched with others, and prefilled in other chunks, for the formats whose
//! batch kernels otherwise change the order with the row count (F16 and the
//! K-quants, see batch_forward.rs). Its own test binary: the switch is
//! process-wide.

use std::path::Path;

use gguf::TensorType;
use model::synthetic::Spec;
use model::{LoadOptions, Logits, Model, SeqStep};

fn load(preset: &str, ty: TensorType) -> Model {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{preset}-{ty:?}-inv.gguf"));
    Spec::preset(preset).unwrap().write(&path, ty).unwrap();
    Model::load_with(&path, &LoadOptions { threads: Some(2) }).unwrap()
}

#[test]
fn logits_do_not_depend_on_the_batch_or_the_chunks() {
    model::set_batch_invariant(true);
    let a: Vec<u32> = (0..23).map(|i| (i * 37 + 5) % 300).collect();
    let b: Vec<u32> = (0..9).map(|i| (i * 11 + 2) % 300).collect();
    for (preset, ty) in [
        ("tiny-llama", TensorType::F16),
        ("tiny-llama", TensorType::Q4_K),
        ("tiny-moe", TensorType::Q6_K),
        ("tiny-qwen2", TensorType::F16),
        ("tiny-gemma3", TensorType::F16),
    ] {
        let model = load(preset, ty);
        // Alone: the prompt in one call, then two decoding steps.
        let mut alone = model.new_state(64).unwrap();
        let mut want = vec![
            model
                .forward(&mut alone, &a[..21], Logits::Last)
                .unwrap()
                .to_vec(),
        ];
        for &t in &a[21..] {
            want.push(
                model
                    .forward(&mut alone, &[t], Logits::Last)
                    .unwrap()
                    .to_vec(),
            );
        }
        // Batched with another sequence, the prompt in chunks of 12 and 9.
        let mut sa = model.new_state(64).unwrap();
        let mut sb = model.new_state(64).unwrap();
        let mut batch = model.new_batch(32, 64).unwrap();
        let steps: [(&[u32], &[u32]); 4] = [
            (&a[..12], &b[..5]),
            (&a[12..21], &b[5..]),
            (&a[21..22], &[7]),
            (&a[22..], &[8]),
        ];
        let mut got = Vec::new();
        for (i, (ta, tb)) in steps.into_iter().enumerate() {
            let mut seqs = [
                SeqStep {
                    state: &mut sb,
                    tokens: tb,
                    logits: Some(Logits::Last),
                },
                SeqStep {
                    state: &mut sa,
                    tokens: ta,
                    logits: (i > 0).then_some(Logits::Last),
                },
            ];
            model.forward_batch(&mut batch, &mut seqs).unwrap();
            if i > 0 {
                got.push(batch.logits(1).to_vec());
            }
        }
        assert_eq!(got, want, "{preset} {ty:?}");
    }
}
