"""Where the time goes: torch.profiler over warm forward passes.

Two views of the same model:
- `profile_ops`: the eager model, every kernel grouped by the ATen op and input shapes that
  launched it (GPU time on cuda; on a CPU the ops' own CPU time, labelled as such).
- `time_nodes`: the captured ATen graph run node by node under `record_function`, so each graph
  node (and so each extracted region) gets the time of the kernels it launched.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import fx

from .rank import op_class

_NODE_TAG = "kw_node::"


@dataclass
class OpRow:
    """Kernels launched by one ATen op at one set of input shapes, summed over the profiled passes."""

    op: str  # "aten::addmm"
    shapes: str  # "[[4096], [4096, 1024], [1024, 4096]]"
    ms: float  # per forward pass: GPU time on cuda, the op's own CPU time on cpu
    calls: int  # per forward pass
    share: float  # of the total over all rows
    op_class: str
    kernels: list[str] = field(default_factory=list)


@dataclass
class OpProfile:
    device: str
    time_source: str  # "gpu" or "cpu" (a proxy: GPU time needs a GPU)
    total_ms: float  # per forward pass
    rows: list[OpRow]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _activities(device: str) -> list:
    acts = [torch.profiler.ProfilerActivity.CPU]
    if device == "cuda":
        acts.append(torch.profiler.ProfilerActivity.CUDA)
    return acts


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _kernel_us(evt) -> float:
    return float(sum(k.duration for k in getattr(evt, "kernels", []) or []))


def profile_ops(model: torch.nn.Module, inputs: list, device: str, iters: int = 3, warmup: int = 3) -> OpProfile:
    """Profile `iters` warm forward passes of the eager model; rows sorted by time, largest first."""
    with torch.no_grad():
        for _ in range(warmup):  # compilation, cuBLAS handles and the allocator stay out of the numbers
            model(*inputs)
        _sync(device)
        with torch.profiler.profile(activities=_activities(device), record_shapes=True) as prof:
            for _ in range(iters):
                model(*inputs)
            _sync(device)
    groups: dict[tuple[str, str], dict] = {}
    for evt in prof.events():
        if not evt.name.startswith("aten::") or evt.device_type != torch.autograd.DeviceType.CPU:
            continue
        if device == "cuda":
            us = _kernel_us(evt)  # kernels this op launched itself (its children count their own)
            if us <= 0:
                continue
        else:
            us = float(evt.self_cpu_time_total)
            if us <= 0:
                continue
        key = (evt.name, str(evt.input_shapes))
        g = groups.setdefault(key, {"us": 0.0, "calls": 0, "kernels": set()})
        g["us"] += us
        g["calls"] += 1
        g["kernels"].update(k.name for k in getattr(evt, "kernels", []) or [])
    total_us = sum(g["us"] for g in groups.values()) or 1.0
    rows = [
        OpRow(
            op=op,
            shapes=shapes,
            ms=g["us"] / 1e3 / iters,
            calls=max(1, round(g["calls"] / iters)),
            share=g["us"] / total_us,
            op_class=op_class(op),
            kernels=sorted(g["kernels"])[:8],
        )
        for (op, shapes), g in groups.items()
    ]
    rows.sort(key=lambda r: -r.ms)
    return OpProfile(
        device=device,
        time_source="gpu" if device == "cuda" else "cpu",
        total_ms=total_us / 1e3 / iters,
        rows=rows,
    )


class _TaggedInterpreter(fx.Interpreter):
    """Runs a graph node by node, each inside record_function("kw_node::<name>")."""

    def run_node(self, n: fx.Node) -> Any:
        if n.op in ("call_function", "call_method", "call_module"):
            with torch.profiler.record_function(_NODE_TAG + n.name):
                return super().run_node(n)
        return super().run_node(n)


def time_nodes(gm: fx.GraphModule, args: list, device: str, iters: int = 3, warmup: int = 2) -> dict[str, float]:
    """Milliseconds per pass of each call node of `gm` run on `args`: the GPU time of the kernels the
    node launched on cuda, its CPU time on cpu (a proxy)."""
    interp = _TaggedInterpreter(gm)
    with torch.no_grad():
        for _ in range(warmup):
            interp.run(*args)
        _sync(device)
        with torch.profiler.profile(activities=_activities(device)) as prof:
            for _ in range(iters):
                interp.run(*args)
            _sync(device)
    per_pass: dict[str, list[float]] = {}
    for evt in prof.events():
        # On cuda a record_function range also appears as a GPU-side annotation event of the same
        # name; only the CPU-side one carries its children's kernels, so count that one alone.
        if not evt.name.startswith(_NODE_TAG) or evt.device_type != torch.autograd.DeviceType.CPU:
            continue
        us = float(evt.device_time_total) if device == "cuda" else float(evt.cpu_time_total)
        per_pass.setdefault(evt.name[len(_NODE_TAG):], []).append(us / 1e3)
    # The median over passes: one pass's first-use cost (a CPU library picking a kernel) stays out.
    return {name: statistics.median(v) for name, v in per_pass.items()}
