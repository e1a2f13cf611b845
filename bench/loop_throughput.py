"""Experiments per hour of the optimization loop on one GPU, with the template (search) proposer,
on a memory-bound task (softmax over rows) and a matmul task.

    python bench/loop_throughput.py                  # H100: about 10 minutes (2 tasks x 240 s of loop
                                                     # budget, plus start-up)
    python bench/loop_throughput.py --tasks softmax  # one task per device call: about 5 minutes

A budget much shorter than 240 s measures the latency of the first candidates, not the rate: on
the H100 one full-size softmax candidate took ~90 s from proposal to ledger row (check + timing),
with 8 side by side (bench/results/h100-2026-11-22/).
    python bench/loop_throughput.py --modes quiet,overlap   # also with checks overlapping timing (~5 min)
    python bench/loop_throughput.py --cpu-smoke      # tiny sizes on the CPU (interpreter): plumbing only

An experiment is one ledger row: propose -> correctness check (judge worker) -> timing in a fresh
worker, interleaved with the incumbent (judge.timer.TaskTimer; eager timed once per task) ->
keep/revert. Checks and timings of several candidates run side by side (LoopConfig.compile_workers,
default min(8, cores / 2)); "quiet" (LoopConfig.quiet_timing, the default) holds every check's GPU
request back while a timed batch runs (judge/gate.py); "overlap" lets them run together. Only the budget
rule is in force, so each run fills its budget unless the proposer runs out of candidates. The budget
is a deadline: candidates still in flight when it runs out are abandoned (no rows; "abandoned" in the
JSON), their worker processes killed, so a run ends within seconds of its budget.
Results (raw JSON, the table, command, GPU, versions, date) go to $OUT (default bench/results/).
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from headline_ops import env_info, fmt_table, save  # noqa: E402

# Task files in KernelBench format; sizes filled in per device. Softmax moves 2 x R x N x 4 bytes
# (read once, written once); the matmul does 2 x M x N x K FLOPs.
SOFTMAX = '''\
import torch
import torch.nn as nn


class Model(nn.Module):
    """Softmax over the last dim of a (R, N) matrix: memory-bound."""

    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.softmax(x, dim=1)


R = {R}
N = {N}


def get_inputs():
    return [torch.randn(R, N)]


def get_init_inputs():
    return []
'''
MATMUL = '''\
import torch
import torch.nn as nn


class Model(nn.Module):
    """C = A @ B, fp32 operands: compute-bound."""

    def __init__(self):
        super().__init__()

    def forward(self, A, B):
        return torch.matmul(A, B)


M = {M}
K = {K}
N = {N}


def get_inputs():
    return [torch.randn(M, K), torch.randn(K, N)]


def get_init_inputs():
    return []
'''
SIZES = {
    "gpu": {"softmax": {"R": 4096, "N": 8192}, "matmul": {"M": 2048, "K": 2048, "N": 2048}},
    "cpu": {"softmax": {"R": 5, "N": 33}, "matmul": {"M": 9, "K": 17, "N": 7}},
}
HEADER = ["task", "mode", "experiments", "wall s", "exp/h", "steady exp/h", "accepted", "kept",
          "best vs eager", "check s (median)", "time s (median)", "stopped because"]


def write_tasks(d: Path, device: str) -> dict[str, Path]:
    out = {}
    for name, text in (("softmax", SOFTMAX), ("matmul", MATMUL)):
        p = d / f"{name}.py"
        p.write_text(text.format(**SIZES[device][name]))
        out[name] = p
    return out


def one_run(name: str, task: Path, run_dir: Path, mode: str, device: str, budget_s: float, workers: int) -> dict:
    from rich.console import Console

    from kernelwright.config import JudgeConfig, LoopConfig, SearchConfig, TimerConfig
    from kernelwright.loop.run import TaskTarget, optimize_tasks
    from kernelwright.propose.search.proposer import SearchProposer

    loop_cfg = LoopConfig(
        budget_s=budget_s, compile_workers=workers or None, quiet_timing=(mode == "quiet"), move_on=("budget",),
        final_timing=False,
    )
    log = io.StringIO()
    t0 = time.monotonic()
    out = optimize_tasks(
        [TaskTarget(name, task)], run_dir, [SearchProposer(SearchConfig())], device=device,
        judge_cfg=JudgeConfig(device=device, timeout_s=180), timer_cfg=TimerConfig(device="cuda"),
        loop_cfg=loop_cfg, console=Console(file=log, width=200),
    )[name]
    wall = time.monotonic() - t0
    rows = ledger_rows(run_dir)
    el = [r["task_elapsed_s"] for r in rows]
    steady = (len(rows) - 1) / (el[-1] - el[0]) * 3600 if len(rows) > 2 and el[-1] > el[0] else None
    med = lambda k: statistics.median([r[k] for r in rows if r[k] is not None] or [float("nan")])  # noqa: E731
    return {
        "task": name, "mode": mode, "experiments": len(rows), "wall_s": wall, "exp_per_h": len(rows) / wall * 3600,
        "steady_exp_per_h": steady, "accepted": out.accepted, "kept": sum(r["decision"] == "kept" for r in rows),
        "best_vs_eager": out.best_speedup, "check_s_median": med("check_s"), "time_s_median": med("time_s"),
        "stop_reason": out.stop_reason, "abandoned": out.abandoned,
        "verdicts": [(r["verdict"], r["decision"], r["stage"]) for r in rows],
        "errors": sorted({(r["error"] or "")[:160] for r in rows if r["verdict"] != "accepted"}),
        "log_tail": log.getvalue()[-4000:],
    }


def ledger_rows(run_dir: Path) -> list[dict]:
    import sqlite3

    db = sqlite3.connect(run_dir / "ledger.sqlite")
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute("SELECT * FROM experiments ORDER BY id")]
    db.close()
    return rows


def fmt(v, spec: str) -> str:
    return "-" if v is None or v != v else format(v, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-s", type=float, default=240.0, help="loop budget per task and mode")
    ap.add_argument("--modes", default="quiet", help="quiet, overlap, or quiet,overlap")
    ap.add_argument("--tasks", default="softmax,matmul")
    ap.add_argument("--workers", type=int, default=0,
                    help="LoopConfig.compile_workers (candidates judged side by side); 0: the loop's default")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU under the interpreter")
    args = ap.parse_args()

    device = "cpu" if args.cpu_smoke else "cuda"
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            sys.exit("no GPU visible: run on the GPU machine, or pass --cpu-smoke")
    tmp = Path(tempfile.mkdtemp(prefix="kw_loop_throughput_"))
    tasks = write_tasks(tmp, "cpu" if args.cpu_smoke else "gpu")
    info = {**env_info(), "device": device, "budget_s": args.budget_s, "workers": args.workers, "scratch": str(tmp)}
    records, table_rows = [], []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in args.tasks.split(","):
        for mode in args.modes.split(","):
            rec = one_run(name, tasks[name], tmp / f"{name}_{mode}", mode, device, args.budget_s, args.workers)
            records.append(rec)
            table_rows.append([
                name, mode, rec["experiments"], fmt(rec["wall_s"], ".0f"), fmt(rec["exp_per_h"], ".0f"),
                fmt(rec["steady_exp_per_h"], ".0f"), rec["accepted"], rec["kept"], fmt(rec["best_vs_eager"], ".2f"),
                fmt(rec["check_s_median"], ".1f"), fmt(rec["time_s_median"], ".1f"), rec["stop_reason"].split(":")[0],
            ])
            table = fmt_table(HEADER, table_rows)
            if device == "cpu":
                table += "\n(cpu smoke: nothing timed; figures show the plumbing only)"
            save("loop_throughput" + ("_cpu_smoke" if args.cpu_smoke else ""), info, records, table, stamp)
            print(f"{name}/{mode}: {rec['experiments']} experiments in {rec['wall_s']:.0f} s "
                  f"({rec['abandoned']} abandoned in flight at the end)", flush=True)
    print(table, flush=True)


if __name__ == "__main__":
    main()
