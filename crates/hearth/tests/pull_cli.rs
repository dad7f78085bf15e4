//! `hearth pull` as a real process against a registry on 127.0.0.1
//! (crates/store/tests/common/registry.rs): pull, list and run; a pull killed
//! with SIGKILL resumes without fetching its bytes again; corrupt blobs and
//! unknown tags fail clearly; and the same through a running `hearth serve`
//! (`/api/pull`'s progress objects).

#[path = "../../store/tests/common/registry.rs"]
mod registry;
mod serve_common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gguf::{GgufWriter, TensorType};
use registry::Registry;
use serde_json::{Value, json};
use serve_common::{Scratch, free_port, text};

const MODEL_MEDIA: &str = "application/vnd.ollama.image.model";
const PARAMS_MEDIA: &str = "application/vnd.ollama.image.params";
const TEMPLATE_MEDIA: &str = "application/vnd.ollama.image.template";

/// An unused HEARTH_HOST: the CLI works on the store directly.
fn standalone() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// A GGUF of about `mib` MiB (one F32 tensor), for slow downloads.
fn big_gguf(path: &Path, mib: usize) -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_str("general.architecture", "llama");
    let n = (mib as u64) << 18;
    let data: Vec<u8> = (0..n as u32)
        .flat_map(|i| (i as f32).to_le_bytes())
        .collect();
    w.add_tensor("big.weight", TensorType::F32, &[n], &data)
        .unwrap();
    w.write_file(path).unwrap();
    std::fs::read(path).unwrap()
}

fn digest_hex(bytes: &[u8]) -> String {
    registry::hex(bytes)
}

