# RMSNorm over the last dim, bf16, 8192 x 8192, decomposed in PyTorch (fp32 statistics).
# Bytes that must move: x read (M*N*2) + weight (N*2) + y written (M*N*2).
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, n: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter((1.0 + 0.1 * torch.randn(n)).to(torch.bfloat16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [M, N] bf16
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * self.weight.float()).to(x.dtype)


M = 8192
N = 8192


def get_inputs():
    return [torch.randn(M, N, dtype=torch.bfloat16)]


def get_init_inputs():
    return [N]
