import os
import threading
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _touch_kernel(p, n, BLOCK: tl.constexpr):
    # A kernel of its own that runs on every forward, so each cheat reaches the defense it targets.
    offs = tl.arange(0, BLOCK)
    tl.store(p + offs, 1.0, mask=offs < n)


def touch(x):
    s = torch.empty(8, device=x.device)
    _touch_kernel[(1,)](s, 8, BLOCK=8)


class ModelNew(nn.Module):  # A8: all NaN
    def forward(self, x):
        touch(x)
        return torch.full_like(x, float("nan"))
