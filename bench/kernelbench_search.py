"""KernelBench level-1/2 problems at their own sizes, fp32, solved by the search proposer alone
(templates + tuning, no LLM): each answer is checked by the correctness judge (strict fp32
tolerance, TF32 pinned off for reference and answer alike) and timed through the timing judge
beside eager and torch.compile. Reports per problem and the geomean speedup vs torch.compile.

    python bench/kernelbench_search.py                    # H100: ~4 min for the first ~12 problems
                                                          # (stops starting new ones after --budget-s)
    python bench/kernelbench_search.py --shard 1/2        # the other half of the list (run both halves
    python bench/kernelbench_search.py --shard 2/2        #  for all problems: ~4 min each)
    python bench/kernelbench_search.py --problems level1/40_LayerNorm.py
    python bench/kernelbench_search.py --cpu-smoke        # tiny sizes under the interpreter: plumbing

Problems are read from .kb/KernelBench/ (git-ignored; carried by the lead). Chosen: every problem
here moves under ~600 MB of inputs at its own size (several level-1 problems move 6-8 GB, too slow
to ship to the judge's worker repeatedly) and is covered by the template families (level-1
norms/softmax/losses/activation, matmuls, level-2 GEMM + epilogue/reduction/norm chains).
Results (raw JSON incl. each answer and its tuning log, the table, command, GPU, versions, date)
go to $OUT (default bench/results/), rewritten after every problem.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from headline_ops import env_info, fmt_table, kb_smoke_copy, save  # noqa: E402
from templates_perf import tune_op  # noqa: E402

KB = HERE.parent / ".kb" / "KernelBench"
PROBLEMS = [
    "level1/40_LayerNorm.py",
    "level1/88_MinGPTNewGelu.py",
    "level1/95_CrossEntropyLoss.py",
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
    "level1/9_Tall_skinny_matrix_multiplication_.py",
    "level1/7_Matmul_with_small_K_dimension_.py",
    "level1/1_Square_matrix_multiplication_.py",
]
HEADER = ["problem", "check", "answer ms", "eager ms", "compile ms", "vs eager", "vs compile", "beats best", "tuned"]


def smoke_copy(task: Path, tmp: Path) -> Path:
    return kb_smoke_copy(task, tmp, 7)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", default="", help="comma list of paths under .kb/KernelBench/ (default: the list)")
    ap.add_argument("--shard", default="", help="i/n: run the i-th of n interleaved slices of the list")
    ap.add_argument("--per-region", type=int, default=4, help="configs per region entering successive halving")
    ap.add_argument("--budget-s", type=float, default=220.0, help="stop starting new problems after this many seconds")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny sizes, interpreter, host clock: plumbing only")
    args = ap.parse_args()

    from kernelwright.config import JudgeConfig, TimerConfig
    from kernelwright.judge import check
    from kernelwright.judge.timer import time_answer

    probs = [p for p in args.problems.split(",") if p] or PROBLEMS
    if args.shard:
        i, n = (int(x) for x in args.shard.split("/"))
        probs = probs[i - 1::n]
    device = "cpu" if args.cpu_smoke else "cuda"
    cfg = TimerConfig(device=device)
    if args.cpu_smoke:
        cfg.flush_l2_bytes, cfg.warmup_ms, cfg.rep_ms, cfg.max_reps = 1 << 16, 1.0, 2.0, 10
    baselines = ("eager",) if args.cpu_smoke else ("eager", "compile")
    info = env_info()
    print(f"# {info}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="kw-kbsearch-"))
    rows, records, vs_compile = [], [], []
    beats = 0
    t0 = time.monotonic()
    for prob in probs:
        if time.monotonic() - t0 > args.budget_s:
            rows.append([prob, "skipped", "", "", "", "", "", "", f"over --budget-s {args.budget_s:g}"])
            continue
        task = KB / prob
        if args.cpu_smoke:
            task = smoke_copy(task, tmp)
        t_p = time.monotonic()
        rec: dict = {"problem": prob}
        try:
            src, log, label = tune_op(task, device, args.per_region)
            rec.update(label=label, tuning=log, answer=src)
            answer = tmp / f"{task.stem}_answer.py"
            answer.write_text(src)
            v = check(task, answer, JudgeConfig(device=device, timeout_s=300, max_variant_elements=1 << 22,
                                                min_sweep_configs=4))
            rec["check"] = v.to_dict()
            if not v.accepted:
                rows.append([prob, f"REJECTED ({v.stage})", "", "", "", "", "", "", v.reason[:70]])
                records.append(rec)
                continue
            rep = time_answer(task, answer, cfg, baselines=baselines, host_clock_ok=args.cpu_smoke)
            rec["report"] = rep.to_dict()
        except Exception as exc:  # noqa: BLE001 - one problem failing must not lose the others
            rows.append([prob, "ERROR", "", "", "", "", "", "", f"{type(exc).__name__}: {str(exc)[:80]}"])
            rec["error"] = repr(exc)
            records.append(rec)
            continue
        a = rep.answer.median_ms if rep.answer else None
        e = rep.baselines.get("eager")
        c = rep.baselines.get("compile")
        best = min([s.median_ms for s in (e, c) if s is not None], default=None)
        win = a is not None and best is not None and a < best
        beats += int(win)
        if c is not None and a:
            vs_compile.append(c.median_ms / a)
        rows.append([
            prob, "accepted" if rep.accepted else "TIMING REJECTED",
            f"{a:.4f}" if a else "-", f"{e.median_ms:.4f}" if e else "-", f"{c.median_ms:.4f}" if c else "-",
            f"{rep.speedup.get('eager', float('nan')):.2f}x", f"{rep.speedup.get('compile', float('nan')):.2f}x" if c else "-",
            "yes" if win else "no", label[:60],
        ])
        records.append(rec)
        print(fmt_table(HEADER, rows[-1:]), f"({time.monotonic() - t_p:.0f} s)", flush=True)
        save("kernelbench_search" + ("_cpu_smoke" if args.cpu_smoke else ""), info, records, fmt_table(HEADER, rows))
    table = fmt_table(HEADER, rows)
    geo = math.exp(sum(math.log(x) for x in vs_compile) / len(vs_compile)) if vs_compile else float("nan")
    done = sum(1 for r in rows if r[1] == "accepted")
    summary = (f"accepted {done}/{len(probs)}; faster than the best of eager and compile on {beats}/{len(probs)} "
               f"({100 * beats / max(1, len(probs)):.0f}%, goal >= 70%); geomean speedup vs torch.compile "
               f"{geo:.3f} over {len(vs_compile)} problems")
    path = save("kernelbench_search" + ("_cpu_smoke" if args.cpu_smoke else ""), info, records, table + "\n\n" + summary)
    print("\n" + table + "\n\n" + summary)
    print(f"\nresults: {path}  (total {time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
