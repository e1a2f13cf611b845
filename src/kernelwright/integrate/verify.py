"""End-to-end: judge the optimized model like any answer, time it beside eager and torch.compile,
and put Amdahl's prediction next to the measurement. Writes DIR/end_to_end.json.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..config import JudgeConfig, TimerConfig
from ..profile.rank import combined
from .swap import is_winner

E2E_FILE = "end_to_end.json"


def predictions(plan: dict, outcomes: dict) -> dict[str, float | None]:
    """Two Amdahl figures: from the priors over every chosen task (what the ranking expected), and
    from each winner's measured task speedup (what the kernels found should give, cuda only)."""
    measured = []
    for t in plan["tasks"]:
        o = outcomes.get(t["name"])
        if is_winner(o) and o.best_speedup:
            measured.append((t["share"], float(o.best_speedup)))
    return {
        "predicted_speedup": plan.get("predicted_speedup"),
        "predicted_from_measured": combined(measured) if measured else None,
    }


def verify_end_to_end(plan, outcomes, out: Path, model_file, model, inputs, opts, console) -> dict[str, Any]:
    from ..judge import check

    out = Path(out)
    optimized = out / "model_optimized.py"
    won = [n for n, o in outcomes.items() if is_winner(o)]
    e2e: dict[str, Any] = {
        "device": opts.device,
        "mode": plan["mode"],
        "kernels": len(won),
        "tasks": len(plan["tasks"]),
        "check": "not run",
        **predictions(plan, outcomes),
    }
    if not won:
        e2e["check"] = "not run: no task has an accepted kernel"
    elif model_file is not None and optimized.exists():
        console.print(f"judging {optimized} against {model_file} ...")
        verdict = check(Path(model_file), optimized, JudgeConfig(device=opts.device, timeout_s=opts.pipeline.e2e_check_timeout_s))
        e2e["check"] = "accepted" if verdict.accepted else f"rejected at {verdict.stage}: {verdict.reason}"
        e2e["check_seconds"] = verdict.seconds
        e2e["check_kernels"] = verdict.kernels
        if verdict.accepted and opts.device == "cuda":
            e2e.update(_time(Path(model_file), optimized, opts.pipeline.e2e_baselines, console))
    else:
        # A live module with no task file: the judge has no file to load, so compare in-process on the
        # example inputs (the kernels themselves were each judged on their own tasks).
        e2e.update(_compare_live(plan, outcomes, out, model, inputs))
    if opts.device != "cuda":
        e2e["timing"] = "not timed: cpu run (correctness only)"
    (out / E2E_FILE).write_text(json.dumps(e2e, indent=1, default=str))
    return e2e


def _time(model_file: Path, optimized: Path, baselines: tuple[str, ...], console) -> dict[str, Any]:
    from ..judge.timer import time_answer

    console.print("timing the optimized model beside eager and torch.compile ...")
    t0 = time.monotonic()
    rep = time_answer(model_file, optimized, TimerConfig(device="cuda"), baselines=baselines)
    ms = {k: (v.median_ms if v is not None else None) for k, v in rep.baselines.items()}
    return {
        "timing": "measured" if rep.accepted else f"invalid: {rep.reason}",
        "timing_mode": rep.mode,
        "gpu": rep.device_name,
        "answer_ms": rep.answer.median_ms if rep.answer else None,
        "baseline_ms": ms,
        "speedup_vs_eager": rep.speedup.get("eager"),
        "speedup_vs_compile": rep.speedup.get("compile"),
        # The same run's back-to-back wall clock per forward (launches overlap the GPU, as in a loop
        # of forwards) and each row's host time to enqueue one: the per-call figures above time each
        # forward alone (synced, with a fixed lead of queued GPU work), which a model whose host
        # needs longer than that lead to enqueue a forward loses on.
        "answer_wall_ms": rep.wall_ms_per_call,
        "baseline_wall_ms": dict(rep.baseline_wall_ms),
        "speedup_back_to_back": rep.speedup_back_to_back,
        "host_ms": dict(rep.host_ms),
        "flagged": rep.flagged,
        "timing_notes": rep.notes,
        "timing_seconds": time.monotonic() - t0,
    }


def _compare_live(plan, outcomes, out, model, inputs) -> dict[str, Any]:
    import torch

    from .swap import load_optimized

    live = load_optimized(plan, outcomes, out, model)
    with torch.no_grad():
        ref = model(*inputs)
        got = live(*inputs)
    refs = ref if isinstance(ref, (tuple, list)) else (ref,)
    gots = got if isinstance(got, (tuple, list)) else (got,)
    err = max(float((a.double() - b.double()).abs().max()) for a, b in zip(refs, gots))
    return {"check": f"in-process comparison on the example inputs: max abs err {err:.3g}", "max_abs_err": err}
