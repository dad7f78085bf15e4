"""Structured output against the real server on the random-weight test model,
at temperature 1 and with no seed: only the grammar mask can make its answers
conform, so every answer must validate against its JSON Schema.

- The schemas of data/schemas.json (types, properties, required,
  additionalProperties, enum, const, anyOf/oneOf/allOf, $ref/$defs, arrays
  with min/maxItems, string lengths, pattern, formats, numeric bounds) through
  Ollama's `format` on /api/chat and OpenAI's `response_format` on
  /v1/chat/completions, streamed and not; checked with `jsonschema`, formats
  included.
- JSON mode (`format: "json"`, `{"type": "json_object"}`) on the generate and
  completions endpoints too; llama-server's `grammar` (GBNF) and
  `json_schema` fields.
- LangChain's `with_structured_output` through langchain-openai and
  langchain-ollama, and the openai client's `chat.completions.parse` with a
  Pydantic model.
- Bad schemas and grammars are 400s naming the problem.
"""

import copy
import json
import pathlib
import re

import httpx
import jsonschema
import ollama
import openai
import pytest
from langchain_ollama import ChatOllama
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

SCHEMAS = json.loads((pathlib.Path(__file__).parent / "data" / "schemas.json").read_text())


def _formats():
    """jsonschema's format checker, except that a leap second (`:60`), which
    RFC 3339 and so JSON Schema's `time` and `date-time` allow, passes: the
    stock checker parses with Python's datetime, which refuses it."""
    checker = copy.deepcopy(jsonschema.Draft202012Validator.FORMAT_CHECKER)
    for name in ("time", "date-time"):
        stock = checker.checkers[name][0]

        def check(value, stock=stock):
            if isinstance(value, str):
                value = re.sub(r"(\d\d:\d\d):60", r"\1:59", value, count=1)
            return stock(value)

        checker.checks(name, raises=checker.checkers[name][1])(check)
    return checker


FORMATS = _formats()
PROMPT = "Answer in JSON."


def test_the_format_checker_checks_and_allows_leap_seconds():
    assert FORMATS.conforms("23:59:60Z", "time")
    assert FORMATS.conforms("2016-12-31T23:59:60Z", "date-time")
    assert not FORMATS.conforms("24:00:00Z", "time")
    assert not FORMATS.conforms("2016-13-01T00:00:00Z", "date-time")
    assert not FORMATS.conforms("not-an-email", "email")


def test_the_suite_is_large_and_every_format_it_uses_is_checked():
    assert len(SCHEMAS) >= 30
    used = set()

    def walk(v):
        if isinstance(v, dict):
            if isinstance(v.get("format"), str):
                used.add(v["format"])
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    for s in SCHEMAS:
        jsonschema.Draft202012Validator.check_schema(s["schema"])
        walk(s["schema"])
    # jsonschema silently passes formats it has no checker for.
    assert used <= set(FORMATS.checkers), used - set(FORMATS.checkers)


def conforms(text, schema):
    value = json.loads(text)
    jsonschema.validate(value, schema, format_checker=FORMATS)
    return value


