#!/usr/bin/env python3
"""Generate the chat-template fixtures for crates/model/tests/chat_templates.rs.

Every `<model>.jinja` in crates/model/tests/fixtures/chat is rendered for a fixed set
of conversations with the Hugging Face conventions (transformers'
`utils/chat_template_utils.py`, `_compile_jinja_template` and `render_jinja_template`):

- jinja2 `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
  extensions=[loopcontrols])`;
- filter `tojson` = `json.dumps(x, ensure_ascii=False, indent=indent,
  separators=separators, sort_keys=False)`;
- globals `raise_exception(msg)` (raises `TemplateError(msg)`) and
  `strftime_now(fmt)` (pinned here to PINNED_NOW so the output is reproducible);
- render variables `messages`, `tools` (None when absent), `documents` (None),
  `add_generation_prompt`, plus the tokenizer's special tokens (`bos_token`,
  `eos_token`).

Outputs, next to the templates:
- `<model>.<case>.txt`: the expected rendering (exact bytes);
- `cases.json`: for every case, the template file, the render inputs (`extra` holds
  further template variables) and either the expected output file or the expected
  error message (for `raise_exception`).

Usage: pip install jinja2; python3 tools/chat-fixtures/gen.py
With `--check-transformers` (pip install transformers) every rendering is also
compared with transformers' own `render_jinja_template`.
"""

import argparse
import copy
import json
import sys
from datetime import datetime
from pathlib import Path

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "crates" / "model" / "tests" / "fixtures" / "chat"

# strftime_now() returns this moment in every fixture.
PINNED_NOW = datetime(2024, 9, 5, 14, 30, 0)

# Per template: the special tokens the model's tokenizer defines, and whether the
# template renders assistant tool calls / tool results (`tool_calls`), and in
# which shape it expects `function.arguments` ("object" is the Hugging Face
# convention; DeepSeek-R1-Distill-Llama concatenates it as a string). The content
# of a tool-calling assistant message is None (as OpenAI clients send it) unless
# `tool_call_content` says otherwise (Qwen 3 calls string methods on it).
MODELS = {
    "llama-3.1": dict(bos="<|begin_of_text|>", eos="<|eot_id|>", tool_calls="object"),
    "llama-3.2": dict(bos="<|begin_of_text|>", eos="<|eot_id|>", tool_calls="object"),
    "mistral-v0.3": dict(bos="<s>", eos="</s>", tool_calls="object"),
    "mistral-nemo": dict(bos="<s>", eos="</s>", tool_calls="object"),
    "mixtral": dict(bos="<s>", eos="</s>", tool_calls=None),
    "qwen-2.5": dict(bos="", eos="<|im_end|>", tool_calls="object"),
    "qwen-3": dict(
        bos="",
        eos="<|im_end|>",
        tool_calls="object",
        tool_call_content="",
        extra_cases=["reasoning", "thinking_disabled"],
    ),
    "phi-3-mini": dict(bos="<s>", eos="<|endoftext|>", tool_calls=None),
    "phi-3.5": dict(bos="<s>", eos="<|endoftext|>", tool_calls=None),
    "gemma-2": dict(bos="<bos>", eos="<eos>", tool_calls=None),
    "gemma-3": dict(bos="<bos>", eos="<eos>", tool_calls=None, extra_cases=["content_parts"]),
    "gemma-4": dict(
        bos="<bos>",
        eos="<eos>",
        tool_calls="object",
        extra_cases=["reasoning", "thinking_enabled", "content_parts"],
    ),
    "gemma-4-31b": dict(
        bos="<bos>",
        eos="<eos>",
        tool_calls="object",
        extra_cases=["reasoning", "thinking_enabled", "content_parts"],
    ),
    "deepseek-r1-distill-llama": dict(
        bos="<｜begin▁of▁sentence｜>", eos="<｜end▁of▁sentence｜>", tool_calls="string"
    ),
    "deepseek-r1-distill-qwen": dict(
        bos="<｜begin▁of▁sentence｜>",
        eos="<｜end▁of▁sentence｜>",
        tool_calls="object",
        extra_cases=["reasoning"],
    ),
    "command-r": dict(bos="<BOS_TOKEN>", eos="<|END_OF_TURN_TOKEN|>", tool_calls=None),
    # Command R+'s separate `tool_use` template iterates `tools` unconditionally, so
    # every case of it passes the tool list.
    "command-r-plus-tool-use": dict(
        bos="<BOS_TOKEN>", eos="<|END_OF_TURN_TOKEN|>", tool_calls="object", always_tools=True
    ),
    # gpt-oss's harmony format: an earlier turn's analysis channel comes from the
    # message's `thinking`, the effort from the `reasoning_effort` variable.
    "gpt-oss": dict(
        bos="<|startoftext|>",
        eos="<|return|>",
        tool_calls="object",
        tool_call_content="",
        extra_cases=["harmony_thinking"],
    ),
}

