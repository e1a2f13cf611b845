import torch
import torch.nn as nn


class Model(nn.Module):
    """y = A @ x with x of shape (K, 1) (KernelBench 4_Matrix_vector_multiplication at a tiny size)."""

    def __init__(self):
        super().__init__()

    def forward(self, A, B):
        return torch.matmul(A, B)


M = 37
K = 300


def get_inputs():
    return [torch.randn(M, K), torch.randn(K, 1)]


def get_init_inputs():
    return []
