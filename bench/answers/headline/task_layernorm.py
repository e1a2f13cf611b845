# LayerNorm over the last dim (F.layer_norm with bf16 weight and bias), 8192 x 4096.
# Bytes: x read + weight + bias + y written.
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.ln = nn.LayerNorm(n, eps=1e-5, dtype=torch.bfloat16)
        with torch.no_grad():
            self.ln.weight.copy_(1.0 + 0.1 * torch.randn(n))
            self.ln.bias.copy_(0.1 * torch.randn(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [M, N] bf16
        return self.ln(x)


M = 8192
N = 4096


def get_inputs():
    return [torch.randn(M, N, dtype=torch.bfloat16)]


def get_init_inputs():
    return [N]
