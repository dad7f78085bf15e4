//! Built-in models across program versions: installed and recorded in a fresh
//! store, untouched when the same version opens the store again, replaced when
//! a new version opens it (old blobs collected), and never replacing a model
//! the user put under that name or one the store has no valid record of.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::{blobs_on_disk, create, name, temp_dir, write_gguf};
use store::{MODEL_MEDIA_TYPE, PARAMS_MEDIA_TYPE, ParamValue, Parameters, Store};

/// Where the record of `hearth-tiny:latest` is kept.
const RECORD: &str = "builtins/registry.ollama.ai/library/hearth-tiny/latest";
/// Where its manifest is kept.
const MANIFEST: &str = "manifests/registry.ollama.ai/library/hearth-tiny/latest";

/// One version of the built-in, as a program compiles it in.
struct Version {
    gguf: &'static [u8],
    params: Parameters,
}

impl Version {
    /// GGUF bytes from `write_gguf(seed)` and the parameters `params`.
    fn new(dir: &Path, seed: u8, params: &[(&str, &str)]) -> Version {
        let path = write_gguf(dir, &format!("builtin-{seed}.gguf"), seed);
        let mut parameters = Parameters::new();
        for (name, value) in params {
            parameters.set(name, value).unwrap();
        }
        Version {
            gguf: fs::read(path).unwrap().leak(),
            params: parameters,
        }
    }

    /// Opens the store under `dir` as a program carrying this version does.
    fn open(&self, dir: &Path) -> Store {
        let store = Store::open(dir.join("models")).unwrap().with_builtin_bytes(
            name("hearth-tiny"),
            self.gguf,
            self.params.clone(),
        );
        store.install_builtins().unwrap();
        store
    }
}

/// The store's file at `relative`.
fn file(store: &Store, relative: &str) -> PathBuf {
    store.root().join(relative)
}

/// The GGUF bytes the store's `hearth-tiny` runs.
fn weights(store: &Store) -> Vec<u8> {
    fs::read(store.resolve(&name("hearth-tiny")).unwrap().gguf_path).unwrap()
}

