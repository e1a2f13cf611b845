"""Tolerances per dtype, as data. KernelBench's values: fp32 1e-4, fp16/bf16 1e-2.

An element passes when |answer - ref64| <= atol + rtol * |ref64| + slack * |ref_native - ref64|:
ref64 is the task run in float64 where the op allows it, ref_native the task in its own dtype.
The last term lets an answer be as accurate as PyTorch itself at that element (a sum of 1e6
fp32 values has an error eager PyTorch also makes), and no more.
"""
from __future__ import annotations

import torch

# dtype -> (atol, rtol)
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-7, 1e-7),
    torch.float32: (1e-4, 1e-4),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (1e-2, 1e-2),
}
# How many times the native reference's own error an answer may make on top of atol/rtol.
NATIVE_ERROR_SLACK = 2.0


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """(atol, rtol) for a floating dtype; integer and bool outputs must match exactly."""
    return TOLERANCES.get(dtype, (0.0, 0.0))