def ids(s):
    return s["name"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("case", SCHEMAS, ids=ids)
def test_ollama_chat_format_schema(ollama_client, model, case, stream):
    messages = [{"role": "user", "content": PROMPT}]
    options = {"temperature": 1}
    if stream:
        text, done = "", None
        for part in ollama_client.chat(
            model=model, messages=messages, format=case["schema"], options=options, stream=True
        ):
            text += part.message.content
            if part.done:
                done = part
        assert done is not None
    else:
        done = ollama_client.chat(model=model, messages=messages, format=case["schema"], options=options)
        text = done.message.content
    assert done.done_reason == "stop", text
    conforms(text, case["schema"])


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("case", SCHEMAS, ids=ids)
def test_openai_response_format_json_schema(openai_client, model, case, stream):
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": case["name"], "schema": case["schema"], "strict": True},
    }
    messages = [{"role": "user", "content": PROMPT}]
    if stream:
        text, finish = "", None
        for chunk in openai_client.chat.completions.create(
            model=model, messages=messages, response_format=response_format, temperature=1, stream=True
        ):
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
    else:
        reply = openai_client.chat.completions.create(
            model=model, messages=messages, response_format=response_format, temperature=1
        )
        text, finish = reply.choices[0].message.content, reply.choices[0].finish_reason
    assert finish == "stop", text
    conforms(text, case["schema"])


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_json_mode_on_every_endpoint(ollama_client, openai_client, model, stream):
    any_object = {"type": "object"}
    for _ in range(3):
        if stream:
            text = "".join(
                p.response
                for p in ollama_client.generate(
                    model=model, prompt=PROMPT, format="json", options={"temperature": 1}, stream=True
                )
            )
        else:
            text = ollama_client.generate(
                model=model, prompt=PROMPT, format="json", options={"temperature": 1}
            ).response
        conforms(text, any_object)
        text = ollama_client.chat(
            model=model, messages=[{"role": "user", "content": PROMPT}], format="json",
            options={"temperature": 1},
        ).message.content
        conforms(text, any_object)
        reply = openai_client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": PROMPT}],
            response_format={"type": "json_object"}, temperature=1,
        )
        conforms(reply.choices[0].message.content, any_object)
        if stream:
            text = "".join(
                c.choices[0].text
                for c in openai_client.completions.create(
                    model=model, prompt=PROMPT, temperature=1, stream=True,
                    extra_body={"response_format": {"type": "json_object"}},
                )
                if c.choices
            )
        else:
            text = openai_client.completions.create(
                model=model, prompt=PROMPT, temperature=1,
                extra_body={"response_format": {"type": "json_object"}},
            ).choices[0].text
        conforms(text, any_object)


def test_ollama_generate_with_a_schema_keeps_the_prompt(ollama_client, model):
    schema = next(s["schema"] for s in SCHEMAS if s["name"] == "order_items")
    plain = ollama_client.generate(model=model, prompt=PROMPT, options={"num_predict": 1})
    shaped = ollama_client.generate(model=model, prompt=PROMPT, format=schema, options={"temperature": 1})
    conforms(shaped.response, schema)
    # The format adds nothing to the prompt: both contexts start with the
    # same prompt tokens (prompt_eval_count would not tell, the prefix cache
    # spares the second request its prompt).
    prompt = plain.context[: len(plain.context) - plain.eval_count]
    assert prompt and shaped.context[: len(prompt)] == prompt
    assert len(shaped.context) == len(prompt) + shaped.eval_count


def test_llama_server_grammar_and_json_schema_fields(openai_client, model):
    gbnf = r'''
        root ::= "answer: " item (", " item){0,2}
        item ::= [a-z]{1,5} | [0-9]+
    '''
    for _ in range(4):
        reply = openai_client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "list"}], temperature=1,
            extra_body={"grammar": gbnf},
        )
        text = reply.choices[0].message.content
        assert text.startswith("answer: "), text
        items = text[len("answer: "):].split(", ")
        assert 1 <= len(items) <= 3, text
        for item in items:
            assert (item.isascii() and item.isalpha() and item.islower() and len(item) <= 5) or item.isdigit(), text
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 3, "maximum": 7}},
              "required": ["n"], "additionalProperties": False}
    for kind, call in [
        ("chat", lambda: openai_client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "n?"}], temperature=1,
            extra_body={"json_schema": schema}).choices[0].message.content),
        ("completions", lambda: openai_client.completions.create(
            model=model, prompt="n?", temperature=1,
            extra_body={"json_schema": schema}).choices[0].text),
    ]:
        conforms(call(), schema)


