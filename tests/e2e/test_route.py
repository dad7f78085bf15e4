"""Hybrid routing with the official clients: `hearth serve` with an upstream
(a fake OpenAI-compatible server on 127.0.0.1 that records what reaches it)
answers `cloud/gpt-mini` through the OpenAI and the Ollama clients, streamed
or not, tool calls included, and keeps personal data on the machine."""

import json
import os
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import ollama
import openai
import pytest

from conftest import TARGET, _binary, _free_port

KEY = "sk-e2e-upstream-4242"
MARKER = "quokka-marker-9174"
USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


class FakeUpstream(BaseHTTPRequestHandler):
    """`/v1/chat/completions`: a text answer, or a get_weather call when
    tools are offered; streamed as SSE when asked."""

    seen = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeUpstream.seen.append(
            {"path": self.path, "authorization": self.headers.get("Authorization"), "body": body}
        )
        tools = bool(body.get("tools"))
        if body.get("stream"):
            def chunk(delta, finish=None):
                return {"id": "c1", "object": "chat.completion.chunk", "created": 1,
                        "model": body["model"],
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            if tools:
                events = [
                    chunk({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                           "function": {"name": "get_weather", "arguments": "{\"city\":"}}]}),
                    chunk({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
                    chunk({}, "tool_calls"),
                ]
            else:
                events = [chunk({"role": "assistant", "content": "Hello"}),
                          chunk({"content": " from upstream"}), chunk({}, "stop")]
            if (body.get("stream_options") or {}).get("include_usage"):
                events.append({"id": "c1", "object": "chat.completion.chunk", "created": 1,
                               "model": body["model"], "choices": [], "usage": USAGE})
            text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
            self._send("text/event-stream", text.encode())
            return
        if tools:
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_a", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}
            finish = "tool_calls"
        else:
            message = {"role": "assistant", "content": "Hello from upstream"}
            finish = "stop"
        answer = {"id": "c1", "object": "chat.completion", "created": 1, "model": body["model"],
                  "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": USAGE}
        self._send("application/json", json.dumps(answer).encode())

    def _send(self, content_type, data):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def upstream():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeUpstream)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()


@pytest.fixture(scope="module")
def route_server(upstream, tmp_path_factory):
    hearth = _binary("HEARTH_BIN", TARGET / "debug" / "hearth")
    workdir = tmp_path_factory.mktemp("hearth-route")
    config = workdir / "config.toml"
    config.write_text(
        "[[upstreams]]\n"
        'name = "cloud"\n'
        f'url = "http://127.0.0.1:{upstream.server_address[1]}/v1"\n'
        'api_key_env = "E2E_CLOUD_KEY"\n'
        'models = ["gpt-mini"]\n\n'
        "[routing]\n"
        'sensitive = "local"\n'
        'fallback = "hearth-tiny"\n'
    )
    port = _free_port()
    env = dict(os.environ)
    env.update(
        HEARTH_HOST=f"127.0.0.1:{port}",
        HEARTH_MODELS=str(workdir / "models"),
        HEARTH_CONFIG=str(config),
        HEARTH_LOG="info",
        E2E_CLOUD_KEY=KEY,
    )
    log = workdir / "serve.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen([str(hearth), "serve"], env=env, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url + "/api/version", timeout=2):
                break
        except OSError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    yield url, log
    process.terminate()
    process.wait(timeout=20)
    assert KEY not in log.read_text(), "the upstream key reached the log"


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "The weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def test_openai_client_reaches_the_upstream_streamed_and_not(route_server):
    url, _ = route_server
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
    assert "cloud/gpt-mini" in [m.id for m in client.models.list()]
    raw = client.chat.completions.with_raw_response.create(
        model="cloud/gpt-mini", messages=[{"role": "user", "content": "Hi"}], max_tokens=5)
    assert raw.headers["x-hearth-route"] == "cloud"
    answer = raw.parse()
    assert answer.choices[0].message.content == "Hello from upstream"
    assert answer.model == "cloud/gpt-mini"
    assert answer.usage.completion_tokens == 7
    last = FakeUpstream.seen[-1]
    assert last["authorization"] == f"Bearer {KEY}"
    assert last["body"]["model"] == "gpt-mini" and last["body"]["max_tokens"] == 5

    stream = client.chat.completions.create(
        model="cloud/gpt-mini", messages=[{"role": "user", "content": "Hi"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello from upstream"

    called = client.chat.completions.create(
        model="cloud/gpt-mini", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=TOOLS)
    call = called.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}


def test_ollama_client_reaches_the_upstream_with_tools(route_server):
    url, _ = route_server
    client = ollama.Client(host=url, timeout=60)
    assert "cloud/gpt-mini" in [m.model for m in client.list().models]
    answer = client.chat(model="cloud/gpt-mini", messages=[{"role": "user", "content": "Hi"}])
    assert answer.message.content == "Hello from upstream"
    assert answer.eval_count == 7
    pieces = client.chat(model="cloud/gpt-mini", messages=[{"role": "user", "content": "Hi"}], stream=True)
    assert "".join(p.message.content for p in pieces) == "Hello from upstream"
    for stream in (False, True):
        result = client.chat(model="cloud/gpt-mini", stream=stream, tools=TOOLS,
                             messages=[{"role": "user", "content": "Weather in Paris?"}])
        parts = list(result) if stream else [result]
        calls = [c for p in parts for c in (p.message.tool_calls or [])]
        assert len(calls) == 1
        assert calls[0].function.name == "get_weather"
        assert calls[0].function.arguments == {"city": "Paris"}
    generated = client.generate(model="cloud/gpt-mini", prompt="Hi")
    assert generated.response == "Hello from upstream"


def test_personal_data_is_answered_locally(route_server):
    url, log = route_server
    before = len(FakeUpstream.seen)
    client = ollama.Client(host=url, timeout=120)
    answer = client.chat(model="cloud/gpt-mini", options={"num_predict": 2},
                         messages=[{"role": "user", "content": f"{MARKER} write to jane.doe@example.org"}])
    assert answer.model == "hearth-tiny"
    oa = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120)
    raw = oa.chat.completions.with_raw_response.create(
        model="cloud/gpt-mini", max_tokens=2,
        messages=[{"role": "user", "content": f"{MARKER} my SSN is 123-45-6789"}])
    assert raw.headers["x-hearth-route"] == "local"
    assert len(FakeUpstream.seen) == before, "personal data reached the upstream"
    assert MARKER not in log.read_text()
