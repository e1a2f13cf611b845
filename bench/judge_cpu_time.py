"""Time one full check of a small honest answer on the CPU (Triton interpreter).

    python bench/judge_cpu_time.py [N]      # N checks of examples/relu_answer.py, default 3
Prints the median wall time and writes bench/results/judge_cpu_time.json with the machine and versions.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
import triton  # noqa: E402

from kernelwright.config import JudgeConfig  # noqa: E402
from kernelwright.judge import check  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    times, calls = [], 0
    for _ in range(n):
        t0 = time.monotonic()
        v = check(ROOT / "examples/relu_task.py", ROOT / "examples/relu_answer.py", JudgeConfig(device="cpu"))
        times.append(time.monotonic() - t0)
        assert v.accepted, v.reason
        calls = sum(s.configs for s in v.stages)
    res = {"command": f"python bench/judge_cpu_time.py {n}", "cpu": platform.processor() or platform.machine(),
           "cores": os.cpu_count(), "torch": torch.__version__, "triton": triton.__version__,
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "task": "examples/relu_task.py (16x257 fp32)", "calls_per_check": calls,
           "seconds": times, "median_s": statistics.median(times)}
    out = Path(os.environ.get("OUT") or ROOT / "bench" / "results")
    out.mkdir(parents=True, exist_ok=True)
    (out / "judge_cpu_time.json").write_text(json.dumps(res, indent=1))
    print(f"one check of a small honest answer on the CPU: median {res['median_s']:.1f} s over {n} "
          f"({calls} answer calls per check; {res['cores']} cores, other work on the machine)")


if __name__ == "__main__":
    main()
