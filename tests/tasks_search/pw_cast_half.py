import torch
import torch.nn as nn


class Model(nn.Module):
    """A narrowing cast inside a pointwise chain: `.half().float()` must round, not vanish."""

    def forward(self, x, b, y):
        # fp16 only: Triton 3.9's interpreter truncates fp32 -> bf16 instead of rounding
        return torch.tanh(x * 0.5 + b).to(torch.float16).float() * y


M = 6
N = 41


def get_inputs():
    return [torch.randn(M, N), torch.randn(N), torch.randn(M, N)]


def get_init_inputs():
    return []
