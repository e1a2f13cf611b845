import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.ln = nn.LayerNorm(d)

    def forward(self, x):
        return self.ln(x)


B = 4
T = 3
D = 40


def get_inputs():
    return [torch.randn(B, T, D)]


def get_init_inputs():
    return [D]
