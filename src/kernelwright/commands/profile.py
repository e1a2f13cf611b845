"""`kernelwright profile MODEL`: where the model's time goes, and what each target could gain.

Table 1: kernels grouped by the ATen op and input shapes that launched them (GPU time, share,
calls). Table 2: the regions kernelwright would extract, ranked by Amdahl gain. On a CPU the
times are the ops' CPU time, labelled as a proxy: GPU time needs a GPU.
"""
from __future__ import annotations

from pathlib import Path

from rich.table import Table

from ..config import PipelineConfig
from ..errors import KernelwrightError
from ._common import console, emit_json, print_error, resolve_device

CPU_PROFILE_NOTE = "No GPU: the times below are CPU times of the ops, a proxy only. GPU time needs a GPU."


def run(model: Path, *, device: str = "auto", json_out: bool = False) -> int:
    from ..task import load_task
    from .optimize import build_target

    try:
        dev = resolve_device(device)
        task = load_task(model)
        module, inputs = build_target(task, dev)
        result = profile_target(module, inputs, dev, PipelineConfig())
    except KernelwrightError as exc:
        return print_error(exc, json_out)
    if json_out:
        emit_json(result)
    else:
        print_profile(result)
    return 0


def profile_target(module, inputs, device: str, cfg: PipelineConfig) -> dict:
    """The op table and, when the graph can be captured, the ranked regions (no files written)."""
    from dataclasses import asdict

    from ..errors import TaskError
    from ..extract.emit import placeholder_args
    from ..extract.graph import capture
    from ..extract.regions import partition
    from ..profile.capture import profile_ops, time_nodes
    from ..profile.rank import amdahl, prior

    prof = profile_ops(module, inputs, device, iters=cfg.profile_iters)
    result = {"device": device, "time_source": prof.time_source, "total_ms": prof.total_ms,
              "ops": [asdict(r) for r in prof.rows], "targets": [], "note": ""}
    try:
        cap = capture(module, list(inputs))
    except TaskError as exc:
        result["note"] = f"regions not ranked: {exc.message}"
        return result
    regions = [r for r in partition(cap) if r.ops]
    node_ms = time_nodes(cap.gm, placeholder_args(cap, module, list(inputs)), device, iters=cfg.profile_iters)
    total = sum(node_ms.values()) or 1.0
    for i, r in enumerate(regions):
        share = sum(node_ms.get(n.name, 0.0) for n in r.nodes) / total
        s = prior(cfg.speedup_priors, r.kind)
        result["targets"].append({
            "region": i, "kind": r.kind, "ops": [o.removeprefix("aten.") for o in r.ops],
            "ms": share * total, "share": share, "prior": s, "gain": amdahl(share, s),
        })
    result["targets"].sort(key=lambda t: -t["gain"])
    return result


def print_profile(result: dict, top: int = 25) -> None:
    unit = "GPU ms" if result["time_source"] == "gpu" else "CPU ms (proxy)"
    if result["time_source"] != "gpu":
        console.print(f"[yellow]{CPU_PROFILE_NOTE}[/]")
    t = Table(title=f"time by ATen op and shapes ({result['total_ms']:.3f} ms per forward, {unit})")
    for col in ("op", "shapes", unit, "share", "calls", "class", "kernels"):
        t.add_column(col, overflow="fold")
    for r in result["ops"][:top]:
        t.add_row(r["op"], r["shapes"][:60], f"{r['ms']:.4f}", f"{r['share']:.1%}", str(r["calls"]),
                  r["op_class"], ", ".join(k[:40] for k in r["kernels"][:2]))
    console.print(t)
    if result["targets"]:
        t2 = Table(title="targets ranked by Amdahl gain = 1 / ((1 - share) + share / prior)")
        for col in ("#", "region kind", "ops", "share", "prior", "whole-model gain"):
            t2.add_column(col, overflow="fold")
        for k, r in enumerate(result["targets"][:top], 1):
            t2.add_row(str(k), r["kind"], ", ".join(r["ops"][:6]), f"{r['share']:.1%}", f"{r['prior']:.2f}x",
                       f"{r['gain']:.3f}x")
        console.print(t2)
    if result["note"]:
        console.print(result["note"])
