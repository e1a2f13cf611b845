import torch
import torch.nn as nn


class Model(nn.Module):
    """KernelBench level-2 40_Matmul_Scaling_ResidualAdd at a tiny size: the residual is the
    matmul's own output."""

    def __init__(self, in_features, out_features, scaling_factor):
        super(Model, self).__init__()
        self.matmul = nn.Linear(in_features, out_features)
        self.scaling_factor = scaling_factor

    def forward(self, x):
        x = self.matmul(x)
        original_x = x.clone().detach()
        x = x * self.scaling_factor
        x = x + original_x
        return x


batch_size = 33
in_features = 65
out_features = 47
scaling_factor = 0.5


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features, scaling_factor]
