"""The official clients against `hearth serve` over TLS (a test certificate
signed by crates/hearth/tests/fixtures/tls/ca.pem) with an API key required:
the key is accepted as each client sends it and a wrong one refused."""

import os
import ssl
import subprocess
import time

import anthropic
import httpx
import ollama
import openai
import pytest

from conftest import ROOT, TARGET, _binary, _free_port

TLS = ROOT / "crates" / "hearth" / "tests" / "fixtures" / "tls"
KEY = "hearth-e2e-test-key"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hearth-tls")
    hearth = _binary("HEARTH_BIN", TARGET / "debug" / "hearth")
    port = _free_port()
    env = dict(os.environ)
    env.update(
        HEARTH_HOST=f"127.0.0.1:{port}",
        HEARTH_MODELS=str(workdir / "models"),
        HEARTH_CONFIG=str(workdir / "no-config.toml"),
        HEARTH_TLS_CERT=str(TLS / "server.pem"),
        HEARTH_TLS_KEY=str(TLS / "server.key"),
        HEARTH_API_KEY=KEY,
        HEARTH_LOG="warn",
    )
    process = subprocess.Popen([str(hearth), "serve"], env=env)
    # The certificate names 127.0.0.1 too; no /etc/hosts is needed.
    url = f"https://127.0.0.1:{port}"
    context = ssl.create_default_context(cafile=str(TLS / "ca.pem"))
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/health", verify=context, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "hearth serve did not start"
        time.sleep(0.1)
    yield url, context
    process.terminate()
    process.wait(timeout=20)


def test_openai_client_over_tls_with_a_key(tls_server):
    url, context = tls_server
    client = openai.OpenAI(
        base_url=url + "/v1", api_key=KEY, max_retries=0, http_client=httpx.Client(verify=context)
    )
    answer = client.chat.completions.create(
        model="hearth-tiny", messages=[{"role": "user", "content": "What is 12 plus 7?"}]
    )
    assert "19" in answer.choices[0].message.content
    wrong = openai.OpenAI(
        base_url=url + "/v1", api_key="wrong", max_retries=0, http_client=httpx.Client(verify=context)
    )
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_ollama_client_over_tls_with_a_key(tls_server):
    url, context = tls_server
    client = ollama.Client(host=url, verify=context, headers={"Authorization": f"Bearer {KEY}"})
    reply = client.chat(model="hearth-tiny", messages=[{"role": "user", "content": "What is the capital of Kenya?"}])
    assert reply.message.content == "The capital of Kenya is Nairobi."
    anonymous = ollama.Client(host=url, verify=context)
    with pytest.raises(ollama.ResponseError) as e:
        anonymous.list()
    assert e.value.status_code == 401


def test_anthropic_client_over_tls_with_a_key(tls_server):
    # The anthropic client sends its key as x-api-key; it takes httpx2's
    # client (its own dependency) for the test CA.
    import httpx2

    url, context = tls_server
    client = anthropic.Anthropic(
        base_url=url, api_key=KEY, max_retries=0, http_client=httpx2.Client(verify=context)
    )
    message = client.messages.create(
        model="hearth-tiny",
        max_tokens=32,
        messages=[{"role": "user", "content": "What is 12 plus 7?"}],
    )
    assert message.content[0].type == "text" and "19" in message.content[0].text
    assert message.stop_reason == "end_turn"
    wrong = anthropic.Anthropic(
        base_url=url, api_key="wrong", max_retries=0, http_client=httpx2.Client(verify=context)
    )
    with pytest.raises(anthropic.AuthenticationError) as e:
        wrong.messages.create(
            model="hearth-tiny", max_tokens=4, messages=[{"role": "user", "content": "hi"}]
        )
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "authentication_error"