#[test]
fn pull_list_and_run_through_redirect_and_auth() {
    let scratch = Scratch::new("pull-run");
    let gguf = std::fs::read(scratch.gguf()).unwrap();
    let registry = Registry::start();
    registry.add_model(
        "ns/tiny:v1",
        &[
            (MODEL_MEDIA, gguf.clone()),
            (PARAMS_MEDIA, br#"{"temperature":0}"#.to_vec()),
        ],
    );
    registry.faults(|f| {
        f.redirect = true;
        f.auth = true;
    });
    let host = standalone();
    let name = format!("{}/ns/tiny:v1", registry.host());
    let out = scratch.hearth(&host, &["pull", &name, "--insecure"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for step in [
        "pulling manifest",
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ] {
        assert!(stderr.contains(step), "{step}: {stderr}");
    }
    assert!(
        stderr.contains(&format!("pulling {}", &digest_hex(&gguf)[..12])),
        "{stderr}"
    );
    assert_eq!(registry.served(&digest_hex(&gguf)), gguf.len() as u64);

    let list = scratch.ok(&host, &["list"]);
    assert!(list.contains(&name), "{list}");
    let answer = scratch.ok(
        &host,
        &["run", &name, "hello", "--num-predict", "3", "--seed", "1"],
    );
    assert!(!answer.trim().is_empty(), "an answer: {answer:?}");

    // Without --insecure, plain http is refused.
    let out = scratch.hearth(&host, &["pull", &format!("http://{name}")]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("insecure"),
        "{}",
        text(&out.stderr)
    );

    // A missing model says how to get one.
    let out = scratch.hearth(&host, &["run", "nosuch", "hi"]);
    assert!(
        text(&out.stderr).contains("hearth pull nosuch"),
        "{}",
        text(&out.stderr)
    );
}

/// The bytes of blob `hex` that the pull's state file records as on disk.
fn recorded_bytes(models: &Path, hex: &str) -> u64 {
    let state = models.join("partial").join(format!("sha256-{hex}.state"));
    let Some(v) = std::fs::read(state)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    else {
        return 0;
    };
    v["completed"]
        .as_array()
        .map_or(0, |a| a.iter().filter_map(Value::as_u64).sum())
}

#[test]
fn killed_pull_resumes_without_fetching_bytes_again() {
    let scratch = Scratch::new("pull-kill");
    let gguf = big_gguf(&scratch.dir.join("big.gguf"), 2);
    let registry = Registry::start();
    registry.add_model("ns/big:v1", &[(MODEL_MEDIA, gguf.clone())]);
    registry.faults(|f| f.slow = Some((32 << 10, Duration::from_millis(25))));
    let host = standalone();
    let name = format!("{}/ns/big:v1", registry.host());
    let models = scratch.models();

    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["pull", &name, "--insecure"])
        .env("HEARTH_MODELS", &models)
        .env("HEARTH_HOST", &host)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while recorded_bytes(&models, &digest_hex(&gguf)) < 256 << 10 {
        assert!(Instant::now() < deadline, "the pull never got going");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the pull ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Let the registry notice the closed connection.
    std::thread::sleep(Duration::from_millis(300));
    let recorded = recorded_bytes(&models, &digest_hex(&gguf));
    let served_before = registry.served(&digest_hex(&gguf));
    assert!(recorded > 0 && recorded < gguf.len() as u64, "{recorded}");
    let blob = models
        .join("blobs")
        .join(format!("sha256-{}", digest_hex(&gguf)));
    assert!(!blob.exists(), "no partial file under the blob's name");

    registry.faults(|f| f.slow = None);
    let out = scratch.hearth(&host, &["pull", &name, "--insecure"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let fetched_again = registry.served(&digest_hex(&gguf)) - served_before;
    assert_eq!(
        fetched_again,
        gguf.len() as u64 - recorded,
        "only the bytes not on disk are fetched (killed after {recorded} of {})",
        gguf.len()
    );
    assert_eq!(std::fs::read(&blob).unwrap(), gguf);
}

#[test]
fn corrupt_blob_and_unknown_tag_fail_clearly() {
    let scratch = Scratch::new("pull-corrupt");
    let gguf = std::fs::read(scratch.gguf()).unwrap();
    let registry = Registry::start();
    registry.add_model("ns/tiny:v1", &[(MODEL_MEDIA, gguf.clone())]);
    registry.faults(|f| {
        f.corrupt.insert(digest_hex(&gguf));
    });
    let host = standalone();
    let out = scratch.hearth(
        &host,
        &[
            "pull",
            &format!("{}/ns/tiny:v1", registry.host()),
            "--insecure",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("digest mismatch"),
        "{}",
        text(&out.stderr)
    );
    let blob = scratch
        .models()
        .join("blobs")
        .join(format!("sha256-{}", digest_hex(&gguf)));
    assert!(!blob.exists());

    let out = scratch.hearth(
        &host,
        &[
            "pull",
            &format!("{}/ns/tiny:nope", registry.host()),
            "--insecure",
        ],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("error: pull model manifest: model") && stderr.contains("not found"),
        "{stderr}"
    );
}

#[test]
fn pull_through_a_running_server() {
    let scratch = Scratch::new("pull-serve");
    let gguf = std::fs::read(scratch.gguf()).unwrap();
    let registry = Registry::start();
    registry.add_model("ns/tiny:v1", &[(MODEL_MEDIA, gguf.clone())]);
    registry.add_model(
        "ns/tiny:v2",
        &[(MODEL_MEDIA, gguf.clone()), (PARAMS_MEDIA, b"{}".to_vec())],
    );
    let server = scratch.serve(&[]);
    let name = format!("{}/ns/tiny:v1", registry.host());

    // The CLI goes through /api/pull.
    let out = scratch.hearth(&server.host, &["pull", &name, "--insecure"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tags = server.get("/api/tags");
    assert!(
        tags["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == name.as_str()),
        "{tags}"
    );

    // The API's progress objects, as Ollama streams them.
    let v2 = format!("{}/ns/tiny:v2", registry.host());
    let (status, lines) = server.post_stream("/api/pull", &json!({"model": v2, "insecure": true}));
    assert_eq!(status, 200);
    assert_eq!(lines[0], json!({"status": "pulling manifest"}));
    let layer = lines
        .iter()
        .find(|l| l["digest"].is_string())
        .expect("a layer step");
    assert!(layer["status"].as_str().unwrap().starts_with("pulling "));
    assert!(
        layer["total"].is_u64() && layer["completed"].is_u64(),
        "{layer}"
    );
    let tail: Vec<&Value> = lines.iter().rev().take(3).collect();
    assert_eq!(*tail[0], json!({"status": "success"}));
    assert_eq!(*tail[1], json!({"status": "writing manifest"}));
    assert_eq!(*tail[2], json!({"status": "verifying sha256 digest"}));

    let (status, body) = server.post(
        "/api/pull",
        &json!({"model": v2, "insecure": true, "stream": false}),
    );
    assert_eq!((status, body), (200, json!({"status": "success"})));
    let (status, body) = server.post(
        "/api/pull",
        &json!({"model": format!("{}/ns/tiny:nope", registry.host()), "insecure": true, "stream": false}),
    );
    assert_eq!(status, 502);
    assert!(
        body["error"].as_str().unwrap().contains("not found"),
        "{body}"
    );
}

#[test]
fn push_to_the_registry_then_pull_back_and_run() {
    let scratch = Scratch::new("push-cli");
    let registry = Registry::start();
    registry.faults(|f| f.auth = true);
    let host = standalone();
    scratch.ok(&host, &["create", "tiny", "-f", "Modelfile"]);
    let name = format!("{}/me/tiny:v1", registry.host());
    scratch.ok(&host, &["cp", "tiny", &name]);
    let out = scratch.hearth(&host, &["push", &name, "--insecure"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("pushing manifest") && stderr.contains("success"),
        "{stderr}"
    );
    assert!(registry.manifest("me/tiny:v1").is_some());

    // A second machine (another store) pulls it and runs it.
    let other = Scratch::new("push-cli-other");
    other.ok(&host, &["pull", &name, "--insecure"]);
    let answer = other.ok(
        &host,
        &["run", &name, "hello", "--num-predict", "2", "--seed", "1"],
    );
    assert!(!answer.trim().is_empty());

    // Through a server: /api/push answers Ollama's final object.
    let server = scratch.serve(&[]);
    let (status, body) = server.post(
        "/api/push",
        &json!({"model": name, "insecure": true, "stream": false}),
    );
    assert_eq!((status, body), (200, json!({"status": "success"})));
}

#[test]
fn pull_from_another_hearth_serve() {
    let source = Scratch::new("serve-registry");
    source.ok(&standalone(), &["create", "tiny", "-f", "Modelfile"]);
    let server = source.serve(&[]);

    // The registry read side: manifest, HEAD, ranges, errors.
    let manifest: Value = server.get("/v2/library/tiny/manifests/latest");
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
    let blob_url = server.url(&format!("/v2/library/tiny/blobs/{layer}"));
    let part = server
        .http
        .get(&blob_url)
        .header("Range", "bytes=0-3")
        .send()
        .unwrap();
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(part.bytes().unwrap().as_ref(), b"GGUF");
    let head = server.http.head(&blob_url).send().unwrap();
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        std::fs::metadata(source.gguf()).unwrap().len().to_string()
    );
    let missing = server
        .http
        .get(server.url("/v2/library/tiny/manifests/nope"))
        .send()
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let body: Value = missing.json().unwrap();
    assert_eq!(body["errors"][0]["code"], "MANIFEST_UNKNOWN");

    // Another hearth pulls from it and runs the model.
    let other = Scratch::new("serve-registry-other");
    let host = standalone();
    let name = format!("{}/library/tiny:latest", server.host);
    other.ok(&host, &["pull", &name, "--insecure"]);
    let answer = other.ok(
        &host,
        &["run", &name, "hello", "--num-predict", "2", "--seed", "1"],
    );
    assert!(!answer.trim().is_empty());
    // Same manifest, so the same model ID on both sides.
    let id = |list: String| {
        list.lines()
            .find(|l| l.contains("tiny:latest"))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(str::to_owned)
    };
    let pulled_id = id(other.ok(&host, &["list"]));
    assert!(pulled_id.is_some());
    assert_eq!(pulled_id, id(source.ok(&server.host, &["list"])));
}

#[test]
fn import_from_an_ollama_directory() {
    let ollama = Scratch::new("import-ollama");
    let host = standalone();
    ollama.ok(&host, &["create", "me/tiny:v1", "-f", "Modelfile"]);
    let mine = Scratch::new("import-mine");
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["import", "--from-ollama"])
        .env("HEARTH_MODELS", mine.models())
        .env("HEARTH_HOST", &host)
        .env("OLLAMA_MODELS", ollama.models())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("imported me/tiny:v1"), "{stdout}");
    assert!(mine.ok(&host, &["list"]).contains("me/tiny:v1"));
    // The imported model answers as the original does (greedy, so the answer
    // is fixed; a random model's answer may be empty, which is not the point).
    let args = [
        "run",
        "me/tiny:v1",
        "hi",
        "--num-predict",
        "8",
        "--temperature",
        "0",
    ];
    assert_eq!(mine.ok(&host, &args), ollama.ok(&host, &args));

    let out = mine.hearth(&host, &["import", "--from-ollama", "/nonexistent"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not an Ollama model directory"));
}

#[test]
fn http_proxy_and_no_proxy_are_honoured() {
    let scratch = Scratch::new("pull-proxy");
    let gguf = std::fs::read(scratch.gguf()).unwrap();
    let registry = Registry::start();
    registry.add_model("ns/tiny:v1", &[(MODEL_MEDIA, gguf.clone())]);
    let host = standalone();
    // A host that does not resolve: only the proxy (the test registry, which
    // routes by path) can answer for it.
    let pull = |no_proxy: &str| {
        Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(["pull", "registry.invalid/ns/tiny:v1", "--insecure"])
            .env("HEARTH_MODELS", scratch.models())
            .env("HEARTH_HOST", &host)
            .env("HTTP_PROXY", format!("http://{}", registry.host()))
            .env("NO_PROXY", no_proxy)
            .output()
            .unwrap()
    };
    let out = pull("registry.invalid");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot reach registry.invalid: "),
        "{}",
        text(&out.stderr)
    );
    let out = pull("");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(registry.served(&digest_hex(&gguf)), gguf.len() as u64);
    assert!(
        scratch
            .ok(&host, &["list"])
            .contains("registry.invalid/ns/tiny:v1")
    );
}

#[test]
fn pulled_hearth_tiny_answers_as_the_built_in_model() {
    let scratch = Scratch::new("pull-hearth-tiny");
    let gguf = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/hearth-tiny/hearth-tiny.gguf"
    ))
    .unwrap();
    let registry = Registry::start();
    registry.add_model(
        "ns/hearth-tiny:v1",
        &[
            (MODEL_MEDIA, gguf.clone()),
            (
                PARAMS_MEDIA,
                br#"{"temperature":0,"repeat_penalty":1}"#.to_vec(),
            ),
        ],
    );
    registry.faults(|f| f.redirect = true);
    // Pulled into a store that does not hold the built-in model yet, so the
    // weights really come over HTTP (the CLI would install them first).
    let name = format!("{}/ns/hearth-tiny:v1", registry.host());
    let options = store::PullOptions {
        insecure: true,
        ..store::PullOptions::default()
    };
    store::Store::open(scratch.models())
        .unwrap()
        .pull(&name, &options, &mut |_| {})
        .unwrap();
    assert_eq!(registry.served(&digest_hex(&gguf)), gguf.len() as u64);
    let answer = scratch.ok(&standalone(), &["run", &name, "What is 12 plus 7?"]);
    assert!(
        answer.trim_end().trim_end_matches('.').ends_with("19"),
        "{answer}"
    );
}

/// A model as Ollama's registry serves them: weights, parameters and a Go
/// template layer (ChatML, in the style of Ollama's templates). The real
/// `hearth pull` checks the template at pull time and the model chats
/// through it; a template that is neither Go nor Jinja fails the pull with
/// nothing written.
#[test]
fn pulled_go_template_renders_and_a_broken_one_is_refused() {
    let scratch = Scratch::new("pull-go-template");
    let gguf = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/hearth-tiny/hearth-tiny.gguf"
    ))
    .unwrap();
    let go_chatml = "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n\
                     {{ end }}<|im_start|>assistant\n";
    let registry = Registry::start();
    let params = br#"{"temperature":0,"repeat_penalty":1}"#.to_vec();
    registry.add_model(
        "library/chat:latest",
        &[
            (MODEL_MEDIA, gguf.clone()),
            (TEMPLATE_MEDIA, go_chatml.as_bytes().to_vec()),
            (PARAMS_MEDIA, params.clone()),
        ],
    );
    registry.add_model(
        "library/broken:latest",
        &[
            (MODEL_MEDIA, gguf),
            (
                TEMPLATE_MEDIA,
                b"{{ range .Messages }}{{ .Content }}".to_vec(),
            ),
            (PARAMS_MEDIA, params),
        ],
    );
    let host = standalone();
    let name = format!("{}/library/chat", registry.host());
    scratch.ok(&host, &["pull", "--insecure", &name]);
    let template = scratch.ok(&host, &["show", &name, "--template"]);
    assert!(template.contains("range .Messages"), "{template}");
    let answer = scratch.ok(&host, &["run", &name, "What is 12 plus 7?"]);
    assert!(
        answer.trim_end().trim_end_matches('.').ends_with("19"),
        "{answer}"
    );

    let broken = format!("{}/library/broken", registry.host());
    let out = scratch.hearth(&host, &["pull", "--insecure", &broken]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("template"),
        "{}",
        text(&out.stderr)
    );
    assert!(!scratch.ok(&host, &["list"]).contains("broken"));
}
