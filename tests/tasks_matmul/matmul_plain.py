import torch
import torch.nn as nn


class Model(nn.Module):
    """C = A @ B, awkward sizes."""

    def __init__(self):
        super().__init__()

    def forward(self, A, B):
        return torch.matmul(A, B)


M = 33
K = 65
N = 47


def get_inputs():
    return [torch.randn(M, K), torch.randn(K, N)]


def get_init_inputs():
    return []
