import torch
import torch.nn as nn


class Model(nn.Module):
    """out = 0.5 * bias + 2 * (A @ B), bias broadcast over rows."""

    def __init__(self, n):
        super().__init__()
        self.bias = nn.Parameter(torch.randn(n))

    def forward(self, A, B):
        return torch.addmm(self.bias, A, B, beta=0.5, alpha=2.0)


M = 33
K = 65
N = 47


def get_inputs():
    return [torch.randn(M, K), torch.randn(K, N)]


def get_init_inputs():
    return [N]
