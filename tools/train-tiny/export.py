#!/usr/bin/env python3
"""Write a hearth-tiny checkpoint as a llama-architecture GGUF (with the `gguf` package).

    python3 tools/train-tiny/export.py --out /tmp/tiny --gguf models/hearth-tiny/hearth-tiny.gguf

Keys and tensor names are those llama.cpp's convert_hf_to_gguf.py writes for a
Llama with a GPT-2-style byte-level BPE tokenizer (Qwen2's vocabulary handling):
`tokenizer.ggml.model = gpt2`, `tokenizer.ggml.pre = qwen2` (the pre-tokenizer regex
train.py trains with), merges as "a b" strings, special tokens typed CONTROL, eos =
eot = <|im_end|>, no BOS added. Matrices are stored F16, norms F32 (as the converter
does for `--outtype f16`). The tensors need no permutation: model.py already uses
ggml's RoPE pairing.
"""

import argparse
import json
import sys
from pathlib import Path

import gguf
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model import Config  # noqa: E402

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def tokenizer_tables(tok_json):
    """Tokens by id, their types, and merges from a tokenizers tokenizer.json."""
    vocab = tok_json["model"]["vocab"]
    specials = {a["content"]: a["id"] for a in tok_json["added_tokens"]}
    n = max(list(vocab.values()) + list(specials.values())) + 1
    tokens = [None] * n
    for t, i in vocab.items():
        tokens[i] = t
    for t, i in specials.items():
        tokens[i] = t
    assert all(t is not None for t in tokens), "token ids must be dense"
    types = [gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL for t in tokens]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok_json["model"]["merges"]]
    return tokens, types, merges, specials


def export(ckpt_path, tok_path, out_path, f16=True):
    ck = torch.load(ckpt_path, weights_only=False, map_location="cpu")
    cfg = Config(**ck["config"])
    sd = {k: v.float().numpy() for k, v in ck["model"].items()}
    tok_json = json.loads(Path(tok_path).read_text())
    tokens, types, merges, specials = tokenizer_tables(tok_json)
    assert len(tokens) == cfg.n_vocab

    w = gguf.GGUFWriter(str(out_path), "llama")
    w.add_name("hearth-tiny")
    w.add_description("A small chat model trained by hearth's tools/train-tiny on generated "
                      "dialogues (arithmetic below 100, counting, spelling, calendar, units, "
                      "small fact tables).")
    w.add_license("MIT OR Apache-2.0")
    w.add_context_length(cfg.n_ctx)
    w.add_embedding_length(cfg.n_embd)
    w.add_block_count(cfg.n_layer)
    w.add_feed_forward_length(cfg.n_ff)
    w.add_head_count(cfg.n_head)
    w.add_head_count_kv(cfg.n_head_kv)
    w.add_rope_freq_base(cfg.rope_base)
    w.add_layer_norm_rms_eps(cfg.norm_eps)
    w.add_rope_dimension_count(cfg.head_dim)
    w.add_vocab_size(cfg.n_vocab)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if f16 else gguf.LlamaFileType.ALL_F32)

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(specials["<|endoftext|>"])
    w.add_eos_token_id(specials["<|im_end|>"])
    w.add_eot_token_id(specials["<|im_end|>"])
    w.add_pad_token_id(specials["<|endoftext|>"])
    w.add_add_bos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)

    def put(name, arr):
        arr = np.ascontiguousarray(arr)
        w.add_tensor(name, arr.astype(np.float16 if f16 and arr.ndim == 2 else np.float32))

    put("token_embd.weight", sd["token_embd.weight"])
    for i in range(cfg.n_layer):
        p = f"blocks.{i}."
        for name in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                     "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"):
            put(f"blk.{i}.{name}.weight", sd[p + name + ".weight"])
    put("output_norm.weight", sd["output_norm.weight"])

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="train.py's output directory")
    ap.add_argument("--gguf", type=Path, required=True, help="GGUF file to write")
    ap.add_argument("--f32", action="store_true", help="store matrices as F32, not F16")
    args = ap.parse_args()
    export(args.out / "ckpt.pt", args.out / "tokenizer.json", args.gguf, f16=not args.f32)
    print(f"wrote {args.gguf} ({args.gguf.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
