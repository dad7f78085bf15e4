#!/usr/bin/env python3
"""Generate hearth's logits fixtures against llama.cpp.

For each synthetic model variant (tiny-llama, tiny-moe, tiny-qwen2, tiny-qwen3,
tiny-phi3, tiny-gemma2, tiny-gemma3, tiny-qwen3moe, tiny-gemma, tiny-starcoder2,
tiny-command-r, tiny-cohere2, tiny-olmo2, tiny-granite, tiny-mistral3,
tiny-gpt-oss, tiny-bloom; written by our own GGUF writer through `cargo run -p model
--example synth`) and each quant type (for MoE variants with MXFP4 experts also
llama-quantize's MXFP4_MOE: experts in MXFP4, the other matrices in Q8_0), this:
  1. quantizes the F32 file with llama-quantize,
  2. records the type llama-quantize chose for every tensor and the sha256 of its
     bytes (the Rust test re-quantizes with hearth's kernels and checks the
     hashes, proving it runs the identical file),
  3. runs dump_logits.cpp (compiled here against libllama) to get the logits of
     every position of a fixed 64-token prompt and 32 greedy-decoded ids,
and writes crates/model/tests/fixtures/logits/{variant}-{quant}.json and
.logits (n_prompt * n_vocab little-endian f32).

Needs: a llama.cpp build (LLAMA_CPP, default /tmp/ref/llama.cpp, with
build/bin/llama-quantize and libllama.so), g++, numpy, and llama.cpp's gguf-py
(from the same checkout). Never run in CI; the outputs are committed.

    python3 tools/logits-fixtures/gen.py
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LLAMA_CPP = Path(os.environ.get("LLAMA_CPP", "/tmp/ref/llama.cpp"))
BIN = LLAMA_CPP / "build" / "bin"
OUT = ROOT / "crates" / "model" / "tests" / "fixtures" / "logits"

sys.path.insert(0, str(LLAMA_CPP / "gguf-py"))
import gguf  # noqa: E402  (llama.cpp's gguf-py)

# tiny-swa is not here: llama.cpp ignores `llama.attention.sliding_window` for
# the llama architecture, so it cannot be the oracle for hearth's window (which
# crates/model/tests/llama_forward.rs checks by its effect instead).
VARIANTS = [
    "tiny-llama", "tiny-moe",
    "tiny-qwen2", "tiny-qwen3", "tiny-phi3", "tiny-gemma2", "tiny-gemma3",
    "tiny-qwen3moe", "tiny-gemma", "tiny-starcoder2", "tiny-command-r",
    "tiny-cohere2", "tiny-olmo2", "tiny-granite", "tiny-mistral3",
    "tiny-gpt-oss", "tiny-bloom",
]
# VARIANTS=tiny-qwen2,tiny-phi3 regenerates only those.
if os.environ.get("VARIANTS"):
    VARIANTS = os.environ["VARIANTS"].split(",")
QUANTS = ["F16", "Q8_0", "Q4_0", "Q4_K_M", "Q6_K", "IQ4_XS"]
# Variants whose real files store the experts in MXFP4 get that preset too.
EXTRA_QUANTS = {"tiny-gpt-oss": ["MXFP4_MOE"]}
# Quantized KV caches (llama.cpp's -ctk/-ctv with -fa on), on a few variants
# and weight presets: {variant}-{quant}-kv_{type}.json and .logits, with the
# fixture's "kv_type". tiny-llama: GQA heads of 64; tiny-gemma2: heads of 128
# with soft-capped scores and a sliding window; tiny-gpt-oss: attention sinks;
# tiny-bloom: ALiBi.
KV_FIXTURES = [
    ("tiny-llama", "Q8_0", "q8_0"),
    ("tiny-llama", "Q8_0", "q4_0"),
    ("tiny-llama", "F16", "q8_0"),
    ("tiny-gemma2", "Q8_0", "q8_0"),
    ("tiny-gpt-oss", "Q8_0", "q8_0"),
    ("tiny-bloom", "Q8_0", "q8_0"),
]
# KV_ONLY=1 regenerates only the KV fixtures.
if os.environ.get("KV_ONLY"):
    VARIANTS = sorted({v for v, _, _ in KV_FIXTURES})
N_PROMPT = 64
N_GEN = 32


def prompt_tokens(n_vocab):
    """A fixed prompt: BOS, then ids spread over the whole vocabulary."""
    return [1] + [(i * 97 + 13) % n_vocab for i in range(N_PROMPT - 1)]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="hearth-logits-"))
    dumper = work / "dump_logits"
    run([
        "g++", "-O2", "-std=c++17",
        f"-I{LLAMA_CPP / 'include'}", f"-I{LLAMA_CPP / 'ggml' / 'include'}",
        str(Path(__file__).with_name("dump_logits.cpp")),
        f"-L{BIN}", "-lllama", "-lggml", "-lggml-base", f"-Wl,-rpath,{BIN}",
        "-o", str(dumper),
    ])
    run(["cargo", "build", "--release", "-p", "model", "--example", "synth"], cwd=ROOT)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    synth = target / "release" / "examples" / "synth"

    kv_only = bool(os.environ.get("KV_ONLY"))
    for variant in VARIANTS:
        f32 = work / f"{variant}-F32.gguf"
        run([str(synth), variant, str(f32)])
        kv_runs = [(q, t) for v, q, t in KV_FIXTURES if v == variant]
        runs = [] if kv_only else [(q, None) for q in QUANTS + EXTRA_QUANTS.get(variant, [])]
        for quant, kv_type in runs + kv_runs:
            q = work / f"{variant}-{quant}.gguf"
            run([str(BIN / "llama-quantize"), str(f32), str(q), quant, "2"])
            reader = gguf.GGUFReader(str(q))
            field = reader.fields["general.architecture"]
            arch = bytes(field.parts[field.data[0]]).decode()
            n_vocab = int(reader.fields[f"{arch}.vocab_size"].parts[-1][0])
            tensors = {
                t.name: {
                    "type": t.tensor_type.name,
                    "sha256": hashlib.sha256(t.data.tobytes()).hexdigest(),
                }
                for t in reader.tensors
            }
            tokens = prompt_tokens(n_vocab)
            stem = f"{variant}-{quant}" + (f"-kv_{kv_type}" if kv_type else "")
            logits = OUT / f"{stem}.logits"
            cmd = [str(dumper), str(q), ",".join(map(str, tokens)), str(N_GEN), str(logits)]
            out = run(cmd + ([kv_type] if kv_type else []))
            greedy = [int(x) for x in out.stdout.strip().split(",")]
            meta = {
                "variant": variant,
                "quant": quant,
                "n_vocab": n_vocab,
                "tokens": tokens,
                "greedy": greedy,
                "tensors": tensors,
            }
            if kv_type:
                meta["kv_type"] = kv_type
            (OUT / f"{stem}.json").write_text(json.dumps(meta, indent=1) + "\n")
            print(f"{stem}: {len(tensors)} tensors, greedy {greedy[:8]}...")


if __name__ == "__main__":
    main()
