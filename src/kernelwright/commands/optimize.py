"""`kernelwright optimize TARGET --out DIR`: the whole pipeline on a task or model file.

Exit 0 when the run finished its budget (whatever it found), 2 on bad usage or an unusable target.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import KernelwrightError
from ._common import console, print_error, resolve_device


def run(
    target: Path,
    *,
    out: Path,
    device: str = "auto",
    budget: str = "8h",
    max_experiments: int | None = None,
    proposer: str = "search",
    llm: str | None = None,
) -> int:
    from ..api import RunOptions, parse_budget, run_pipeline
    from ..task import load_task

    try:
        if max_experiments is not None and max_experiments < 1:
            from ..errors import UsageError

            raise UsageError(f"--max-experiments must be >= 1, got {max_experiments}", "Pass a positive count.")
        opts = RunOptions(
            out=Path(out),
            device=resolve_device(device),
            budget_s=parse_budget(budget),
            max_experiments=max_experiments,
            proposer=proposer,
            llm=llm,
        )
        task = load_task(target)
        model, inputs = build_target(task, opts.device)
        run_pipeline(model, inputs, Path(target), opts, console)
    except KernelwrightError as exc:
        return print_error(exc, json_out=False)
    except KeyboardInterrupt:
        console.print(f"interrupted: the ledger is consistent; resume with the same command (--out {out})")
        return 130
    return 0


def build_target(task, device: str):
    """The target's Model and inputs at its own sizes, seeded like the judge seeds them."""
    init = task.init_inputs(seed=0)
    model = task.build_model(init, seed=0).to(device)
    inputs = [x.to(device) if hasattr(x, "to") else x for x in task.inputs(seed=0)]
    return model, inputs
