//! LoRA adapters through a real `hearth serve`: `hearth create` sends a
//! Modelfile's ADAPTER files up as blobs, and two concurrent HTTP clients of
//! the one model, each naming another adapter in `lora`, each get that
//! adapter's greedy answer (the one it gives alone).

mod serve_common;

use gguf::TensorType;
use model::synthetic::Spec;
use serde_json::{Value, json};
use serve_common::{Scratch, text};

fn completion(adapter: Option<usize>) -> Value {
    let mut body = json!({"model": "tuned", "prompt": "Once upon a time", "max_tokens": 12,
                          "temperature": 0});
    if let Some(id) = adapter {
        body["lora"] = json!([{"id": id, "scale": 1.0}]);
    }
    body
}

#[test]
fn two_concurrent_clients_get_their_own_adapters_answers() {
    let scratch = Scratch::new("lora");
    for (file, seed) in [("a.gguf", 41), ("b.gguf", 42)] {
        Spec::tiny_llama()
            .lora(
                &[
                    "blk.0.attn_v.weight",
                    "blk.1.ffn_up.weight",
                    "output.weight",
                ],
                8,
                16.0,
                TensorType::F16,
                seed,
            )
            .unwrap()
            .write_file(scratch.dir.join(file))
            .unwrap();
    }
    std::fs::write(
        scratch.dir.join("Modelfile.lora"),
        "FROM ./tiny.gguf\nADAPTER ./a.gguf\nADAPTER ./b.gguf\n",
    )
    .unwrap();
    let server = scratch.serve(&[]);
    let host = server.host.as_str();
    let out = scratch.hearth(host, &["create", "tuned", "-f", "Modelfile.lora"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = scratch.ok(host, &["show", "tuned", "--modelfile"]);
    assert_eq!(shown.matches("\nADAPTER ").count(), 2, "{shown}");

    let answer = |adapter: Option<usize>| {
        let (status, v) = server.post("/v1/completions", &completion(adapter));
        assert_eq!(status, 200, "{v}");
        v["choices"][0]["text"].as_str().unwrap().to_owned()
    };
    let alone: Vec<String> = [Some(0), Some(1), None].map(answer).to_vec();
    assert_ne!(alone[0], alone[1]);

    let together: Vec<String> = std::thread::scope(|s| {
        let clients: Vec<_> = [0, 1, 0, 1]
            .map(|id| s.spawn(move || answer(Some(id))))
            .into_iter()
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let expected = [0, 1, 0, 1].map(|i| alone[i].clone());
    assert_eq!(together, expected);

    let listed = server.get("/lora-adapters?model=tuned");
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
}
