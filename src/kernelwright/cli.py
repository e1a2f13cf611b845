"""The `kernelwright` command line (typer). Each command is a thin shell over commands/<name>.py.

Exit codes (fixed contract): check 0 accepted / 1 rejected / 2 bad usage or unreadable task;
bench 0 / 1 rejected / 2; profile 0 / 2; optimize 0 finished / 2; report 0 / 2.
`--json` prints exactly one JSON object on stdout; human output goes through rich on stderr.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Write, verify and tune GPU kernels for PyTorch models. Every command has --help.",
)

DeviceOpt = typer.Option("auto", "--device", help="cpu (Triton interpreter, correctness only), cuda, or auto.")


def _exit(code: int) -> None:
    raise typer.Exit(code)


@app.command()
def check(
    task: Path = typer.Argument(..., help="KernelBench-format task file (Model, get_inputs, get_init_inputs)."),
    answer: Path = typer.Argument(..., help="Answer file defining ModelNew."),
    device: str = DeviceOpt,
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds for the whole check of this answer."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Full correctness judgement of one answer: exit 0 accepted, 1 rejected, 2 bad usage."""
    from .commands.check import run

    _exit(run(task, answer, device=device, timeout=timeout, json_out=json_out))


@app.command()
def bench(
    task: Path = typer.Argument(..., help="Task file."),
    answer: Path = typer.Argument(..., help="Answer file defining ModelNew."),
    device: str = typer.Option("cuda", "--device", help="Timing needs cuda."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Time an answer beside eager, torch.compile and compile max-autotune (and Liger-Kernel) in one run."""
    from .commands.bench import run

    _exit(run(task, answer, device=device, json_out=json_out))


@app.command()
def profile(
    model: Path = typer.Argument(..., help="Model file in task format."),
    device: str = DeviceOpt,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """The ranked table of GPU time by kernel and op, with the Amdahl gain of each target."""
    from .commands.profile import run

    _exit(run(model, device=device, json_out=json_out))


@app.command()
def optimize(
    target: Path = typer.Argument(..., help="Task or whole-model file in task format."),
    out: Path = typer.Option(..., "--out", help="Run directory; an unfinished run there resumes."),
    device: str = DeviceOpt,
    budget: str = typer.Option("8h", "--budget", help="Wall-clock budget, e.g. 30m, 8h, 90s."),
    max_experiments: Optional[int] = typer.Option(None, "--max-experiments", help="Stop after N experiments."),
    proposer: str = typer.Option("search", "--proposer", help="search, llm, or search,llm."),
    llm: Optional[str] = typer.Option(None, "--llm", help="PROVIDER:MODEL, e.g. openai:gpt-5 or anthropic:claude-x."),
) -> None:
    """The whole pipeline: profile, rank, extract, optimize each task, integrate, verify, report."""
    from .commands.optimize import run

    _exit(
        run(
            target,
            out=out,
            device=device,
            budget=budget,
            max_experiments=max_experiments,
            proposer=proposer,
            llm=llm,
        )
    )


@app.command()
def report(run_dir: Path = typer.Argument(..., help="A run directory written by optimize.")) -> None:
    """(Re)write RUN_DIR/report.html."""
    from .commands.report import run

    _exit(run(run_dir))


if __name__ == "__main__":  # python -m kernelwright.cli
    app()
