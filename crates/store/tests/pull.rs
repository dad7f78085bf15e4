//! Pulls from a registry on 127.0.0.1 (tests/common/registry.rs) with the
//! faults of the real world: a redirect to a second host, a token challenge,
//! a connection dropped mid-blob, a corrupt blob, an unknown tag, a slow
//! blob, an unreachable host, and a GGUF file by Hugging Face-style URL.

#[allow(dead_code)]
mod common;
#[path = "common/registry.rs"]
mod registry;

use std::sync::Arc;
use std::time::Duration;

use common::{name, temp_dir, write_gguf};
use registry::Registry;
use store::{
    Digest, MODEL_MEDIA_TYPE, PARAMS_MEDIA_TYPE, Progress, PullOptions, Store, StoreError,
    TEMPLATE_MEDIA_TYPE,
};

const JINJA: &str = "{% for m in messages %}{{ m['content'] }}{% endfor %}";

/// Options for the test registry: plain http, small parts (so even a small
/// blob is fetched as many ranges), short pauses.
fn options() -> PullOptions {
    PullOptions {
        insecure: true,
        min_part_size: 1024,
        backoff: Duration::from_millis(10),
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(5),
        ..PullOptions::default()
    }
}

/// A registry holding `ns/tiny:v1` (a GGUF, a Jinja template, parameters);
/// returns it with the GGUF's bytes.
fn registry_with_model(test: &str) -> (Registry, Vec<u8>, std::path::PathBuf) {
    let dir = temp_dir(test);
    let gguf = std::fs::read(write_gguf(&dir, "tiny.gguf", 3)).unwrap();
    let registry = Registry::start();
    registry.add_model(
        "ns/tiny:v1",
        &[
            (MODEL_MEDIA_TYPE, gguf.clone()),
            (TEMPLATE_MEDIA_TYPE, JINJA.as_bytes().to_vec()),
            (PARAMS_MEDIA_TYPE, br#"{"temperature":0.5}"#.to_vec()),
        ],
    );
    (registry, gguf, dir)
}

fn pull(store: &Store, source: &str, options: &PullOptions) -> Result<Vec<Progress>, StoreError> {
    let mut steps = Vec::new();
    store.pull(source, options, &mut |p| steps.push(p))?;
    Ok(steps)
}

fn blob_files(store: &Store) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(store.root().join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    files
}

#[test]
fn pull_through_redirect_and_auth_then_list_and_resolve() {
    let (registry, gguf, dir) = registry_with_model("pull-basic");
    registry.faults(|f| {
        f.redirect = true;
        f.auth = true;
    });
    let store = Store::open(dir.join("models")).unwrap();
    let source = format!("{}/ns/tiny:v1", registry.host());
    let steps = pull(&store, &source, &options()).unwrap();

    let statuses: Vec<&str> = steps.iter().map(|p| p.status.as_str()).collect();
    assert_eq!(statuses.first(), Some(&"pulling manifest"));
    assert_eq!(
        &statuses[statuses.len() - 3..],
        ["verifying sha256 digest", "writing manifest", "success"]
    );
    let gguf_digest = Digest::of(&gguf);
    let gguf_status = format!("pulling {}", &gguf_digest.hex()[..12]);
    let last = steps
        .iter()
        .rev()
        .find(|p| p.status == gguf_status)
        .unwrap();
    assert_eq!(
        (last.total, last.completed),
        (Some(gguf.len() as u64), Some(gguf.len() as u64))
    );
    assert_eq!(last.digest, Some(gguf_digest));
    assert!(registry.token_requests() >= 1);
    // Every byte fetched exactly once, through the CDN, in many ranges.
    assert_eq!(registry.served(&gguf_digest.to_string()), gguf.len() as u64);

    let model = name(&source);
    let listed = store.list().unwrap();
    let entry = listed.iter().find(|e| e.name == model).expect("listed");
    let manifest_bytes = registry.manifest("ns/tiny:v1").unwrap();
    assert_eq!(
        entry.digest,
        Digest::of(&manifest_bytes),
        "the registry's manifest, unchanged"
    );
    let resolved = store.resolve(&model).unwrap();
    assert_eq!(std::fs::read(&resolved.gguf_path).unwrap(), gguf);
    assert_eq!(resolved.template.as_deref(), Some(JINJA));
    assert!(
        !store
            .root()
            .join("partial")
            .read_dir()
            .unwrap()
            .any(|_| true)
    );

    // Pulled again: nothing is fetched.
    let before = registry.served_total();
    pull(&store, &source, &options()).unwrap();
    assert_eq!(registry.served_total(), before);
}

#[test]
fn dropped_connection_resumes_from_the_bytes_on_disk() {
    let (registry, gguf, dir) = registry_with_model("pull-drop");
    let digest = Digest::of(&gguf).to_string();
    registry.faults(|f| {
        f.drop_after
            .insert(digest.trim_start_matches("sha256:").to_owned(), 3000);
    });
    let store = Store::open(dir.join("models")).unwrap();
    // One part: the drop cuts the only request, which resumes at byte 3000.
    let opts = PullOptions {
        min_part_size: 1 << 30,
        ..options()
    };
    pull(&store, &format!("{}/ns/tiny:v1", registry.host()), &opts).unwrap();
    assert_eq!(
        registry.served(&digest),
        gguf.len() as u64,
        "no byte fetched twice"
    );
    assert!(store.has_blob(&Digest::of(&gguf)));
}

#[test]
fn corrupt_blob_is_refused_and_never_stored() {
    let (registry, gguf, dir) = registry_with_model("pull-corrupt");
    let digest = Digest::of(&gguf);
    registry.faults(|f| {
        f.corrupt.insert(digest.hex());
    });
    let store = Store::open(dir.join("models")).unwrap();
    let blobs_before = blob_files(&store);
    let source = format!("{}/ns/tiny:v1", registry.host());
    let e = pull(&store, &source, &options()).unwrap_err();
    assert!(
        matches!(e, StoreError::DigestMismatch { expected, .. } if expected == digest),
        "{e}"
    );
    assert_eq!(
        blob_files(&store),
        blobs_before,
        "nothing under a final blob name"
    );
    assert!(store.resolve(&name(&source)).is_err());
    assert!(
        !store
            .root()
            .join("partial")
            .join(format!("{}.part", digest.file_name()))
            .exists()
    );

    // Fixed on the registry: the next pull succeeds.
    registry.faults(|f| f.corrupt.clear());
    pull(&store, &source, &options()).unwrap();
    assert!(store.has_blob(&digest));
}

#[test]
fn unknown_tag_and_unreachable_host_are_clear_errors() {
    let (registry, _, dir) = registry_with_model("pull-unknown");
    let store = Store::open(dir.join("models")).unwrap();
    let e = pull(
        &store,
        &format!("{}/ns/tiny:nope", registry.host()),
        &options(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("not found"), "{e}");
    assert!(e.to_string().contains("ns/tiny:nope"), "{e}");

    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = pull(&store, &format!("127.0.0.1:{port}/ns/tiny"), &options()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("cannot reach 127.0.0.1:{port}: ")),
        "{e}"
    );

    // Plain http needs --insecure.
    let e = pull(
        &store,
        &format!("http://{}/ns/tiny:v1", registry.host()),
        &PullOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("insecure"), "{e}");
}

#[test]
fn slow_blob_reports_progress_and_completes() {
    let (registry, gguf, dir) = registry_with_model("pull-slow");
    registry.faults(|f| f.slow = Some((256, Duration::from_millis(20))));
    let store = Store::open(dir.join("models")).unwrap();
    let opts = PullOptions {
        min_part_size: 1 << 30,
        ..options()
    };
    let steps = pull(&store, &format!("{}/ns/tiny:v1", registry.host()), &opts).unwrap();
    let status = format!("pulling {}", &Digest::of(&gguf).hex()[..12]);
    let partial = steps
        .iter()
        .filter(|p| p.status == status)
        .filter(|p| p.completed.is_some_and(|c| c > 0 && c < gguf.len() as u64))
        .count();
    assert!(
        partial >= 2,
        "progress while the blob arrives: {partial} steps"
    );
}

#[test]
fn stalled_blob_times_out_and_is_retried() {
    let (registry, gguf, dir) = registry_with_model("pull-stall");
    // Far slower than the read timeout: each try gets a little and stalls.
    registry.faults(|f| f.slow = Some((4096, Duration::from_millis(400))));
    let store = Store::open(dir.join("models")).unwrap();
    let opts = PullOptions {
        min_part_size: 1 << 30,
        read_timeout: Duration::from_millis(150),
        retries: 1,
        ..options()
    };
    let e = pull(&store, &format!("{}/ns/tiny:v1", registry.host()), &opts).unwrap_err();
    assert!(
        e.to_string().contains("timed out") || e.to_string().contains("reading"),
        "{e}"
    );
    // The bytes that did arrive are kept for the next try.
    registry.faults(|f| f.slow = None);
    let served = registry.served(&Digest::of(&gguf).to_string());
    pull(
        &store,
        &format!("{}/ns/tiny:v1", registry.host()),
        &options(),
    )
    .unwrap();
    assert!(registry.served(&Digest::of(&gguf).to_string()) <= gguf.len() as u64 + served);
}

#[test]
fn template_check_refuses_the_model() {
    let (registry, _, dir) = registry_with_model("pull-template");
    let store = Store::open(dir.join("models")).unwrap();
    let opts = PullOptions {
        template_check: Some(Arc::new(|t: &str| {
            if t.contains("{%") {
                Err("unsupported syntax".to_owned())
            } else {
                Ok(())
            }
        })),
        ..options()
    };
    let source = format!("{}/ns/tiny:v1", registry.host());
    let e = pull(&store, &source, &opts).unwrap_err();
    assert!(matches!(e, StoreError::InvalidTemplate(_)), "{e}");
    assert!(e.to_string().contains("unsupported syntax"), "{e}");
    assert!(store.resolve(&name(&source)).is_err());
}

#[test]
fn gguf_file_by_hugging_face_style_url() {
    let dir = temp_dir("pull-url");
    let gguf = std::fs::read(write_gguf(&dir, "tiny.gguf", 5)).unwrap();
    let registry = Registry::start();
    registry.add_file("/me/repo/resolve/main/tiny-Q8_0.gguf", gguf.clone());
    let store = Store::open(dir.join("models")).unwrap();
    let url = format!(
        "http://{}/me/repo/resolve/main/tiny-Q8_0.gguf",
        registry.host()
    );
    let stored = store.pull(&url, &options(), &mut |_| {}).unwrap();
    assert_eq!(
        stored.to_string(),
        format!("{}/me/repo:tiny-Q8_0", registry.host())
    );
    let resolved = store.resolve(&stored).unwrap();
    assert_eq!(std::fs::read(&resolved.gguf_path).unwrap(), gguf);
    assert!(store.list().unwrap().iter().any(|e| e.name == stored));

    // Not a GGUF: refused, nothing stored.
    registry.add_file("/me/repo/resolve/main/bad.gguf", b"not a model".to_vec());
    let bad = format!("http://{}/me/repo/resolve/main/bad.gguf", registry.host());
    assert!(store.pull(&bad, &options(), &mut |_| {}).is_err());
    assert!(!store.has_blob(&Digest::of(b"not a model")));
}

#[test]
fn push_to_the_registry_then_pull_back() {
    let dir = temp_dir("push");
    let registry = Registry::start();
    registry.faults(|f| f.auth = true);
    let store = Store::open(dir.join("models")).unwrap();
    let model = format!("{}/me/pushed:v1", registry.host());
    common::create(
        &store,
        &model,
        &dir,
        &format!(
            "FROM {}\nTEMPLATE \"\"\"{JINJA}\"\"\"\n",
            write_gguf(&dir, "m.gguf", 9).display()
        ),
    );
    let mut steps = Vec::new();
    store
        .push(&model, &options(), &mut |p| steps.push(p))
        .unwrap();
    let statuses: Vec<&str> = steps.iter().map(|p| p.status.as_str()).collect();
    assert_eq!(statuses.first(), Some(&"retrieving manifest"));
    assert_eq!(
        &statuses[statuses.len() - 2..],
        ["pushing manifest", "success"]
    );
    let resolved = store.resolve(&name(&model)).unwrap();
    let pushed = registry
        .manifest("me/pushed:v1")
        .expect("the manifest was pushed");
    assert_eq!(Digest::of(&pushed), resolved.digest);
    for digest in resolved.manifest.digests() {
        assert!(registry.has_blob(&digest.to_string()), "{digest}");
    }

    // Pushed again: every blob is skipped (HEAD says the registry has it).
    let mut again = Vec::new();
    store
        .push(&model, &options(), &mut |p| again.push(p))
        .unwrap();
    assert!(
        again
            .iter()
            .filter(|p| p.total.is_some())
            .all(|p| p.completed == p.total)
    );

    // Another store pulls it back.
    let other = Store::open(dir.join("other")).unwrap();
    other.pull(&model, &options(), &mut |_| {}).unwrap();
    let back = other.resolve(&name(&model)).unwrap();
    assert_eq!(back.digest, resolved.digest);
    assert_eq!(
        std::fs::read(&back.gguf_path).unwrap(),
        std::fs::read(&resolved.gguf_path).unwrap()
    );
    assert_eq!(back.template.as_deref(), Some(JINJA));
}

#[cfg(unix)]
#[test]
fn import_from_an_ollama_directory_links_blobs() {
    use std::os::unix::fs::MetadataExt;
    let dir = temp_dir("import");
    // An Ollama-layout directory: our own layout, written by a store.
    let ollama = Store::open(dir.join("ollama")).unwrap();
    common::create(
        &ollama,
        "me/mine:v1",
        &dir,
        &format!(
            "FROM {}\nSYSTEM hello\n",
            write_gguf(&dir, "m.gguf", 4).display()
        ),
    );
    common::create(
        &ollama,
        "other",
        &dir,
        &format!("FROM {}\n", write_gguf(&dir, "o.gguf", 6).display()),
    );
    // One model whose weights are gone is left out.
    let other = ollama.resolve(&name("other")).unwrap();
    std::fs::remove_file(&other.gguf_path).unwrap();

    let store = Store::open(dir.join("models")).unwrap();
    store
        .create(
            &name("other"),
            &store::Modelfile::new(write_gguf(&dir, "x.gguf", 7).display().to_string()),
            &dir,
            &mut |_| {},
        )
        .unwrap();
    let report = store
        .import_ollama(&dir.join("ollama"), &mut |_| {})
        .unwrap();
    assert_eq!(report.imported, vec![name("me/mine:v1")]);
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    assert!(report.skipped[0].1.contains("exists already"), "{report:?}");

    let mine = ollama.resolve(&name("me/mine:v1")).unwrap();
    let imported = store.resolve(&name("me/mine:v1")).unwrap();
    assert_eq!(
        imported.digest, mine.digest,
        "the manifest is copied unchanged"
    );
    assert_eq!(imported.system.as_deref(), Some("hello"));
    let ino = |p: &std::path::Path| std::fs::metadata(p).unwrap().ino();
    assert_eq!(
        ino(&imported.gguf_path),
        ino(&mine.gguf_path),
        "hard-linked, not copied"
    );

    // Missing blobs: the model is left out with the reason.
    let store2 = Store::open(dir.join("models2")).unwrap();
    let report = store2
        .import_ollama(&dir.join("ollama"), &mut |_| {})
        .unwrap();
    assert_eq!(report.skipped.len(), 1);
    assert!(report.skipped[0].1.contains("missing"), "{report:?}");
    assert!(
        store2
            .import_ollama(&dir.join("nowhere"), &mut |_| {})
            .is_err()
    );
}

#[test]
fn two_pulls_of_one_model_take_turns() {
    let (registry, gguf, dir) = registry_with_model("pull-twice");
    registry.faults(|f| f.slow = Some((1024, Duration::from_millis(5))));
    let root = dir.join("models");
    let source = format!("{}/ns/tiny:v1", registry.host());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let store = Store::open(&root).unwrap();
                pull(&store, &source, &options()).unwrap();
            });
        }
    });
    assert_eq!(
        registry.served(&Digest::of(&gguf).to_string()),
        gguf.len() as u64,
        "the second pull waited and found the blob"
    );
    let store = Store::open(&root).unwrap();
    assert!(store.resolve(&name(&source)).is_ok());
}

