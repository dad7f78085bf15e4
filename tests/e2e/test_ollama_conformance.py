"""Ollama API conformance: every row of docs/ollama-api.md is a check here,
run against the real server. A row whose check is missing fails."""

import hashlib
import json
import math
import os
import pathlib
import re
import subprocess
import tempfile
import time

import httpx
import pytest

from conftest import MODEL, ROOT, TARGET

TABLE = ROOT / "docs" / "ollama-api.md"
FAST = {"temperature": 0, "num_predict": 4}


def rows():
    out = []
    for line in TABLE.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[3] and cells[3] not in ("Check", "---"):
            out.append(cells)
    return out


class Ctx:
    def __init__(self, server, model, client):
        self.url = server.url
        self.server = server
        self.model = model
        self.client = client
        self.http = httpx.Client(base_url=server.url, timeout=120)

    def post(self, path, body):
        r = self.http.post(path, json=body)
        return r.status_code, r.json() if r.content else None

    def lines(self, path, body):
        r = self.http.post(path, json=body)
        return r.status_code, [json.loads(line) for line in r.text.splitlines() if line.strip()]

    def generate(self, **body):
        body.setdefault("model", self.model)
        body.setdefault("stream", False)
        body.setdefault("options", FAST)
        return self.post("/api/generate", body)

    def chat(self, **body):
        body.setdefault("model", self.model)
        body.setdefault("stream", False)
        body.setdefault("options", FAST)
        return self.post("/api/chat", body)


CHECKS = {}


def check(fn):
    CHECKS[fn.__name__] = fn
    return fn


@pytest.fixture(scope="module")
def ctx(server, model, ollama_client):
    return Ctx(server, model, ollama_client)


@pytest.mark.parametrize("row", rows(), ids=lambda r: r[3])
def test_row(ctx, row):
    endpoint, field, _, name = row
    fn = CHECKS.get(name)
    assert fn is not None, f"no check '{name}' for {endpoint} {field}"
    fn(ctx)


def test_every_check_has_a_row():
    named = {r[3] for r in rows()}
    assert set(CHECKS) <= named, set(CHECKS) - named


# --- liveness and errors ---------------------------------------------------


@check
def root_text(c):
    r = c.http.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "running" in r.text


@check
def root_head(c):
    assert c.http.head("/").status_code == 200


@check
def version(c):
    r = c.http.get("/api/version")
    assert r.status_code == 200 and re.fullmatch(r"\d+\.\d+\.\d+.*", r.json()["version"])


@check
def malformed_json(c):
    r = c.http.post("/api/generate", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]


@check
def unknown_model(c):
    for path, body in [
        ("/api/generate", {"model": "nosuch", "prompt": "x"}),
        ("/api/chat", {"model": "nosuch", "messages": [{"role": "user", "content": "x"}]}),
        ("/api/show", {"model": "nosuch"}),
        ("/api/embed", {"model": "nosuch", "input": "x"}),
    ]:
        status, v = c.post(path, body)
        assert status == 404, (path, v)
        assert v["error"] == "model 'nosuch' not found", (path, v)


# --- generate ----------------------------------------------------------------


@check
def generate_model_required(c):
    status, v = c.post("/api/generate", {"prompt": "x"})
    assert status == 400 and "model" in v["error"]


@check
def generate_prompt(c):
    status, v = c.generate(prompt="Hello")
    assert status == 200 and v["done"] and isinstance(v["response"], str)
    assert 0 < v["eval_count"] <= 4


@check
def generate_load(c):
    status, v = c.post("/api/generate", {"model": c.model})
    assert status == 200 and v["done_reason"] == "load" and v["response"] == ""


@check
def generate_suffix(c):
    status, v = c.generate(prompt="def f(", suffix="    return 1")
    assert status == 400 and "does not support insert" in v["error"]
    # A template with .Suffix takes it.
    template = "<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>"
    status, v = c.generate(prompt="def f(", suffix="    return 1", template=template)
    assert status == 200, v
    status, short = c.generate(prompt="def f(", suffix="", template=template)
    assert status == 200 and v["prompt_eval_count"] > short["prompt_eval_count"]


SCHEMA = {
    "type": "object",
    "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 99}},
    "required": ["n"],
    "additionalProperties": False,
}


@check
def generate_format(c):
    # A random-weight model at temperature 1: only the grammar makes it parse.
    options = {"temperature": 1, "num_predict": 200, "seed": 4}
    _, v = c.generate(prompt="A number?", format=SCHEMA, options=options)
    answer = json.loads(v["response"])
    assert set(answer) == {"n"} and 0 <= answer["n"] <= 99, answer
    _, v = c.generate(prompt="Anything?", format="json", options=options)
    assert isinstance(json.loads(v["response"]), dict)
    status, v = c.generate(prompt="x", format={"type": "nonsense"})
    assert status == 400, v


