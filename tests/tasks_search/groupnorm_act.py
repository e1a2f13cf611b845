import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """GroupNorm over [B, C, H, W] followed by a hardtanh."""

    def __init__(self, groups, channels):
        super().__init__()
        self.gn = nn.GroupNorm(groups, channels)

    def forward(self, x):
        return F.hardtanh(self.gn(x), -0.5, 0.5)


B = 3
G = 2
C = 6
H = 5
W = 7


def get_inputs():
    return [torch.randn(B, C, H, W)]


def get_init_inputs():
    return [G, C]
