"""Where does one experiment's time go? Profiles the correctness check and the per-candidate timing
of a few memory-bound answers at their full sizes (issue 5's throughput work).

    python bench/check_profile.py                 # needs CUDA; ~2-3 minutes on an H100
    python bench/check_profile.py --cpu-smoke     # tiny sizes under the interpreter (plumbing only)

For each (task, answer): the judge's stages with their seconds, the wall time spent in each worker
request kind (build / call / share: the worker's side, including its Triton compiles and the pipe),
the top functions of the judge's own process by cumulative time (cProfile), then what the loop does
per candidate on a GPU: TaskTimer set-up (input sets, references, ceilings), its first candidate
(times eager once), and a candidate beside an incumbent. Each part is printed as soon as it ends.
Writes check_profile_STAMP.{json,txt} to $OUT.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from headline_ops import env_info, fmt_table, save  # noqa: E402

HEAD = HERE / "answers" / "headline"
CASES = [("softmax", HEAD / "task_softmax.py", HEAD / "answer_softmax.py"),
         ("rmsnorm", HEAD / "task_rmsnorm.py", HEAD / "answer_rmsnorm.py")]


def _smoke_cases(tmp: Path) -> list[tuple[str, Path, Path]]:
    out = []
    for name, task, ans in CASES:
        src = task.read_text()
        for big in ("8192", "4096", "32768"):
            src = src.replace(big, "64")
        p = tmp / task.name
        p.write_text(src)
        out.append((name, p, ans))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu-smoke", action="store_true")
    ap.add_argument("--top", type=int, default=18)
    ap.add_argument("--cases", default=",".join(c[0] for c in CASES))
    args = ap.parse_args()

    from kernelwright.config import JudgeConfig, TimerConfig
    from kernelwright.judge import check
    from kernelwright.judge import sandbox

    device = "cpu" if args.cpu_smoke else "cuda"
    cases = _smoke_cases(Path(tempfile.mkdtemp())) if args.cpu_smoke else CASES
    cases = [c for c in cases if c[0] in args.cases.split(",")]
    spent: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    orig_request, orig_start = sandbox.Worker.request, sandbox.Worker.start

    def request(self, body):
        t = time.monotonic()
        try:
            return orig_request(self, body)
        finally:
            spent[body.get("cmd", "?")] += time.monotonic() - t
            counts[body.get("cmd", "?")] += 1

    def start(self):
        t = time.monotonic()
        try:
            return orig_start(self)
        finally:
            spent["start"] += time.monotonic() - t
            counts["start"] += 1

    sandbox.Worker.request, sandbox.Worker.start = request, start
    info = env_info()
    records, lines = [], []
    for name, task, ans in cases:
        spent.clear()
        counts.clear()
        prof = cProfile.Profile()
        t0 = time.monotonic()
        prof.enable()
        v = check(task, ans, JudgeConfig(device=device, timeout_s=600))
        prof.disable()
        wall = time.monotonic() - t0
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(args.top)
        rec = {"case": name, "accepted": v.accepted, "reason": v.reason, "check_s": wall,
               "stages": [(st.name, round(st.seconds, 2), st.configs) for st in v.stages],
               "requests": {k: (round(spent[k], 2), counts[k]) for k in spent}, "profile": s.getvalue()}
        lines.append(f"== {name}: check {wall:.1f} s accepted={v.accepted}")
        lines.append("   stages: " + ", ".join(f"{n} {sec}s/{c} calls" for n, sec, c in rec["stages"]))
        lines.append("   worker requests: " + ", ".join(f"{k} {t}s x{c}" for k, (t, c) in rec["requests"].items()))
        print("\n".join(lines[-3:]) + "\n" + s.getvalue(), flush=True)
        lines.append(s.getvalue())
        if device == "cuda":
            from kernelwright.judge.timer import TaskTimer

            box: dict = {}
            for label, fn in (("TaskTimer set-up", lambda: box.setdefault("t", TaskTimer(task, TimerConfig()))),
                              ("first candidate (+ eager once)", lambda: box["t"].candidate(ans)),
                              ("candidate beside incumbent", lambda: box["t"].candidate(ans, ans))):
                spent.clear()
                counts.clear()
                t0 = time.monotonic()
                r = fn()
                dt = time.monotonic() - t0
                rep = getattr(r, "report", None)
                rec[label] = {"s": dt, "requests": {k: (round(spent[k], 2), counts[k]) for k in spent},
                              "accepted": getattr(rep, "accepted", None), "reason": getattr(rep, "reason", None),
                              "median_ms": getattr(getattr(rep, "answer", None), "median_ms", None),
                              "speedup": getattr(rep, "speedup", None)}
                lines.append(f"   {label}: {dt:.1f} s; worker requests: "
                             + ", ".join(f"{k} {t:.1f}s x{c}" for k, (t, c) in rec[label]["requests"].items())
                             + (f"; {rep.reason}; speedup {rep.speedup}" if rep is not None else ""))
                print(lines[-1], flush=True)
        records.append(rec)
    table = fmt_table(["case", "check s", "stages"], [[r["case"], f"{r['check_s']:.1f}",
                                                        " ".join(f"{n}={s}" for n, s, _ in r["stages"])]
                                                       for r in records])
    save("check_profile" + ("_cpu_smoke" if args.cpu_smoke else ""), info, records, table + "\n\n" + "\n".join(lines))
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