@check
def generate_images(c):
    status, v = c.generate(prompt="What is this?", images=["aGVsbG8="])
    assert status == 400 and "images" in v["error"]


@check
def generate_options(c):
    stop_free, _ = c.generate(prompt="Hello", options={"num_predict": 2, "temperature": 0})
    assert stop_free == 200
    _, a = c.generate(prompt="Hello", options={"num_predict": 6, "temperature": 0.9, "seed": 3})
    _, b = c.generate(prompt="Hello", options={"num_predict": 6, "temperature": 0.9, "seed": 3})
    assert a["response"] == b["response"] and a["eval_count"] <= 6
    status, v = c.generate(prompt="Hello", options={"num_predict": "many"})
    assert status == 400 and "num_predict" in v["error"]


@check
def generate_runner_options(c):
    status, v = c.generate(prompt="Hello", options={"num_predict": 1, "num_gpu": 1, "use_mmap": True,
                                                   "numa": False, "low_vram": False})
    assert status == 200, v
    deadline = time.monotonic() + 30
    while "option=num_gpu" not in c.server.log_text():
        assert time.monotonic() < deadline, "no warning for num_gpu in the log"
        time.sleep(0.1)


@check
def generate_system(c):
    _, short = c.generate(prompt="Hi", system="Be brief.", template="{{ .System }} {{ .Prompt }}")
    _, long = c.generate(prompt="Hi", system="Be brief. " * 10, template="{{ .System }} {{ .Prompt }}")
    assert long["prompt_eval_count"] > short["prompt_eval_count"] + 10


@check
def generate_template(c):
    _, plain = c.generate(prompt="Hi", template="{{ .Prompt }}")
    _, wrapped = c.generate(prompt="Hi", template="Question: {{ .Prompt }}\nAnswer:")
    assert wrapped["prompt_eval_count"] > plain["prompt_eval_count"]


@check
def generate_stream(c):
    status, parts = c.lines("/api/generate", {"model": c.model, "prompt": "Hi", "options": FAST})
    assert status == 200 and parts[-1]["done"] and not any(p["done"] for p in parts[:-1])
    status, one = c.generate(prompt="Hi")
    assert status == 200 and one["done"]


@check
def generate_raw(c):
    _, raw = c.generate(prompt="Hi", raw=True)
    _, templated = c.generate(prompt="Hi")
    assert raw["prompt_eval_count"] < templated["prompt_eval_count"]


@check
def generate_keep_alive(c):
    for keep_alive in ["10m", 600, "1h30m", -1]:
        status, v = c.generate(prompt="", keep_alive=keep_alive)
        assert status == 200, (keep_alive, v)
    status, _ = c.generate(prompt="Hi", keep_alive=0)
    assert status == 200
    assert c.http.get("/api/ps").json()["models"] == []


@check
def generate_context(c):
    _, first = c.generate(prompt="Hi")
    _, more = c.generate(prompt="And?", context=first["context"])
    assert len(more["context"]) > len(first["context"])
    assert more["context"][: len(first["context"])] == first["context"]


@check
def generate_final_fields(c):
    _, v = c.generate(prompt="Hi")
    for k in ["model", "created_at", "response", "done", "done_reason", "context", "total_duration",
              "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count",
              "eval_duration"]:
        assert k in v, k
    assert v["created_at"].endswith("Z")
    assert v["total_duration"] >= v["eval_duration"] > 0


@check
def generate_truncates(c):
    _, v = c.generate(prompt="word " * 400, options={"num_ctx": 64, "num_predict": 1})
    assert v["done"] and v["prompt_eval_count"] == 63, v


# --- chat --------------------------------------------------------------------


@check
def chat_messages(c):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Again"},
    ]
    status, v = c.chat(messages=messages)
    assert status == 200 and v["message"]["role"] == "assistant"
    _, short = c.chat(messages=messages[-1:])
    assert v["prompt_eval_count"] > short["prompt_eval_count"]


@check
def chat_images(c):
    status, v = c.chat(messages=[{"role": "user", "content": "What?", "images": ["aGVsbG8="]}])
    assert status == 400 and "images" in v["error"]


@check
def chat_format(c):
    options = {"temperature": 1, "num_predict": 200, "seed": 5}
    _, v = c.chat(messages=[{"role": "user", "content": "A number?"}], format=SCHEMA, options=options)
    answer = json.loads(v["message"]["content"])
    assert set(answer) == {"n"} and 0 <= answer["n"] <= 99, answer


