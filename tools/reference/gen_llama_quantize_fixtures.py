#!/usr/bin/env python3
"""Record what llama-quantize makes of a small llama-shaped F32 model, per preset.

Writes an F32 GGUF (general.architecture = llama, 2 layers, n_embd 256, GQA,
n_ff 512, random weights) with gguf-py, runs `llama-quantize in.gguf out.gguf
PRESET` for each preset in PRESETS, and records for a few tensors the first
ROWS rows of the f32 source and of llama-quantize's output bytes, together with
the type llama-quantize chose for the tensor (a preset mixes types: Q4_K_M
stores some tensors as Q6_K). Rows are quantized independently, so hearth's
quantizer on the recorded source rows must reproduce the recorded bytes.

Usage: gen_llama_quantize_fixtures.py [--llama-cpp DIR] [--out DIR]
Needs numpy, DIR/gguf-py and DIR/build/bin/llama-quantize. See README.md.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

SEED = 20240918
N_EMBD, N_HEAD, N_HEAD_KV, N_FF, N_LAYER, N_VOCAB = 256, 4, 2, 512, 2, 512
ROWS = 4
PRESETS = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_M", "Q4_K_M",
           "Q5_K_M", "Q6_K", "IQ4_NL", "IQ4_XS"]
RECORDED = ["token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_v.weight",
            "blk.1.ffn_down.weight", "output.weight"]


def model_tensors(rng):
    """name -> f32 array in numpy (row-major) order: shape (ne1, ne0)."""
    head_dim = N_EMBD // N_HEAD
    kv = N_HEAD_KV * head_dim

    def w(rows, cols):
        # Rows at varied scales, as trained weights have; a few outliers.
        x = rng.standard_normal((rows, cols)).astype(np.float32) * np.float32(0.02)
        x *= (10 ** rng.uniform(-1, 1, (rows, 1))).astype(np.float32)
        x[rng.random((rows, cols)) < 0.002] *= 30
        return x

    t = {"token_embd.weight": w(N_VOCAB, N_EMBD)}
    for i in range(N_LAYER):
        p = f"blk.{i}."
        t[p + "attn_norm.weight"] = np.ones(N_EMBD, np.float32)
        t[p + "attn_q.weight"] = w(N_EMBD, N_EMBD)
        t[p + "attn_k.weight"] = w(kv, N_EMBD)
        t[p + "attn_v.weight"] = w(kv, N_EMBD)
        t[p + "attn_output.weight"] = w(N_EMBD, N_EMBD)
        t[p + "ffn_norm.weight"] = np.ones(N_EMBD, np.float32)
        t[p + "ffn_gate.weight"] = w(N_FF, N_EMBD)
        t[p + "ffn_up.weight"] = w(N_FF, N_EMBD)
        t[p + "ffn_down.weight"] = w(N_EMBD, N_FF)
    t["output_norm.weight"] = np.ones(N_EMBD, np.float32)
    t["output.weight"] = w(N_VOCAB, N_EMBD)
    return t


def write_model(gguf, path, tensors):
    wr = gguf.GGUFWriter(path, "llama")
    wr.add_name("hearth-reference-tiny")
    wr.add_context_length(256)
    wr.add_embedding_length(N_EMBD)
    wr.add_block_count(N_LAYER)
    wr.add_feed_forward_length(N_FF)
    wr.add_head_count(N_HEAD)
    wr.add_head_count_kv(N_HEAD_KV)
    wr.add_rope_dimension_count(N_EMBD // N_HEAD)
    wr.add_layer_norm_rms_eps(1e-5)
    wr.add_vocab_size(N_VOCAB)
    wr.add_file_type(0)  # LLAMA_FTYPE_ALL_F32
    wr.add_tokenizer_model("llama")
    wr.add_token_list([f"<t{i}>".encode() for i in range(N_VOCAB)])
    wr.add_token_scores([0.0] * N_VOCAB)
    wr.add_token_types([1] * N_VOCAB)
    for name, arr in tensors.items():
        wr.add_tensor(name, arr)
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--llama-cpp", default="/tmp/ref/llama.cpp")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "crates", "kernels",
                                                   "tests", "fixtures", "llama_quantize"))
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(args.llama_cpp, "gguf-py"))
    import gguf

    quantize_bin = os.path.join(args.llama_cpp, "build", "bin", "llama-quantize")
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(SEED)
    tensors = model_tensors(rng)

    def save(fname, arr):
        with open(os.path.join(args.out, fname), "wb") as f:
            f.write(np.ascontiguousarray(arr).tobytes())
        return fname

    index = {
        "generator": "tools/reference/gen_llama_quantize_fixtures.py",
        "seed": SEED,
        "rows": ROWS,
        "tensors": [],
        "presets": [],
    }
    for name in RECORDED:
        src = tensors[name][:ROWS]
        index["tensors"].append({"name": name, "n_per_row": int(src.shape[1]),
                                 "source": save(f"{name}.f32", src)})

    with tempfile.TemporaryDirectory() as tmp:
        f32_path = os.path.join(tmp, "model-f32.gguf")
        write_model(gguf, f32_path, tensors)
        for preset in PRESETS:
            out_path = os.path.join(tmp, f"model-{preset}.gguf")
            run = subprocess.run([quantize_bin, f32_path, out_path, preset, "1"],
                                 capture_output=True, text=True)
            if run.returncode != 0:
                sys.exit(f"llama-quantize {preset} failed:\n{run.stdout}\n{run.stderr}")
            reader = gguf.GGUFReader(out_path)
            raw = np.memmap(out_path, np.uint8, mode="r")
            by_name = {t.name: t for t in reader.tensors}
            entry = {"preset": preset, "tensors": []}
            for name in RECORDED:
                t = by_name[name]
                ty = gguf.GGMLQuantizationType(int(t.tensor_type))
                bs, ts = gguf.GGML_QUANT_SIZES[ty]
                n_per_row = int(t.shape[0])
                n = ROWS * n_per_row // bs * ts
                data = raw[t.data_offset:t.data_offset + n]
                type_name = ty.name.lower().replace("_k", "_K")
                entry["tensors"].append({"name": name, "type": type_name,
                                         "bytes": save(f"{preset}.{name}.bin", data)})
            index["presets"].append(entry)
            kinds = ", ".join(f"{t['name']}={t['type']}" for t in entry["tensors"])
            print(f"{preset:7} {kinds}", file=sys.stderr)
    with open(os.path.join(args.out, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
