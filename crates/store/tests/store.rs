//! The store on a real directory: create, dedup, copy, delete with garbage
//! collection, models built on models, crash leftovers and concurrency.

mod common;

use std::collections::HashSet;
use std::fs;

use common::{blobs_on_disk, create, name, temp_dir, write_gguf};
use store::{
    Digest, MODEL_MEDIA_TYPE, ModelName, Modelfile, ParamValue, Progress, Store, StoreError,
};

#[test]
fn create_from_gguf_then_resolve_and_list() {
    let dir = temp_dir("create");
    let gguf = write_gguf(&dir, "m.gguf", 1);
    let store = Store::open(dir.join("models")).unwrap();
    let mut steps: Vec<Progress> = Vec::new();
    let modelfile = Modelfile::parse(
        "FROM ./m.gguf\nSYSTEM be brief\nPARAMETER temperature 0.5\nPARAMETER stop </s>\n",
    )
    .unwrap();
    let manifest = store
        .create(&name("tiny"), &modelfile, &dir, &mut |p| steps.push(p))
        .unwrap();

    let statuses: Vec<&str> = steps.iter().map(|p| p.status.as_str()).collect();
    assert_eq!(statuses.first(), Some(&"gathering model components"));
    assert!(
        statuses.contains(&"transferring model data"),
        "{statuses:?}"
    );
    assert_eq!(
        statuses[statuses.len() - 2..],
        ["writing manifest", "success"]
    );
    let size = fs::metadata(&gguf).unwrap().len();
    let last_copy = steps
        .iter()
        .rfind(|p| p.status == "transferring model data")
        .unwrap();
    assert_eq!(
        (last_copy.completed, last_copy.total),
        (Some(size), Some(size))
    );

    // The weights blob is the file, byte for byte, under its digest.
    let model_layer = manifest.layer(MODEL_MEDIA_TYPE).unwrap();
    let bytes = fs::read(&gguf).unwrap();
    assert_eq!(model_layer.digest, Digest::of(&bytes));
    assert_eq!(model_layer.size, size);

    let resolved = store.resolve(&name("tiny:latest")).unwrap();
    assert_eq!(fs::read(&resolved.gguf_path).unwrap(), bytes);
    assert_eq!(resolved.system.as_deref(), Some("be brief"));
    assert_eq!(resolved.template, None);
    assert_eq!(
        resolved.params.get("temperature"),
        Some(&ParamValue::Float(0.5))
    );
    assert_eq!(
        resolved.params.get("stop"),
        Some(&ParamValue::Strings(vec!["</s>".into()]))
    );
    assert_eq!(resolved.config.model_family, "llama");
    assert_eq!(resolved.config.file_type, "Q8_0");
    assert_eq!(resolved.config.model_format, "gguf");
    assert_eq!(resolved.config.model_type, "4K");
    assert_eq!(resolved.config.rootfs.diff_ids.len(), manifest.layers.len());

    // The manifest is where Ollama keeps it, and the ID is its SHA-256.
    let manifest_file = store
        .root()
        .join("manifests/registry.ollama.ai/library/tiny/latest");
    let manifest_bytes = fs::read(&manifest_file).unwrap();
    assert_eq!(manifest_bytes, manifest.to_bytes());
    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name, name("tiny"));
    assert_eq!(list[0].digest, Digest::of(&manifest_bytes));
    assert_eq!(resolved.digest, list[0].digest);
    assert_eq!(list[0].size, manifest.size());
    // Weights, system, params and the config: four blobs.
    assert_eq!(blobs_on_disk(&store).len(), 4);
}

#[test]
fn one_blob_for_two_models() {
    let dir = temp_dir("dedup");
    write_gguf(&dir, "m.gguf", 2);
    let store = Store::open(dir.join("models")).unwrap();
    create(&store, "a", &dir, "FROM m.gguf\n");
    let mut reused = false;
    let modelfile = Modelfile::parse("FROM m.gguf\nSYSTEM other\n").unwrap();
    store
        .create(&name("b"), &modelfile, &dir, &mut |p| {
            reused |= p.status.starts_with("using existing layer");
            assert_ne!(p.status, "transferring model data", "copied again");
        })
        .unwrap();
    assert!(reused);
    let a = store.resolve(&name("a")).unwrap();
    let b = store.resolve(&name("b")).unwrap();
    assert_eq!(a.gguf_path, b.gguf_path);
    // One weights blob, one system blob, and a config each (their rootfs lists
    // differ).
    assert_eq!(blobs_on_disk(&store).len(), 4);
}

