#!/usr/bin/env python3
"""Generate hearth's LoRA fixtures against llama.cpp.

The base is the synthetic tiny Llama (written by our own GGUF writer through
`cargo run -p model --example synth`, as F32 and F16). Two random LoRA
adapters are written with llama.cpp's gguf-py, laid out as
convert_lora_to_gguf.py lays them out (general.type = adapter, adapter.type =
lora, adapter.lora.alpha, `<tensor>.lora_a` / `.lora_b`, the token
embeddings' pair transposed):

  lora-a.gguf  F16, rank 8, alpha 16: every matrix of both layers, the
               output head and the token embeddings;
  lora-b.gguf  F32, rank 4, alpha 0 (the scale is the user's): a few
               matrices of layer 1.

For each case (a base, adapters and their scales, as `--lora FILE` is scale 1
and `--lora-scaled FILE SCALE` another), dump_lora_logits.cpp (compiled here
against libllama) writes the logits of every position of a fixed prompt,
decoded as one batch on the non-flash path. Outputs, in
crates/model/tests/fixtures/lora/: the adapters, {case}.logits
(n_prompt * n_vocab little-endian f32) and lora.json (the cases, the prompt,
and the sha256 of every base tensor, so that the test can check it rebuilt the
same base).

Needs: a llama.cpp build (LLAMA_CPP, default ~/.cache/hearth-reference/llama.cpp,
with build/bin/libllama.so), g++, numpy, and llama.cpp's gguf-py (from the
same checkout). Never run in CI; the outputs are committed.

    python3 tools/lora-fixtures/gen.py
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
LLAMA_CPP = Path(
    os.environ.get("LLAMA_CPP", Path.home() / ".cache" / "hearth-reference" / "llama.cpp")
)
BIN = LLAMA_CPP / "build" / "bin"
OUT = ROOT / "crates" / "model" / "tests" / "fixtures" / "lora"

sys.path.insert(0, str(LLAMA_CPP / "gguf-py"))
import gguf  # noqa: E402  (llama.cpp's gguf-py)

N_PROMPT = 32
N_EMBD, N_FF, N_VOCAB, N_LAYER = 256, 512, 320, 2
N_KV = 128  # 2 KV heads of 64

ALL = [
    f"blk.{il}.{m}.weight"
    for il in range(N_LAYER)
    for m in ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]
] + ["output.weight", "token_embd.weight"]

ADAPTERS = {
    "lora-a": {"targets": ALL, "rank": 8, "alpha": 16.0, "dtype": np.float16, "seed": 1},
    "lora-b": {
        "targets": ["blk.1.attn_q.weight", "blk.1.attn_v.weight", "blk.1.ffn_up.weight"],
        "rank": 4,
        "alpha": 0.0,
        "dtype": np.float32,
        "seed": 2,
    },
}

# (case, base type, [(adapter, scale)])
CASES = [
    ("f32-a", "F32", [("lora-a", 1.0)]),
    ("f32-a-half-b", "F32", [("lora-a", 0.5), ("lora-b", 0.25)]),
    ("f16-b", "F16", [("lora-b", 1.0)]),
]


def shape(name):
    """(n_in, n_out) of a base matrix, ggml order."""
    kind = name.split(".")[-2]
    if kind in ("ffn_gate", "ffn_up"):
        return N_EMBD, N_FF
    if kind == "ffn_down":
        return N_FF, N_EMBD
    if kind in ("output", "token_embd"):
        return N_EMBD, N_VOCAB
    if kind in ("attn_k", "attn_v"):
        return N_EMBD, N_KV
    return N_EMBD, N_EMBD


def write_adapter(path, spec):
    rng = np.random.default_rng(spec["seed"])
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, spec["alpha"])
    r = spec["rank"]
    for name in spec["targets"]:
        n_in, n_out = shape(name)
        # numpy shapes are ggml's reversed: lora_a is (rank, n_in), lora_b
        # (n_out, rank); the token embeddings' pair is transposed, as
        # convert_lora_to_gguf.py stores it: lora_a (n_vocab, rank), lora_b
        # (n_embd, rank).
        if name == "token_embd.weight":
            a = rng.uniform(-1, 1, (n_out, r)) * np.sqrt(3 / r)
            b = rng.uniform(-1, 1, (n_in, r)) * np.sqrt(3 / r)
        else:
            a = rng.uniform(-1, 1, (r, n_in)) * np.sqrt(3 / n_in)
            b = rng.uniform(-1, 1, (n_out, r)) * np.sqrt(3 / r)
        w.add_tensor(f"{name}.lora_a", a.astype(spec["dtype"]))
        w.add_tensor(f"{name}.lora_b", b.astype(spec["dtype"]))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="hearth-lora-"))
    dumper = work / "dump_lora_logits"
    run([
        "g++", "-O2", "-std=c++17",
        f"-I{LLAMA_CPP / 'include'}", f"-I{LLAMA_CPP / 'ggml' / 'include'}",
        str(Path(__file__).with_name("dump_lora_logits.cpp")),
        f"-L{BIN}", "-lllama", "-lggml", "-lggml-base", f"-Wl,-rpath,{BIN}",
        "-o", str(dumper),
    ])
    run(["cargo", "build", "--release", "-p", "model", "--example", "synth"], cwd=ROOT)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    synth = target / "release" / "examples" / "synth"

    for name, spec in ADAPTERS.items():
        write_adapter(OUT / f"{name}.gguf", spec)

    bases = {}
    for ty in sorted({c[1] for c in CASES}):
        path = work / f"tiny-llama-{ty}.gguf"
        run([str(synth), "tiny-llama", str(path), ty])
        reader = gguf.GGUFReader(str(path))
        bases[ty] = {
            "path": path,
            "tensors": {
                t.name: {
                    "type": t.tensor_type.name,
                    "sha256": hashlib.sha256(t.data.tobytes()).hexdigest(),
                }
                for t in reader.tensors
            },
        }

    tokens = [1] + [(i * 97 + 13) % N_VOCAB for i in range(N_PROMPT - 1)]
    cases = []
    for case, ty, adapters in CASES:
        args = []
        for adapter, scale in adapters:
            args += [str(OUT / f"{adapter}.gguf"), repr(scale)]
        logits = OUT / f"{case}.logits"
        run([str(dumper), str(bases[ty]["path"]), ",".join(map(str, tokens)), str(logits)] + args)
        cases.append({
            "case": case,
            "base": ty,
            "adapters": [{"file": f"{a}.gguf", "scale": s} for a, s in adapters],
        })
        print(f"{case}: {ty} base, adapters {adapters}")
    # The base alone, to show that each case's adapters moved the logits.
    run([str(dumper), str(bases["F32"]["path"]), ",".join(map(str, tokens)),
         str(OUT / "f32-base.logits")])
    meta = {
        "variant": "tiny-llama",
        "n_vocab": N_VOCAB,
        "tokens": tokens,
        "cases": cases,
        "bases": {ty: b["tensors"] for ty, b in bases.items()},
    }
    (OUT / "lora.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main()