#[test]
fn fresh_store_installs_and_records() {
    let dir = temp_dir("builtin-fresh");
    let v1 = Version::new(&dir, 31, &[("temperature", "0")]);
    let store = v1.open(&dir);
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(weights(&store), v1.gguf);
    let record: serde_json::Value =
        serde_json::from_slice(&fs::read(file(&store, RECORD)).unwrap()).unwrap();
    assert_eq!(record["manifest"], listed[0].digest.to_string());
    assert!(record["version"].as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn reopening_with_the_same_version_writes_nothing() {
    let dir = temp_dir("builtin-same");
    let v1 = Version::new(&dir, 32, &[("temperature", "0")]);
    let store = v1.open(&dir);
    // An old modification time shows whether the manifest is written again.
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    for relative in [MANIFEST, RECORD] {
        fs::File::options()
            .write(true)
            .open(file(&store, relative))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let manifest = fs::read(file(&store, MANIFEST)).unwrap();
    let blobs = blobs_on_disk(&store);

    let store = v1.open(&dir);
    for relative in [MANIFEST, RECORD] {
        let modified = fs::metadata(file(&store, relative))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(modified, old, "{relative} was written again");
    }
    assert_eq!(fs::read(file(&store, MANIFEST)).unwrap(), manifest);
    assert_eq!(blobs_on_disk(&store), blobs);
}

#[test]
fn new_version_replaces_an_untouched_builtin_and_collects_its_blobs() {
    let dir = temp_dir("builtin-upgrade");
    let v1 = Version::new(&dir, 33, &[("temperature", "0")]);
    let store = v1.open(&dir);
    let old = store.resolve(&name("hearth-tiny")).unwrap();
    let old_weights = old.manifest.layer(MODEL_MEDIA_TYPE).unwrap().digest;
    let old_params = old.manifest.layer(PARAMS_MEDIA_TYPE).unwrap().digest;

    // New parameters, same GGUF: a new version.
    let v2 = Version {
        gguf: v1.gguf,
        params: {
            let mut p = v1.params.clone();
            p.set("repeat_penalty", "1").unwrap();
            p
        },
    };
    let store = v2.open(&dir);
    let resolved = store.resolve(&name("hearth-tiny")).unwrap();
    assert_eq!(
        resolved.params.get("repeat_penalty"),
        Some(&ParamValue::Float(1.0))
    );
    assert_eq!(
        resolved.params.get("temperature"),
        Some(&ParamValue::Float(0.0))
    );
    assert_ne!(resolved.digest, old.digest);
    let blobs = blobs_on_disk(&store);
    assert!(!blobs.contains(&old_params), "old params layer collected");
    assert!(blobs.contains(&old_weights), "the GGUF is still used");

    // A new GGUF: the old weights go, unless another model uses them.
    let v3 = Version::new(&dir, 34, &[("temperature", "0"), ("repeat_penalty", "1")]);
    let store = v3.open(&dir);
    assert_eq!(weights(&store), v3.gguf);
    assert!(!blobs_on_disk(&store).contains(&old_weights));
    store
        .copy(&name("hearth-tiny"), &name("kept-copy"))
        .unwrap();
    let v3_weights = store
        .resolve(&name("hearth-tiny"))
        .unwrap()
        .manifest
        .layer(MODEL_MEDIA_TYPE)
        .unwrap()
        .digest;
    let store = v1.open(&dir);
    assert_eq!(weights(&store), v1.gguf);
    assert_eq!(fs::read(store.blob_path(&v3_weights)).unwrap(), v3.gguf);
    // Nothing unreferenced is left behind.
    assert_eq!(store.prune().unwrap().blobs, 0);
}

#[test]
fn a_model_the_user_put_under_the_name_is_left_alone() {
    let dir = temp_dir("builtin-user");
    let v1 = Version::new(&dir, 35, &[("temperature", "0")]);
    let v2 = Version::new(&dir, 36, &[("temperature", "0")]);
    write_gguf(&dir, "mine.gguf", 37);

    // Created under the name.
    let store = v1.open(&dir);
    let mine = create(
        &store,
        "hearth-tiny",
        &dir,
        "FROM ./mine.gguf\nPARAMETER top_k 5\n",
    );
    let store = v2.open(&dir);
    let resolved = store.resolve(&name("hearth-tiny")).unwrap();
    assert_eq!(resolved.manifest, mine);
    assert_eq!(
        fs::read(&resolved.gguf_path).unwrap(),
        fs::read(dir.join("mine.gguf")).unwrap()
    );

    // Copied over it.
    store.delete(&name("hearth-tiny")).unwrap();
    let store = v1.open(&dir);
    create(&store, "other", &dir, "FROM ./mine.gguf\n");
    store.copy(&name("other"), &name("hearth-tiny")).unwrap();
    let copied = fs::read(file(&store, MANIFEST)).unwrap();
    let store = v2.open(&dir);
    assert_eq!(fs::read(file(&store, MANIFEST)).unwrap(), copied);

    // Removed, the built-in comes back in the current version.
    store.delete(&name("hearth-tiny")).unwrap();
    let store = v2.open(&dir);
    assert_eq!(weights(&store), v2.gguf);
}

#[test]
fn without_a_valid_record_the_model_is_kept_and_the_store_opens() {
    let dir = temp_dir("builtin-record");
    let v1 = Version::new(&dir, 38, &[("temperature", "0")]);
    let v2 = Version::new(&dir, 39, &[("temperature", "0")]);
    let v3 = Version::new(&dir, 40, &[("temperature", "0")]);

    // Missing: as a store written before records were kept.
    let store = v1.open(&dir);
    fs::remove_file(file(&store, RECORD)).unwrap();
    let store = v2.open(&dir);
    assert_eq!(weights(&store), v1.gguf);

    // Not JSON, or not a record.
    for bad in [&b"{\"version\": \"sha256:12"[..], b"[]", b""] {
        fs::write(file(&store, RECORD), bad).unwrap();
        let store = v2.open(&dir);
        assert_eq!(weights(&store), v1.gguf);
    }

    // `rm` brings back the current version, recorded again: the next version
    // replaces it.
    store.delete(&name("hearth-tiny")).unwrap();
    let store = v2.open(&dir);
    assert_eq!(weights(&store), v2.gguf);
    let store = v3.open(&dir);
    assert_eq!(weights(&store), v3.gguf);
}

#[test]
fn first_use_installs_and_records_too() {
    let dir = temp_dir("builtin-first-use");
    let v1 = Version::new(&dir, 41, &[("temperature", "0")]);
    let v2 = Version::new(&dir, 42, &[("temperature", "0")]);
    // Registered without `install_builtins`: resolving installs it.
    let store = Store::open(dir.join("models")).unwrap().with_builtin_bytes(
        name("hearth-tiny"),
        v1.gguf,
        v1.params.clone(),
    );
    assert_eq!(weights(&store), v1.gguf);
    let store = v2.open(&dir);
    assert_eq!(weights(&store), v2.gguf);
}

#[test]
fn removal_is_remembered_until_the_model_is_used_again() {
    let dir = temp_dir("builtin-removed");
    let v1 = Version::new(&dir, 43, &[("temperature", "0")]);
    let v2 = Version::new(&dir, 44, &[("temperature", "0")]);
    let store = v1.open(&dir);
    assert!(store.is_builtin(&name("hearth-tiny")));
    store.delete(&name("hearth-tiny")).unwrap();

    // Opening the store again, by this version or a newer one, does not bring
    // it back, and its blobs stay collected.
    for version in [&v1, &v2, &v1] {
        let store = version.open(&dir);
        assert!(store.list().unwrap().is_empty());
        assert!(blobs_on_disk(&store).is_empty());
    }

    // Using the name installs the current version and forgets the removal.
    let store = v2.open(&dir);
    assert_eq!(weights(&store), v2.gguf);
    let store = v2.open(&dir);
    assert_eq!(store.list().unwrap().len(), 1);
    assert!(
        !file(
            &store,
            "builtins-removed/registry.ollama.ai/library/hearth-tiny/latest"
        )
        .exists()
    );
}
