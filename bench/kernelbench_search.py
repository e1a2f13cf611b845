"""KernelBench level-1/2 problems at their own sizes, fp32, solved by the search proposer alone
(templates + tuning, no LLM): each answer is checked by the correctness judge (strict fp32
tolerance, TF32 pinned off for reference and answer alike) and timed through the timing judge
beside eager and torch.compile. Reports per problem and the geomean speedup vs torch.compile.

    python bench/kernelbench_search.py                    # H100: ~6-8 min for the 27 problems, 4 side
                                                          # by side (stops starting new ones after
                                                          # --budget-s)
    python bench/kernelbench_search.py --shard 1/2        # half of the list
    python bench/kernelbench_search.py --problems level1/40_LayerNorm.py
    python bench/kernelbench_search.py --cpu-smoke        # tiny sizes under the interpreter: plumbing

Per problem: the plan's configs are tuned in process (triton.testing.do_bench, the GPU alone:
judge/gate.py), the best point is rendered and checked, then timed. When the best point runs a
matmul as emulated fp32 (bf16x6 or 3xTF32) and the judge rejects it for accuracy, the plan without that
precision is tuned again and its best point checked (at most twice: then IEEE fp32 alone): the answer must be right before it is fast. Problems run --parallel side by side:
their checks share the GPU, tuning and every timed batch have it alone.

Problems are read from .kb/KernelBench/ (git-ignored; carried by the lead). Chosen: every problem
here moves under ~600 MB of inputs at its own size (most level-1 problems now move 4-8 GB, too slow
to ship to the judge's worker repeatedly, and level1/9 and level1/7 ran the judge out of memory on
an H100) and is covered by the template families (level-1 norms/activation/losses, matmul, level-2
GEMM + epilogue/reduction/norm chains). Results (raw JSON incl. each answer and its tuning log, the
table, command, GPU, versions, date) go to $OUT (default bench/results/), rewritten after every
problem under one name.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from headline_ops import env_info, fmt_table, kb_smoke_copy, save  # noqa: E402
from templates_perf import retune, tune_point  # noqa: E402

KB = HERE.parent / ".kb" / "KernelBench"
PROBLEMS = [
    "level1/40_LayerNorm.py",
    "level1/88_MinGPTNewGelu.py",
    "level1/95_CrossEntropyLoss.py",
    "level1/1_Square_matrix_multiplication_.py",
    "level2/12_Gemm_Multiply_LeakyReLU.py",
    "level2/29_Matmul_Mish_Mish.py",
    "level2/99_Matmul_GELU_Softmax.py",
    "level2/14_Gemm_Divide_Sum_Scaling.py",
    "level2/22_Matmul_Scale_ResidualAdd_Clamp_LogSumExp_Mish.py",
    "level2/41_Gemm_BatchNorm_GELU_ReLU.py",
    "level2/45_Gemm_Sigmoid_LogSumExp.py",
    "level2/53_Gemm_Scaling_Hardtanh_GELU.py",
    "level2/63_Gemm_ReLU_Divide.py",
    "level2/64_Gemm_LogSumExp_LeakyReLU_LeakyReLU_GELU_GELU.py",
    "level2/70_Gemm_Sigmoid_Scaling_ResidualAdd.py",
    "level2/80_Gemm_Max_Subtract_GELU.py",
    "level2/81_Gemm_Swish_Divide_Clamp_Tanh_Clamp.py",
    "level2/84_Gemm_BatchNorm_Scaling_Softmax.py",
    "level2/86_Matmul_Divide_GELU.py",
    "level2/9_Matmul_Subtract_Multiply_ReLU.py",
    "level2/40_Matmul_Scaling_ResidualAdd.py",
    "level2/97_Matmul_BatchNorm_BiasAdd_Divide_Swish.py",
    "level2/76_Gemm_Add_ReLU.py",
    "level2/59_Matmul_Swish_Scaling.py",
    "level2/56_Matmul_Sigmoid_Sum.py",
    "level2/68_Matmul_Min_Subtract.py",
    "level2/95_Matmul_Add_Swish_Tanh_GELU_Hardtanh.py",
]
# level1/95_CrossEntropyLoss computes `input_shape = (num_classes,)` at import: before Task.overridden
# recomputed derived constants, its size variants gave targets past the class count, and on cuda the
# judge's own reference tripped a device-side assert that poisoned the judge process for every
# problem side by side (H100, c6_kb_search.log in bench/results/h100-2026-11-22-s3).
HEADER = ["problem", "check", "answer ms", "eager ms", "compile ms", "vs eager", "vs compile", "beats best", "tuned"]


def smoke_copy(task: Path, tmp: Path) -> Path:
    return kb_smoke_copy(task, tmp, 7)


def narrowed(plan, point: tuple):
    """The plan without the emulated-fp32 precisions ("tf32x3", "bf16x6") that `point` used in any
    region, for a retry after the judge rejected the point for accuracy (None when the point used
    none, or a region would be left with nothing). The remaining configs are tuned afresh: a tile
    that won on tensor cores is no guide for another precision (call 7 rendered tf32x3 winners'
    tiles as IEEE: 0.43x compile on level2/12)."""
    import dataclasses

    used = {plan.regions[k].configs[i].get("PRECISION") for k, i in enumerate(point)} & {"tf32x3", "bf16x6"}
    if not used:
        return None
    regions = []
    for rp in plan.regions:
        keep = [j for j, c in enumerate(rp.configs) if c.get("PRECISION") not in used]
        if not keep:
            return None
        if len(keep) < len(rp.configs):
            rp = dataclasses.replace(rp, configs=[rp.configs[j] for j in keep],
                                     modelled_s=[rp.modelled_s[j] for j in keep] if rp.modelled_s else rp.modelled_s)
        regions.append(rp)
    return dataclasses.replace(plan, regions=regions)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", default="", help="comma list of paths under .kb/KernelBench/ (default: the list)")
    ap.add_argument("--shard", default="", help="i/n: run the i-th of n interleaved slices of the list")
    ap.add_argument("--per-region", type=int, default=4, help="configs per region entering successive halving")
    ap.add_argument("--budget-s", type=float, default=480.0, help="stop starting new problems after this many seconds")
    ap.add_argument("--parallel", type=int, default=4, help="problems side by side (checks overlap; timing is alone)")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny sizes, interpreter, host clock: plumbing only")
    args = ap.parse_args()

    from concurrent.futures import ThreadPoolExecutor

    import threading

    import torch

    from kernelwright.config import JudgeConfig, TimerConfig
    from kernelwright.judge.inputs import count_footprint
    from kernelwright.loop.run import check_bytes
    from kernelwright.task import load_task
    from kernelwright.judge import check
    from kernelwright.judge.gate import GpuGate
    from kernelwright.judge.timer import time_answer
    from kernelwright.propose.search.proposer import render_point

    probs = [p for p in args.problems.split(",") if p] or PROBLEMS
    if args.shard:
        i, n = (int(x) for x in args.shard.split("/"))
        probs = probs[i - 1::n]
    device = "cpu" if args.cpu_smoke else "cuda"
    cfg = TimerConfig(device=device)
    if args.cpu_smoke:
        cfg.flush_l2_bytes, cfg.warmup_ms, cfg.rep_ms, cfg.max_reps = 1 << 16, 1.0, 2.0, 10
    baselines = ("eager",) if args.cpu_smoke else ("eager", "compile")
    jcfg = JudgeConfig(device=device, timeout_s=300, max_variant_elements=1 << 22, min_sweep_configs=4,
                       kernel_share=False)
    info = env_info()
    print(f"# {info}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="kw-kbsearch-"))
    # Enabled on a CPU too: torch.export tracing (under alone) must not overlap the judge's
    # in-process reference runs (under shared) of another problem; dynamo's state is global.
    gate = GpuGate(enabled=True)
    name = "kernelbench_search" + ("_cpu_smoke" if args.cpu_smoke else "")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    t0 = time.monotonic()

    # GPU memory shared by the problems side by side: each holds what one check of it needs
    # (loop.run.check_bytes) until it ends; one that needs more than the room runs alone. (Session 5:
    # level1/24_LogSoftmax, 6.4 GB of input, beside level1/95: both answers' workers out of memory.)
    room = {"free": (torch.cuda.get_device_properties(0).total_memory // 2) if device == "cuda" else 1 << 62,
            "running": 0}
    room["total"] = room["free"]
    mem = threading.Condition()

    def need(task: Path) -> int:
        try:
            io, peak = count_footprint(load_task(task), {})
            return min(check_bytes(io, peak), room["total"])
        except Exception:  # noqa: BLE001 - a task that cannot be measured: its check says why
            return 0

    def one(prob: str) -> dict | None:
        """The problem's record (answer, check, report or error); None when skipped for the budget."""
        if time.monotonic() - t0 > args.budget_s:
            return None
        task = KB / prob
        if args.cpu_smoke:
            task = smoke_copy(task, tmp)
        n = need(task)
        with mem:
            mem.wait_for(lambda: room["running"] == 0 or room["free"] >= n)
            room["free"] -= n
            room["running"] += 1
        try:
            return solve(prob, task)
        finally:
            with mem:
                room["free"] += n
                room["running"] -= 1
                mem.notify_all()

    def solve(prob: str, task: Path) -> dict:
        t_p = time.monotonic()
        rec: dict = {"problem": prob}
        try:
            with gate.alone():  # do_bench in process: nothing else on the GPU while it measures
                plan, point, log = tune_point(task, device, args.per_region)
            rec["tuning"] = log
            for attempt in range(3):
                if attempt:  # an emulated-fp32 point failed accuracy: tune the other precisions
                    plan = narrowed(plan, point)
                    if plan is None:
                        break
                    with gate.alone():
                        point, log = retune(task, plan, device, args.per_region)
                    rec[f"tuning_retry{attempt}"] = log
                src, label = render_point(plan, point)
                answer = tmp / f"{task.stem}_answer{attempt}.py"
                answer.write_text(src)
                v = check(task, answer, jcfg, gate=gate)
                rec.setdefault("checks", []).append({"label": label, "check": v.to_dict()})
                rec.update(label=label, answer=src, check=v.to_dict())
                if v.accepted or v.stage not in ("numerics", "integrity"):
                    break
            if rec["check"]["accepted"]:
                rec["report"] = time_answer(task, answer, cfg, baselines=baselines, host_clock_ok=args.cpu_smoke,
                                            gate=gate).to_dict()
        except Exception as exc:  # noqa: BLE001 - one problem failing must not lose the others
            rec["error"] = f"{type(exc).__name__}: {exc}"
            rec["traceback"] = traceback.format_exc()
        rec["seconds"] = time.monotonic() - t_p
        return rec

    rows, records, vs_compile = [], [], []
    beats = 0
    with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        futures = {prob: pool.submit(one, prob) for prob in probs}
        for prob in probs:  # reported in list order, each as soon as it and those before it end
            rec = futures[prob].result()
            if rec is None:
                rows.append([prob, "skipped", "", "", "", "", "", "", f"over --budget-s {args.budget_s:g}"])
                continue
            records.append(rec)
            rep, chk = rec.get("report"), rec.get("check")
            if "error" in rec:
                rows.append([prob, "ERROR", "", "", "", "", "", "", rec["error"][:80]])
            elif not chk["accepted"]:
                rows.append([prob, f"REJECTED ({chk['stage']})", "", "", "", "", "", "", chk["reason"][:70]])
            elif not rep["accepted"]:
                rows.append([prob, "TIMING REJECTED", "", "", "", "", "", "", rep["reason"][:70]])
            else:
                a = rep["answer"]["median_ms"]
                e, c = rep["baselines"].get("eager"), rep["baselines"].get("compile")
                best = min([s["median_ms"] for s in (e, c) if s], default=None)
                win = best is not None and a < best
                beats += int(win)
                if c:
                    vs_compile.append(c["median_ms"] / a)
                rows.append([
                    prob, "accepted", f"{a:.4f}", f"{e['median_ms']:.4f}" if e else "-",
                    f"{c['median_ms']:.4f}" if c else "-", f"{rep['speedup'].get('eager', float('nan')):.2f}x",
                    f"{rep['speedup']['compile']:.2f}x" if c else "-", "yes" if win else "no", rec["label"][:60],
                ])
            print(fmt_table(HEADER, rows[-1:]), f"({rec['seconds']:.0f} s, {len(rec.get('checks', []))} check(s))",
                  flush=True)
            save(name, info, records, fmt_table(HEADER, rows), stamp)  # keep what is measured so far
    table = fmt_table(HEADER, rows)
    geo = math.exp(sum(math.log(x) for x in vs_compile) / len(vs_compile)) if vs_compile else float("nan")
    done = sum(1 for r in rows if r[1] == "accepted")
    summary = (f"accepted {done}/{len(probs)}; faster than the best of eager and compile on {beats}/{len(probs)} "
               f"({100 * beats / max(1, len(probs)):.0f}%, goal >= 70%); geomean speedup vs torch.compile "
               f"{geo:.3f} over {len(vs_compile)} problems")
    path = save(name, info, records, table + "\n\n" + summary, stamp)
    print("\n" + table + "\n\n" + summary)
    print(f"\nresults: {path}  (total {time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
