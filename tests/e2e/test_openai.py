"""The official `openai` Python client against `hearth serve`'s /v1 API."""

import math

import openai
import pytest

from conftest import MODEL
from http_raw import oversized, post_raw

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello."},
]


def test_chat_completion(openai_client):
    r = openai_client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=8, temperature=0, seed=1
    )
    assert r.object == "chat.completion"
    assert r.id.startswith("chatcmpl-")
    assert r.model == MODEL
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert r.usage.completion_tokens <= 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    if choice.finish_reason == "length":
        assert r.usage.completion_tokens == 8


def test_chat_completion_streamed_with_usage_matches_the_whole_answer(openai_client):
    args = dict(model=MODEL, messages=MESSAGES, max_completion_tokens=8, temperature=0)
    whole = openai_client.chat.completions.create(**args)
    chunks = list(
        openai_client.chat.completions.create(
            **args, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


def test_chat_sampling_parameters_and_logprobs(openai_client):
    args = dict(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=6,
        temperature=1.2,
        top_p=0.9,
        seed=42,
        presence_penalty=0.5,
        frequency_penalty=0.5,
        stop=["\n\n"],
        logprobs=True,
        top_logprobs=3,
    )
    a = openai_client.chat.completions.create(**args)
    b = openai_client.chat.completions.create(**args)
    assert a.choices[0].message.content == b.choices[0].message.content, "same seed"
    content = a.choices[0].logprobs.content
    assert len(content) == a.usage.completion_tokens
    for entry in content:
        assert entry.logprob <= 0
        assert len(entry.top_logprobs) == 3
        assert entry.top_logprobs[0].logprob >= entry.logprob


def _token_bytes(choice):
    """The bytes of each token of a choice's chat logprobs."""
    return [bytes(entry.bytes) for entry in choice.logprobs.content]


def test_logit_bias_forces_and_bans_tokens(openai_client):
    args = dict(model=MODEL, messages=MESSAGES, max_tokens=5, temperature=0, logprobs=True)
    # Far apart, so that the repeat penalty on the forced token (which
    # divides its logit) leaves it ahead.
    forced = openai_client.chat.completions.create(**args, logit_bias={"300": 100, "301": 50})
    tokens = _token_bytes(forced.choices[0])
    assert len(tokens) == 5 and len(set(tokens)) == 1, tokens
    # With 300 banned, 301 (the next largest bias) wins every step.
    banned = openai_client.chat.completions.create(**args, logit_bias={"300": -100, "301": 50})
    others = _token_bytes(banned.choices[0])
    assert len(others) == 5 and len(set(others)) == 1, others
    assert others[0] != tokens[0]
    # llama-server's list form, where false bans a token, gives the same answer.
    listed = openai_client.chat.completions.create(
        **args, extra_body={"logit_bias": [[300, False], [301, 50]]}
    )
    assert _token_bytes(listed.choices[0]) == others


def test_logit_bias_beyond_the_vocabulary_is_a_bad_request(openai_client):
    with pytest.raises(openai.BadRequestError) as e:
        openai_client.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=2, logit_bias={"99999999": 1}
        )
    assert "vocabulary" in e.value.message


def test_n_choices_are_seeded_one_after_another(openai_client):
    args = dict(model=MODEL, messages=MESSAGES, max_tokens=8, temperature=1.0, logprobs=True)
    r = openai_client.chat.completions.create(**args, n=3, seed=7)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert r.usage.completion_tokens == sum(len(c.logprobs.content) for c in r.choices)
    for i, choice in enumerate(r.choices):
        alone = openai_client.chat.completions.create(**args, seed=7 + i).choices[0]
        assert choice.message.content == alone.message.content, i
        assert choice.finish_reason == alone.finish_reason
    # The prompt is counted once.
    single = openai_client.chat.completions.create(**args, seed=7)
    assert r.usage.prompt_tokens == single.usage.prompt_tokens


def test_n_choices_streamed_interleave_by_index(openai_client):
    args = dict(model=MODEL, messages=MESSAGES, max_tokens=8, temperature=1.0, seed=11, n=2)
    whole = openai_client.chat.completions.create(**args)
    chunks = list(
        openai_client.chat.completions.create(
            **args, stream=True, stream_options={"include_usage": True}
        )
    )
    texts, finish, roles = {}, {}, set()
    for c in chunks:
        for choice in c.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.delta.role:
                roles.add(choice.index)
            if choice.finish_reason:
                assert choice.index not in finish, "one finish per choice"
                finish[choice.index] = choice.finish_reason
    assert roles == {0, 1}
    assert texts == {c.index: c.message.content for c in whole.choices}
    assert finish == {c.index: c.finish_reason for c in whole.choices}
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    completions = openai_client.completions.create(
        model=MODEL, prompt="Once upon a time", max_tokens=4, temperature=1.0, seed=3, n=2
    )
    assert [c.index for c in completions.choices] == [0, 1]


def test_completions_whole_and_streamed(openai_client):
    args = dict(model=MODEL, prompt="Once upon a time", max_tokens=6, temperature=0)
    r = openai_client.completions.create(**args)
    assert r.object == "text_completion"
    assert r.choices[0].finish_reason in ("stop", "length")
    text = r.choices[0].text
    streamed = "".join(c.choices[0].text for c in openai_client.completions.create(**args, stream=True) if c.choices)
    assert streamed == text
    echoed = openai_client.completions.create(**args, echo=True)
    assert echoed.choices[0].text == "Once upon a time" + text
    lp = openai_client.completions.create(**args, logprobs=2).choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == r.usage.completion_tokens


def test_embeddings(openai_client):
    # The client asks for base64 by default and decodes it.
    one = openai_client.embeddings.create(model=MODEL, input="hello world")
    vector = one.data[0].embedding
    assert len(vector) > 0
    assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-4)
    assert one.usage.prompt_tokens > 0
    many = openai_client.embeddings.create(
        model=MODEL, input=["hello world", "goodbye"], encoding_format="float"
    )
    assert [d.index for d in many.data] == [0, 1]
    assert many.data[0].embedding == pytest.approx(vector, abs=1e-6)
    short = openai_client.embeddings.create(model=MODEL, input="hi", dimensions=8)
    assert len(short.data[0].embedding) == 8