#[test]
fn hostile_manifests_are_refused() {
    let (registry, gguf, dir) = registry_with_model("pull-hostile");
    let store = Store::open(dir.join("models")).unwrap();
    let host = registry.host();
    // Larger than any manifest: refused before it is read to the end.
    registry.add_raw_manifest("ns/huge:v1", vec![b' '; 5 << 20]);
    let e = pull(&store, &format!("{host}/ns/huge:v1"), &options()).unwrap_err();
    assert!(e.to_string().contains("larger than"), "{e}");
    // A blob claimed to be a petabyte.
    let manifest = String::from_utf8(registry.manifest("ns/tiny:v1").unwrap()).unwrap();
    let petabyte = manifest.replace(
        &format!("\"size\":{}", gguf.len()),
        "\"size\":1125899906842624",
    );
    assert_ne!(petabyte, manifest);
    registry.add_raw_manifest("ns/big:v1", petabyte.into_bytes());
    let e = pull(&store, &format!("{host}/ns/big:v1"), &options()).unwrap_err();
    assert!(e.to_string().contains("at most"), "{e}");
    // Not a manifest at all.
    registry.add_raw_manifest("ns/junk:v1", b"{\"layers\": 7}".to_vec());
    let e = pull(&store, &format!("{host}/ns/junk:v1"), &options()).unwrap_err();
    assert!(e.to_string().contains("not valid"), "{e}");
    // A wrong size: the bytes do not hash to the digest, nothing is stored.
    let short = manifest.replace(
        &format!("\"size\":{}", gguf.len()),
        &format!("\"size\":{}", gguf.len() - 1),
    );
    registry.add_raw_manifest("ns/short:v1", short.into_bytes());
    let e = pull(&store, &format!("{host}/ns/short:v1"), &options()).unwrap_err();
    assert!(matches!(e, StoreError::DigestMismatch { .. }), "{e}");
    assert!(!store.has_blob(&Digest::of(&gguf)));
}
