import torch
import torch.nn as nn


class Model(nn.Module):
    """Sum over a non-last dim: (B, N, M) -> (B, M)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return torch.sum(x, dim=self.dim)


B = 3
N = 40
M = 33


def get_inputs():
    return [torch.randn(B, N, M)]


def get_init_inputs():
    return [1]
