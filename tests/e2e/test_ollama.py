"""The official `ollama` Python client against `hearth serve`'s /api API."""

import math

import ollama
import pytest

from conftest import MODEL
from http_raw import oversized, post_raw

OPTIONS = {"temperature": 0, "num_predict": 8}


def test_generate_whole_and_streamed(ollama_client, model):
    r = ollama_client.generate(model=MODEL, prompt="Once upon a time", options=OPTIONS)
    assert r.done
    assert r.done_reason in ("stop", "length")
    assert 0 < r.eval_count <= 8
    assert r.prompt_eval_count > 0
    assert r.context, "a context to continue from"
    parts = list(
        ollama_client.generate(model=MODEL, prompt="Once upon a time", options=OPTIONS, stream=True)
    )
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    assert "".join(p.response for p in parts) == r.response
    # Continuing from the context.
    more = ollama_client.generate(model=MODEL, prompt="And then", context=r.context, options=OPTIONS)
    assert more.done and len(more.context) > len(r.context)


def test_chat_whole_and_streamed(ollama_client, model):
    messages = [{"role": "user", "content": "Say hello."}]
    r = ollama_client.chat(model=MODEL, messages=messages, options=OPTIONS)
    assert r.message.role == "assistant"
    assert r.done_reason in ("stop", "length")
    parts = list(ollama_client.chat(model=MODEL, messages=messages, options=OPTIONS, stream=True))
    assert parts[-1].done
    assert "".join(p.message.content for p in parts) == r.message.content


def test_embed(ollama_client, model):
    r = ollama_client.embed(model=MODEL, input=["hello world", "goodbye"])
    assert len(r.embeddings) == 2
    for v in r.embeddings:
        assert math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-4)
    assert r.prompt_eval_count > 0
    legacy = ollama_client.embeddings(model=MODEL, prompt="hello world")
    assert len(legacy.embedding) == len(r.embeddings[0])


def test_list_show_and_ps(ollama_client, model):
    names = [m.model for m in ollama_client.list().models]
    assert MODEL in names
    shown = ollama_client.show(MODEL)
    assert shown.details.family == "llama"
    assert shown.modelinfo["general.architecture"] == "llama"
    ollama_client.generate(model=MODEL, prompt="hi", options={"num_predict": 1})
    running = [m.model for m in ollama_client.ps().models]
    assert MODEL in running


def test_copy_and_delete(ollama_client, model):
    assert ollama_client.copy(MODEL, "me/copied:v1").status == "success"
    assert "me/copied:v1" in [m.model for m in ollama_client.list().models]
    r = ollama_client.generate(model="me/copied:v1", prompt="hi", options={"num_predict": 2})
    assert r.done
    assert ollama_client.delete("me/copied:v1").status == "success"
    assert "me/copied:v1" not in [m.model for m in ollama_client.list().models]
    with pytest.raises(ollama.ResponseError) as e:
        ollama_client.delete("me/copied:v1")
    assert e.value.status_code == 404


def test_create_from_a_blob_with_system_and_parameters(ollama_client, gguf, model):
    digest = ollama_client.create_blob(gguf)
    progress = list(
        ollama_client.create(
            model="tiny-custom",
            files={"tiny.gguf": digest},
            system="You are a pirate.",
            parameters={"temperature": 0.3, "stop": ["<end>"]},
            stream=True,
        )
    )
    assert progress[-1].status == "success"
    shown = ollama_client.show("tiny-custom")
    assert "You are a pirate." in shown.modelfile
    assert "temperature" in shown.parameters
    r = ollama_client.chat(
        model="tiny-custom", messages=[{"role": "user", "content": "hi"}], options={"num_predict": 2}
    )
    assert r.done
    ollama_client.delete("tiny-custom")


def test_errors_are_4xx_with_a_message(server, ollama_client, model):
    with pytest.raises(ollama.ResponseError) as e:
        ollama_client.generate(model="ghost", prompt="hi")
    assert e.value.status_code == 404
    assert "not found" in e.value.error
    # Too long for the context: cut as Ollama cuts it, not refused.
    r = ollama_client.generate(model=MODEL, prompt="hello " * 5000, options={"num_ctx": 64, "num_predict": 1})
    assert r.done and r.prompt_eval_count == 63
    status, body = post_raw(server.url, "/api/chat", b'{"model": "tiny", "messages": [')
    assert status == 400
    assert body["error"].startswith("malformed JSON")
    status, body = post_raw(
        server.url, "/api/generate", b'{"model": "tiny", "prompt": "x", "options": {"num_ctx": "big"}}'
    )
    assert status == 400
    assert "options.num_ctx" in body["error"]
    huge = oversized("prompt")
    status, body = post_raw(server.url, "/api/generate", huge)
    assert status == 413
    # Still serving.
    assert ollama_client.generate(model=MODEL, prompt="hi", options={"num_predict": 1}).done


def test_a_chat_of_thousands_of_messages_keeps_the_newest_that_fit(ollama_client, model):
    # 20,000 messages (about 600 KB) against a 256-token context: the oldest
    # are dropped until the rest fit (found by bisection, a few renders).
    messages = []
    for i in range(10_000):
        messages.append({"role": "user", "content": f"question {i}"})
        messages.append({"role": "assistant", "content": f"answer {i}"})
    messages.append({"role": "user", "content": "and the last one?"})
    r = ollama_client.chat(model=MODEL, messages=messages, options={"num_ctx": 256, "num_predict": 2})
    assert r.done
    assert 0 < r.prompt_eval_count < 256
    # Dropping fewer would not fit: the kept prompt is at least half full.
    assert r.prompt_eval_count > 128
