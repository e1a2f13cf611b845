import torch
import torch.nn as nn


class Model(nn.Module):
    """Exclusive cumulative sum, written as KernelBench writes it (narrow, cumsum, cat a zero)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        cumsum = torch.cumsum(x.narrow(dim=self.dim, start=0, length=x.size(self.dim) - 1), dim=self.dim)
        return torch.cat((torch.zeros_like(x.select(self.dim, 0).unsqueeze(self.dim)), cumsum), dim=self.dim)


B = 5
N = 23
DIM = 1


def get_inputs():
    return [torch.randn(B, N)]


def get_init_inputs():
    return [DIM]
