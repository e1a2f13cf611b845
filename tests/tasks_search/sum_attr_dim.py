import torch
import torch.nn as nn


class Model(nn.Module):
    """Sum over a dim the constructor receives (KernelBench style): the checker may change it."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return torch.sum(x, dim=self.dim, keepdim=True) * 0.5


B = 4
D1 = 6
D2 = 9
DIM = 1


def get_inputs():
    return [torch.randn(B, D1, D2)]


def get_init_inputs():
    return [DIM]
