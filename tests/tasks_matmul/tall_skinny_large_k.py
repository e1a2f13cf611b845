import torch
import torch.nn as nn


class Model(nn.Module):
    """Few output tiles, long K (KernelBench 6_Matmul_with_large_K at a tiny size): split-K."""

    def __init__(self):
        super().__init__()

    def forward(self, A, B):
        return torch.matmul(A, B)


M = 24
N = 20
K = 1000


def get_inputs():
    return [torch.randn(M, K), torch.randn(K, N)]


def get_init_inputs():
    return []
