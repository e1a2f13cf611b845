import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """gelu(linear(x)) + residual: a second input read in the epilogue, and a 3-D activation."""

    def __init__(self, in_features, out_features):
        super().__init__()
        self.proj = nn.Linear(in_features, out_features)

    def forward(self, x, residual):
        return F.gelu(self.proj(x)) + residual


batch = 2
seq = 9
in_features = 40
out_features = 24


def get_inputs():
    return [torch.randn(batch, seq, in_features), torch.randn(batch, seq, out_features)]


def get_init_inputs():
    return [in_features, out_features]
