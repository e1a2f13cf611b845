import torch
import torch.nn as nn


class Model(nn.Module):
    """y = relu(x) * 2 - 0.5: a tiny elementwise task for the LLM proposer's end-to-end tests."""

    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.relu(x) * 2.0 - 0.5


n = 1031  # not a multiple of any block size


def get_inputs():
    return [torch.randn(n)]


def get_init_inputs():
    return []
