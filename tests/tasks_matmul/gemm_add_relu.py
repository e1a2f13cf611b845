import torch
import torch.nn as nn


class Model(nn.Module):
    """KernelBench level-2 76_Gemm_Add_ReLU at a tiny size: a bias-free Linear, a separate bias."""

    def __init__(self, in_features, out_features):
        super(Model, self).__init__()
        self.gemm = nn.Linear(in_features, out_features, bias=False)
        self.bias = nn.Parameter(torch.randn(out_features))

    def forward(self, x):
        x = self.gemm(x)
        x = x + self.bias
        x = torch.relu(x)
        return x


batch_size = 33
in_features = 65
out_features = 47


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features]
