"""Tolerances per dtype, as data. KernelBench's values: fp32 1e-4, fp16/bf16 1e-2.

An element passes when
    |answer - ref64| <= atol + rtol * |ref64| + 2 * |ref_native - ref64| + 2 * |ref64_perturbed - ref64|
ref64 is the task run in float64 where the op allows it, ref_native the task in its own dtype, and
ref64_perturbed the float64 run with every floating input and weight moved by up to one ulp of its
own dtype. The third term lets an answer be as accurate as PyTorch itself at that element; the
fourth as accurate as any backward-stable algorithm in the task's dtype can be on an ill-conditioned
element (a LayerNorm of a row 3 + 1e-3 * N(0, 1): the fp32 inputs' own rounding is 2e-4 of the
spread). A TF32 or half-precision shortcut errs 1000x more than one fp32 ulp and still fails.
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
# How many times the one-ulp input/weight sensitivity an answer may err on top of that.
SENSITIVITY_SLACK = 2.0


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """(atol, rtol) for a floating dtype; integer and bool outputs must match exactly."""
    return TOLERANCES.get(dtype, (0.0, 0.0))
