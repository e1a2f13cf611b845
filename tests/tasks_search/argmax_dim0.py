import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        pass

    def forward(self, x):
        return torch.argmax(x, dim=0)


R = 19
N = 6


def get_inputs():
    return [torch.randn(R, N)]


def get_init_inputs():
    return []
