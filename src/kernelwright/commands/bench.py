"""`kernelwright bench TASK ANSWER`: time an answer beside eager, torch.compile and Liger-Kernel.

Exit 0 timed; 1 the answer is rejected (by the correctness check, or because its timing is
invalid: wrong timed outputs, impossible times, cheats); 2 bad usage, unreadable task, no GPU.
The answer is checked first; a rejected answer is never timed. `--device cpu` runs the check
under the interpreter and then stops with exit 2: times measured there would mean nothing.
"""
from __future__ import annotations

from pathlib import Path

from rich.table import Table

from ..config import JudgeConfig, TimerConfig
from ..errors import KernelwrightError, UsageError
from ._common import console, emit_json, print_error, resolve_device

ROWS = ("answer", "eager", "compile", "compile-max-autotune", "liger")
NO_GPU_HINT = ("Run kernelwright bench on a machine with an NVIDIA GPU and a CUDA build of torch; "
               "kernelwright check --device cpu checks correctness without one.")


def run(task: Path, answer: Path, *, device: str = "cuda", json_out: bool = False,
        timer_cfg: TimerConfig | None = None, check_timeout: float = 600.0) -> int:
    from ..judge import check

    try:
        dev = device.lower()
        if dev not in ("cuda", "cpu", "auto"):
            raise UsageError(f"unknown device {device!r}", "Timing needs --device cuda.")
        if dev != "cpu":
            resolve_device("cuda")  # no GPU, or no CUDA in torch: exit 2 before anything runs
            dev = "cuda"
        verdict = check(task, answer, JudgeConfig(device=dev, timeout_s=check_timeout))
        if not verdict.accepted:
            return _rejected_by_check(verdict, json_out)
        if dev == "cpu":
            raise UsageError("the answer passed the correctness check on cpu, but timing needs a CUDA GPU",
                             NO_GPU_HINT)
        from ..judge.timer import time_answer

        cfg = timer_cfg or TimerConfig()
        cfg.device = "cuda"
        report = time_answer(task, answer, cfg)
    except KernelwrightError as exc:
        return print_error(exc, json_out, accepted=False)
    if json_out:
        emit_json({"check": {"accepted": True, "reason": verdict.reason, "kernels": verdict.kernels},
                   **report.to_dict()})
    else:
        show(report)
    return 0 if report.accepted else 1


def _rejected_by_check(verdict, json_out: bool) -> int:
    if json_out:
        emit_json({"accepted": False, "stage": verdict.stage, "reason": verdict.reason, "timed": False,
                   "check": verdict.to_dict()})
    else:
        console.print(f"[bold red]rejected by the correctness check[/] (stage {verdict.stage}): {verdict.reason}")
        console.print("[dim]a rejected answer is not timed; run kernelwright check for the details.[/]")
    return 1


def _fmt(v, spec: str) -> str:
    return "" if v is None else format(v, spec)


def show(rep) -> None:
    """One rich table: a row per timed variant."""
    title = f"bench on {rep.device_name}: {'timed' if rep.accepted else 'TIMING REJECTED'} ({rep.mode or '-'} mode)"
    t = Table(title=title)
    for col in ("row", "median ms", "p20-p80 ms", "A/A", "answer speedup", "GB/s", "TFLOP/s", "% ceiling", "mode"):
        t.add_column(col, justify="right" if col != "row" else "left")
    stats = {"answer": rep.answer, **rep.baselines}
    for name in [r for r in ROWS if r in stats] + [r for r in stats if r not in ROWS]:
        st = stats[name]
        if st is None:
            t.add_row(name, "-", "", "", "", "", "", "", "not timed")
            continue
        rates = rep.row_rates.get(name, {})
        sp = "1.00x" if name == "answer" else _fmt(rep.speedup.get(name), ".2f") + "x"
        aa = rep.aa_spread.get(name)
        t.add_row(name, f"{st.median_ms:.4f}", f"{st.p20_ms:.4f}-{st.p80_ms:.4f}", "" if aa is None else f"{100 * aa:.1f}%",
                  sp, _fmt(rates.get("gbps"), ".0f"), _fmt(rates.get("tflops"), ".1f"),
                  _fmt(rates.get("pct_of_ceiling"), ".1f"), st.mode)
    console.print(t)
    ceil = f"{rep.ceiling_gbps:.0f} GB/s copy" if rep.ceiling_gbps else "no copy ceiling"
    if rep.ceiling_tflops:
        ceil += f", {rep.ceiling_tflops:.0f} TFLOP/s matmul"
    console.print(f"ceilings: {ceil} ({rep.ceiling_source}); work: {rep.bytes_moved / 1e6:.1f} MB moved, "
                  f"{rep.flops / 1e9:.2f} GFLOP, {rep.bound}-bound; floor {_fmt(rep.floor_ms, '.4f')} ms")
    console.print(f"[dim]{rep.input_sets} rotating input sets, timed outputs re-checked; persisting L2: {rep.l2}; "
                  f"wall clock per call {_fmt(rep.wall_ms_per_call, '.4f')} ms[/]")
    for n in rep.notes:
        console.print(f"[yellow]note:[/] {n}")
    for f in rep.flagged:
        console.print(f"[bold yellow]flagged:[/] {f}")
    console.print(f"[{'green' if rep.accepted else 'red'}]{rep.reason}[/]")
