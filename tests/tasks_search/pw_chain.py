import torch
import torch.nn as nn


class Model(nn.Module):
    """A pointwise chain with broadcasting, a scalar constant and a cast."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale
        self.bias = nn.Parameter(torch.randn(37))

    def forward(self, x, y):
        z = torch.relu(x * self.scale + self.bias) - torch.sigmoid(y)
        return torch.nn.functional.gelu(z).to(torch.float32) * 0.5 + torch.tanh(z)


M = 5
N = 37


def get_inputs():
    return [torch.randn(3, M, N), torch.randn(M, 1)]


def get_init_inputs():
    return [1.7]
