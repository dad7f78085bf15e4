"""Tool calling and thinking through the real `hearth serve`, with the real
chat templates of llama.cpp's `models/templates` on the random-weight test
model, driven by the official `openai`, `ollama` and `anthropic` clients and
LangChain's `bind_tools`.

The random model's words are not assumed: these tests check what the server
does with them. Tools and tool results reach the template (the prompt grows
with them), a streamed answer assembles into the same content, thinking and
calls as the whole answer at temperature 0, thinking is split from content
where the template opens a thinking block, and requests the model cannot
serve get a 400. Each family's call syntax is parsed in Rust unit tests
(crates/model/src/chat/output), on the text its template writes.
"""

import json
import pathlib
import subprocess

import anthropic
import openai
import pytest

from conftest import MODEL, ROOT, TARGET

# Families by the llama.cpp template that defines them. Command R7B's is
# left out here: its preamble alone is longer than the 4096 positions of the
# test model under its 320-token vocabulary (its parser is tested in Rust).
FAMILIES = {
    "hermes": "Qwen-Qwen2.5-7B-Instruct",
    "qwen3": "Qwen-Qwen3-0.6B",
    "llama3": "meta-llama-Llama-3.1-8B-Instruct",
    "mistral-nemo": "mistralai-Mistral-Nemo-Instruct-2407",
    "deepseek-r1": "llama-cpp-deepseek-r1",
    "deepseek-v3.1": "deepseek-ai-DeepSeek-V3.1",
    "gpt-oss": "openai-gpt-oss-120b",
    "granite": "ibm-granite-granite-3.3-2B-Instruct",
    "functionary-v3.1": "meetkai-functionary-medium-v3.1",
    "functionary-v3.2": "meetkai-functionary-medium-v3.2",
    "firefunction-v2": "fireworks-ai-llama-3-firefunction-v2",
}

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}

# A conversation with a finished tool call: the assistant's call (arguments
# as OpenAI sends them, a JSON string; a 9-character id, as Mistral's
# template requires), the tool's result and the answer to it (Mistral's
# template wants user and assistant turns to alternate around calls).
HISTORY = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "abc123def",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "abc123def", "content": "Sunny, 21 C"},
    {"role": "assistant", "content": "It is sunny in Paris."},
    {"role": "user", "content": "And in Rome?"},
]


@pytest.fixture(scope="session")
def templates():
    out = subprocess.run(
        [str(ROOT / "tools" / "fetch-llama-vocabs.sh")],
        check=True,
        capture_output=True,
        text=True,
    )
    return pathlib.Path(out.stdout.strip().splitlines()[-1]) / "templates"


@pytest.fixture(scope="session")
def long_gguf(workdir):
    """A random-weight model with the test model's shapes and a context of
    4096 (the synth preset tiny-phi3): templates that describe tools make
    prompts longer than the test model's 256 positions."""
    synth = TARGET / "debug" / "examples" / "synth"
    out = workdir / "tiny-phi3.gguf"
    subprocess.run([str(synth), "tiny-phi3", str(out), "Q8_0"], check=True)
    return out


@pytest.fixture(scope="module")
def family_models(ollama_client, long_gguf, model, templates):
    """One store model per family: a random-weight GGUF with that family's template."""
    digest = ollama_client.create_blob(long_gguf)
    names = {}
    for family, template in FAMILIES.items():
        source = (templates / f"{template}.jinja").read_text()
        name = f"tools-{family}:latest"
        done = ollama_client.create(
            model=name,
            files={"tiny.gguf": digest},
            template=source,
            parameters={"num_ctx": 4096},
        )
        assert done.status == "success"
        names[family] = name
    yield names
    # Unloaded again, so that tests after these find no model of theirs running.
    for name in names.values():
        ollama_client.generate(model=name, keep_alive=0)


def assemble(stream):
    """Content, reasoning, calls and finish reason of a streamed chat."""
    content, reasoning, calls, finish, usage = "", "", {}, None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            content += delta.content or ""
            reasoning += getattr(delta, "reasoning_content", None) or ""
            for call in delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"name": "", "arguments": ""})
                if call.function.name:
                    entry["name"] += call.function.name
                entry["arguments"] += call.function.arguments or ""
            finish = choice.finish_reason or finish
    return content, reasoning, [calls[i] for i in sorted(calls)], finish, usage


