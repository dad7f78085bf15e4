"""The web page `hearth serve` answers browsers with at `/`, driven in a real
headless Chromium (Debian's `chromium`, through playwright) against the real
server: chat with the built-in model, stop a long answer, find the
conversations again after a reload, list, pull (progress bar moving), unload
and delete models, and give an API key when the server asks for one.

Where Chromium is absent the browser tests are skipped with the reason, which
tools/test.sh lists among the checks that could not run. The checks of `/`
that need no browser (plain answer for scripts, the page's headers, hostile
Host names refused) always run.
"""

import hashlib
import http.server
import json
import os
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import TARGET, _binary, _free_port

CHROMIUM = os.environ.get("HEARTH_CHROMIUM", "/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"the web page in a browser — no Chromium at {CHROMIUM} (Debian: chromium)",
)
BUILTIN = "hearth-tiny:latest"
KEY = "hearth-web-test-key"
# How long the page may take to show what a test waits for; a bound on a
# wait for behaviour, not a timing assertion.
WAIT_MS = 120_000


def _get(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


# ---- without a browser ------------------------------------------------------


def test_root_answers_scripts_in_plain_text_and_browsers_with_the_page(server):
    status, headers, body = _get(server.url + "/")
    assert (status, body) == (200, "hearth is running")

    status, headers, body = _get(server.url + "/", {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "<title>hearth</title>" in body
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert headers["X-Frame-Options"] == "DENY"

    # Every asset the page names is served from the binary, with its type.
    for path, kind in [
        ("/ui/app.js", "text/javascript"),
        ("/ui/markdown.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
        ("/ui/icon.svg", "image/svg+xml"),
    ]:
        assert path in body
        status, headers, _ = _get(server.url + path)
        assert (status, headers["Content-Type"]) == (200, kind), path


def test_a_hostile_host_gets_no_page(server):
    """DNS rebinding: a page on another name pointed at this server."""
    for path in ["/", "/ui/app.js"]:
        status, _, body = _get(server.url + path, {"Host": "evil.example", "Accept": "text/html"})
        assert status == 403, path
        assert "not allowed" in body


# ---- in the browser -----------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


class Page:
    """A browser page that records console errors and uncaught exceptions."""

    def __init__(self, browser, url):
        self.url = url
        self.context = browser.new_context(viewport={"width": 1200, "height": 800})
        self.page = self.context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.errors = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self):
        self.page.goto(self.url + "/")
        self.page.wait_for_selector("body[data-ready=true]")
        return self.page


@pytest.fixture
def page(browser, server):
    p = Page(browser, server.url)
    yield p
    p.context.close()


def _running(server):
    """Sequences the server is generating (its /metrics gauge)."""
    _, _, text = _get(server.url + "/metrics")
    for line in text.splitlines():
        if line.startswith("hearth_running_sequences "):
            return float(line.split()[1])
    raise AssertionError("no hearth_running_sequences in /metrics")


def _wait_answer(page, count):
    """Waits until the conversation shows `count` finished answers."""
    page.wait_for_function(
        "n => document.querySelectorAll('.msg.assistant').length === n"
        " && !document.querySelector('.msg.streaming') && !document.body.classList.contains('busy')",
        arg=count,
    )


@needs_chromium
def test_chat_streams_stops_and_keeps_conversations(page, server, endless):
    p = page.open()
    assert "hearth" in p.title()
    assert BUILTIN in p.locator("#model option").all_inner_texts()

    # The built-in model at temperature 0: it answers sums.
    p.select_option("#model", BUILTIN)
    p.click("#settings-toggle")
    p.fill("#temperature", "0")
    p.fill("#system", "Answer in one sentence.")
    # Shift+Enter starts a new line; Enter sends.
    p.click("#prompt")
    p.keyboard.type("first")
    p.keyboard.press("Shift+Enter")
    p.keyboard.type("second")
    assert p.input_value("#prompt") == "first\nsecond"
    assert p.locator(".msg").count() == 0
    p.fill("#prompt", "What is 12 plus 7?")
    with p.expect_request("**/api/chat") as sent:
        p.press("#prompt", "Enter")
    body = json.loads(sent.value.post_data)
    assert body["model"] == BUILTIN and body["stream"] is True
    assert body["options"] == {"temperature": 0}
    assert body["messages"] == [
        {"role": "system", "content": "Answer in one sentence."},
        {"role": "user", "content": "What is 12 plus 7?"},
    ]
    _wait_answer(p, 1)
    answer = p.inner_text(".msg.assistant .content")
    assert "19" in answer, answer
    assert p.inner_text(".msg.user .bubble") == "What is 12 plus 7?"
    assert "tokens/s" in p.inner_text(".msg.assistant .stats")

    # Regenerate answers again in place of the last answer (the same one at
    # temperature 0); editing the question sends the new one.
    p.click(".msg.assistant .regenerate")
    _wait_answer(p, 1)
    assert p.inner_text(".msg.assistant .content") == answer
    p.hover(".msg.user")
    p.click(".msg.user .edit")
    p.fill(".msg.user .edit-area", "What is 3 plus 4?")
    p.click(".msg.user .save-edit")
    _wait_answer(p, 1)
    assert p.locator(".msg.user").count() == 1
    assert p.inner_text(".msg.user .bubble") == "What is 3 plus 4?"
    assert "7" in p.inner_text(".msg.assistant .content")

    # A long answer: a random-weight model that never ends by itself, with
    # no token limit, in a small context that shifts.
    p.click("#new-chat")
    p.select_option("#model", endless)
    p.fill("#system", "")
    p.fill("#num_ctx", "128")
    p.fill("#num_predict", "-1")
    # Every text the answer shows, as it streams in.
    p.evaluate(
        """() => {
          window.seen = new Set();
          new MutationObserver(() => {
            const c = document.querySelector('.msg.assistant.streaming .content');
            if (c && c.textContent) window.seen.add(c.textContent);
          }).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
        }"""
    )
    p.fill("#prompt", "Go on and on")
    p.press("#prompt", "Enter")
    p.wait_for_selector("#stop:visible")
    p.wait_for_function("() => window.seen.size >= 3")
    assert _running(server) >= 1
    p.click("#stop")
    p.wait_for_selector(".msg.assistant .tag.stopped")
    assert p.is_visible("#send") and not p.is_visible("#stop")
    # The server stopped generating it too (the page closed the stream).
    deadline = time.monotonic() + WAIT_MS / 1000
    while _running(server) != 0:
        assert time.monotonic() < deadline, "the generation went on after Stop"
        time.sleep(0.05)
    stopped = p.inner_text(".msg.assistant .content")
    assert stopped

    # Both conversations are there after a reload, newest first.
    p.reload()
    p.wait_for_selector("body[data-ready=true]")
    titles = p.locator("#conversations .conversation").all_inner_texts()
    assert titles == ["Go on and on", "What is 12 plus 7?"], titles
    assert p.inner_text(".msg.assistant .content") == stopped
    assert p.is_visible(".msg.assistant .tag.stopped")
    p.click("#conversations .conversation >> text=What is 12 plus 7?")
    assert p.inner_text(".msg.user .bubble") == "What is 3 plus 4?"
    # The settings are kept too.
    assert p.input_value("#temperature") == "0"
    assert page.errors == []


@needs_chromium
def test_code_in_answers_is_highlighted_and_copyable(page, server):
    """Markdown rendering, on an answer stored as a past conversation."""
    p = page.open()
    conversation = {
        "id": "c1",
        "title": "Code",
        "model": BUILTIN,
        "updated": 1,
        "messages": [
            {"role": "user", "content": "A loop?"},
            {
                "role": "assistant",
                "content": "Here **it** is:\n\n```python\nfor i in range(3):  # count\n    print(i)\n```\n\n"
                "- one\n- two\n\n<script>alert(1)</script>",
                "thinking": "The user wants a loop.",
                "stats": {"eval_count": 20, "eval_duration": 500_000_000},
            },
        ],
    }
    p.evaluate(
        "c => { localStorage.setItem('hearth.conversations', JSON.stringify([c]));"
        " localStorage.setItem('hearth.current', JSON.stringify(c.id)); }",
        conversation,
    )
    p.reload()
    p.wait_for_selector("body[data-ready=true]")
    assert p.inner_text(".content strong") == "it"
    assert p.inner_text(".code-head span") == "python"
    assert p.inner_text(".code .tok-keyword >> nth=0") == "for"
    assert p.inner_text(".code .tok-comment") == "# count"
    assert p.locator(".content li").all_inner_texts() == ["one", "two"]
    # Markup in an answer is text, never elements.
    assert p.locator(".content script").count() == 0
    assert "<script>alert(1)</script>" in p.inner_text(".content")
    # Thinking is folded; the rate is under the answer.
    assert not p.is_visible(".think-body")
    p.click(".thinking summary")
    assert p.inner_text(".think-body") == "The user wants a loop."
    assert p.inner_text(".stats") == "20 tokens · 40.0 tokens/s"
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    p.click(".copy-code")
    assert p.evaluate("navigator.clipboard.readText()") == "for i in range(3):  # count\n    print(i)"
    assert page.errors == []


def _endless_copy(gguf, out):
    """A copy of the random-weight test model (Q8_0) that never ends an
    answer by itself: the output rows of its unknown, BOS and EOS tokens
    (ids 0-2) are zero, so their logits are 0 while the greatest of the 317
    other random logits is above 0 at every step but with odds of 2^-317."""
    data = bytearray(gguf.read_bytes())
    pos = 0

    def take(fmt):
        nonlocal pos
        value = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return value[0]

    def string():
        nonlocal pos
        n = take("Q")
        pos += n
        return bytes(data[pos - n : pos]).decode()

    sizes = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(kind):
        if kind == 8:
            return string()
        if kind == 9:
            inner, n = take("I"), take("Q")
            return [value(inner) for _ in range(n)]
        return take(sizes[kind])

    assert data[:4] == b"GGUF"
    pos = 8
    n_tensors, n_kv = take("Q"), take("Q")
    alignment = 32
    for _ in range(n_kv):
        key = string()
        v = value(take("I"))
        if key == "general.alignment":
            alignment = v
    tensors = {}
    for _ in range(n_tensors):
        name = string()
        dims = [take("Q") for _ in range(take("I"))]
        kind, offset = take("I"), take("Q")
        tensors[name] = (dims, kind, offset)
    start = (pos + alignment - 1) // alignment * alignment
    dims, kind, offset = tensors["output.weight"]
    assert kind == 8, "Q8_0 expected"  # 34-byte blocks of 32 values
    row = dims[0] // 32 * 34
    at = start + offset
    data[at : at + 3 * row] = bytes(3 * row)
    out.write_bytes(bytes(data))
    return out


@pytest.fixture(scope="module")
def endless(ollama_client, gguf, tmp_path_factory):
    path = _endless_copy(gguf, tmp_path_factory.mktemp("endless") / "endless.gguf")
    digest = ollama_client.create_blob(path)
    assert ollama_client.create(model="endless", files={"endless.gguf": digest}).status == "success"
    return "endless:latest"


@pytest.fixture
def gated_registry(gguf):
    """A registry (Ollama's protocol) whose model blob stops halfway until the
    test lets it go on, so the page shows a pull in progress."""
    # The test model under another name: a blob the store does not have yet.
    weights = gguf.read_bytes().replace(b"hearth-synthetic", b"hearth-web-pull!", 1)
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
    gated = layer("", weights)["digest"]
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            parts = self.path.split("/")
            if self.path == "/v2/web/pulled/manifests/latest":
                body, status = manifest, 200
            elif len(parts) == 6 and parts[4] == "blobs" and parts[5] in blobs:
                body, status = blobs[parts[5]], 200
                spec = self.headers.get("Range", "")
                if spec.startswith("bytes="):
                    start, _, end = spec[len("bytes=") :].partition("-")
                    start, end = int(start), int(end or len(body) - 1)
                    whole = len(body)
                    body, status = body[start : end + 1], 206
            else:
                body, status = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}', 404
            self.send_response(status)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{start + len(body) - 1}/{whole}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status in (200, 206) and parts[-1] == gated:
                half = len(body) // 2
                self.wfile.write(body[:half])
                self.wfile.flush()
                release.wait(WAIT_MS / 1000)
                body = body[half:]
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", release
    release.set()
    server.shutdown()


@needs_chromium
def test_models_are_listed_pulled_unloaded_and_deleted(page, server, model, ollama_client, gated_registry):
    host, release = gated_registry
    pulled = f"{host}/web/pulled:latest"
    # A model loaded, for the list of loaded ones.
    ollama_client.generate(model=BUILTIN, prompt="What is 2 plus 2?", options={"num_predict": 2})

    p = page.open()
    p.click("#nav-models")
    row = p.locator(f"#installed tr[data-model='{BUILTIN}']")
    row.wait_for()
    cells = row.locator("td").all_inner_texts()
    assert cells[0] == BUILTIN and cells[1].endswith("MB") and cells[3], cells
    # The context length comes from /api/show.
    p.wait_for_function(
        "m => /^[\\d,]+$/.test(document.querySelector(`#installed tr[data-model='${m}'] .context`).textContent)",
        arg=BUILTIN,
    )
    p.click(f"#installed tr[data-model='{BUILTIN}'] .model-name")
    p.wait_for_selector("#show-body .facts")
    assert "Quantization" in p.inner_text("#show-body .facts")
    p.click("#show-close")

    # Unload the loaded model.
    loaded = p.locator(f"#loaded tr[data-model='{BUILTIN}']")
    loaded.wait_for()
    assert loaded.locator("td").nth(3).inner_text().startswith("in ")
    loaded.locator(".unload").click()
    loaded.wait_for(state="detached")
    assert all(m.model != BUILTIN for m in ollama_client.ps().models)

    # Pull: the progress bar's values as the page sets them.
    p.evaluate(
        """() => {
          window.progress = [];
          new MutationObserver(() => {
            const bar = document.querySelector('#pulls progress');
            if (bar) window.progress.push([bar.value, bar.max]);
          }).observe(document.getElementById('pulls'), {subtree: true, childList: true, attributes: true});
        }"""
    )
    p.fill("#pull-name", pulled)
    p.check("#pull-insecure")
    p.click("#pull-button")
    # Halfway (the registry holds the rest back until now) ...
    p.wait_for_function("() => window.progress.some(([v, max]) => v > 0 && v < max && max > 1)")
    release.set()
    # ... then done.
    p.wait_for_selector(f".pull.done[data-model='{pulled}']")
    values = p.evaluate("window.progress")
    partial = [v for v, m in values if 0 < v < m and m > 1]
    assert partial and values[-1][0] == values[-1][1], values
    assert len({v / m for v, m in values if m}) >= 2, values
    p.locator(f"#installed tr[data-model='{pulled}']").wait_for()
    assert any(m.model == pulled for m in ollama_client.list().models)

    # Delete asks for a second click.
    row = p.locator(f"#installed tr[data-model='{pulled}']")
    row.locator(".delete").click()
    assert row.locator(".delete").inner_text() == "Delete?"
    row.locator(".delete").click()
    row.wait_for(state="detached")
    assert all(m.model != pulled for m in ollama_client.list().models)
    assert page.errors == []


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory):
    """A server that requires an API key."""
    workdir = tmp_path_factory.mktemp("hearth-web-keys")
    hearth = _binary("HEARTH_BIN", TARGET / "debug" / "hearth")
    port = _free_port()
    env = dict(os.environ)
    env.update(
        HEARTH_HOST=f"127.0.0.1:{port}",
        HEARTH_MODELS=str(workdir / "models"),
        HEARTH_CONFIG=str(workdir / "no-config.toml"),
        HEARTH_API_KEY=KEY,
        HEARTH_LOG="warn",
    )
    process = subprocess.Popen([str(hearth), "serve"], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while _get_or_none(url + "/health") != 200:
        assert process.poll() is None and time.monotonic() < deadline, "hearth serve did not start"
        time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=20)


def _get_or_none(url):
    try:
        return _get(url)[0]
    except OSError:
        return None


@needs_chromium
def test_the_page_asks_for_the_api_key_the_server_requires(browser, keyed_server):
    page = Page(browser, keyed_server)
    p = page.page
    # The page itself needs no key; its first API call is refused and asks.
    p.goto(keyed_server + "/")
    p.wait_for_selector("#key-dialog[open]")
    assert "API key" in p.inner_text("#key-reason")
    p.fill("#key-input", "wrong")
    p.click("#key-save")
    p.wait_for_function("() => document.querySelector('#key-reason').textContent.includes('invalid')")
    assert p.is_visible("#key-dialog")
    p.fill("#key-input", KEY)
    p.click("#key-save")
    p.wait_for_selector("body[data-ready=true]")
    assert BUILTIN in p.locator("#model option").all_inner_texts()

    # With the key, chat works; after a reload the kept key is used at once.
    p.fill("#prompt", "What is 2 plus 2?")
    p.press("#prompt", "Enter")
    _wait_answer(p, 1)
    assert not p.locator(".msg.assistant .error").count()
    p.reload()
    p.wait_for_selector("body[data-ready=true]")
    assert not p.is_visible("#key-dialog")
    # Only the refusals of the wrong and the missing key were errors.
    assert all("401" in e for e in page.errors), page.errors
    page.context.close()
