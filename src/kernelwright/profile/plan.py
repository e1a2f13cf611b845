"""The run's plan: profile -> capture -> partition -> time each region -> rank -> emit tasks.

Written once to DIR/pipeline.json (and DIR/tasks/); a resumed run reads it back instead of
re-deriving it, so the task files the ledger refers to never change under it.

Two modes:
- "single": the target is one op (its graph is one region, or it cannot be captured): the target
  file itself is the one task, and its winner is the model's answer.
- "model": one task per distinct region, ranked by Amdahl gain; the winners are integrated back.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..config import PipelineConfig
from ..errors import TaskError, UsageError
from .rank import amdahl, class_of_ops, combined, prior

PLAN_FILE = "pipeline.json"
PLAN_VERSION = 1


def _sha(path: Path | None) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] if path else ""


def make_or_load_plan(model, inputs, model_file: Path | None, out: Path, device: str, cfg: PipelineConfig, console) -> dict:
    path = out / PLAN_FILE
    if path.exists():
        plan = json.loads(path.read_text())
        if model_file is not None and plan.get("target_sha") != _sha(model_file):
            raise UsageError(
                f"{out} holds a run of another version of the target ({plan.get('target')})",
                "Use a fresh --out directory, or restore the target file that run was made from.",
            )
        if plan.get("device") != device:
            raise UsageError(
                f"{out} holds a run made on {plan.get('device')}, not {device}",
                f"Resume it with --device {plan.get('device')}, or use a fresh --out directory.",
            )
        console.print(f"resuming the plan in {path} ({len(plan['tasks'])} task(s))")
        return plan
    plan = build_plan(model, inputs, model_file, out, device, cfg, console)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(plan, indent=1, default=str))
    tmp.replace(path)
    return plan


def build_plan(model, inputs, model_file: Path | None, out: Path, device: str, cfg: PipelineConfig, console) -> dict:
    from ..extract.emit import emit_tasks, placeholder_args, value_stats
    from ..extract.graph import capture
    from ..extract.regions import partition
    from .capture import profile_ops, time_nodes

    name = model_file.stem if model_file else type(model).__name__
    prof = profile_ops(model, inputs, device, iters=cfg.profile_iters)
    plan: dict[str, Any] = {
        "version": PLAN_VERSION,
        "target": str(model_file) if model_file else f"<live {type(model).__name__}>",
        "target_sha": _sha(model_file),
        "name": name,
        "device": device,
        "time_source": prof.time_source,
        "profile": {"total_ms": prof.total_ms, "rows": [asdict(r) for r in prof.rows[:40]]},
        "notes": [],
    }
    try:
        cap = capture(model, list(inputs))
        regions = partition(cap)
    except TaskError as exc:
        if model_file is None:
            raise
        plan["notes"].append(f"capture failed, the whole target is one task: {exc.message}")
        cap, regions = None, []
    compute = [r for r in regions if r.ops]
    if model_file is not None and len(compute) <= 1:
        return _single(plan, model_file, out, prof, cfg)

    args = placeholder_args(cap, model, list(inputs))
    node_ms = time_nodes(cap.gm, args, device, iters=cfg.profile_iters)
    attributed = sum(node_ms.values()) > 0
    if not attributed:
        plan["notes"].append("the profiler attributed no time to the graph's nodes: targets are ranked by prior only")
    total = sum(node_ms.values()) or 1.0
    shares = [sum(node_ms.get(n.name, 0.0) for n in r.nodes) / total for r in regions]
    # Rank regions first (each alone), then emit only the kept ones: merged instances add shares.
    stats = value_stats(cap, args, {a.name for r in regions for a in r.inputs})
    tasks, emitted = emit_tasks(cap, regions, stats, out / "tasks", name)
    rows = []
    for t in tasks:
        share = sum(shares[i] for i in t.instances)
        s = prior(cfg.speedup_priors, t.kind)
        rows.append({
            "name": t.name,
            "path": f"tasks/{t.path.name}",
            "kind": t.kind,
            "ops": t.ops,
            "instances": t.instances,
            "share": share,
            "prior": s,
            "predicted_gain": amdahl(share, s),
        })
    rows.sort(key=lambda r: -r["predicted_gain"])
    chosen, dropped = [], []
    for r in rows:
        # min_share is a share of GPU time; CPU shares are only a proxy, so on a CPU nothing is cut by it.
        if prof.time_source == "gpu" and attributed and r["share"] < cfg.min_share:
            r["skipped"] = f"share {r['share']:.1%} below min_share {cfg.min_share:.0%}"
        elif len(chosen) >= cfg.max_tasks:
            r["skipped"] = f"beyond max_tasks={cfg.max_tasks}"
        (dropped if "skipped" in r else chosen).append(r)
    for r in dropped:  # a task not optimized leaves no file behind to confuse a reader
        (out / r["path"]).unlink(missing_ok=True)
    plan.update(
        mode="model",
        capture={"dynamic": cap.dynamic},
        regions=[dict(asdict(e), share=shares[e.region_index]) for e in emitted],
        tasks=chosen,
        dropped=dropped,
        predicted_speedup=combined((r["share"], r["prior"]) for r in chosen),
    )
    return plan


def _single(plan: dict, model_file: Path, out: Path, prof, cfg: PipelineConfig) -> dict:
    (out / "tasks").mkdir(parents=True, exist_ok=True)
    dest = out / "tasks" / model_file.name
    shutil.copyfile(model_file, dest)
    kind = class_of_ops(r.op for r in prof.rows) if prof.rows else "other"
    s = prior(cfg.speedup_priors, kind)
    plan.update(
        mode="single",
        capture=None,
        regions=[],
        tasks=[{
            "name": model_file.stem,
            "path": f"tasks/{dest.name}",
            "kind": kind,
            "ops": sorted({r.op for r in prof.rows})[:12],
            "instances": [],
            "share": 1.0,
            "prior": s,
            "predicted_gain": amdahl(1.0, s),
        }],
        dropped=[],
        predicted_speedup=amdahl(1.0, s),
    )
    return plan