@pytest.mark.parametrize("family", FAMILIES)
def test_openai_tools_render_and_stream_like_the_whole_answer(openai_client, family_models, family):
    name = family_models[family]
    common = dict(model=name, messages=HISTORY, temperature=0, seed=7, max_tokens=12)
    bare = openai_client.chat.completions.create(**common)
    whole = openai_client.chat.completions.create(tools=[WEATHER], **common)
    # The tools reach the template: the prompt holds their definitions
    # (DeepSeek V3.1's template lists none; its calls are rendered).
    if family != "deepseek-v3.1":
        assert whole.usage.prompt_tokens > bare.usage.prompt_tokens, family
    message = whole.choices[0].message
    calls = [
        {"name": c.function.name, "arguments": c.function.arguments}
        for c in message.tool_calls or []
    ]
    for call in calls:
        assert call["name"]
        assert isinstance(json.loads(call["arguments"]), dict)
    assert (whole.choices[0].finish_reason == "tool_calls") == bool(calls)
    stream = openai_client.chat.completions.create(
        tools=[WEATHER], stream=True, stream_options={"include_usage": True}, **common
    )
    content, reasoning, streamed_calls, finish, usage = assemble(stream)
    assert content == (message.content or "")
    assert reasoning == (getattr(message, "reasoning_content", None) or "")
    assert streamed_calls == calls
    assert finish == whole.choices[0].finish_reason
    assert usage.completion_tokens == whole.usage.completion_tokens


def test_ollama_tools_and_thinking_stream_like_the_whole_answer(ollama_client, family_models):
    name = family_models["qwen3"]
    messages = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "thinking": "The user wants the weather.",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": "Sunny, 21 C", "tool_name": "get_weather"},
        {"role": "user", "content": "And in Rome?"},
    ]
    options = {"temperature": 0, "seed": 7, "num_predict": 12}
    whole = ollama_client.chat(model=name, messages=messages, tools=[WEATHER], options=options)
    parts = list(
        ollama_client.chat(
            model=name, messages=messages, tools=[WEATHER], options=options, stream=True
        )
    )
    content = "".join(p.message.content or "" for p in parts)
    thinking = "".join(p.message.thinking or "" for p in parts)
    calls = [c for p in parts for c in p.message.tool_calls or []]
    assert content == whole.message.content
    assert thinking == (whole.message.thinking or "")
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [
        (c.function.name, dict(c.function.arguments)) for c in whole.message.tool_calls or []
    ]
    assert parts[-1].done and parts[-1].eval_count == whole.eval_count


def test_think_flags_reach_the_template(ollama_client, openai_client, family_models):
    # Qwen 3's template closes an empty thinking block when enable_thinking
    # is false: the prompt (whole, cached prefix included) is longer.
    import ollama

    name = family_models["qwen3"]
    messages = [{"role": "user", "content": "Hi"}]
    common = dict(model=name, messages=messages, temperature=0, max_tokens=1)
    on = openai_client.chat.completions.create(reasoning_effort="high", **common)
    off = openai_client.chat.completions.create(reasoning_effort="none", **common)
    assert off.usage.prompt_tokens > on.usage.prompt_tokens
    options = {"temperature": 0, "num_predict": 1}
    for think in [True, False, "low", "medium", "high"]:
        r = ollama_client.chat(model=name, messages=messages, think=think, options=options)
        assert r.done
    with pytest.raises(ollama.ResponseError) as e:
        ollama_client.chat(model=name, messages=messages, think="hardest", options=options)
    assert e.value.status_code == 400 and "think" in e.value.error


def test_thinking_opened_by_the_template_is_split_from_content(
    ollama_client, openai_client, family_models
):
    # DeepSeek R1's generation prompt ends in `<think>\n`: the answer starts
    # as thinking, and stays thinking until the model closes the block.
    name = family_models["deepseek-r1"]
    messages = [{"role": "user", "content": "Hi"}]
    r = ollama_client.chat(
        model=name, messages=messages, options={"temperature": 0, "seed": 3, "num_predict": 12}
    )
    assert r.eval_count > 0
    thinking = r.message.thinking or ""
    if "</think>" not in thinking:
        assert thinking or not r.message.content
    o = openai_client.chat.completions.create(
        model=name, messages=messages, temperature=0, seed=3, max_tokens=12
    )
    assert (getattr(o.choices[0].message, "reasoning_content", None) or "") == thinking
    assert (o.choices[0].message.content or "") == r.message.content