SYSTEM = {"role": "system", "content": "You are a helpful assistant. Answer briefly."}
CONVERSATION = [
    {"role": "user", "content": "Hello! Can you help me plan a trip to Zürich?"},
    {
        "role": "assistant",
        "content": "  Of course. What would you like to know about \"Zürich\"?  ",
    },
    {"role": "user", "content": "What's the weather like there today?\n"},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name, e.g. \"Zürich\""},
                    "unit": {
                        "type": "string",
                        "description": "Temperature unit",
                        "enum": ["celsius", "fahrenheit"],
                    },
                    "days": {"type": "integer", "description": "Forecast days", "default": 1},
                },
                "required": ["city"],
            },
        },
    }
]
TOOL_CALL_ID = "call0a1b2"  # Mistral templates require 9 alphanumeric characters
TOOL_ARGUMENTS = {"city": "Zürich", "unit": "celsius", "days": 1, "hourly": False, "ratio": 0.5}
TOOL_RESULT = '{"temperature": 21.5, "condition": "sunny"}'


# Extra cases some templates have special handling for:
# - reasoning: an earlier assistant turn carries its <think> block (templates
#   strip it with .split()/.strip() chains);
# - thinking_disabled / thinking_enabled: the `enable_thinking` template variable;
# - content_parts: a user turn whose content is a list of typed parts;
# - harmony_thinking: gpt-oss's `thinking` on an earlier assistant turn, with
#   tools and `reasoning_effort`.
REASONING_ANSWER = "<think>\nThe user wants help.\n</think>\n\n" + CONVERSATION[1]["content"]
CONTENT_PARTS = [
    {"type": "text", "text": "Describe this picture:"},
    {"type": "image"},
    {"type": "text", "text": " briefly. "},
]


def extra_case(name, base, with_system):
    if name == "reasoning":
        messages = copy.deepcopy(with_system)
        messages[2]["content"] = REASONING_ANSWER
        return dict(base, messages=messages, tools=None)
    if name == "thinking_disabled":
        return dict(base, messages=with_system, tools=None, extra={"enable_thinking": False})
    if name == "thinking_enabled":
        return dict(base, messages=with_system, tools=None, extra={"enable_thinking": True})
    if name == "harmony_thinking":
        messages = copy.deepcopy(with_system)
        messages[2]["thinking"] = "The user wants help with a trip."
        return dict(base, messages=messages, tools=TOOLS, extra={"reasoning_effort": "high"})
    if name == "content_parts":
        messages = copy.deepcopy(with_system)
        messages[-1]["content"] = CONTENT_PARTS
        return dict(base, messages=messages, tools=None)
    raise KeyError(name)


