#!/usr/bin/env python3
"""Record what llama-quantize makes of a small llama-shaped F32 model, per preset.

Writes an F32 GGUF (general.architecture = llama, 2 layers, n_embd 256, GQA,
n_ff 512, random weights) with gguf-py, runs `llama-quantize in.gguf out.gguf
PRESET` for each preset in PRESETS, and records for a few tensors the first
ROWS rows of the f32 source and of llama-quantize's output bytes, together with
the type llama-quantize chose for the tensor (a preset mixes types: Q4_K_M
stores some tensors as Q6_K). Rows are quantized independently, so hearth's
quantizer on the recorded source rows must reproduce the recorded bytes.

It also records what llama-quantize decides for whole models (see
`record_plans`): for each preset, the type of every tensor of several model
shapes, and for hearth's synthetic models (written by `cargo run -p model
--example synth`, so the Rust tests can regenerate them) the sha256 of the
whole output file, with and without an importance matrix.

Usage: gen_llama_quantize_fixtures.py [--llama-cpp DIR] [--out DIR] [--plans-out DIR]
Needs numpy, DIR/gguf-py, DIR/build/bin/llama-quantize and cargo. See README.md.
"""

import argparse
import hashlib
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
    ap.add_argument("--plans-out", default=os.path.join(here, "..", "..", "crates", "store",
                                                         "tests", "fixtures", "quantize"))
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
    record_plans(gguf, quantize_bin, args.plans_out)


# Every llama-quantize preset (tools/quantize/quantize.cpp QUANT_OPTIONS) but
# Q1_0, Q2_0 and MXFP4_MOE, whose types hearth does not know.
ALL_PRESETS = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M",
               "IQ1_S", "IQ1_M", "TQ1_0", "TQ2_0", "Q2_K", "Q2_K_S", "IQ3_XXS", "IQ3_S",
               "IQ3_M", "IQ3_XS", "Q3_K_S", "Q3_K_M", "Q3_K_L", "IQ4_NL", "IQ4_XS",
               "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0", "F16", "BF16",
               "F32", "COPY"]
# Synthetic models whose whole quantized files are recorded.
SYNTH = ["tiny-llama", "tiny-moe", "tiny-qwen2", "tiny-phi3", "tiny-gemma2"]
# The synthetic model recorded with an importance matrix too (imatrix-tiny-llama.gguf).
SYNTH_IMATRIX = "tiny-llama"


def plan_shapes():
    """Models written with gguf-py whose shapes exercise other rules: (name,
    arch, n_layer, n_head, n_head_kv, n_expert, tensors: name -> ne list)."""
    def llama(n_layer, n_embd, n_head, n_head_kv, n_ff, n_vocab, n_expert=0, tied=False):
        hd = n_embd // n_head
        t = {"token_embd.weight": [n_embd, n_vocab], "output_norm.weight": [n_embd]}
        if not tied:
            t["output.weight"] = [n_embd, n_vocab]
        for i in range(n_layer):
            p = f"blk.{i}."
            t[p + "attn_norm.weight"] = [n_embd]
            t[p + "attn_q.weight"] = [n_embd, n_head * hd]
            t[p + "attn_k.weight"] = [n_embd, n_head_kv * hd]
            t[p + "attn_v.weight"] = [n_embd, n_head_kv * hd]
            t[p + "attn_output.weight"] = [n_head * hd, n_embd]
            t[p + "ffn_norm.weight"] = [n_embd]
            if n_expert:
                t[p + "ffn_gate_inp.weight"] = [n_embd, n_expert]
                t[p + "ffn_gate_exps.weight"] = [n_embd, n_ff, n_expert]
                t[p + "ffn_up_exps.weight"] = [n_embd, n_ff, n_expert]
                t[p + "ffn_down_exps.weight"] = [n_ff, n_embd, n_expert]
            else:
                t[p + "ffn_gate.weight"] = [n_embd, n_ff]
                t[p + "ffn_up.weight"] = [n_embd, n_ff]
                t[p + "ffn_down.weight"] = [n_ff, n_embd]
        return t

    return [
        # 16 layers, GQA 4: use_more_bits, the n_layer/8 and n_layer/16 cut-offs, n_gqa >= 4.
        ("llama-16l-gqa4", "llama", 16, 8, 2, 0, llama(16, 256, 8, 2, 256, 256)),
        # Rows of 288 (not whole 256-blocks) and 200 (not whole 32-blocks): fallbacks.
        ("llama-odd-rows", "llama", 2, 4, 4, 0, llama(2, 288, 4, 4, 200, 256)),
        # 8 experts: the Mixtral rules (attn_v/attn_k to Q8_0, ...), layers from names.
        ("llama-8-experts", "llama", 4, 4, 4, 8, llama(4, 256, 4, 4, 256, 256, n_expert=8)),
        # Tied output head: token_embd takes the output's type.
        ("llama-tied", "llama", 2, 4, 1, 0, llama(2, 256, 4, 1, 256, 256, tied=True)),
    ]