def test_show_reports_tools_and_thinking_capabilities(ollama_client, family_models, model):
    assert set(ollama_client.show(family_models["qwen3"]).capabilities) == {"completion", "tools", "thinking"}
    assert set(ollama_client.show(family_models["hermes"]).capabilities) == {"completion", "tools"}
    assert ollama_client.show(model).capabilities == ["completion"]


def test_models_without_tools_or_thinking_refuse_them(ollama_client, openai_client, model):
    # The test model's fallback template (ChatML) renders no tools.
    import ollama

    with pytest.raises(ollama.ResponseError) as e:
        ollama_client.chat(model=model, messages=[{"role": "user", "content": "hi"}], tools=[WEATHER])
    assert e.value.status_code == 400 and "does not support tools" in e.value.error
    with pytest.raises(ollama.ResponseError) as e:
        ollama_client.chat(model=model, messages=[{"role": "user", "content": "hi"}], think=True)
    assert e.value.status_code == 400 and "does not support thinking" in e.value.error
    with pytest.raises(openai.BadRequestError) as e:
        openai_client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], tools=[WEATHER]
        )
    assert "does not support tools" in str(e.value)


def test_tool_choice_none_and_bad_choices(openai_client, family_models):
    name = family_models["hermes"]
    common = dict(model=name, messages=HISTORY, tools=[WEATHER], temperature=0, max_tokens=4)
    r = openai_client.chat.completions.create(tool_choice="none", **common)
    assert r.choices[0].message.tool_calls is None
    assert r.choices[0].finish_reason in ("stop", "length")
    with pytest.raises(openai.BadRequestError) as e:
        openai_client.chat.completions.create(
            tool_choice={"type": "function", "function": {"name": "nowhere"}}, **common
        )
    assert "not among the tools" in str(e.value)
    with pytest.raises(openai.BadRequestError):
        openai_client.chat.completions.create(
            tools=[{"type": "function", "function": {}}], model=name, messages=HISTORY
        )
    with pytest.raises(openai.BadRequestError):
        openai_client.chat.completions.create(
            tool_choice="required", model=name, messages=HISTORY
        )


TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The time in a zone",
        "parameters": {
            "type": "object",
            "properties": {
                "zone": {"type": "string", "enum": ["UTC", "CET"], "description": "The zone"},
                "hour24": {"type": "boolean", "description": "24-hour clock"},
            },
            "required": ["zone", "hour24"],
            "additionalProperties": False,
        },
    },
}


# The forced-call tools bound their strings: the random model, constrained
# to the grammar, would otherwise write one string until max_tokens.
CITY = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 12, "description": "The city"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def valid_call(call, tool):
    """A call's arguments satisfy the tool's schema (the keywords used here)."""
    schema = tool["function"]["parameters"]
    args = json.loads(call["arguments"]) if isinstance(call["arguments"], str) else call["arguments"]
    assert call["name"] == tool["function"]["name"]
    assert isinstance(args, dict)
    assert set(schema["required"]) <= set(args)
    types = {"string": str, "boolean": bool}
    for key, value in args.items():
        prop = schema["properties"][key]
        assert isinstance(value, types[prop["type"]]), (key, value)
        if "maxLength" in prop:
            assert len(value) <= prop["maxLength"]
        if "enum" in prop:
            assert value in prop["enum"]


@pytest.mark.parametrize("family", FAMILIES)
def test_forced_calls_follow_the_family_syntax_and_the_schema(openai_client, family_models, family):
    """tool_choice naming a function (and `required`) constrains the random
    model to the family's call syntax: the parser finds a call whose
    arguments match the schema, streamed and whole alike."""
    name = family_models[family]
    common = dict(
        model=name, messages=HISTORY, tools=[CITY, TIME], temperature=0, seed=5,
        max_tokens=200, parallel_tool_calls=False,
    )
    for choice, tool in [({"type": "function", "function": {"name": "get_time"}}, TIME), ("required", None)]:
        whole = openai_client.chat.completions.create(tool_choice=choice, **common)
        message = whole.choices[0].message
        assert whole.choices[0].finish_reason == "tool_calls", (family, message)
        calls = [{"name": c.function.name, "arguments": c.function.arguments} for c in message.tool_calls]
        assert len(calls) == 1, calls
        valid_call(calls[0], tool or {"get_weather": CITY, "get_time": TIME}[calls[0]["name"]])
        content, _, streamed, finish, _ = assemble(
            openai_client.chat.completions.create(tool_choice=choice, stream=True, **common)
        )
        assert streamed == calls and finish == "tool_calls"
        assert content == (message.content or "")