#[test]
fn copy_then_delete_collects_blobs_after_the_last_reference() {
    let dir = temp_dir("cp-rm");
    write_gguf(&dir, "m.gguf", 3);
    let store = Store::open(dir.join("models")).unwrap();
    create(
        &store,
        "me/model:stable",
        &dir,
        "FROM m.gguf\nLICENSE MIT\n",
    );
    store
        .copy(&name("me/model:stable"), &name("me/model:experimental"))
        .unwrap();
    let list = store.list().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].digest, list[1].digest, "a tag is a pointer");
    let blobs = blobs_on_disk(&store);

    store.delete(&name("me/model:stable")).unwrap();
    assert_eq!(blobs_on_disk(&store), blobs, "still referenced by the copy");
    assert!(matches!(
        store.resolve(&name("me/model:stable")),
        Err(StoreError::NotFound(n)) if n == "me/model:stable"
    ));
    let kept = store.resolve(&name("me/model:experimental")).unwrap();
    assert_eq!(kept.licenses, ["MIT"]);

    store.delete(&name("me/model:experimental")).unwrap();
    assert!(blobs_on_disk(&store).is_empty());
    assert!(store.list().unwrap().is_empty());
    // Empty manifest directories are removed too.
    let manifests = fs::read_dir(store.root().join("manifests")).unwrap();
    assert_eq!(manifests.count(), 0);
    assert!(matches!(
        store.delete(&name("me/model:experimental")),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn delete_keeps_blobs_shared_with_other_models() {
    let dir = temp_dir("shared");
    write_gguf(&dir, "m.gguf", 4);
    write_gguf(&dir, "n.gguf", 5);
    let store = Store::open(dir.join("models")).unwrap();
    create(&store, "a", &dir, "FROM m.gguf\nSYSTEM s\n");
    create(&store, "b", &dir, "FROM m.gguf\n");
    create(&store, "c", &dir, "FROM n.gguf\nSYSTEM s\n");
    store.delete(&name("a")).unwrap();
    let b = store.resolve(&name("b")).unwrap();
    let c = store.resolve(&name("c")).unwrap();
    assert!(b.gguf_path.is_file());
    assert_eq!(c.system.as_deref(), Some("s"), "system blob shared with c");
    let referenced: HashSet<Digest> = [b, c]
        .iter()
        .flat_map(|m| m.manifest.digests().collect::<Vec<_>>())
        .collect();
    let on_disk: HashSet<Digest> = blobs_on_disk(&store).into_iter().collect();
    assert_eq!(on_disk, referenced);
}

#[test]
fn model_from_model_inherits_and_overrides() {
    let dir = temp_dir("from-model");
    write_gguf(&dir, "m.gguf", 6);
    let store = Store::open(dir.join("models")).unwrap();
    create(
        &store,
        "base",
        &dir,
        "FROM m.gguf\nTEMPLATE \"\"\"{{ messages }}\"\"\"\nSYSTEM base system\n\
         PARAMETER stop A\nPARAMETER stop B\nPARAMETER temperature 0.1\n\
         MESSAGE user hi\nLICENSE L1\n",
    );
    create(
        &store,
        "derived",
        &dir,
        "FROM Base\nSYSTEM derived system\nPARAMETER temperature 0.9\nLICENSE L2\n",
    );
    let base = store.resolve(&name("base")).unwrap();
    let derived = store.resolve(&name("derived")).unwrap();
    assert_eq!(derived.gguf_path, base.gguf_path);
    assert_eq!(derived.template.as_deref(), Some("{{ messages }}"));
    assert_eq!(derived.system.as_deref(), Some("derived system"));
    assert_eq!(
        derived.params.get("temperature"),
        Some(&ParamValue::Float(0.9))
    );
    assert_eq!(
        derived.params.get("stop"),
        Some(&ParamValue::Strings(vec!["A".into(), "B".into()]))
    );
    assert_eq!(derived.messages, base.messages);
    assert_eq!(derived.licenses, ["L1", "L2"]);
    assert_eq!(derived.config.file_type, "Q8_0");
    let model_layer = derived.manifest.layer(MODEL_MEDIA_TYPE).unwrap();
    assert_eq!(model_layer.from.as_deref(), Some("base:latest"));
    // The base is untouched.
    assert_eq!(base.system.as_deref(), Some("base system"));

    let missing = Modelfile::parse("FROM nosuchmodel\n").unwrap();
    let e = store
        .create(&name("x"), &missing, &dir, &mut |_| {})
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::NotFound(n) if n == "nosuchmodel:latest"),
        "{e}"
    );
    let missing_file = Modelfile::parse("FROM ./missing.gguf\n").unwrap();
    let e = store
        .create(&name("x"), &missing_file, &dir, &mut |_| {})
        .unwrap_err();
    assert!(e.to_string().contains("missing.gguf"), "{e}");
}

