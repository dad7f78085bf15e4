//! Replicas share one model volume mounted read-only: `hearth serve` on a
//! read-only store lists, shows, runs and serves its models (the registry
//! read side too) and refuses changes with a clear 403. As root the store is
//! made read-only by a bind mount in a private mount namespace (`unshare
//! --mount`); otherwise by taking the write permission away, which the
//! store treats the same way.

mod serve_common;

use serde_json::json;
use serve_common::{Scratch, Server};

#[test]
fn a_read_only_store_serves_and_refuses_changes() {
    let scratch = Scratch::new("readonly");
    // Fill the store while it is writable: a model, and the built-in one.
    scratch.ok("127.0.0.1:1", &["create", "tiny", "-f", "Modelfile"]);
    let source = scratch.models();
    let mount = scratch.dir.join("ro");
    std::fs::create_dir_all(&mount).unwrap();
    let root = nix::unistd::geteuid().is_root();
    let server = if root {
        let (source, mount) = (source.to_str().unwrap(), mount.to_str().unwrap());
        let script = "mount --bind \"$1\" \"$2\" && mount -o remount,bind,ro \"$2\" && shift 2 && exec \"$@\"";
        Server::start_wrapped(
            std::path::Path::new(mount),
            &[],
            "HEARTH",
            &[
                "unshare", "--mount", "sh", "-c", script, "sh", source, mount,
            ],
        )
    } else {
        set_writable(&source, false);
        Server::start_wrapped(&source, &[], "HEARTH", &[])
    };

    let tags = server.get("/api/tags");
    let names: Vec<&str> = tags["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"tiny:latest") && names.contains(&"hearth-tiny:latest"),
        "{names:?}"
    );
    let (status, body) = server.post(
        "/api/generate",
        &json!({"model": "hearth-tiny", "prompt": "What is 12 plus 7?", "stream": false}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body["response"].as_str().unwrap().contains("19"), "{body}");
    let manifest = server
        .http
        .get(server.url("/v2/library/tiny/manifests/latest"))
        .send()
        .unwrap();
    assert_eq!(manifest.status(), 200);

    for (path, body) in [
        (
            "/api/copy",
            json!({"source": "tiny", "destination": "other"}),
        ),
        ("/api/create", json!({"model": "new", "from": "tiny"})),
    ] {
        let (status, body) = server.post(path, &body);
        assert_eq!(status, 403, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("read-only"),
            "{body}"
        );
    }
    let response = server
        .http
        .delete(server.url("/api/delete"))
        .json(&json!({"model": "tiny"}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 403);
    if !root {
        set_writable(&scratch.models(), true);
    }
    // Nothing changed underneath.
    assert!(
        scratch
            .models()
            .join("manifests/registry.ollama.ai/library/tiny/latest")
            .is_file()
    );
    assert!(
        !scratch
            .models()
            .join("manifests/registry.ollama.ai/library/other")
            .exists()
    );
}

/// Gives or takes the write permission on everything under `dir`.
fn set_writable(dir: &std::path::Path, writable: bool) {
    use std::os::unix::fs::PermissionsExt as _;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            set_writable(&path, writable);
        } else {
            let mode = if writable { 0o644 } else { 0o444 };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
    let mode = if writable { 0o755 } else { 0o555 };
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
}