def test_forced_calls_on_the_other_apis(ollama_client, anthropic_client, openai_client, family_models):
    name = family_models["qwen3"]
    bounded = dict(ANTHROPIC_TOOL, input_schema=CITY["function"]["parameters"])
    message = anthropic_client.messages.create(
        model=name, max_tokens=200, messages=[{"role": "user", "content": "Weather in Rome?"}],
        tools=[bounded], tool_choice={"type": "tool", "name": "get_weather"},
        extra_body={"temperature": 0},
    )
    uses = [b for b in message.content if b.type == "tool_use"]
    assert message.stop_reason == "tool_use" and len(uses) >= 1
    assert uses[0].name == "get_weather" and isinstance(uses[0].input["city"], str)
    with anthropic_client.messages.stream(
        model=name, max_tokens=200, messages=[{"role": "user", "content": "Weather in Rome?"}],
        tools=[bounded], tool_choice={"type": "any"}, extra_body={"temperature": 0},
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert isinstance([b for b in final.content if b.type == "tool_use"][0].input["city"], str)
    tool = {"type": "function", "name": "get_weather", "parameters": CITY["function"]["parameters"]}
    r = openai_client.responses.create(
        model=name, input="Weather in Rome?", tools=[tool], tool_choice="required",
        temperature=0, max_output_tokens=200,
    )
    calls = [i for i in r.output if i.type == "function_call"]
    assert calls and calls[0].name == "get_weather"
    assert isinstance(json.loads(calls[0].arguments)["city"], str)


@pytest.fixture(scope="session")
def anthropic_client(server, model):
    return anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0, timeout=120)


ANTHROPIC_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": WEATHER["function"]["parameters"],
}

ANTHROPIC_HISTORY = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Look it up.", "signature": ""},
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": "Sunny, 21 C"},
            {"type": "text", "text": "And in Rome?"},
        ],
    },
]


def test_anthropic_messages_whole_and_streamed(anthropic_client, family_models):
    name = family_models["qwen3"]
    common = dict(
        model=name,
        max_tokens=12,
        system="You are terse.",
        messages=ANTHROPIC_HISTORY,
        tools=[ANTHROPIC_TOOL],
        # The client has no temperature argument any more; the API takes it.
        extra_body={"temperature": 0},
    )
    whole = anthropic_client.messages.create(**common)
    assert whole.type == "message" and whole.role == "assistant" and whole.model == name
    assert whole.content and {b.type for b in whole.content} <= {"text", "thinking", "tool_use"}
    assert whole.stop_reason in ("end_turn", "max_tokens", "tool_use")
    assert whole.usage.input_tokens > 0 and whole.usage.output_tokens > 0
    with anthropic_client.messages.stream(**common) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_start" in kinds and "message_delta" in kinds
    assert [b.model_dump() for b in final.content] == [
        dict(b.model_dump(), **({"id": final.content[i].id} if b.type == "tool_use" else {}))
        for i, b in enumerate(whole.content)
    ]
    assert final.stop_reason == whole.stop_reason
    assert final.usage.output_tokens == whole.usage.output_tokens
    # Thinking switched off and on through the template's flag.
    off = anthropic_client.messages.create(
        model=name, max_tokens=1, messages=[{"role": "user", "content": "Hi"}],
        thinking={"type": "disabled"},
    )
    on = anthropic_client.messages.create(
        model=name, max_tokens=1, messages=[{"role": "user", "content": "Hi"}],
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    assert off.usage.input_tokens > on.usage.input_tokens


def test_anthropic_errors(anthropic_client, model):
    with pytest.raises(anthropic.NotFoundError) as e:
        anthropic_client.messages.create(
            model="no-such-model", max_tokens=4, messages=[{"role": "user", "content": "hi"}]
        )
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as e:
        anthropic_client.messages.create(
            model=model, max_tokens=4, messages=[{"role": "user", "content": "hi"}], tools=[ANTHROPIC_TOOL]
        )
    assert e.value.body["error"]["type"] == "invalid_request_error"
    assert "does not support tools" in e.value.body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError) as e:
        anthropic_client.messages.create(model=model, max_tokens=4, messages=[])
    assert "messages" in e.value.body["error"]["message"]