def write_plan_model(gguf, path, arch, n_layer, n_head, n_head_kv, n_expert, shapes):
    rng = np.random.default_rng(SEED)
    wr = gguf.GGUFWriter(path, arch)
    wr.add_context_length(256)
    wr.add_embedding_length(shapes["token_embd.weight"][0])
    wr.add_block_count(n_layer)
    wr.add_feed_forward_length(shapes["blk.0.attn_q.weight"][0])
    wr.add_head_count(n_head)
    wr.add_head_count_kv(n_head_kv)
    wr.add_layer_norm_rms_eps(1e-5)
    if n_expert:
        wr.add_expert_count(n_expert)
        wr.add_expert_used_count(2)
    wr.add_file_type(0)
    for name, ne in shapes.items():
        arr = (rng.standard_normal(list(reversed(ne))) * 0.02).astype(np.float32)
        wr.add_tensor(name, arr)
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()


def write_imatrix(gguf, path, shapes):
    """An importance matrix for every matrix of `shapes` (name -> ne), in
    llama-imatrix's GGUF layout, with deterministic positive values."""
    wr = gguf.GGUFWriter(path, "imatrix")
    wr.add_array("imatrix.datasets", ["hearth-fixture"])
    wr.add_uint32("imatrix.chunk_count", 4)
    wr.add_uint32("imatrix.chunk_size", 512)
    for k, (name, ne) in enumerate(sorted(shapes.items())):
        # Like llama-imatrix's: the matrices of matrix products (no embedding table).
        if (len(ne) < 2 or name.endswith("_norm.weight") or "gate_inp" in name
                or name == "token_embd.weight"):
            continue
        n_mat = ne[2] if len(ne) > 2 else 1
        i = np.arange(ne[0] * n_mat, dtype=np.float64)
        sums = ((np.sin(i * 0.37 + k) + 1.2) * 100.0).astype(np.float32).reshape(n_mat, ne[0])
        counts = np.full((n_mat, 1), 64.0, np.float32)
        wr.add_tensor(name + ".in_sum2", sums)
        wr.add_tensor(name + ".counts", counts)
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()


def quantize(quantize_bin, src, dst, preset, imatrix=None):
    """Runs llama-quantize; returns None on success, else its error line."""
    # The imatrix is named relative to its directory: llama-quantize records
    # the name it was given in the output (quantize.imatrix.file).
    cwd = os.path.dirname(imatrix) if imatrix else None
    opt = ["--imatrix", os.path.basename(imatrix)] if imatrix else []
    cmd = [quantize_bin] + opt + [src, dst, preset, "1"]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if run.returncode == 0:
        return None
    out = run.stdout + run.stderr
    if "requires an imatrix" in out or "requires an importance matrix" in out:
        return "requires an imatrix"
    sys.exit(f"llama-quantize {' '.join(cmd)} failed:\n{out}")


IMATRIX_CTX, IMATRIX_CHUNKS = 32, 3