def test_models_list_and_retrieve(openai_client):
    ids = [m.id for m in openai_client.models.list()]
    assert MODEL in ids
    m = openai_client.models.retrieve(MODEL)
    assert (m.id, m.object, m.owned_by) == (MODEL, "model", "library")
    with pytest.raises(openai.NotFoundError) as e:
        openai_client.models.retrieve("no-such-model:latest")
    assert "does not exist" in str(e.value)


def test_unknown_model_is_not_found(openai_client):
    with pytest.raises(openai.NotFoundError) as e:
        openai_client.chat.completions.create(model="ghost", messages=MESSAGES)
    assert e.value.body["code"] == "model_not_found"
    assert "The model `ghost` does not exist" in e.value.message


@pytest.mark.parametrize(
    "extra, param",
    [
        (dict(temperature=5), "temperature"),
        (dict(n=0), "n"),
        (dict(n=17), "n"),
        (dict(logit_bias={"x": 1}), "logit_bias"),
        (dict(logit_bias={"5": 101}), "logit_bias"),
        (dict(response_format={"type": "yaml"}), "response_format"),
        (dict(tools=[{"type": "function", "function": {"parameters": {}}}]), "tools[0]"),
        (dict(logprobs=True, top_logprobs=30), "top_logprobs"),
    ],
)
def test_bad_parameters_are_bad_requests(openai_client, extra, param):
    with pytest.raises(openai.BadRequestError) as e:
        openai_client.chat.completions.create(model=MODEL, messages=MESSAGES, **extra)
    assert e.value.body["param"] == param
    assert e.value.body["type"] == "invalid_request_error"


def test_tools_on_a_template_without_them_are_refused_with_a_reason(openai_client):
    # The test model's fallback template renders no tools (test_tools.py
    # calls tools on real templates).
    with pytest.raises(openai.BadRequestError) as e:
        openai_client.chat.completions.create(
            model=MODEL, messages=MESSAGES, tool_choice="required",
            tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        )
    assert "does not support tools" in e.value.message


def test_prompt_over_the_context_is_a_bad_request(openai_client):
    long = "hello " * 5000
    with pytest.raises(openai.BadRequestError) as e:
        openai_client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": long}]
        )
    assert "context" in e.value.message
    with pytest.raises(openai.BadRequestError):
        openai_client.completions.create(model=MODEL, prompt=long)


def test_raw_malformed_wrong_types_and_huge_bodies(server, openai_client):
    status, body = post_raw(server.url, "/v1/chat/completions", b'{"model": "tiny",')
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("malformed JSON")
    status, body = post_raw(
        server.url,
        "/v1/chat/completions",
        b'{"model": "tiny", "messages": [], "max_tokens": "many"}',
    )
    assert status == 400
    assert body["error"]["param"] == "max_tokens"
    huge = oversized("prompt")
    status, body = post_raw(server.url, "/v1/completions", huge)
    assert status == 413
    assert "too large" in body["error"]["message"]
    # Still serving.
    r = openai_client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2)
    assert r.choices[0].message.role == "assistant"


def test_a_client_leaving_mid_stream_does_not_break_the_server(openai_client):
    stream = openai_client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=200, stream=True
    )
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"
    stream.close()
    r = openai_client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2)
    assert r.choices[0].finish_reason in ("stop", "length")
