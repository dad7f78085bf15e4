"""`pull()` of the official `ollama` Python client against `hearth serve`'s
/api/pull, from a small registry speaking Ollama's protocol (manifests and
blobs under /v2/, served by Python's http.server on 127.0.0.1)."""

import hashlib
import http.server
import json
import threading

import ollama
import pytest

MODEL_MEDIA = "application/vnd.ollama.image.model"
CONFIG_MEDIA = "application/vnd.docker.container.image.v1+json"
MANIFEST_MEDIA = "application/vnd.docker.distribution.manifest.v2+json"


def _layer(media, data):
    return {"mediaType": media, "digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}


@pytest.fixture(scope="module")
def registry(gguf):
    weights = gguf.read_bytes()
    config = json.dumps({"model_format": "gguf", "model_family": "llama"}).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA,
            "config": _layer(CONFIG_MEDIA, config),
            "layers": [_layer(MODEL_MEDIA, weights)],
        }
    ).encode()
    blobs = {_layer("", b)["digest"]: b for b in (weights, config)}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, status, body, content_type="application/octet-stream"):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            parts = self.path.split("/")
            if self.path == "/v2/e2e/pulled/manifests/latest":
                self._send(200, manifest, MANIFEST_MEDIA)
            elif len(parts) == 6 and parts[4] == "blobs" and parts[5] in blobs:
                data = blobs[parts[5]]
                spec = self.headers.get("Range", "")
                if spec.startswith("bytes="):
                    start, _, end = spec[len("bytes="):].partition("-")
                    start, end = int(start), int(end or len(data) - 1)
                    body = data[start : end + 1]
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{start + len(body) - 1}/{len(data)}")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self._send(200, data)
            else:
                self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_pull_streams_ollama_progress(ollama_client, registry):
    name = f"{registry}/e2e/pulled:latest"
    steps = list(ollama_client.pull(name, insecure=True, stream=True))
    statuses = [s.status for s in steps]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    layers = [s for s in steps if s.digest]
    assert layers, statuses
    assert all(s.status == "pulling " + s.digest[len("sha256:"):][:12] for s in layers)
    assert layers[-1].completed == layers[-1].total > 0

    # Again, as one answer: everything is there already.
    done = ollama_client.pull(name, insecure=True)
    assert done.status == "success"
    assert any(m.model == name for m in ollama_client.list().models)


def test_pull_of_unknown_tag_is_an_error(ollama_client, registry):
    with pytest.raises(ollama.ResponseError) as e:
        ollama_client.pull(f"{registry}/e2e/pulled:nope", insecure=True)
    assert "not found" in str(e.value)