def tool_call_messages(spec):
    arguments = copy.deepcopy(TOOL_ARGUMENTS)
    if spec["tool_calls"] == "string":
        arguments = json.dumps(arguments, ensure_ascii=False)
    return [
        {
            "role": "assistant",
            "content": spec.get("tool_call_content"),
            "tool_calls": [
                {
                    "id": TOOL_CALL_ID,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": arguments},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": TOOL_CALL_ID,
            "name": "get_weather",
            "content": TOOL_RESULT,
        },
    ]


def cases_for(spec):
    """The fixed conversation set, as (case name, render inputs)."""
    base = dict(bos_token=spec["bos"], eos_token=spec["eos"], add_generation_prompt=True)
    with_system = [SYSTEM] + CONVERSATION
    no_tools = TOOLS if spec.get("always_tools") else None
    yield "basic", dict(base, messages=with_system, tools=no_tools)
    yield "no_generation_prompt", dict(
        base, messages=with_system, tools=no_tools, add_generation_prompt=False
    )
    yield "no_system", dict(base, messages=list(CONVERSATION), tools=no_tools)
    tool_messages = with_system
    if spec["tool_calls"]:
        tool_messages = with_system + tool_call_messages(spec)
    yield "tools", dict(base, messages=tool_messages, tools=TOOLS)
    for name in spec.get("extra_cases", []):
        yield name, extra_case(name, base, with_system)


def hf_environment():
    """jinja2 configured as transformers' _compile_jinja_template does."""

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    def strftime_now(fmt):
        return PINNED_NOW.strftime(fmt)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(env, source, inputs):
    inputs = copy.deepcopy(inputs)
    extra = inputs.pop("extra", {})
    template = env.from_string(source)
    return template.render(documents=None, **extra, **inputs)


def check_with_transformers(source, inputs, expected):
    """Render again with transformers itself, its clock pinned like ours."""
    from transformers.utils import chat_template_utils
    from transformers.utils.chat_template_utils import render_jinja_template

    class PinnedDatetime(datetime):
        @classmethod
        def now(cls, tz=None):
            return PINNED_NOW

    chat_template_utils.datetime = PinnedDatetime

    inputs = copy.deepcopy(inputs)
    messages = inputs.pop("messages")
    tools = inputs.pop("tools")
    agp = inputs.pop("add_generation_prompt")
    inputs.update(inputs.pop("extra", {}))
    try:
        rendered, _ = render_jinja_template(
            conversations=[messages],
            tools=tools,
            chat_template=source,
            add_generation_prompt=agp,
            **inputs,
        )
        got = ("ok", rendered[0])
    except jinja2.exceptions.TemplateError as err:
        got = ("error", str(err))
    if got != expected:
        raise SystemExit(f"transformers disagrees:\n{got!r}\n{expected!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check-transformers", action="store_true")
    args = parser.parse_args()

    env = hf_environment()
    manifest = []
    for model, spec in MODELS.items():
        source = (FIXTURES / f"{model}.jinja").read_text(encoding="utf-8")
        for case, inputs in cases_for(spec):
            entry = dict(name=f"{model}/{case}", template=f"{model}.jinja", inputs=inputs)
            out_path = FIXTURES / f"{model}.{case}.txt"
            try:
                text = render(env, source, inputs)
                out_path.write_bytes(text.encode("utf-8"))
                entry["expected"] = out_path.name
                outcome = ("ok", text)
            except jinja2.exceptions.TemplateError as err:
                if type(err) is not jinja2.exceptions.TemplateError:
                    # Only raise_exception() raises the bare TemplateError; anything
                    # else (undefined variables, type errors) is a broken fixture.
                    raise
                out_path.unlink(missing_ok=True)
                entry["expected_error"] = str(err)
                outcome = ("error", str(err))
            if args.check_transformers:
                check_with_transformers(source, inputs, outcome)
            manifest.append(entry)
            status = "error: " + entry["expected_error"] if "expected_error" in entry else "ok"
            print(f"{entry['name']:45} {status}", file=sys.stderr)

    doc = {"strftime_now": PINNED_NOW.isoformat(), "cases": manifest}
    (FIXTURES / "cases.json").write_text(
        json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
