"""The hearth-tiny network in PyTorch: a Llama (RMSNorm, GQA attention, RoPE, SwiGLU).

It computes exactly what llama.cpp's `llama` architecture computes from the exported
GGUF, so export is a plain copy of tensors:

- RoPE rotates adjacent pairs (x[2i], x[2i+1]) — ggml's "normal" mode, which llama.cpp
  uses for LLM_ARCH_LLAMA (ggml_rope_ext, mode 0). A Hugging Face Llama rotates
  halves instead, which is why convert_hf_to_gguf.py permutes its Q/K rows; training
  in the ggml layout directly means no permutation on export.
- Query head h reads key/value head h // (n_head / n_head_kv), as ggml_mul_mat
  broadcasts K/V over the grouped query heads.
- The output projection is tied to the token embedding; the GGUF has no
  `output.weight` and llama.cpp (and hearth) then use `token_embd.weight`.
"""

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Config:
    """Hyper-parameters, mirrored one-to-one into the GGUF `llama.*` keys."""

    n_vocab: int = 1024
    n_embd: int = 256
    n_layer: int = 6
    n_head: int = 8
    n_head_kv: int = 2
    n_ff: int = 688
    n_ctx: int = 256
    rope_base: float = 10000.0
    norm_eps: float = 1e-5

    @property
    def head_dim(self):
        """Size of one attention head."""
        return self.n_embd // self.n_head

    def to_dict(self):
        """Plain dict for checkpoints."""
        return asdict(self)


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight (ggml_rms_norm then ggml_mul)."""

    def __init__(self, n, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(cfg, n_pos):
    """cos/sin of shape (n_pos, head_dim / 2): theta_i = base^(-2i / head_dim)."""
    inv = cfg.rope_base ** (-torch.arange(0, cfg.head_dim, 2, dtype=torch.float64) / cfg.head_dim)
    ang = torch.arange(n_pos, dtype=torch.float64)[:, None] * inv[None, :]
    return ang.cos().float(), ang.sin().float()


def rope(x, cos, sin):
    """Rotate adjacent pairs of x (B, H, T, D) by position (ggml "normal" mode)."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


class Block(nn.Module):
    """One transformer layer; attribute names follow the GGUF tensor names."""

    def __init__(self, cfg):
        super().__init__()
        d, hd = cfg.n_embd, cfg.head_dim
        self.cfg = cfg
        self.attn_norm = RMSNorm(d, cfg.norm_eps)
        self.attn_q = nn.Linear(d, cfg.n_head * hd, bias=False)
        self.attn_k = nn.Linear(d, cfg.n_head_kv * hd, bias=False)
        self.attn_v = nn.Linear(d, cfg.n_head_kv * hd, bias=False)
        self.attn_output = nn.Linear(cfg.n_head * hd, d, bias=False)
        self.ffn_norm = RMSNorm(d, cfg.norm_eps)
        self.ffn_gate = nn.Linear(d, cfg.n_ff, bias=False)
        self.ffn_up = nn.Linear(d, cfg.n_ff, bias=False)
        self.ffn_down = nn.Linear(cfg.n_ff, d, bias=False)

    def forward(self, x, cos, sin, mask):
        cfg = self.cfg
        b, t, _ = x.shape
        h = self.attn_norm(x)
        q = self.attn_q(h).view(b, t, cfg.n_head, cfg.head_dim).transpose(1, 2)
        k = self.attn_k(h).view(b, t, cfg.n_head_kv, cfg.head_dim).transpose(1, 2)
        v = self.attn_v(h).view(b, t, cfg.n_head_kv, cfg.head_dim).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        group = cfg.n_head // cfg.n_head_kv
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
        if mask is None:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.attn_output(a.transpose(1, 2).reshape(b, t, -1))
        h = self.ffn_norm(x)
        return x + self.ffn_down(F.silu(self.ffn_gate(h)) * self.ffn_up(h))


class TinyLlama(nn.Module):
    """Token embedding, n_layer blocks, final norm, tied output projection."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.token_embd = nn.Embedding(cfg.n_vocab, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.output_norm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        cos, sin = rope_tables(cfg, cfg.n_ctx)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.apply(self._init)
        for blk in self.blocks:
            # GPT-2 style: scale the residual projections by depth.
            std = 0.02 / math.sqrt(2 * cfg.n_layer)
            nn.init.normal_(blk.attn_output.weight, std=std)
            nn.init.normal_(blk.ffn_down.weight, std=std)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def forward(self, ids, mask=None, pos=None):
        """Logits (B, T, n_vocab). `mask` is a boolean (B, 1, T, T) "may attend"
        matrix (None: causal); `pos` the first position (for cached decoding)."""
        t = ids.shape[1]
        p0 = 0 if pos is None else pos
        cos, sin = self.cos[p0:p0 + t], self.sin[p0:p0 + t]
        x = self.token_embd(ids)
        for blk in self.blocks:
            x = blk(x, cos, sin, mask)
        return self.output_norm(x) @ self.token_embd.weight.T


@torch.no_grad()
def greedy_batch(model, prompts, stop_id, pad_id, max_new=64):
    """Greedy continuations of many prompts at once (left-padded, masked)."""
    n = len(prompts)
    width = max(len(p) for p in prompts)
    rows = [[pad_id] * (width - len(p)) + list(p) for p in prompts]
    valid = [[False] * (width - len(p)) + [True] * len(p) for p in prompts]
    outs = [[] for _ in range(n)]
    done = [False] * n
    for _ in range(max_new):
        x = torch.tensor(rows)
        v = torch.tensor(valid)
        t = x.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool).tril()
        mask = (causal[None] & v[:, None, :])[:, None]
        # Rows that are all padding would give NaN; let pads see themselves.
        mask = mask | torch.eye(t, dtype=torch.bool)[None, None]
        # Positions must start at 0 at each prompt's first real token; RoPE is
        # relative, so a shared offset per row changes nothing but the pad count.
        logits = model(x, mask=mask)[:, -1]
        nxt = logits.argmax(-1).tolist()
        for i in range(n):
            tok = nxt[i] if not done[i] else pad_id
            if not done[i]:
                if tok == stop_id:
                    done[i] = True
                else:
                    outs[i].append(tok)
            rows[i].append(tok)
            valid[i].append(not done[i] or tok != pad_id)
        if all(done):
            break
    return outs