#[test]
fn show_modelfile_recreates_the_model_without_copying() {
    let dir = temp_dir("modelfile-round-trip");
    write_gguf(&dir, "m.gguf", 7);
    let store = Store::open(dir.join("models")).unwrap();
    create(
        &store,
        "orig",
        &dir,
        "FROM m.gguf\nTEMPLATE \"\"\"a\n\"b\"\n\"\"\"\nPARAMETER top_k 5\nMESSAGE assistant \" x \"\n",
    );
    let orig = store.resolve(&name("orig")).unwrap();
    let text = orig.modelfile().render();
    let modelfile = Modelfile::parse(&text).unwrap();
    let mut copied = false;
    store
        .create(&name("again"), &modelfile, &dir, &mut |p| {
            copied |=
                p.status == "transferring model data" || p.status == "gathering model components";
        })
        .unwrap();
    assert!(!copied, "FROM a blob path uses the blob in place");
    let again = store.resolve(&name("again")).unwrap();
    assert_eq!(again.digest, orig.digest, "same manifest, same ID");
}

#[test]
fn names_match_ignoring_case() {
    let dir = temp_dir("case");
    write_gguf(&dir, "m.gguf", 8);
    let store = Store::open(dir.join("models")).unwrap();
    create(&store, "Mixed/Case:Tag", &dir, "FROM m.gguf\n");
    let resolved = store.resolve(&name("mixed/case:tag")).unwrap();
    assert_eq!(resolved.name, name("Mixed/Case:Tag"));
    // Writing another spelling replaces the model rather than adding one.
    create(&store, "MIXED/CASE:TAG", &dir, "FROM m.gguf\nSYSTEM new\n");
    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name, name("Mixed/Case:Tag"));
    store
        .copy(&name("mixed/case:tag"), &name("MIXED/case:TAG"))
        .unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
    store.delete(&name("mixed/CASE:tag")).unwrap();
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn rejects_files_that_are_not_gguf() {
    let dir = temp_dir("not-gguf");
    fs::write(dir.join("notes.txt"), "GGUF? no.").unwrap();
    let store = Store::open(dir.join("models")).unwrap();
    let modelfile = Modelfile::parse("FROM notes.txt\n").unwrap();
    let e = store
        .create(&name("bad"), &modelfile, &dir, &mut |_| {})
        .unwrap_err();
    assert!(matches!(e, StoreError::NotGguf { .. }), "{e}");
    assert!(blobs_on_disk(&store).is_empty());
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn crash_leftovers_are_never_models_or_blobs() {
    let dir = temp_dir("crash");
    write_gguf(&dir, "m.gguf", 9);
    let root = dir.join("models");
    let store = Store::open(&root).unwrap();
    create(&store, "ok", &dir, "FROM m.gguf\n");
    let blobs = blobs_on_disk(&store);

    // What a crash mid-write leaves: a partial file in tmp/, never under a
    // final name. Plus stray files a user or another tool might drop in.
    let partial = root.join("tmp").join("12345-0.partial");
    fs::write(&partial, b"GGUF half a model").unwrap();
    let stray_manifest = root.join("manifests/registry.ollama.ai/library/ok/.latest.swp");
    fs::write(&stray_manifest, b"{").unwrap();
    let stray_blob = root.join("blobs").join("sha256-abc.partial");
    fs::write(&stray_blob, b"x").unwrap();

    let names: Vec<ModelName> = store.list().unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, [name("ok")]);
    assert!(!store.has_blob(&Digest::of(b"GGUF half a model")));

    // Reopening with nobody else using the store clears tmp/.
    let store = Store::open(&root).unwrap();
    assert!(!partial.exists());
    // A collection removes nothing it cannot name as a blob, and nothing live.
    let report = store.prune().unwrap();
    assert_eq!(report.blobs, 0);
    assert!(stray_blob.exists());
    fs::remove_file(&stray_blob).unwrap();
    assert_eq!(blobs_on_disk(&store), blobs);
    assert!(store.resolve(&name("ok")).is_ok());
}

