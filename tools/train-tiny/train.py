#!/usr/bin/env python3
"""Train hearth-tiny: a byte-level BPE tokenizer, then a small Llama, on data.py's dialogues.

    python3 tools/train-tiny/train.py --out /tmp/tiny            # tokenizer + model
    python3 tools/train-tiny/export.py --out /tmp/tiny           # GGUF
    python3 tools/train-tiny/eval.py --ckpt /tmp/tiny/ckpt.pt --gguf ...

Training data is an endless stream of freshly generated dialogues (train split
only), packed into rows of `--ctx` tokens; a block-diagonal causal mask keeps
dialogues apart, so each is seen exactly as at inference. The loss is on assistant
tokens only (content and the closing <|im_end|>).

Held-out accuracy is printed at every checkpoint, measured by teacher forcing: a
sample counts as right when every answer token is the argmax given the correct
prefix, which is exactly when greedy decoding reproduces the answer.

A checkpoint (`ckpt.pt`) is written every `--ckpt-every` steps and at the end;
`--resume` continues from it.
"""

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

sys.path.insert(0, str(Path(__file__).resolve().parent))
import data  # noqa: E402
from model import Config, TinyLlama  # noqa: E402

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# llama.cpp's LLAMA_VOCAB_PRE_TYPE_QWEN2 regex (src/llama-vocab.cpp), which it
# selects from `tokenizer.ggml.pre = "qwen2"`: digits are split one by one.
QWEN2_REGEX = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|"
    r"\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def train_tokenizer(path, n_vocab, seed):
    """Byte-level BPE over generated dialogues, pre-tokenized by QWEN2_REGEX."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=n_vocab, special_tokens=SPECIALS, min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    rng = random.Random(seed)
    texts = [data.render(data.dialogue(rng)) for _ in range(40000)]
    texts += [data.render([("system", s)]) for s in data.SYSTEM_PROMPTS]
    tok.train_from_iterator(texts, trainer)
    tok.save(str(path))
    return tok


class Encoder:
    """ChatML dialogues to (ids, loss mask), segment by segment.

    Special tokens split the text before pre-tokenization and every other segment
    ends at a newline the regex isolates, so encoding segments separately gives the
    same ids as encoding the rendered text (checked in `check`)."""

    def __init__(self, tok):
        self.tok = tok
        self.im_start = tok.token_to_id("<|im_start|>")
        self.im_end = tok.token_to_id("<|im_end|>")
        self.nl = tok.encode("\n").ids
        self.cache = {}

    def enc(self, text):
        ids = self.cache.get(text)
        if ids is None:
            ids = self.tok.encode(text).ids
            if len(self.cache) < 200000:
                self.cache[text] = ids
        return ids

    def dialogue(self, messages):
        ids, mask = [], []
        for role, content in messages:
            head = [self.im_start] + self.enc(f"{role}\n")
            body = self.enc(content) + [self.im_end]
            ids += head + body + self.nl
            learn = role == "assistant"
            mask += [False] * len(head) + [learn] * len(body) + [False] * len(self.nl)
        return ids, mask

    def prompt(self, messages):
        """Ids of the conversation so far plus the assistant header."""
        ids = []
        for role, content in messages:
            ids += [self.im_start] + self.enc(f"{role}\n") + self.enc(content)
            ids += [self.im_end] + self.nl
        return ids + [self.im_start] + self.enc("assistant\n")

    def check(self, rng, n=500):
        for _ in range(n):
            m = data.dialogue(rng)
            assert self.dialogue(m)[0] == self.tok.encode(data.render(m)).ids, m


def batches(enc, rng, batch, ctx, pad_id, weights):
    """Endless packed batches: ids (B, T), targets (B, T) with -100 off the loss,
    and a (B, 1, T, T) mask allowing attention within each dialogue, causally."""
    carry = None
    while True:
        ids = torch.full((batch, ctx), pad_id, dtype=torch.long)
        tgt = torch.full((batch, ctx), -100, dtype=torch.long)
        doc = torch.full((batch, ctx), -1, dtype=torch.long)
        for b in range(batch):
            pos, d = 0, 0
            while True:
                if carry is None:
                    carry = enc.dialogue(data.dialogue(rng, weights))
                seq, m = carry
                if len(seq) > ctx:
                    carry = None
                    continue
                if pos + len(seq) > ctx:
                    break
                n = len(seq)
                ids[b, pos:pos + n] = torch.tensor(seq)
                # Token i predicts token i + 1; learn it where i + 1 is an answer token.
                t = torch.tensor(seq[1:] + [pad_id])
                keep = torch.tensor(m[1:] + [False])
                tgt[b, pos:pos + n] = torch.where(keep, t, torch.tensor(-100))
                doc[b, pos:pos + n] = d
                pos, d, carry = pos + n, d + 1, None
        causal = torch.ones(ctx, ctx, dtype=torch.bool).tril()
        same = doc[:, :, None] == doc[:, None, :]
        mask = (same & causal[None]) | torch.eye(ctx, dtype=torch.bool)[None]
        yield ids, tgt, mask[:, None]


@torch.no_grad()
def heldout_accuracy(model, enc, tests):
    """Per-task exact-match accuracy under teacher forcing (= greedy exact match)."""
    model.eval()
    right = {}
    for s in tests:
        prompt = enc.prompt(s.messages[:-1])
        answer = enc.enc(s.messages[-1][1]) + [enc.im_end]
        x = torch.tensor([prompt + answer[:-1]])
        pred = model(x)[0, len(prompt) - 1:].argmax(-1).tolist()
        ok, n = right.get(s.task, (0, 0))
        right[s.task] = (ok + (pred == answer), n + 1)
    model.train()
    return {t: ok / n for t, (ok, n) in right.items()}


def progress(step, elapsed_min, args):
    """Fraction of training done: by steps, or by wall time with --minutes (so that a
    run on a shared, busy machine still ends on time with a fully decayed rate)."""
    if args.minutes:
        return elapsed_min / args.minutes
    return step / args.steps


def lr_at(step, p, args):
    """Linear warm-up over `warmup` steps, then cosine decay to 10% of the peak."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    p = min(1.0, p)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="output directory")
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--embd", type=int, default=192)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--heads-kv", type=int, default=2)
    ap.add_argument("--ff", type=int, default=512)
    ap.add_argument("--ctx", type=int, default=128, help="training row length")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--minutes", type=float, default=0.0,
                    help="train for this much wall time instead of --steps")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--mix", default="",
                    help="task weight overrides, e.g. add=40,sub=30 (defaults: data.GENERATORS)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    tok_path = args.out / "tokenizer.json"
    tok = Tokenizer.from_file(str(tok_path)) if tok_path.exists() else \
        train_tokenizer(tok_path, args.vocab, args.seed)
    enc = Encoder(tok)
    enc.check(random.Random(args.seed + 1))
    pad_id = tok.token_to_id("<|endoftext|>")

    cfg = Config(n_vocab=tok.get_vocab_size(), n_embd=args.embd, n_layer=args.layers,
                 n_head=args.heads, n_head_kv=args.heads_kv, n_ff=args.ff)
    model = TinyLlama(cfg)
    decay = [p for p in model.parameters() if p.dim() == 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": other, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    step, elapsed0 = 0, 0.0
    ckpt_path = args.out / "ckpt.pt"
    if args.resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, elapsed0 = ck["step"], ck["minutes"]
    n_params = sum(p.numel() for p in model.parameters())
    print(f"config {cfg.to_dict()} params {n_params} vocab {cfg.n_vocab}", flush=True)

    tests = data.test_set(12, seed=99)
    rng = random.Random(args.seed * 1000 + step)
    mix = {t: float(w) for t, w in (kv.split("=") for kv in args.mix.split(",") if kv)}
    stream = batches(enc, rng, args.batch, args.ctx, pad_id, data.mix_weights(mix))
    t0, seen = time.time(), 0
    model.train()
    while True:
        minutes = elapsed0 + (time.time() - t0) / 60
        p = progress(step, minutes, args)
        if p >= 1.0:
            break
        ids, tgt, mask = next(stream)
        lr = lr_at(step, p, args)
        for g in opt.param_groups:
            g["lr"] = lr
        loss = F.cross_entropy(model(ids, mask=mask).view(-1, cfg.n_vocab), tgt.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        seen += ids.numel()
        if step % 25 == 0:
            dt = time.time() - t0
            print(f"step {step} loss {loss.item():.4f} lr {lr:.2e} "
                  f"{seen / dt:.0f} tok/s {minutes:.1f} min", flush=True)
        if step % args.ckpt_every == 0:
            checkpoint(model, opt, enc, tests, step, minutes, loss.item(), cfg, args)
    checkpoint(model, opt, enc, tests, step, minutes, loss.item(), cfg, args)


def checkpoint(model, opt, enc, tests, step, minutes, loss, cfg, args):
    """Print held-out accuracy, save ckpt.pt and append to train_log.jsonl."""
    acc = heldout_accuracy(model, enc, tests)
    mean = sum(acc.values()) / len(acc)
    print(f"step {step} held-out (teacher-forced) mean {mean:.3f} " +
          " ".join(f"{t}={a:.2f}" for t, a in acc.items()), flush=True)
    tmp = args.out / "ckpt.pt.tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                "minutes": minutes, "config": cfg.to_dict(),
                "args": vars(args) | {"out": str(args.out)}}, tmp)
    os.replace(tmp, args.out / "ckpt.pt")
    with open(args.out / "train_log.jsonl", "a") as f:
        f.write(json.dumps({"step": step, "minutes": minutes, "loss": loss, "acc": acc}) + "\n")


if __name__ == "__main__":
    main()
