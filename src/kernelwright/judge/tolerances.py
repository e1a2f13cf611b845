"""Tolerances per dtype, as data. KernelBench's values: fp32 1e-4, fp16/bf16 1e-2.

The dtype is the least precise floating dtype the reference itself computes in (any op's output),
not only its output's: `tanh(z).to(float16).float() * y` is an fp32 output at fp16 precision, and an
honest tanh one fp32 ulp off torch's flips the fp16 rounding of about 1 element in 16000, an error of
one fp16 ulp (3e-4..9e-4) that the fp32 tolerance would reject. An inner dtype only ever loosens.

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


def working_tolerance(out_dtype: torch.dtype, work_dtype: torch.dtype | None) -> tuple[float, float]:
    """(atol, rtol) for an output of out_dtype from a computation whose least precise floating dtype
    is work_dtype: the elementwise max of the two, so an inner dtype only ever loosens (an fp32 output
    computed through fp16 gets fp16's tolerance; one computed through fp64 keeps fp32's)."""
    atol, rtol = tolerance(out_dtype)
    if work_dtype is None or not work_dtype.is_floating_point or not (out_dtype.is_floating_point
                                                                        or out_dtype.is_complex):
        return atol, rtol
    watol, wrtol = tolerance(work_dtype)
    return max(atol, watol), max(rtol, wrtol)


def loosest_dtype(dtypes) -> torch.dtype | None:
    """Of these dtypes, the floating one whose tolerance is loosest (ties: the larger epsilon)."""
    floats = [d for d in dtypes if d.is_floating_point]
    if not floats:
        return None
    return max(floats, key=lambda d: (tolerance(d), torch.finfo(d).eps))