#[test]
fn put_blob_verifies_the_digest() {
    let dir = temp_dir("put-blob");
    let gguf = write_gguf(&dir, "m.gguf", 10);
    let store = Store::open(dir.join("models")).unwrap();
    let bytes = fs::read(&gguf).unwrap();
    let digest = Digest::of(&bytes);

    let wrong = Digest::of(b"something else");
    let e = store.put_blob(&wrong, &mut &bytes[..]).unwrap_err();
    assert!(
        matches!(e, StoreError::DigestMismatch { expected, actual } if expected == wrong && actual == digest)
    );
    assert!(!store.has_blob(&wrong));
    assert!(!store.has_blob(&digest));
    assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);

    assert!(!store.has_blob(&digest));
    assert_eq!(
        store.put_blob(&digest, &mut &bytes[..]).unwrap(),
        bytes.len() as u64
    );
    assert!(store.has_blob(&digest));
    // What a server does after POST /api/blobs: create FROM the blob.
    let from = store.blob_path(&digest).display().to_string();
    store
        .create(&name("uploaded"), &Modelfile::new(from), &dir, &mut |_| {})
        .unwrap();
    let resolved = store.resolve(&name("uploaded")).unwrap();
    assert_eq!(resolved.gguf_path, store.blob_path(&digest));
}

