"""Run the judge's adversarial zoo on a GPU and record every verdict (issue 3's GPU evidence).

    python bench/judge_zoo_gpu.py            # needs CUDA; ~2-4 minutes on an H100
Writes $OUT/judge_zoo_gpu.json (or bench/results/ when OUT is unset) and prints a table.
Also checks threat C5: an answer that poisons its CUDA context, then an honest answer in a fresh process.
"""
from __future__ import annotations

import datetime
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
import triton  # noqa: E402

from kernelwright.config import JudgeConfig  # noqa: E402
from kernelwright.judge import check  # noqa: E402
from test_judge_zoo import CHEATS, HONEST  # noqa: E402

ZOO = ROOT / "tests" / "judge_zoo"


def main() -> int:
    assert torch.cuda.is_available(), "this benchmark needs a CUDA GPU"
    out_dir = Path(os.environ.get("OUT") or ROOT / "bench" / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    cases = [(t, a, True) for t, a in HONEST] + [(t, a, False) for t, a, _, _ in CHEATS]
    cases += [("relu", "cheat_hang", False), ("relu", "cheat_oom", False),
              ("relu", "cheat_oob_store", False), ("relu", "honest_relu", True)]  # C5: fresh process after
    rows = []
    for task, answer, want in cases:
        cfg = JudgeConfig(device="cuda", timeout_s=60.0 if answer != "cheat_hang" else 20.0)
        t0 = time.monotonic()
        v = check(ZOO / "tasks" / f"{task}.py", ZOO / "answers" / f"{answer}.py", cfg)
        rows.append({"task": task, "answer": answer, "expected": "accept" if want else "reject",
                     "accepted": v.accepted, "ok": v.accepted == want, "stage": v.stage,
                     "reason": v.reason[:300], "kernel_share": v.kernel_share, "seconds": time.monotonic() - t0,
                     "sandbox": v.sandbox})
        r = rows[-1]
        share = "" if r["kernel_share"] is None else f"{r['kernel_share']:.0%}"
        print(f"{'OK ' if r['ok'] else 'BAD'} {answer:24s} {task:15s} {'ACCEPT' if v.accepted else 'reject'} "
              f"{v.stage:12s} {share:5s} {r['seconds']:6.1f}s  {v.reason[:90]}", flush=True)
    meta = {"command": "python bench/judge_zoo_gpu.py", "gpu": torch.cuda.get_device_name(0),
            "torch": torch.__version__, "triton": triton.__version__,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    (out_dir / "judge_zoo_gpu.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    bad = [r for r in rows if not r["ok"]]
    print(f"{len(rows) - len(bad)} passed, {len(bad)} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
