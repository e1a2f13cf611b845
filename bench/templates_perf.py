"""The search proposer's templates, tuned, on the four headline memory-bound ops (bf16):
RMSNorm 8192x8192, softmax 8192x8192, LayerNorm 8192x4096, cross-entropy 8192x32768 logits
(the task files of bench/answers/headline/), against torch.compile max-autotune and Liger-Kernel.

    python bench/templates_perf.py                # H100: about 3-4 minutes (max-autotune compiles dominate)
    python bench/templates_perf.py --ops softmax --no-max-autotune
    python bench/templates_perf.py --cpu-smoke    # tiny sizes under the interpreter: plumbing only

Per op: SearchProposer's plan (capture -> regions -> families, configs pruned by the roofline
model), then tune.tune_in_process: each region's first --per-region configs, compiled in parallel
threads and successively halved by event timing of the whole ModelNew (L2 flush and 0.3 ms GPU lead per call) (in-process:
these are our own templates, not untrusted candidates). The winner is rendered to an answer
file, checked by the correctness judge, then timed through the timing judge
(kernelwright.judge.timer.time_answer: rotating inputs, L2 flush, outputs re-checked) beside
eager, compile max-autotune and Liger (rows missing when not importable).
GB/s = (inputs read once + outputs written once) / median; % of the measured copy ceiling.
Goal: >= 90% of the copy ceiling and faster than both compile max-autotune and Liger.
Results (raw JSON, table, command, GPU, versions, date) go to $OUT (default bench/results/).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from headline_ops import HEADER, env_info, fmt_table, report_rows, save, smoke_copy  # noqa: E402

OPS = ["rmsnorm", "softmax", "layernorm", "cross_entropy"]


def tune_point(task: Path, device: str, per_region: int) -> tuple:
    """(plan, best point, tuning log) for the task: the search proposer's plan, tuned in process."""
    from kernelwright.config import SearchConfig
    from kernelwright.propose.search.proposer import build_plan

    plan = build_plan(str(task), device, SearchConfig())
    return (plan, *retune(task, plan, device, per_region))


def retune(task: Path, plan, device: str, per_region: int) -> tuple:
    """(best point, tuning log) of `plan` (the task's, or a narrowed copy of it), tuned in process by
    event timing with the judge's lead; on a CPU the first config of each region (no timing there)."""
    from kernelwright.config import SearchConfig
    from kernelwright.propose.search import tune
    from kernelwright.propose.search.proposer import _capture_task, render_point

    if device == "cpu":
        return tuple(0 for _ in plan.regions), []
    import torch

    t, model, inputs, _ = _capture_task(str(task))
    inputs = [x.cuda() if isinstance(x, torch.Tensor) else x for x in inputs]
    init = t.init_inputs(seed=0)

    from kernelwright.judge.timer_worker import _lead_cycles

    lead = _lead_cycles(torch, 300.0)
    flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")

    def time_fn(fn) -> float:
        """Median seconds of fn, each call after an L2 flush and 0.3 ms of queued GPU spin (as the
        timing judge does since session 5: do_bench's flush alone left the host arriving late with
        a ~0.1 ms launch, and the tuner picked a LayerNorm tile by host time)."""
        fn()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        n = max(10, min(500, int(0.04 / max(time.perf_counter() - t0, 1e-6))))
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
        for a, b in ev:
            flush.zero_()
            torch.cuda._sleep(lead)
            a.record()
            fn()
            b.record()
        torch.cuda.synchronize()
        ts = sorted(a.elapsed_time(b) for a, b in ev)
        return ts[len(ts) // 2] * 1e-3

    return tune.tune_in_process(plan, init, inputs, time_fn, per_region=per_region, render=render_point,
                                rounds=SearchConfig().halving_rounds)


def tune_op(task: Path, device: str, per_region: int) -> tuple[str, list[dict], str]:
    """(answer source, tuning log, label) of the best tuned point."""
    from kernelwright.propose.search.proposer import render_point

    plan, point, log = tune_point(task, device, per_region)
    src, label = render_point(plan, point)
    return src, log, label


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ops", default=",".join(OPS), help=f"comma list of {OPS}")
    ap.add_argument("--per-region", type=int, default=8, help="configs per region entering successive halving")
    ap.add_argument("--no-max-autotune", action="store_true", help="time torch.compile default instead")
    ap.add_argument("--budget-s", type=float, default=220.0, help="stop starting new ops after this many seconds")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny sizes, interpreter, host clock: plumbing only")
    args = ap.parse_args()

    from kernelwright.config import JudgeConfig, TimerConfig
    from kernelwright.judge import check
    from kernelwright.judge.timer import time_answer

    device = "cpu" if args.cpu_smoke else "cuda"
    baselines = ["eager"] if args.cpu_smoke else ["eager", "compile" if args.no_max_autotune else "compile-max-autotune", "liger"]
    cfg = TimerConfig(device=device)
    if args.cpu_smoke:
        cfg.flush_l2_bytes, cfg.warmup_ms, cfg.rep_ms, cfg.max_reps = 1 << 16, 1.0, 2.0, 10
    info = env_info()
    print(f"# {info}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="kw-templates-"))
    rows, records = [], []
    t0 = time.monotonic()
    for op in [o for o in args.ops.split(",") if o]:
        if time.monotonic() - t0 > args.budget_s:
            rows.append([op, "-", "skipped", "", "", "", "", "", f"over --budget-s {args.budget_s:g}"])
            continue
        task = HERE / "answers" / "headline" / f"task_{op}.py"
        if args.cpu_smoke:
            task = smoke_copy(task, tmp)
        t_op = time.monotonic()
        try:
            src, log, label = tune_op(task, device, args.per_region)
            answer = tmp / f"answer_{op}.py"
            answer.write_text(src)
            v = check(task, answer, JudgeConfig(device=device, timeout_s=300, max_variant_elements=1 << 22,
                                                min_sweep_configs=4))
            if not v.accepted:
                rows.append([op, "answer", "REJECTED", "", "", "", "", "", v.reason[:90]])
                records.append({"op": op, "label": label, "check": v.to_dict(), "tuning": log})
                continue
            rep = time_answer(task, answer, cfg, baselines=tuple(baselines), host_clock_ok=args.cpu_smoke)
        except Exception as exc:  # noqa: BLE001 - one op failing must not lose the others
            rows.append([op, "-", "ERROR", "", "", "", "", "", f"{type(exc).__name__}: {str(exc)[:100]}"])
            records.append({"op": op, "error": repr(exc)})
            continue
        rows.extend(report_rows(op, rep))
        pct = rep.pct_of_ceiling
        faster = {k: rep.speedup.get(k) for k in baselines if k != "eager"}
        goal = (pct is not None and pct >= 90.0) and all(s is not None and s > 1.0 for s in faster.values())
        print(fmt_table(HEADER, report_rows(op, rep)), flush=True)
        print(f"  {op}: tuned {label}; goal (>=90% of copy ceiling, faster than {list(faster)}): "
              f"{'MET' if goal else 'MISSED'} ({pct and round(pct, 1)}% ; speedups {faster}); "
              f"{time.monotonic() - t_op:.0f} s", flush=True)
        records.append({"op": op, "label": label, "goal_met": goal, "tuning": log, "report": rep.to_dict(),
                        "answer": src})
    table = fmt_table(HEADER, rows)
    path = save("templates_perf" + ("_cpu_smoke" if args.cpu_smoke else ""), info, records, table)
    print("\n" + table)
    print(f"\nresults: {path}  (total {time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
