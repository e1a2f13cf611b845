import torch
import torch.nn as nn


class Model(nn.Module):
    """C = A.T @ B (KernelBench 16_Matmul_with_transposed_A at a tiny size)."""

    def __init__(self):
        super().__init__()

    def forward(self, A, B):
        return torch.matmul(A.T, B)


M = 33
K = 65
N = 47


def get_inputs():
    return [torch.randn(K, M), torch.randn(K, N)]


def get_init_inputs():
    return []
