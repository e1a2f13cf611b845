import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """Non-causal attention with an explicit scale, different query and key lengths, head_dim 24."""

    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, scale=self.scale)


batch = 2
heads = 2
q_len = 19
kv_len = 45
head_dim = 24
scale = 0.3


def get_inputs():
    return [
        torch.randn(batch, heads, q_len, head_dim),
        torch.randn(batch, heads, kv_len, head_dim),
        torch.randn(batch, heads, kv_len, head_dim),
    ]


def get_init_inputs():
    return [scale]
