# Softmax over the last dim, bf16, 8192 x 8192. Bytes: x read + y written (2 * M*N*2).
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [M, N] bf16
        return torch.softmax(x, dim=-1)


M = 8192
N = 8192


def get_inputs():
    return [torch.randn(M, N, dtype=torch.bfloat16)]


def get_init_inputs():
    return []
