"""Fixtures of the end-to-end tests: a real `hearth serve` process on a free
port, with its model store (HEARTH_MODELS) in a temporary directory, and a tiny
test model created in it through the Ollama API (a GGUF uploaded as a blob,
then `create` with `files`, as ollama-python does).

Environment:
- HEARTH_BIN: the hearth binary (default: target/debug/hearth, or under
  CARGO_TARGET_DIR).
- HEARTH_E2E_GGUF: the test model's GGUF. Default: a random-weight tiny Llama
  written by crates/model's synthetic builder (the `synth` example, built by
  `cargo test`), with its own SPM vocabulary; hearth answers it with the
  ChatML fallback template.
"""

import os
import pathlib
import socket
import subprocess
import time
import urllib.request

import ollama
import openai
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
if not TARGET.is_absolute():
    TARGET = ROOT / TARGET

# The name the fixture creates the test model under.
MODEL = "tiny:latest"


def _binary(env_name, default):
    path = pathlib.Path(os.environ.get(env_name, default))
    if not path.exists():
        pytest.exit(f"{path} does not exist: build it first (cargo test) or set {env_name}", 2)
    return path


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("hearth-e2e")


@pytest.fixture(scope="session")
def gguf(workdir):
    given = os.environ.get("HEARTH_E2E_GGUF")
    if given:
        return pathlib.Path(given)
    synth = _binary("HEARTH_SYNTH", TARGET / "debug" / "examples" / "synth")
    out = workdir / "tiny.gguf"
    subprocess.run([str(synth), "tiny-llama", str(out), "Q8_0"], check=True)
    return out


class Server:
    def __init__(self, process, url, log):
        self.process = process
        self.url = url
        self.log = log

    def alive(self):
        return self.process.poll() is None

    def log_text(self):
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="session")
def server(workdir):
    hearth = _binary("HEARTH_BIN", TARGET / "debug" / "hearth")
    port = _free_port()
    log = workdir / "serve.log"
    env = dict(os.environ)
    env.update(
        HEARTH_HOST=f"127.0.0.1:{port}",
        HEARTH_MODELS=str(workdir / "models"),
        HEARTH_CONFIG=str(workdir / "no-config.toml"),
        HEARTH_LOG="info",
    )
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [str(hearth), "serve"], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    server = Server(process, url, log)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url + "/", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if not server.alive() or time.monotonic() > deadline:
            process.kill()
            pytest.exit(f"hearth serve did not start:\n{server.log_text()}", 2)
        time.sleep(0.1)
    yield server
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def ollama_client(server):
    return ollama.Client(host=server.url, timeout=120)


@pytest.fixture(scope="session")
def model(ollama_client, gguf):
    """The test model, created from an uploaded blob."""
    digest = ollama_client.create_blob(gguf)
    assert digest.startswith("sha256:")
    done = ollama_client.create(model=MODEL, files={"tiny.gguf": digest})
    assert done.status == "success"
    return MODEL


@pytest.fixture(scope="session")
def openai_client(server, model):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(autouse=True)
def server_keeps_serving(request):
    """After every test that used the server, it is still up."""
    yield
    if "server" in request.fixturenames:
        server = request.getfixturevalue("server")
        assert server.alive(), server.log_text()
