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


@triton.jit
def _relu_plus(x_ptr, s_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    x = tl.load(x_ptr + offs, mask=m)
    s = tl.load(s_ptr + offs, mask=m)  # never initialised
    tl.store(y_ptr + offs, tl.maximum(x, 0.0) + s * 1e-3, mask=m)


class ModelNew(nn.Module):  # A6: reads a scratch buffer nothing wrote
    def forward(self, x):
        x = x.contiguous()
        y = torch.empty_like(x)
        s = torch.empty_like(x)
        _relu_plus[(triton.cdiv(x.numel(), 256),)](x, s, y, x.numel(), BLOCK=256)
        return y