def record_imatrix(bin_dir, synth, out_dir):
    """imatrix-corpus.txt and llama-imatrix's importance matrix of tiny-llama
    over it (chunks of IMATRIX_CTX tokens), in its GGUF and legacy formats
    (imatrix-ref-tiny-llama.gguf / .dat)."""
    words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "while",
             "cat", "sleeps", "under", "a", "warm", "sun", "and", "birds", "sing"]
    rng = np.random.default_rng(SEED)
    text = " ".join(words[i] for i in rng.integers(0, len(words), 600)) + "\n"
    with open(os.path.join(out_dir, "imatrix-corpus.txt"), "w") as f:
        f.write(text)
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "tiny-llama.gguf")
        subprocess.run([synth, "tiny-llama", model], check=True)
        # Relative names: llama-imatrix records the text's name in the file.
        for fmt in ("gguf", "dat"):
            subprocess.run([os.path.join(bin_dir, "llama-imatrix"), "-m", model,
                            "-f", "imatrix-corpus.txt", "-o", f"imatrix-ref-tiny-llama.{fmt}",
                            "--output-format", fmt, "-c", str(IMATRIX_CTX),
                            "--chunks", str(IMATRIX_CHUNKS), "-t", "1"],
                           cwd=out_dir, check=True, capture_output=True)


def compact(types):
    """name -> type as one string: the types in name order, space-separated
    (`shapes` / `tensors` give the names), to keep the fixtures small."""
    return " ".join(types[n] for n in sorted(types))


def tensor_types(gguf, path):
    reader = gguf.GGUFReader(path)
    return {t.name: gguf.GGMLQuantizationType(int(t.tensor_type)).name for t in reader.tensors}


def record_plans(gguf, quantize_bin, out_dir):
    """plans.json: per model shape and preset (and imatrix or not), the type
    llama-quantize gave every tensor; files.json: per synthetic model, preset and
    imatrix, the sha256 of llama-quantize's whole output file and every
    tensor's type."""
    os.makedirs(out_dir, exist_ok=True)
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    synth = os.environ.get("SYNTH_BIN")  # a prebuilt `synth` example, if given
    if not synth:
        subprocess.run(["cargo", "build", "--release", "-p", "model", "--example", "synth"],
                       cwd=root, check=True)
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
        synth = os.path.join(target, "release", "examples", "synth")
    plans, files, names = [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.gguf")
        for name, arch, n_layer, n_head, n_head_kv, n_expert, shapes in plan_shapes():
            src = os.path.join(tmp, name + ".gguf")
            write_plan_model(gguf, src, arch, n_layer, n_head, n_head_kv, n_expert, shapes)
            imatrix = os.path.join(tmp, name + ".imatrix.gguf")
            write_imatrix(gguf, imatrix, shapes)
            entry = {"model": name, "arch": arch, "n_layer": n_layer, "n_head": n_head,
                     "n_head_kv": n_head_kv, "n_expert": n_expert, "shapes": shapes,
                     "presets": []}
            for preset in ALL_PRESETS:
                for im in (None, imatrix):
                    err = quantize(quantize_bin, src, out, preset, im)
                    entry["presets"].append({
                        "preset": preset, "imatrix": im is not None, "error": err,
                        "types": None if err else compact(tensor_types(gguf, out))})
            plans.append(entry)
            print(f"plans: {name}", file=sys.stderr)
        for variant in SYNTH:
            src = os.path.join(tmp, variant + ".gguf")
            subprocess.run([synth, variant, src], check=True)
            imatrix = None
            if variant == SYNTH_IMATRIX:
                reader = gguf.GGUFReader(src)
                shapes = {t.name: [int(d) for d in t.shape] for t in reader.tensors}
                imatrix = os.path.join(out_dir, f"imatrix-{variant}.gguf")
                write_imatrix(gguf, imatrix, shapes)
            for preset in ALL_PRESETS:
                for im in ([None, imatrix] if imatrix else [None]):
                    err = quantize(quantize_bin, src, out, preset, im)
                    rec = {"model": variant, "preset": preset, "imatrix": im is not None,
                           "error": err}
                    if not err:
                        with open(out, "rb") as f:
                            rec["sha256"] = hashlib.sha256(f.read()).hexdigest()
                        types = tensor_types(gguf, out)
                        names[variant] = sorted(types)
                        rec["types"] = compact(types)
                    files.append(rec)
            print(f"files: {variant}", file=sys.stderr)
    record_imatrix(os.path.dirname(quantize_bin), synth, out_dir)
    for fname, data, extra in (("plans.json", plans, {}), ("files.json", files,
                                                            {"tensors": names})):
        with open(os.path.join(out_dir, fname), "w") as f:
            json.dump({"generator": "tools/reference/gen_llama_quantize_fixtures.py",
                       **extra, "entries": data}, f, separators=(",", ":"))
            f.write("\n")


if __name__ == "__main__":
    main()
