"""Work that must be done (bytes moved, FLOPs), the rates it implies, and the physical floor.

bytes: every input tensor read once, every parameter and buffer read once, every output written
once (distinct storages only). FLOPs: torch.utils.flop_counter over one reference forward (it
counts matmul, conv and attention; elementwise and reductions count 0, so those ops are
memory-bound by construction). The floor, max(bytes / copy bandwidth, FLOPs / fastest matmul
rate), is the least time any kernel can take: a time below it is impossible and is rejected
(threat B9). The floor's rate is the fastest one measured on this GPU in any dtype, not the task's
own: an fp32 answer may legitimately run on tensor cores (3xTF32 splits each operand into TF32
parts and passed the strict fp32 check at 1.6x cuBLAS's CUDA-core fp32 on an H100,
bench/results/h100-2026-11-22/matmul_perf.txt), and torch's fp32 rate would reject it as
impossible. Rates and % of ceiling are still reported against the task dtype's own rate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .ceilings import Ceilings


@dataclass
class Work:
    bytes_moved: int  # inputs + parameters read once, outputs written once
    flops: int  # from torch.utils.flop_counter; 0 for ops it does not count
    dtype: str  # floating dtype of the work ("bfloat16" ...): picks the matmul ceiling


def _tensors(tree: Any) -> Iterable:
    import torch

    if isinstance(tree, torch.Tensor):
        yield tree
    elif isinstance(tree, (list, tuple)):
        for v in tree:
            yield from _tensors(v)
    elif isinstance(tree, dict):
        for v in tree.values():
            yield from _tensors(v)


def tensor_bytes(*trees: Any) -> int:
    """Bytes of the distinct tensors in the trees (a tensor passed twice, or a view of one, counts once)."""
    seen: set[tuple[str, int, int]] = set()
    total = 0
    for tree in trees:
        for t in _tensors(tree):
            nbytes = t.numel() * t.element_size()
            key = (str(t.device), t.data_ptr(), nbytes)
            if nbytes == 0 or key in seen:
                continue
            seen.add(key)
            total += nbytes
    return total


def main_dtype(*trees: Any) -> str:
    """The floating dtype holding the most bytes (the one whose matmul rate applies)."""
    by: dict[str, int] = {}
    for tree in trees:
        for t in _tensors(tree):
            if t.is_floating_point():
                name = str(t.dtype).removeprefix("torch.")
                by[name] = by.get(name, 0) + t.numel() * t.element_size()
    return max(by, key=by.get) if by else "float32"


def run_counting_flops(fn: Callable[[], Any]) -> tuple[Any, int]:
    """Run fn once under torch's FLOP counter; returns (its result, FLOPs)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        out = fn()
    return out, int(counter.get_total_flops())


def floor_ms(work: Work, ceil: Ceilings) -> float | None:
    """The least time the work can take on this GPU; None when no ceiling is known."""
    parts = []
    if ceil.copy_gbps:
        parts.append(work.bytes_moved / (ceil.copy_gbps * 1e9) * 1e3)
    rate = max(ceil.matmul_tflops.values(), default=None)  # the fastest dtype: see the module docstring
    if work.flops and rate:
        parts.append(work.flops / (rate * 1e12) * 1e3)
    return max(parts) if parts else None


def below_floor(time_ms: float, work: Work, ceil: Ceilings, slack: float) -> bool:
    """True when time_ms is impossible: below the floor by more than `slack` (a fraction).

    The slack exists because the measured copy is not the very best a kernel can do (a tuned
    kernel has been seen a few % above torch's copy); a cheat is off by orders of magnitude.
    """
    f = floor_ms(work, ceil)
    return f is not None and time_ms < f * (1.0 - slack)


def bound(work: Work, ceil: Ceilings) -> str:
    """"compute" when the FLOPs take longer than the bytes at the ceilings, else "memory"."""
    rate = ceil.matmul_for(work.dtype) or ceil.matmul_for("float32")
    if not work.flops or not rate:
        return "memory"
    if not ceil.copy_gbps:
        return "compute"
    t_mem = work.bytes_moved / (ceil.copy_gbps * 1e9)
    t_cmp = work.flops / (rate * 1e12)
    return "compute" if t_cmp > t_mem else "memory"


def rates(work: Work, time_ms: float) -> tuple[float, float | None]:
    """(GB/s, TFLOP/s) achieved in time_ms; TFLOP/s None when the work has no counted FLOPs."""
    s = time_ms * 1e-3
    return work.bytes_moved / s / 1e9, (work.flops / s / 1e12 if work.flops else None)


def pct_of_ceiling(work: Work, time_ms: float, ceil: Ceilings) -> float | None:
    """Percent of the ceiling that bounds this work (copy bandwidth or matmul rate)."""
    gbps, tflops = rates(work, time_ms)
    if bound(work, ceil) == "compute":
        rate = ceil.matmul_for(work.dtype) or ceil.matmul_for("float32")
        return 100.0 * tflops / rate if (tflops and rate) else None
    return 100.0 * gbps / ceil.copy_gbps if ceil.copy_gbps else None
