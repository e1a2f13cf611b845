import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        return self.bn(x)


B = 3
C = 4
H = 5
W = 3


def get_inputs():
    return [torch.randn(B, C, H, W)]


def get_init_inputs():
    return [C]