@check
def chat_tools(c):
    tool = {"type": "function", "function": {"name": "f", "description": "d",
                                             "parameters": {"type": "object", "properties": {}}}}
    status, v = c.chat(messages=[{"role": "user", "content": "Hi"}], tools=[tool])
    assert status == 400 and "tools" in v["error"], v


@check
def chat_think(c):
    status, v = c.chat(messages=[{"role": "user", "content": "Hi"}], think=True)
    assert status == 400 and "does not support thinking" in v["error"], v


@check
def chat_stream(c):
    body = {"model": c.model, "messages": [{"role": "user", "content": "Hi"}], "options": FAST}
    status, parts = c.lines("/api/chat", body)
    assert status == 200 and parts[-1]["done"]
    assert all(p["message"]["role"] == "assistant" for p in parts)


@check
def chat_options(c):
    messages = [{"role": "user", "content": "Hi"}]
    status, v = c.chat(messages=messages, options={"num_predict": 2, "temperature": 0}, keep_alive="5m")
    assert status == 200 and v["eval_count"] <= 2


@check
def chat_final_fields(c):
    _, v = c.chat(messages=[{"role": "user", "content": "Hi"}])
    for k in ["model", "created_at", "message", "done", "done_reason", "total_duration",
              "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count",
              "eval_duration"]:
        assert k in v, k


@check
def chat_tools(c):
    # The test model's fallback template renders no tools; tools on real
    # templates are tests/e2e/test_tools.py's.
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    status, v = c.chat(messages=[{"role": "user", "content": "Hi"}], tools=[tool])
    assert status == 400 and "does not support tools" in v["error"]
    status, v = c.chat(messages=[{"role": "user", "content": "Hi"}], tools=[{"type": "retrieval"}])
    assert status == 400 and "tools[0]" in v["error"]


@check
def chat_think(c):
    status, v = c.chat(messages=[{"role": "user", "content": "Hi"}], think=True)
    assert status == 400 and "does not support thinking" in v["error"]
    status, v = c.chat(messages=[{"role": "user", "content": "Hi"}], think=False)
    assert status == 200 and "thinking" not in v["message"]
    status, v = c.chat(messages=[{"role": "user", "content": "Hi"}], think="hardest")
    assert status == 400 and "think" in v["error"]


# --- models ------------------------------------------------------------------


@check
def create_from(c):
    status, v = c.post("/api/create", {
        "model": "conf-from", "from": c.model, "system": "Be terse.", "license": "MIT",
        "parameters": {"temperature": 0.3, "stop": ["END"]},
        "template": "{{ .System }} {{ .Prompt }}",
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
        "stream": False,
    })
    assert status == 200 and v["status"] == "success", v
    _, shown = c.post("/api/show", {"model": "conf-from"})
    assert "Be terse." in shown["modelfile"] and shown["license"] == "MIT"
    assert "temperature" in shown["parameters"] and shown["template"] == "{{ .System }} {{ .Prompt }}"


@check
def create_files(c):
    # The session fixture made the test model this way.
    _, tags = c.post("/api/show", {"model": c.model})
    assert tags["details"]["format"] == "gguf"


@check
def create_stream_false(c):
    status, v = c.post("/api/create", {"model": "conf-one", "from": c.model, "stream": False})
    assert (status, v) == (200, {"status": "success"})


@check
def create_bad_template(c):
    status, v = c.post("/api/create", {"model": "conf-bad", "from": c.model,
                                       "template": "{{ .Prompt ", "stream": False})
    assert status == 400 and "template" in v["error"]


@check
def create_quantize(c):
    # An F16 model, uploaded as a blob and quantized to Q8_0 on the way in.
    synth = os.environ.get("HEARTH_SYNTH", str(TARGET / "debug" / "examples" / "synth"))
    f16 = pathlib.Path(tempfile.mkdtemp()) / "conf-f16.gguf"
    subprocess.run([synth, "tiny-llama", str(f16), "F16"], check=True)
    digest = c.client.create_blob(f16)
    status, v = c.post("/api/create", {"model": "conf-q8", "files": {"m.gguf": digest},
                                       "quantize": "q8_0", "stream": False})
    assert (status, v) == (200, {"status": "success"}), v
    _, shown = c.post("/api/show", {"model": "conf-q8"})
    assert shown["details"]["quantization_level"] == "Q8_0"
    # The test model's weights are Q8_0 already; a preset must exist.
    status, v = c.post("/api/create", {"model": "conf-qq", "from": c.model,
                                       "quantize": "q4_K_M", "stream": False})
    assert status == 400 and "only supported for F16" in v["error"], v
    status, v = c.post("/api/create", {"model": "conf-qx", "from": c.model,
                                       "quantize": "q9_X", "stream": False})
    assert status == 400 and "unknown quantization type" in v["error"], v


