# Cross-entropy (mean over rows) of bf16 logits 8192 x 32768, upcast to fp32 then F.cross_entropy.
# Bytes that must move: the logits read once (M*V*2) + targets (M*8); the output is one fp32 scalar.
import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # [M, V] bf16, [M] int64
        return F.cross_entropy(logits.float(), target)


M = 8192
V = 32768


def get_inputs():
    return [torch.randn(M, V, dtype=torch.bfloat16), torch.randint(0, V, (M,))]


def get_init_inputs():
    return []
