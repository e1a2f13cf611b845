import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """Causal grouped-query attention (4 query heads over 2 key/value heads), more keys than
    queries (torch's is_causal is top-left aligned), head_dim 40, then a fused epilogue."""

    def __init__(self):
        super().__init__()

    def forward(self, q, k, v):
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return torch.sigmoid(out) * 2.0 + q


batch = 2
q_heads = 4
kv_heads = 2
q_len = 13
kv_len = 29
head_dim = 40


def get_inputs():
    return [
        torch.randn(batch, q_heads, q_len, head_dim),
        torch.randn(batch, kv_heads, kv_len, head_dim),
        torch.randn(batch, kv_heads, kv_len, head_dim),
    ]


def get_init_inputs():
    return []