#[test]
fn builtin_model_is_installed_on_first_use() {
    let dir = temp_dir("builtin");
    let gguf = write_gguf(&dir, "tiny.gguf", 11);
    let store = Store::open(dir.join("models"))
        .unwrap()
        .with_builtin(name("hearth-tiny"), &gguf);
    assert!(store.list().unwrap().is_empty());
    let resolved = store.resolve(&name("hearth-tiny")).unwrap();
    assert_eq!(
        fs::read(&resolved.gguf_path).unwrap(),
        fs::read(&gguf).unwrap()
    );
    assert_eq!(store.list().unwrap().len(), 1);
    // A model can be built on it by name, even after it was removed.
    store.delete(&name("hearth-tiny")).unwrap();
    create(&store, "mine", &dir, "FROM hearth-tiny\nSYSTEM hi\n");
    assert_eq!(store.list().unwrap().len(), 2);
    assert!(matches!(
        store.resolve(&name("other")),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn compiled_in_builtin_is_listed_once_installed_and_comes_back_when_used_after_delete() {
    let dir = temp_dir("builtin-bytes");
    let gguf = write_gguf(&dir, "tiny.gguf", 12);
    let bytes: &'static [u8] = fs::read(&gguf).unwrap().leak();
    let mut params = store::Parameters::new();
    params.set("temperature", "0").unwrap();
    let store = Store::open(dir.join("models")).unwrap().with_builtin_bytes(
        name("hearth-tiny"),
        bytes,
        params,
    );
    store.install_builtins().unwrap();
    let listed: Vec<String> = store
        .list()
        .unwrap()
        .iter()
        .map(|e| e.name.display_short())
        .collect();
    assert_eq!(listed, ["hearth-tiny:latest"]);
    let resolved = store.resolve(&name("hearth-tiny")).unwrap();
    assert_eq!(fs::read(&resolved.gguf_path).unwrap(), bytes);
    assert_eq!(
        resolved.params.get("temperature"),
        Some(&ParamValue::Float(0.0))
    );
    // Installing again keeps the model as it is.
    store.install_builtins().unwrap();
    assert_eq!(store.list().unwrap()[0].digest, resolved.digest);
    // Deleted, it stays deleted until its name is used.
    store.delete(&name("hearth-tiny")).unwrap();
    assert!(store.list().unwrap().is_empty());
    store.install_builtins().unwrap();
    assert!(store.list().unwrap().is_empty());
    store.resolve(&name("hearth-tiny")).unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn concurrent_creates_and_deletes_leave_a_consistent_store() {
    let dir = temp_dir("concurrent");
    for i in 0..3u8 {
        write_gguf(&dir, &format!("m{i}.gguf"), 20 + i);
    }
    let store = Store::open(dir.join("models")).unwrap();
    std::thread::scope(|s| {
        for t in 0..6usize {
            let store = &store;
            let dir = &dir;
            s.spawn(move || {
                for round in 0..4usize {
                    let file = (t + round) % 3;
                    let model = format!("t{t}:r{round}");
                    create(
                        store,
                        &model,
                        dir,
                        &format!("FROM m{file}.gguf\nSYSTEM thread {t}\n"),
                    );
                    // Every other round, delete the previous model: its
                    // collection races the other threads' creates.
                    if round % 2 == 1 {
                        store
                            .delete(&name(&format!("t{t}:r{}", round - 1)))
                            .unwrap();
                    }
                }
            });
        }
    });
    let list = store.list().unwrap();
    assert_eq!(list.len(), 6 * 2);
    let mut referenced = HashSet::new();
    for entry in &list {
        let resolved = store.resolve(&entry.name).unwrap();
        for digest in resolved.manifest.digests() {
            assert!(store.has_blob(&digest), "{} lost {digest}", entry.name);
            referenced.insert(digest);
        }
    }
    assert_eq!(store.prune().unwrap().blobs, 0, "deletes already collected");
    let on_disk: HashSet<Digest> = blobs_on_disk(&store).into_iter().collect();
    assert_eq!(on_disk, referenced);
}

/// A tiny GGUF LoRA adapter for the test model of [`write_gguf`].
fn write_adapter(dir: &std::path::Path, file_name: &str, general_type: &str) {
    let mut w = gguf::GgufWriter::new();
    w.add_str("general.architecture", "llama");
    w.add_str("general.type", general_type);
    w.add_str("adapter.type", "lora");
    w.add_f32("adapter.lora.alpha", 8.0);
    let a = vec![0u8; 64 * 4 * 4];
    w.add_tensor("output.weight.lora_a", gguf::TensorType::F32, &[64, 4], &a)
        .unwrap();
    w.add_tensor("output.weight.lora_b", gguf::TensorType::F32, &[4, 64], &a)
        .unwrap();
    w.write_file(dir.join(file_name)).unwrap();
}

#[test]
fn adapters_become_layers_and_show_in_the_modelfile() {
    let dir = temp_dir("adapter");
    write_gguf(&dir, "m.gguf", 9);
    write_adapter(&dir, "lora.gguf", "adapter");
    write_adapter(&dir, "not-lora.gguf", "model");
    let store = Store::open(dir.join("models")).unwrap();
    let manifest = create(&store, "tuned", &dir, "FROM m.gguf\nADAPTER ./lora.gguf\n");
    let adapters: Vec<_> = manifest
        .layers
        .iter()
        .filter(|l| l.media_type == store::ADAPTER_MEDIA_TYPE)
        .collect();
    assert_eq!(adapters.len(), 1);
    let lora_bytes = fs::read(dir.join("lora.gguf")).unwrap();
    assert_eq!(adapters[0].digest, store::Digest::of(&lora_bytes));

    let tuned = store.resolve(&name("tuned")).unwrap();
    assert_eq!(tuned.adapters.len(), 1);
    assert_eq!(fs::read(&tuned.adapters[0]).unwrap(), lora_bytes);
    let text = tuned.modelfile_text();
    assert!(
        text.contains(&format!("\nADAPTER {}\n", tuned.adapters[0].display())),
        "{text}"
    );
    // The shown Modelfile rebuilds the same model; a model built FROM it
    // keeps its adapter.
    create(&store, "again", &dir, &tuned.modelfile().render());
    assert_eq!(store.resolve(&name("again")).unwrap().digest, tuned.digest);
    create(&store, "child", &dir, "FROM tuned\nSYSTEM hi\n");
    assert_eq!(
        store.resolve(&name("child")).unwrap().adapters,
        tuned.adapters
    );

    // Not an adapter, or not there: clear errors, nothing written.
    for (line, expected) in [
        ("ADAPTER not-lora.gguf", "not 'adapter'"),
        ("ADAPTER m.gguf", "not 'adapter'"),
        ("ADAPTER missing.gguf", "not a GGUF file"),
        ("ADAPTER .", "a directory"),
    ] {
        let modelfile = Modelfile::parse(&format!("FROM m.gguf\n{line}\n")).unwrap();
        let e = store
            .create(&name("bad"), &modelfile, &dir, &mut |_| {})
            .unwrap_err();
        assert!(e.to_string().contains(expected), "{line}: {e}");
    }
    assert!(store.resolve(&name("bad")).is_err());
}