def test_responses_whole_and_streamed(openai_client, family_models):
    name = family_models["qwen3"]
    items = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "Sunny, 21 C"},
        {"role": "user", "content": [{"type": "input_text", "text": "And in Rome?"}]},
    ]
    tool = {"type": "function", "name": "get_weather", "parameters": WEATHER["function"]["parameters"]}
    common = dict(
        model=name, input=items, instructions="Be terse.", tools=[tool],
        temperature=0, max_output_tokens=12,
    )
    whole = openai_client.responses.create(**common)
    assert whole.object == "response" and whole.status in ("completed", "incomplete")
    assert whole.usage.output_tokens > 0
    kinds = {item.type for item in whole.output}
    assert kinds and kinds <= {"message", "reasoning", "function_call"}
    events = list(openai_client.responses.create(stream=True, **common))
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] in ("response.completed", "response.incomplete")
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == whole.output_text
    final = events[-1].response
    assert final.output_text == whole.output_text
    assert [i.type for i in final.output] == [i.type for i in whole.output]
    # A plain string input, on a model without tools.
    plain = openai_client.responses.create(model=MODEL, input="Hi", max_output_tokens=4)
    assert plain.output[0].type == "message"
    with pytest.raises(openai.BadRequestError):
        openai_client.responses.create(model=MODEL, input="Hi", previous_response_id="resp_1")


def test_langchain_bind_tools(server, family_models):
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langchain_core.tools import tool
    from langchain_ollama import ChatOllama
    from langchain_openai import ChatOpenAI

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "Sunny"

    history = [
        HumanMessage("What is the weather in Paris?"),
        AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "abc123def"}]),
        ToolMessage("Sunny, 21 C", tool_call_id="abc123def"),
        HumanMessage("And in Rome?"),
    ]
    name = family_models["hermes"]
    chats = [
        ChatOpenAI(base_url=server.url + "/v1", api_key="unused", model=name, temperature=0, max_tokens=12),
        ChatOllama(base_url=server.url, model=name, temperature=0, num_predict=12),
    ]
    for chat in chats:
        answer = chat.bind_tools([get_weather]).invoke(history)
        assert isinstance(answer, AIMessage)
        for call in answer.tool_calls:
            assert call["name"] and isinstance(call["args"], dict)


# An Ollama-style Go template in the Hermes family (as Ollama's qwen2.5 has).
GO_TEMPLATE = """{{- if .Tools }}<|im_start|>system
# Tools
<tools>
{{- range .Tools }}
{"type": "function", "function": {{ .Function }}}
{{- end }}
</tools><|im_end|>
{{ end }}
{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}
{{- range .ToolCalls }}<tool_call>
{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
</tool_call>{{ end }}<|im_end|>
{{ end }}<|im_start|>assistant
"""


def test_go_templates_take_tools_and_force_calls(ollama_client, openai_client, long_gguf):
    digest = ollama_client.create_blob(long_gguf)
    name = "tools-go:latest"
    done = ollama_client.create(
        model=name, files={"tiny.gguf": digest}, template=GO_TEMPLATE, parameters={"num_ctx": 4096}
    )
    assert done.status == "success"
    assert "tools" in ollama_client.show(name).capabilities
    common = dict(model=name, messages=HISTORY, temperature=0, max_tokens=200)
    one = dict(parallel_tool_calls=False)
    bare = openai_client.chat.completions.create(**common)
    forced = openai_client.chat.completions.create(
        tools=[CITY, TIME], tool_choice={"type": "function", "function": {"name": "get_time"}},
        **one, **common,
    )
    assert forced.usage.prompt_tokens > bare.usage.prompt_tokens
    calls = forced.choices[0].message.tool_calls
    assert forced.choices[0].finish_reason == "tool_calls" and len(calls) == 1
    valid_call({"name": calls[0].function.name, "arguments": calls[0].function.arguments}, TIME)
    ollama_client.generate(model=name, keep_alive=0)
