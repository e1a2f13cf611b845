"""A small pre-norm transformer block in KernelBench format (Model, get_inputs, get_init_inputs).

    h   = x + Wo · attention(rope(Wq · rms(x)), rope(Wk · rms(x)), Wv · rms(x))   causal
    out = h + W2 · (silu(W1 · rms(h)) * (W3 · rms(h)))                              SwiGLU MLP

RMSNorm computes in float32 and casts back (as Llama does); rotary embeddings use the half-split
layout on precomputed cos/sin tables. The default sizes are tiny so that a CPU demo
(`kernelwright optimize examples/transformer_block.py --device cpu --out runs/demo --max-experiments 8`)
finishes in minutes; bench/e2e_models.py sets hidden 2048 (16 heads of 128), seq 2048, batch 4, bf16
by rewriting the constants below.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 2
SEQ = 16
HEADS = 4
HEAD_DIM = 16  # hidden = HEADS * HEAD_DIM; read by Model, not a constructor argument, so it stays even
FFN = 128  # SwiGLU inner width
DTYPE = torch.float32
EPS = 1e-6
ROPE_BASE = 10000.0


class RMSNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        # x: [B, S, D]; statistics in float32 whatever the input dtype
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS)
        return xf.to(x.dtype) * self.weight


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Model(nn.Module):
    def __init__(self, heads: int, ffn: int, max_seq: int):
        super().__init__()
        self.heads = heads
        hidden = heads * HEAD_DIM
        self.attn_norm = RMSNorm(hidden)
        self.wq = nn.Linear(hidden, hidden, bias=False)
        self.wk = nn.Linear(hidden, hidden, bias=False)
        self.wv = nn.Linear(hidden, hidden, bias=False)
        self.wo = nn.Linear(hidden, hidden, bias=False)
        self.mlp_norm = RMSNorm(hidden)
        self.w1 = nn.Linear(hidden, ffn, bias=False)
        self.w3 = nn.Linear(hidden, ffn, bias=False)
        self.w2 = nn.Linear(ffn, hidden, bias=False)
        inv_freq = 1.0 / (ROPE_BASE ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.float32) / HEAD_DIM))
        angles = torch.outer(torch.arange(max_seq, dtype=torch.float32), inv_freq)  # [max_seq, HEAD_DIM/2]
        angles = torch.cat((angles, angles), dim=-1)  # [max_seq, HEAD_DIM]
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)
        self.to(DTYPE)

    def forward(self, x):
        # x: [B, S, D]
        B, S, D = x.shape
        h = self.attn_norm(x)
        q = self.wq(h).view(B, S, self.heads, HEAD_DIM).transpose(1, 2)  # [B, H, S, hd]
        k = self.wk(h).view(B, S, self.heads, HEAD_DIM).transpose(1, 2)
        v = self.wv(h).view(B, S, self.heads, HEAD_DIM).transpose(1, 2)
        cos, sin = self.cos[:S], self.sin[:S]  # [S, hd]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, H, S, hd]
        x = x + self.wo(a.transpose(1, 2).reshape(B, S, D))
        h = self.mlp_norm(x)
        return x + self.w2(F.silu(self.w1(h)) * self.w3(h))


def get_inputs():
    return [torch.randn(BATCH, SEQ, HEADS * HEAD_DIM, dtype=DTYPE)]


def get_init_inputs():
    return [HEADS, FFN, SEQ]
