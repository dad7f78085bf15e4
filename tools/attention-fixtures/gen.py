#!/usr/bin/env python3
"""Generate hearth's attention fixtures against llama.cpp.

crates/model/tests/attention_fixtures.rs feeds llama.cpp's own first-layer
roped Q, K and V of a 64-token prompt into hearth's `ops::attention` and
compares the output with llama.cpp's `kqv_out` bit for bit (on AVX-512 CPUs,
where both sum in the same order). This script makes those inputs and outputs:

  1. writes tiny-llama (hearth's `synth` example, as tools/logits-fixtures
     does) and quantizes it to Q4_K_M with llama-quantize (the type only
     shapes the activations; attention itself runs on the f16 cache);
  2. runs dump_attention.cpp (compiled here against libllama): the prompt as
     one batch, and the prompt less its last token then that token alone;
  3. writes crates/model/tests/fixtures/attention/:
       batch-{q,k,v,out}.f32   64 queries over positions 0..64
       decode-{q,out}.f32      the single query at position 63
       decode-{k,v}.f32        its cache: rows 0..63 of the prefix batch, row
                               63 of the decode step
     as little-endian f32, one row per position ((n_head or n_head_kv) *
     head_dim values); the shape (4 heads over 2 key/value heads of 64,
     kq_scale 1/8) is tiny-llama's, written out in the test.

Needs a llama.cpp build (LLAMA_CPP, default ~/.cache/hearth-reference/llama.cpp,
BUILD default build-noamx, with bin/llama-quantize and libllama.so), g++ and
numpy. Never run in CI; the outputs are committed.

    python3 tools/attention-fixtures/gen.py
"""

import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
LLAMA_CPP = Path(os.environ.get("LLAMA_CPP", Path.home() / ".cache/hearth-reference/llama.cpp"))
BIN = LLAMA_CPP / os.environ.get("BUILD", "build-noamx") / "bin"
OUT = ROOT / "crates" / "model" / "tests" / "fixtures" / "attention"
N_PROMPT = 64
# tiny-llama's attention (crates/model/examples/synth.rs).
N_HEAD, N_HEAD_KV, HEAD_DIM, N_VOCAB = 4, 2, 64, 320


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="hearth-attention-"))
    dumper = work / "dump_attention"
    run([
        "g++", "-O2", "-std=c++17",
        f"-I{LLAMA_CPP / 'include'}", f"-I{LLAMA_CPP / 'ggml' / 'include'}",
        str(Path(__file__).with_name("dump_attention.cpp")),
        f"-L{BIN}", "-lllama", "-lggml", "-lggml-base", f"-Wl,-rpath,{BIN}",
        "-o", str(dumper),
    ])
    run(["cargo", "build", "--release", "-p", "model", "--example", "synth"], cwd=ROOT)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    f32 = work / "tiny-llama-F32.gguf"
    run([str(target / "release" / "examples" / "synth"), "tiny-llama", str(f32)])
    model = work / "tiny-llama-Q4_K_M.gguf"
    run([str(BIN / "llama-quantize"), str(f32), str(model), "Q4_K_M", "2"])

    # The prompt of tools/logits-fixtures/gen.py.
    tokens = [1] + [(i * 97 + 13) % N_VOCAB for i in range(N_PROMPT - 1)]
    dumps = work / "dumps"
    for d in ("batch", "prefix", "decode"):
        (dumps / d).mkdir(parents=True)
    run([str(dumper), str(model), ",".join(map(str, tokens)), str(dumps)])

    def load(step, name):
        return np.fromfile(dumps / step / f"{name}-0.f32", dtype="<f4")

    q_dim, kv_dim = N_HEAD * HEAD_DIM, N_HEAD_KV * HEAD_DIM
    files = {
        "batch-q": load("batch", "Qcur"),
        "batch-k": load("batch", "Kcur"),
        "batch-v": load("batch", "Vcur"),
        "batch-out": load("batch", "kqv_out"),
        "decode-q": load("decode", "Qcur"),
        "decode-k": np.concatenate([load("prefix", "Kcur"), load("decode", "Kcur")]),
        "decode-v": np.concatenate([load("prefix", "Vcur"), load("decode", "Vcur")]),
        "decode-out": load("decode", "kqv_out"),
    }
    sizes = {"q": q_dim, "out": q_dim, "k": kv_dim, "v": kv_dim}
    for name, data in files.items():
        rows = 1 if name in ("decode-q", "decode-out") else N_PROMPT
        assert data.size == rows * sizes[name.split("-")[1]], (name, data.size)
        data.astype("<f4").tofile(OUT / f"{name}.f32")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
