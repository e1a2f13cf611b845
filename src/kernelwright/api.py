"""The whole pipeline as one call: profile -> rank -> extract -> optimize tasks -> integrate -> verify -> report.

`kernelwright optimize TARGET` (commands/optimize.py) and `kernelwright.optimize(model, inputs)` both
end in `run_pipeline`. Every step writes its result into the run directory before the next starts, so a
second call on the same directory resumes: the plan (pipeline.json, tasks/) is reused, the loop resumes
from its ledger, and integration, verification and the report are redone from what is on disk.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .config import JudgeConfig, LoopConfig, PipelineConfig, SearchConfig, TimerConfig
from .errors import UsageError

_BUDGET_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_budget(text: str | float | int) -> float:
    """"8h", "30m", "90s", "1h30m" or a number of seconds -> seconds."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        s = text.strip().lower()
        parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhd]?)", s)
        if not s or not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([smhd]?)", "", s).strip():
            raise UsageError(f"cannot read budget {text!r}", "Write it like 90s, 30m, 8h or 1h30m.")
        seconds = sum(float(n) * _BUDGET_UNITS[u or "s"] for n, u in parts)
    if seconds <= 0:
        raise UsageError(f"budget must be positive, got {text!r}", "Write it like 90s, 30m, 8h or 1h30m.")
    return seconds


@dataclass
class RunOptions:
    """What one optimize run is asked to do (the CLI's flags, typed)."""

    out: Path
    device: str  # resolved: "cpu" or "cuda"
    budget_s: float
    max_experiments: int | None = None
    proposer: str = "search"
    llm: str | None = None
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    live_module: bool = False  # build OptimizeResult.model in this process (the Python API); the CLI does not


@dataclass
class OptimizeResult:
    """What a run produced. `.model` is a drop-in replacement for the original module."""

    run_dir: Path
    report_path: Path
    model_optimized_path: Path | None
    model: Any  # nn.Module running the winners (the original module when nothing won); None from the CLI
    tasks: list[dict]
    outcomes: dict[str, Any]
    end_to_end: dict


def run_pipeline(
    model,
    inputs: Sequence,
    model_file: Path | None,
    opts: RunOptions,
    console=None,
) -> OptimizeResult:
    """Run every stage on `model` (built and seeded by the caller) with `inputs` as its example inputs."""
    from .commands._common import CPU_TIMING_NOTE
    from .commands._common import console as default_console
    from .integrate.swap import load_optimized, write_model_optimized
    from .integrate.verify import verify_end_to_end
    from .loop.run import TaskTarget, optimize_tasks
    from .profile.plan import make_or_load_plan
    from .propose.registry import make_proposers
    from .report.html import write_report

    console = console or default_console
    started = time.monotonic()
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    if opts.device == "cpu":
        console.print(f"[yellow]{CPU_TIMING_NOTE}[/]")

    proposers = make_proposers(opts.proposer, opts.llm, SearchConfig())
    for p in proposers:
        p.preflight()

    plan = make_or_load_plan(model, inputs, model_file, out, opts.device, opts.pipeline, console)
    targets = [TaskTarget(t["name"], out / t["path"], weight=t["predicted_gain"]) for t in plan["tasks"]]
    console.print(f"[bold]{len(targets)} task(s)[/] to optimize in {out / 'tasks'}")

    spent = time.monotonic() - started
    loop_cfg = LoopConfig(budget_s=max(1.0, opts.budget_s - spent), max_experiments=opts.max_experiments)
    try:
        outcomes = optimize_tasks(
            targets,
            out,
            proposers,
            device=opts.device,
            judge_cfg=JudgeConfig(device=opts.device),
            timer_cfg=TimerConfig(device=opts.device),
            loop_cfg=loop_cfg,
            console=console,
        )
    except KeyboardInterrupt:
        write_report(out)  # what the ledger holds so far; the same command resumes
        raise

    optimized_path = write_model_optimized(plan, outcomes, out, model_file)
    end_to_end = verify_end_to_end(plan, outcomes, out, model_file, model, inputs, opts, console)
    report_path = write_report(out)
    # The CLI never loads candidate code into its own process; the Python API hands the module back.
    drop_in = load_optimized(plan, outcomes, out, model) if opts.live_module else None
    _print_summary(console, plan, outcomes, end_to_end, optimized_path, report_path)
    return OptimizeResult(
        run_dir=out,
        report_path=report_path,
        model_optimized_path=optimized_path,
        model=drop_in,
        tasks=plan["tasks"],
        outcomes=outcomes,
        end_to_end=end_to_end,
    )


def _print_summary(console, plan, outcomes, e2e, optimized_path, report_path) -> None:
    """Greppable `key: value` lines at the end of a run."""
    from .integrate.swap import is_winner

    won = [o for o in outcomes.values() if is_winner(o)]
    lines = {
        "tasks": len(plan["tasks"]),
        "kernels_found": len(won),
        "predicted_speedup": _fmt(e2e.get("predicted_speedup")),
        "check": e2e.get("check", "not run"),
        "speedup_vs_eager": _fmt(e2e.get("speedup_vs_eager")),
        "speedup_vs_compile": _fmt(e2e.get("speedup_vs_compile")),
        "back_to_back_vs_eager": _fmt((e2e.get("speedup_back_to_back") or {}).get("eager")),
        "back_to_back_vs_compile": _fmt((e2e.get("speedup_back_to_back") or {}).get("compile")),
        "model_optimized": optimized_path or "none",
        "report": report_path,
    }
    for k, v in lines.items():
        console.print(f"{k}: {v}", highlight=False)


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def optimize(
    model,
    example_inputs: Sequence,
    budget: str | float = "8h",
    device: str = "cuda",
    out: str | Path = "runs/x",
    *,
    max_experiments: int | None = None,
    proposer: str = "search",
    llm: str | None = None,
    pipeline: PipelineConfig | None = None,
):
    """Optimize a live module: returns a result whose `.model` is a drop-in nn.Module and whose
    `.report_path` is the HTML report. `example_inputs` are the forward's positional arguments.

    When the module's class is `Model` in a KernelBench-format file, that file is the target (and
    DIR/model_optimized.py is written for it); otherwise the live module is captured directly and the
    result lives in `.model` only.
    """
    from .commands._common import resolve_device

    opts = RunOptions(
        out=Path(out),
        device=resolve_device(device),
        budget_s=parse_budget(budget),
        max_experiments=max_experiments,
        proposer=proposer,
        llm=llm,
        pipeline=pipeline or PipelineConfig(),
        live_module=True,
    )
    inputs = list(example_inputs)
    return run_pipeline(model, inputs, _task_file_of(model), opts)


def _task_file_of(model) -> Path | None:
    """The KernelBench file defining type(model) as `Model`, when there is one."""
    import inspect

    cls = type(model)
    if cls.__name__ != "Model":
        return None
    try:
        path = Path(inspect.getsourcefile(cls) or "")
    except TypeError:
        return None
    if not path.is_file():
        return None
    text = path.read_text()
    if all(f"def {fn}(" in text for fn in ("get_inputs", "get_init_inputs")):
        return path
    return None
