#!/usr/bin/env python3
"""Ask hearth-tiny a held-out test set through PyTorch, llama.cpp and hearth; report
exact-match accuracy per task at temperature 0.

    python3 tools/train-tiny/eval.py --ckpt /tmp/tiny/ckpt.pt \\
        --gguf models/hearth-tiny/hearth-tiny.gguf \\
        --llama-server /tmp/ref/llama.cpp/build/bin/llama-server \\
        --hearth target/release/hearth --json results.json

The questions come from data.test_set (seeded; none of them occurs in training, see
data.py). Each backend gets the same single-turn chat, no system prompt:

- torch: model.py on the checkpoint, tokenized by the HF tokenizer, greedy;
- llama.cpp: `llama-server --jinja` on the GGUF, POST /v1/chat/completions with
  temperature 0 (the GGUF's own chat template and tokenizer);
- hearth: `hearth run GGUF PROMPT --temperature 0 --repeat-penalty 1` (plus --hearth-arg
  flags), its stdout is the answer.

An answer counts when it equals the expected one after stripping whitespace. The
script also reports how often two backends gave the identical answer: identical
greedy answers on every question are the evidence that a runtime computes the model
right.
"""

import argparse
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import data  # noqa: E402


def ask_torch(ckpt, tokenizer, samples, threads):
    import torch
    from tokenizers import Tokenizer

    from model import Config, TinyLlama, greedy_batch
    from train import Encoder

    torch.set_num_threads(threads)
    ck = torch.load(ckpt, weights_only=False, map_location="cpu")
    model = TinyLlama(Config(**ck["config"]))
    model.load_state_dict(ck["model"])
    model.eval()
    tok = Tokenizer.from_file(str(tokenizer))
    enc = Encoder(tok)
    pad = tok.token_to_id("<|endoftext|>")
    prompts = [enc.prompt(s.messages[:-1]) for s in samples]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    answers = [None] * len(prompts)
    for c in range(0, len(order), 64):
        chunk = order[c:c + 64]
        outs = greedy_batch(model, [prompts[i] for i in chunk], enc.im_end, pad)
        for i, o in zip(chunk, outs):
            answers[i] = tok.decode(o)
    return answers


def ask_llama_server(binary, gguf, samples, port, threads):
    cmd = [binary, "-m", str(gguf), "--port", str(port), "--jinja", "-t", str(threads),
           "-c", "256", "-np", "1", "--log-disable"]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("llama-server did not become healthy")
        answers = []
        for s in samples:
            body = {
                "messages": [{"role": r, "content": c} for r, c in s.messages[:-1]],
                "temperature": 0.0, "max_tokens": 64, "cache_prompt": False,
            }
            req = urllib.request.Request(url + "/v1/chat/completions",
                                         data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as r:
                answers.append(json.load(r)["choices"][0]["message"]["content"])
        return answers
    finally:
        server.terminate()
        server.wait(timeout=30)


def ask_hearth(binary, gguf, samples, extra):
    answers = []
    for s in samples:
        (role, prompt), = s.messages[:-1]
        assert role == "user"
        # A GGUF path gets hearth's default sampling (temperature 0.8, repeat penalty
        # 1.1, as Ollama); the test set is asked greedily with no penalty, the
        # parameters the built-in hearth-tiny carries.
        r = subprocess.run([binary, "run", str(gguf), prompt, "--temperature", "0",
                            "--repeat-penalty", "1", *extra],
                           capture_output=True,
                           text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"hearth run failed ({r.returncode}): {r.stderr.strip()}")
        answers.append(r.stdout)
    return answers


def score(samples, answers):
    """{task: (right, total)} for exact match after strip."""
    out = {}
    for s, a in zip(samples, answers):
        ok, n = out.get(s.task, (0, 0))
        out[s.task] = (ok + (a.strip() == s.messages[-1][1]), n + 1)
    return out


def table(title, samples, answers, names):
    """Print accuracy per task and overall for each backend."""
    scores = {m: score(samples, answers[m]) for m in names}
    print(f"\n{title}\n{'task':<10} {'n':>4} " + " ".join(f"{n:>10}" for n in names))
    for task in data.TASKS:
        n = scores[names[0]].get(task, (0, 0))[1]
        if n:
            print(f"{task:<10} {n:>4} " +
                  " ".join(f"{scores[m][task][0] / n:>10.1%}" for m in names))
    total = len(samples)
    print(f"{'all':<10} {total:>4} " +
          " ".join(f"{sum(ok for ok, _ in scores[m].values()) / total:>10.1%}" for m in names))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--ckpt", type=Path, help="train.py checkpoint (torch backend)")
    ap.add_argument("--tokenizer", type=Path, help="tokenizer.json (default: next to --ckpt)")
    ap.add_argument("--gguf", type=Path, help="exported model (llama.cpp and hearth backends)")
    ap.add_argument("--llama-server", help="llama-server binary")
    ap.add_argument("--hearth", help="hearth binary")
    ap.add_argument("--hearth-arg", action="append", default=[],
                    help="extra argument for `hearth run` (repeatable)")
    ap.add_argument("--per-task", type=int, default=40, help="questions per task (at most)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--port", type=int, default=18181)
    ap.add_argument("--json", type=Path, help="write questions, answers and scores here")
    args = ap.parse_args()

    samples = data.test_set(args.per_task, seed=args.seed)
    answers = {}
    if args.ckpt:
        tok = args.tokenizer or args.ckpt.parent / "tokenizer.json"
        answers["torch"] = ask_torch(args.ckpt, tok, samples, args.threads)
    if args.llama_server:
        answers["llama.cpp"] = ask_llama_server(args.llama_server, args.gguf, samples,
                                                args.port, args.threads)
    if args.hearth:
        answers["hearth"] = ask_hearth(args.hearth, args.gguf, samples, args.hearth_arg)
    if not answers:
        ap.error("give at least one of --ckpt, --llama-server, --hearth")

    scores = {name: score(samples, a) for name, a in answers.items()}
    names = list(answers)
    table("all held-out questions", samples, answers, names)
    taught = data.taught_answers()
    kinds = [s.task not in data.FINITE_TASKS or s.messages[-1][1] in taught for s in samples]
    for label, want in (("paraphrases of taught facts, and all questions of tasks "
                         "with operands", True),
                        ("facts asked in a form never trained for that item "
                         "(answer never seen)", False)):
        idx = [i for i, k in enumerate(kinds) if k == want]
        table(label, [samples[i] for i in idx], {m: [answers[m][i] for i in idx] for m in names},
              names)
    total = len(samples)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            same = sum(x.strip() == y.strip() for x, y in zip(answers[a], answers[b]))
            print(f"identical answers {a} vs {b}: {same}/{total}")
    if args.json:
        args.json.write_text(json.dumps({
            "seed": args.seed, "per_task": args.per_task,
            "scores": {m: {t: list(v) for t, v in s.items()} for m, s in scores.items()},
            "questions": [{"task": s.task, "question": s.messages[0][1],
                           "expected": s.messages[-1][1], "answer_taught": kinds[i],
                           **{m: answers[m][i] for m in names}}
                          for i, s in enumerate(samples)],
        }, indent=1))


if __name__ == "__main__":
    main()