@check
def create_unknown_from(c):
    status, v = c.post("/api/create", {"model": "conf-x", "from": "nosuch", "stream": False})
    assert status == 404, v


@check
def tags_fields(c):
    models = c.http.get("/api/tags").json()["models"]
    m = next(m for m in models if m["name"] == c.model)
    for k in ["name", "model", "modified_at", "size", "digest", "details"]:
        assert k in m, k
    for k in ["format", "family", "families", "parameter_size", "quantization_level"]:
        assert k in m["details"], k
    assert re.fullmatch(r"[0-9a-f]{64}", m["digest"])


@check
def show_fields(c):
    status, v = c.post("/api/show", {"model": c.model})
    assert status == 200
    for k in ["modelfile", "parameters", "template", "details", "model_info", "capabilities",
              "modified_at"]:
        assert k in v, k
    assert "completion" in v["capabilities"]
    assert v["model_info"]["general.architecture"] == "llama"


@check
def show_verbose(c):
    status, v = c.post("/api/show", {"model": c.model, "verbose": True})
    assert status == 200 and "model_info" in v


@check
def copy(c):
    status, _ = c.post("/api/copy", {"source": c.model, "destination": "conf-copy"})
    assert status == 200
    assert any(m["name"] == "conf-copy:latest" for m in c.http.get("/api/tags").json()["models"])
    status, v = c.post("/api/copy", {"source": "nosuch", "destination": "conf-copy2"})
    assert status == 404, v


@check
def delete(c):
    c.post("/api/copy", {"source": c.model, "destination": "conf-del"})
    r = c.http.request("DELETE", "/api/delete", json={"model": "conf-del"})
    assert r.status_code == 200
    r = c.http.request("DELETE", "/api/delete", json={"model": "conf-del"})
    assert r.status_code == 404


@check
def pull_unreachable(c):
    status, lines = c.lines("/api/pull", {"model": "127.0.0.1:1/library/x:latest", "insecure": True})
    errors = [l["error"] for l in lines if "error" in l] if status == 200 else [lines[-1]["error"]]
    assert errors and "127.0.0.1:1" in errors[-1], lines


@check
def push_unknown(c):
    status, v = c.post("/api/push", {"model": "127.0.0.1:1/library/nosuch:latest", "insecure": True,
                                     "stream": False})
    assert status == 404, v


# --- embeddings --------------------------------------------------------------


@check
def embed_input(c):
    status, one = c.post("/api/embed", {"model": c.model, "input": "hello"})
    assert status == 200 and len(one["embeddings"]) == 1
    status, two = c.post("/api/embed", {"model": c.model, "input": ["hello", "world"]})
    assert len(two["embeddings"]) == 2
    norm = math.sqrt(sum(x * x for x in two["embeddings"][0]))
    assert abs(norm - 1) < 1e-4
    assert two["embeddings"][0] == pytest.approx(one["embeddings"][0], abs=1e-5)


@check
def embed_truncate(c):
    body = {"model": c.model, "input": "word " * 400, "options": {"num_ctx": 32}}
    status, v = c.post("/api/embed", {**body, "truncate": False})
    assert status == 400 and "context" in v["error"]
    status, v = c.post("/api/embed", body)
    assert status == 200 and v["prompt_eval_count"] == 32


@check
def embed_dimensions(c):
    status, v = c.post("/api/embed", {"model": c.model, "input": "hello", "dimensions": 8})
    assert status == 200 and len(v["embeddings"][0]) == 8
    assert abs(math.sqrt(sum(x * x for x in v["embeddings"][0])) - 1) < 1e-4


@check
def embed_fields(c):
    _, v = c.post("/api/embed", {"model": c.model, "input": "hello"})
    for k in ["model", "embeddings", "total_duration", "load_duration", "prompt_eval_count"]:
        assert k in v, k


@check
def embeddings_legacy(c):
    status, v = c.post("/api/embeddings", {"model": c.model, "prompt": "hello"})
    assert status == 200 and len(v["embedding"]) > 8
    assert abs(math.sqrt(sum(x * x for x in v["embedding"])) - 1) > 1e-3


@check
def ps_fields(c):
    c.generate(prompt="")
    models = c.http.get("/api/ps").json()["models"]
    m = next(m for m in models if m["name"] == c.model)
    for k in ["name", "model", "size", "digest", "details", "expires_at", "size_vram",
              "context_length"]:
        assert k in m, k


@check
def blob_head(c):
    assert c.http.head("/api/blobs/sha256:" + "0" * 64).status_code == 404


@check
def blob_mismatch(c):
    digest = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    r = c.http.post("/api/blobs/" + digest, content=b"these bytes")
    assert r.status_code == 400, r.text
