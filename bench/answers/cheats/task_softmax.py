# The task the timing cheats attack: softmax over the last dim, fp32, 4096 x 4096 (64 MB in, 64 MB
# out; tens of microseconds on an H100: events mode).
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=-1)


M = 4096
N = 4096


def get_inputs():
    return [torch.randn(M, N)]


def get_init_inputs():
    return []
