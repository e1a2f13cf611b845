"""`kernelwright check TASK ANSWER`: exit 0 accepted, 1 rejected, 2 bad usage or unreadable task."""
from __future__ import annotations

from pathlib import Path

from rich.table import Table

from ..config import JudgeConfig
from ..errors import KernelwrightError
from ._common import console, emit_json, print_error, resolve_device


def run(task: Path, answer: Path, *, device: str = "auto", timeout: float = 300.0, json_out: bool = False) -> int:
    from ..judge import check

    try:
        dev = resolve_device(device)
        if timeout <= 0:
            from ..errors import UsageError

            raise UsageError(f"--timeout must be positive, got {timeout}", "e.g. --timeout 120")
        if dev == "cpu" and not json_out:
            console.print("[dim]cpu: the answer runs under the Triton interpreter (correctness only).[/]")
        verdict = check(task, answer, JudgeConfig(device=dev, timeout_s=timeout))
    except KernelwrightError as exc:
        return print_error(exc, json_out, accepted=False, stage="usage")
    if json_out:
        emit_json(verdict.to_dict())
    else:
        _show(verdict)
    return 0 if verdict.accepted else 1


def _show(v) -> None:
    t = Table(title=f"check: {'ACCEPTED' if v.accepted else 'REJECTED'} ({v.seconds:.1f} s, {v.device})")
    for col in ("stage", "result", "calls", "max abs err", "max rel err", "seconds", "detail"):
        t.add_column(col, overflow="fold")
    for s in v.stages:
        t.add_row(s.name, "[green]pass[/]" if s.passed else "[red]FAIL[/]", str(s.configs),
                  "" if s.max_abs_err is None else f"{s.max_abs_err:.2e}",
                  "" if s.max_rel_err is None else f"{s.max_rel_err:.2e}", f"{s.seconds:.2f}", s.detail[:300])
    console.print(t)
    color = "green" if v.accepted else "red"
    console.print(f"[{color}]{v.reason}[/]")
    if v.kernels:
        console.print(f"answer kernels that ran: {', '.join(v.kernels)}")
    if v.kernel_share is not None:
        console.print(f"share of GPU time in the answer's own kernels: {v.kernel_share:.0%}")
    console.print(f"[dim]sandbox: {v.sandbox}[/]")
