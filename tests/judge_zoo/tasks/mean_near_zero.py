import torch
import torch.nn as nn


class Model(nn.Module):
    """Mean over the last dim; on N(0, 1) inputs the output is near zero (threat A4)."""

    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.mean(x, dim=-1)


rows = 16
cols = 512


def get_inputs():
    return [torch.randn(rows, cols)]


def get_init_inputs():
    return []
