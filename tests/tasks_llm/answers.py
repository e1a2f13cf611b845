"""Answer files the scripted LLM replies with in tests (as text, inside fenced blocks)."""

GOOD = '''import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _scale_relu_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    y = tl.where(x > 0, x, 0.0) * 2.0 - 0.5
    tl.store(y_ptr + offs, y, mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        x = x.contiguous()
        y = torch.empty_like(x)
        n = x.numel()
        _scale_relu_kernel[(triton.cdiv(n, 256),)](x, y, n, BLOCK=256)
        return y
'''

# Launches its kernel, then raises with whatever API key it can find in its environment: the
# judge's verdict message carries the exception text, so a leaked key would show up downstream.
CRASH = '''import os
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _scale_relu_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    tl.store(y_ptr + offs, x, mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        y = torch.empty_like(x)
        _scale_relu_kernel[(triton.cdiv(x.numel(), 256),)](x, y, x.numel(), BLOCK=256)
        found = {k: os.environ.get(k) for k in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")}
        raise RuntimeError(f"CRASH-MARKER-7731 scale overflow; env keys seen: {found}")
'''


def fenced(source: str, note: str = "Here is the answer file.") -> str:
    return f"{note}\n\n```python\n{source}```\n"
