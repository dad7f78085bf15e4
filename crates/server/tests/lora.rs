//! One base model serving LoRA adapters through the APIs: a model created
//! with Modelfile ADAPTERs runs them by default; a request's `lora` field
//! (llama-server's `[{"id": 0, "scale": 1.0}]`) picks its own, and two
//! concurrent clients asking for different adapters each get that adapter's
//! answer (greedy, equal to the adapter's answer alone).

mod common;

use axum::http::StatusCode;
use common::{get, post};
use gguf::TensorType;
use model::synthetic::Spec;
use serde_json::{Value, json};
use server::Config;
use store::{ModelName, Modelfile};

fn write_adapter(env: &common::Env, file: &str, seed: u64) -> String {
    let path = env.dir.join(file);
    Spec::tiny_llama()
        .lora(
            &[
                "blk.0.attn_q.weight",
                "blk.1.ffn_down.weight",
                "output.weight",
            ],
            8,
            16.0,
            TensorType::F16,
            seed,
        )
        .unwrap()
        .write_file(&path)
        .unwrap();
    path.display().to_string()
}

fn create(env: &common::Env, name: &str, adapters: &[&str]) {
    let mut modelfile = Modelfile::new("tiny");
    modelfile.adapters = adapters.iter().map(|a| a.to_string()).collect();
    env.store
        .create(
            &ModelName::parse(name).unwrap(),
            &modelfile,
            &env.dir,
            &mut |_| {},
        )
        .unwrap();
}

fn body(model: &str, lora: Option<Value>) -> Value {
    let mut b = json!({"model": model, "prompt": "Once upon a time", "max_tokens": 12,
                       "temperature": 0});
    if let Some(l) = lora {
        b["lora"] = l;
    }
    b
}

fn text(v: &Value) -> String {
    v["choices"][0]["text"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn two_clients_get_their_own_adapters_answers_from_one_base() {
    let env = common::Env::new("lora-serving");
    let a = write_adapter(&env, "a.gguf", 31);
    let b = write_adapter(&env, "b.gguf", 32);
    create(&env, "tuned", &[&a, &b]);
    create(&env, "tuned-a", &[&a]);
    create(&env, "tuned-b", &[&b]);
    let state = env.state(Config::default());

    // Each adapter alone, from models that have only it (run by default).
    let (s, v) = post(&state, "/v1/completions", body("tuned-a", None)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let alone_a = text(&v);
    let (_, v) = post(&state, "/v1/completions", body("tuned-b", None)).await;
    let alone_b = text(&v);
    let (_, v) = post(&state, "/v1/completions", body("tiny", None)).await;
    let base = text(&v);
    assert_ne!(alone_a, alone_b);
    assert_ne!(alone_a, base);

    // Two concurrent clients of the one model with both adapters, each
    // naming one.
    let only = |id: usize| Some(json!([{"id": id, "scale": 1.0}]));
    let (ra, rb) = tokio::join!(
        post(&state, "/v1/completions", body("tuned", only(0))),
        post(&state, "/v1/completions", body("tuned", only(1))),
    );
    assert_eq!(ra.0, StatusCode::OK, "{}", ra.1);
    assert_eq!(rb.0, StatusCode::OK, "{}", rb.1);
    assert_eq!(text(&ra.1), alone_a);
    assert_eq!(text(&rb.1), alone_b);

    // No adapter (an empty list, or scale 0) is the base model.
    let (_, v) = post(&state, "/v1/completions", body("tuned", Some(json!([])))).await;
    assert_eq!(text(&v), base);
    let zero = Some(json!([{"id": 0, "scale": 0.0}]));
    let (_, v) = post(&state, "/v1/completions", body("tuned", zero)).await;
    assert_eq!(text(&v), base);

    // The chat API takes the same field.
    let chat = json!({"model": "tuned", "messages": [{"role": "user", "content": "Hi"}],
                      "max_tokens": 6, "temperature": 0, "lora": [{"id": 1, "scale": 1.0}]});
    let (s, v) = post(&state, "/v1/chat/completions", chat).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // llama-server's /lora-adapters: the model's adapters and default
    // scales; setting them changes what requests without `lora` run,
    // without reloading the model.
    let (s, v) = get(&state, "/lora-adapters?model=tuned").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
    assert_eq!(
        (v[0]["id"].clone(), v[0]["scale"].clone()),
        (json!(0), json!(1.0))
    );
    assert!(v[1]["path"].as_str().unwrap().contains("sha256"), "{v}");
    let (s, v) = post(
        &state,
        "/lora-adapters?model=tuned",
        json!([{"id": 1, "scale": 1.0}]),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v[0]["scale"], json!(0.0));
    let (_, v) = post(&state, "/v1/completions", body("tuned", None)).await;
    assert_eq!(text(&v), alone_b);
    let (_, v) = get(&state, "/lora-adapters?model=tuned").await;
    assert_eq!(
        (v[0]["scale"].clone(), v[1]["scale"].clone()),
        (json!(0.0), json!(1.0))
    );
    // Several models are loaded: the model must be named.
    let (s, _) = get(&state, "/lora-adapters").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Embeddings run the adapters too; Ollama's options take `lora` as well.
    let embed = |model: &str, options: Value| json!({"model": model, "input": "Once upon a time", "options": options});
    let (s, tiny_vec) = post(&state, "/api/embed", embed("tiny", json!({}))).await;
    assert_eq!(s, StatusCode::OK, "{tiny_vec}");
    let (_, a_vec) = post(&state, "/api/embed", embed("tuned-a", json!({}))).await;
    let (_, off_vec) = post(&state, "/api/embed", embed("tuned-a", json!({"lora": []}))).await;
    assert_ne!(a_vec["embeddings"], tiny_vec["embeddings"]);
    assert_eq!(off_vec["embeddings"], tiny_vec["embeddings"]);

    // An adapter the model does not have.
    let (s, v) = post(&state, "/v1/completions", body("tuned", only(2))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("lora id 2"),
        "{v}"
    );
}

#[tokio::test]
async fn an_adapter_for_another_model_fails_the_load_with_the_reason() {
    let env = common::Env::new("lora-misfit");
    let wide = Spec {
        n_embd: 512,
        ..Spec::tiny_llama()
    };
    let path = env.dir.join("wide.gguf");
    wide.lora(&["output.weight"], 4, 8.0, TensorType::F32, 1)
        .unwrap()
        .write_file(&path)
        .unwrap();
    create(&env, "misfit", &[&path.display().to_string()]);
    let state = env.state(Config::default());
    let (s, v) = post(&state, "/v1/completions", body("misfit", None)).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("do not fit"), "{message}");
}