@pytest.mark.parametrize(
    "body, param, says",
    [
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 5}}}},
         None, "invalid JSON Schema"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/$defs/nope"}}}},
         None, "invalid JSON Schema"),
        ({"response_format": {"type": "yaml"}}, "response_format", "response_format of type 'yaml'"),
        ({"response_format": {"type": "json_schema"}}, "response_format", "needs a 'json_schema' object"),
        ({"grammar": "root ::= \"unterminated"}, None, "invalid GBNF grammar"),
        ({"grammar": "start ::= \"no root\""}, None, "no 'root' rule"),
        ({"grammar": "root ::= \"a\"", "json_schema": {"type": "object"}}, "json_schema", "give only one of"),
        ({"json_schema": "object"}, "json_schema", "must be a JSON Schema object"),
    ],
)
def test_bad_constraints_are_400s_that_say_why(server, openai_client, model, body, param, says):
    base = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    for stream in (False, True):
        r = httpx.post(server.url + "/v1/chat/completions", json={**base, **body, "stream": stream}, timeout=60)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert says in error["message"], error
        if param:
            assert error["param"] == param


@pytest.mark.parametrize(
    "fmt, says",
    [
        ({"type": "object", "properties": {"a": {"type": "nonsense"}}}, "invalid JSON Schema"),
        ({"type": "string", "pattern": "(unclosed"}, "invalid JSON Schema"),
        ("yaml", "use \"json\" or a JSON Schema object"),
        (5, "use \"json\" or a JSON Schema object"),
    ],
)
def test_bad_ollama_formats_are_400s(server, model, fmt, says):
    # Raw requests: the ollama client refuses some of these itself.
    for path, body in [
        ("/api/generate", {"prompt": "hi"}),
        ("/api/chat", {"messages": [{"role": "user", "content": "hi"}]}),
    ]:
        for stream in (False, True):
            r = httpx.post(
                server.url + path, json={"model": model, "format": fmt, "stream": stream, **body}, timeout=60
            )
            assert r.status_code == 400, r.text
            assert says in r.json()["error"], r.text


class Person(BaseModel):
    name: str = Field(max_length=20)
    age: int = Field(ge=0, le=150)
    hobbies: list[str] = Field(max_length=3)


def test_langchain_openai_with_structured_output(server, model):
    llm = ChatOpenAI(model=model, base_url=server.url + "/v1", api_key="unused", temperature=1, max_retries=0)
    structured = llm.with_structured_output(Person, method="json_schema", strict=True)
    for _ in range(3):
        person = structured.invoke("Describe a person.")
        assert isinstance(person, Person)
    raw = llm.with_structured_output(Person.model_json_schema(), method="json_schema")
    assert isinstance(raw.invoke("Describe a person."), dict)


def test_langchain_ollama_with_structured_output(server, model):
    llm = ChatOllama(model=model, base_url=server.url, temperature=1)
    structured = llm.with_structured_output(Person, method="json_schema")
    for _ in range(3):
        person = structured.invoke("Describe a person.")
        assert isinstance(person, Person)
    json_mode = llm.with_structured_output(None, method="json_mode")
    assert isinstance(json_mode.invoke("Describe a person in JSON."), dict)


def test_openai_parse_with_a_pydantic_model(openai_client, model):
    for _ in range(3):
        reply = openai_client.chat.completions.parse(
            model=model, messages=[{"role": "user", "content": "Describe a person."}],
            response_format=Person, temperature=1,
        )
        assert isinstance(reply.choices[0].message.parsed, Person)


def test_anthropic_output_config_format_follows_the_schema(server, model):
    import anthropic

    client = anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0, timeout=120)
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 3, "maximum": 7}},
              "required": ["n"], "additionalProperties": False}
    reply = client.messages.create(
        model=model, max_tokens=200, messages=[{"role": "user", "content": "n?"}],
        extra_body={"temperature": 1, "output_config": {"format": {"type": "json_schema", "schema": schema}}},
    )
    assert reply.stop_reason == "end_turn", reply
    conforms("".join(b.text for b in reply.content if b.type == "text"), schema)
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(
            model=model, max_tokens=8, messages=[{"role": "user", "content": "n?"}],
            extra_body={"output_config": {"format": {"type": "yaml"}}},
        )
    assert "output_config.format.type 'yaml'" in e.value.body["error"]["message"]
