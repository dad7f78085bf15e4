#!/usr/bin/env python3
"""Takes the screenshots of the web page in docs/ (docs/web-chat.png,
docs/web-chat-narrow.png, docs/web-models.png): starts `hearth serve` on a
free port over an empty temporary store (the built-in hearth-tiny is there),
chats with hearth-tiny in headless Chromium and shows the models page with
a pull in progress (a random-weight test model written by the `synth`
example, from a registry on 127.0.0.1 that holds back the second half until
the picture is taken). Everything on them is what the page shows for real.

    cargo build && .venv/bin/python tools/screenshots.py

Environment: HEARTH_BIN (default target/debug/hearth), HEARTH_SYNTH
(default target/debug/examples/synth), HEARTH_CHROMIUM (default
/usr/bin/chromium, Debian's chromium package).
"""

import hashlib
import http.server
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from playwright.sync_api import sync_playwright

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HEARTH = pathlib.Path(os.environ.get("HEARTH_BIN", ROOT / "target" / "debug" / "hearth"))
CHROMIUM = os.environ.get("HEARTH_CHROMIUM", "/usr/bin/chromium")
SYNTH = pathlib.Path(os.environ.get("HEARTH_SYNTH", ROOT / "target" / "debug" / "examples" / "synth"))
QUESTIONS = ["What is 12 plus 7?", "What is the capital of France?", "What is 6 times 7?"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(store):
    port = free_port()
    env = dict(
        os.environ,
        HEARTH_HOST=f"127.0.0.1:{port}",
        HEARTH_MODELS=str(store),
        HEARTH_CONFIG=str(store / "no-config.toml"),
        HEARTH_LOG="warn",
    )
    process = subprocess.Popen([str(HEARTH), "serve"], env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(url + "/health", timeout=1):
                return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    sys.exit("hearth serve did not start")


def gated_registry(weights):
    """A registry (Ollama's protocol) serving one model, `web/demo:latest`,
    whose weights stop halfway until the returned event is set: the models
    page then shows a pull in progress."""
    config = json.dumps({"model_format": "gguf", "model_family": "llama"}).encode()

    def layer(media, data):
        return {"mediaType": media, "digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}

    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": layer("application/vnd.docker.container.image.v1+json", config),
            "layers": [layer("application/vnd.ollama.image.model", weights)],
        }
    ).encode()
    blobs = {layer("", b)["digest"]: b for b in (weights, config)}
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            digest = self.path.rsplit("/", 1)[-1]
            if self.path == "/v2/web/demo/manifests/latest":
                body = manifest
            elif "/blobs/" in self.path and digest in blobs:
                body = blobs[digest]
            else:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body is weights:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                release.wait(120)
                body = body[len(body) // 2 :]
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"127.0.0.1:{server.server_address[1]}", release, server


def ask(page, question, answers):
    page.fill("#prompt", question)
    page.press("#prompt", "Enter")
    page.wait_for_function(
        "n => document.querySelectorAll('.msg.assistant .stats').length === n"
        " && [...document.querySelectorAll('.msg.assistant .stats')].every(s => s.textContent)"
        " && !document.body.classList.contains('busy')",
        arg=answers,
    )


def main():
    if not HEARTH.exists():
        sys.exit(f"{HEARTH} does not exist: cargo build first, or set HEARTH_BIN")
    DOCS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        process, url = start_server(pathlib.Path(tmp))
        try:
            browser = p.chromium.launch(executable_path=CHROMIUM)
            context = browser.new_context(viewport={"width": 1280, "height": 760}, color_scheme="light")
            page = context.new_page()
            page.goto(url + "/")
            page.wait_for_selector("body[data-ready=true]")
            page.select_option("#model", "hearth-tiny:latest")
            page.click("#settings-toggle")
            page.fill("#temperature", "0")
            page.click("#settings-toggle")
            # An earlier conversation, for the sidebar.
            ask(page, "What is the opposite of hot?", 1)
            page.click("#new-chat")
            for n, question in enumerate(QUESTIONS, 1):
                ask(page, question, n)
            page.mouse.move(0, 0)
            page.screenshot(path=DOCS / "web-chat.png")

            page.set_viewport_size({"width": 390, "height": 760})
            # The sidebar slides out of view (a 0.2 s transition).
            page.wait_for_function(
                "() => document.getElementById('sidebar').getBoundingClientRect().right <= 0"
            )
            page.screenshot(path=DOCS / "web-chat-narrow.png")
            page.set_viewport_size({"width": 1280, "height": 760})

            page.click("#nav-models")
            page.wait_for_selector("#loaded tr[data-model]")
            page.wait_for_function(
                "() => [...document.querySelectorAll('#installed .context')].every(c => c.textContent !== '…')"
            )
            if SYNTH.exists():
                # A pull in progress: a random-weight test model from a local
                # registry that holds the second half back.
                gguf = pathlib.Path(tmp) / "demo.gguf"
                subprocess.run([str(SYNTH), "tiny-llama", str(gguf), "Q8_0"], check=True)
                host, release, registry = gated_registry(gguf.read_bytes())
                page.fill("#pull-name", f"{host}/web/demo")
                page.check("#pull-insecure")
                page.click("#pull-button")
                page.wait_for_function(
                    "() => { const b = document.querySelector('#pulls progress');"
                    " return b && b.value > 0 && b.value < b.max && b.max > 1; }"
                )
                page.locator("#pull-button").blur()
                page.screenshot(path=DOCS / "web-models.png")
                release.set()
                page.wait_for_selector(".pull.done")
                registry.shutdown()
            else:
                print(f"no {SYNTH} (cargo test builds it): the models page without a pull")
                page.screenshot(path=DOCS / "web-models.png")
            browser.close()
        finally:
            process.terminate()
            process.wait(timeout=20)
    for name in ["web-chat.png", "web-chat-narrow.png", "web-models.png"]:
        print(DOCS / name)


if __name__ == "__main__":
    main()
