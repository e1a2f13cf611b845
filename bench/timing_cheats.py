"""The timing cheats of group B that a GPU can show, each timed by the timing judge
(kernelwright.judge.timer.time_answer). Each must come out REJECTED (timing invalid) or FLAGGED
(timed honestly, marked for review); the two honest controls must come out clean, one in events
mode and one (a few-microsecond kernel) in graph mode.

    python bench/timing_cheats.py              # H100: about 1.5-2 minutes (a fresh worker per answer)
    python bench/timing_cheats.py --cpu-smoke  # the cheats that need no GPU, tiny sizes, host clock

Answers: bench/answers/cheats/*.py against bench/answers/cheats/task_softmax.py (fp32 4096x4096).
The correctness check is deliberately NOT run first: this measures the timer's own defenses.
Results (raw JSON, the verdict table, command, GPU, versions, date) go to $OUT (default bench/results/).
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from headline_ops import env_info, fmt_table, save  # noqa: E402

CHEATS = HERE / "answers" / "cheats"
# (answer, task, threat, what should catch it, needs cuda)
CASES = [
    ("honest", "task_softmax", "control", "accepted, no flag (events mode)", False),
    ("honest", "task_softmax_small", "control", "accepted, no flag (graph mode)", False),
    ("other_stream", "task_softmax", "B1", "flag: work outlasting the current stream, counted", True),
    ("background_thread", "task_softmax", "B2", "reject: deferred work / new thread / wrong outputs", False),
    ("lazy_output", "task_softmax", "B3", "reject: not a plain torch.Tensor", False),
    ("cache_by_pointer", "task_softmax", "B4", "reject: timed outputs differ (same buffer, new contents)", False),
    ("cross_call_batching", "task_softmax", "B5", "reject: outputs written after return", False),
    ("patched_timer", "task_softmax", "B7", "flag: timing functions replaced (judge uses its own)", True),
    ("l2_persistence", "task_softmax", "B10", "flag: persisting-L2 carve-out set; reset before every call", True),
]
HEADER = ["answer", "threat", "verdict", "mode", "median ms", "expected", "why"]


def verdict(rep) -> str:
    if not rep.accepted:
        return "REJECTED"
    return "FLAGGED" if rep.flagged else "accepted"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="GPU-free cheats only, tiny sizes, host clock")
    args = ap.parse_args()

    from kernelwright.config import TimerConfig
    from kernelwright.judge.timer import time_answer

    cfg = TimerConfig(device="cpu" if args.cpu_smoke else "cuda", rep_ms=50.0)
    if args.cpu_smoke:
        cfg.flush_l2_bytes, cfg.warmup_ms, cfg.rep_ms, cfg.max_reps = 1 << 16, 1.0, 2.0, 10
    tmp = Path(tempfile.mkdtemp(prefix="kw-cheats-"))
    info = env_info()
    print(f"# {info}", flush=True)
    rows, records, caught, controls_ok = [], [], 0, True
    t0 = time.monotonic()
    for answer, task_name, threat, expected, needs_cuda in CASES:
        if args.cpu_smoke and needs_cuda:
            continue
        task = CHEATS / f"{task_name}.py"
        if args.cpu_smoke:
            src = re.sub(r"^(M|N) = \d+$", lambda m: f"{m.group(1)} = {5 if m.group(1) == 'M' else 37}",
                         task.read_text(), flags=re.M)
            task = tmp / task.name
            task.write_text(src)
        t_case = time.monotonic()
        try:
            rep = time_answer(task, CHEATS / f"{answer}.py", cfg, baselines=(), host_clock_ok=args.cpu_smoke)
        except Exception as exc:  # noqa: BLE001 - recorded as an error row
            rows.append([answer, threat, "ERROR", "", "", expected, f"{type(exc).__name__}: {str(exc)[:120]}"])
            records.append({"answer": answer, "error": repr(exc)})
            controls_ok &= threat != "control"
            continue
        v = verdict(rep)
        why = rep.reason if not rep.accepted else ("; ".join(rep.flagged) or rep.reason)
        rows.append([answer + ("" if task_name == "task_softmax" else " (small)"), threat, v, rep.mode,
                     f"{rep.answer.median_ms:.4f}" if rep.answer else "", expected, why[:160]])
        records.append({"answer": answer, "task": task_name, "threat": threat, "verdict": v,
                        "seconds": time.monotonic() - t_case, "report": rep.to_dict()})
        if threat == "control":
            controls_ok &= v == "accepted"
        else:
            caught += v != "accepted"
        print(fmt_table(HEADER, rows[-1:]), flush=True)
    n_cheats = sum(1 for r in rows if r[1] != "control")
    table = fmt_table(HEADER, rows)
    summary = f"cheats caught: {caught}/{n_cheats}; honest controls clean: {controls_ok}"
    path = save("timing_cheats" + ("_cpu_smoke" if args.cpu_smoke else ""), info, records, table + "\n\n" + summary)
    print("\n" + table + "\n\n" + summary)
    print(f"results: {path}; total {time.monotonic() - t0:.0f} s")
    return 0 if controls_ok and caught == n_cheats else 1


if __name__ == "__main__":
    sys.exit(main())
