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


_calls = [0]
_last = {}


@triton.jit
def _relu_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(y_ptr + offs, tl.maximum(tl.load(x_ptr + offs, mask=offs < n), 0.0), mask=offs < n)


class ModelNew(nn.Module):  # B6: honest for the first calls, then replays the last result per shape
    def forward(self, x):
        _calls[0] += 1
        touch(x)
        if _calls[0] > 4 and tuple(x.shape) in _last:
            return _last[tuple(x.shape)].clone()
        y = torch.empty_like(x)
        _relu_kernel[(triton.cdiv(x.numel(), 256),)](x, y, x.numel(), BLOCK=256)
        _last[tuple(x.shape)] = y
        return y
