"""End-to-end benchmark of the whole pipeline on two models, on one GPU, in one run.

Expected runtime on an H100: about 5-6 minutes (2 models x [--budget, default 80 s, which covers
profile + capture + the optimization loop; then the whole-model check ~30-60 s and the timing beside
eager and torch.compile ~30-60 s]). Raise --budget for better kernels, at the cost of time.

Models:
  1. examples/transformer_block.py at hidden 2048 (16 heads x 128), seq 2048, batch 4, FFN 5632, bf16
  2. .kb/KernelBench/level3/44_MiniGPTBlock.py at its own sizes (fp32)
For each: `kernelwright optimize` (search proposer, cuda) with a short budget, then the optimized
model is judged and timed beside eager and torch.compile in one timing run; the Amdahl predictions
(from the priors, and from the measured task speedups) are printed beside the measured speedup.

Writes to $OUT (default bench/results/e2e_models_<date>/): the run directories, e2e_models.json
(every figure, the command, GPU name, torch/triton versions, date) and e2e_models.md (the table).

    python bench/e2e_models.py                 # on the GPU
    python bench/e2e_models.py --cpu-smoke     # the same logic on a CPU, tiny sizes, nothing timed
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

if "--cpu-smoke" in sys.argv:  # before anything imports triton
    os.environ["TRITON_INTERPRET"] = "1"

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

# (name, source file relative to the repo root, constants to set on the GPU, constants for --cpu-smoke)
MODELS = [
    (
        "transformer_block_h2048_s2048_b4_bf16",
        "examples/transformer_block.py",
        {"BATCH": "4", "SEQ": "2048", "HEADS": "16", "HEAD_DIM": "128", "FFN": "5632", "DTYPE": "torch.bfloat16"},
        {"BATCH": "2", "SEQ": "8", "HEADS": "2", "HEAD_DIM": "8", "FFN": "24"},
    ),
    (
        "kb_level3_44_MiniGPTBlock",
        ".kb/KernelBench/level3/44_MiniGPTBlock.py",
        {},
        {"batch_size": "2", "max_seqlen": "16", "seq_len": "8", "n_embd": "32", "n_head": "4"},
    ),
]


def set_constants(source: str, values: dict[str, str]) -> str:
    """Rewrite module-level `NAME = ...` lines; every name must be found exactly once."""
    for name, value in values.items():
        source, n = re.subn(rf"^{name}\s*=.*$", f"{name} = {value}", source, count=1, flags=re.MULTILINE)
        if n != 1:
            raise SystemExit(f"constant {name} not found in the model file")
    return source


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU (interpreter); nothing timed")
    ap.add_argument("--budget", default="80s", help="profile + optimization budget per model (default 80s)")
    ap.add_argument("--max-experiments", type=int, default=None, help="cap per model (default: the budget decides)")
    ap.add_argument("--only", default="", help="run only models whose name contains this")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="override a module constant of the selected models' files (e.g. batch_size=16: "
                         "KernelBench's MiniGPT at batch 128 needs more device time than one call has); "
                         "recorded in the results")
    args = ap.parse_args()

    import torch
    import triton

    from kernelwright.api import RunOptions, parse_budget, run_pipeline
    from kernelwright.commands._common import console, resolve_device
    from kernelwright.commands.optimize import build_target
    from kernelwright.task import load_task

    device = "cpu" if args.cpu_smoke else resolve_device("cuda")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d_%H%M%S")
    out = Path(os.environ.get("OUT") or ROOT / "bench" / "results") / f"e2e_models_{stamp}"
    (out / "models").mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name() if device == "cuda" else "cpu (smoke, nothing timed)"
    meta = {
        "command": " ".join([sys.executable, *sys.argv]),
        "gpu": gpu,
        "torch": torch.__version__,
        "triton": triton.__version__,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "budget_per_model": args.budget,
    }
    results = []
    for name, rel, gpu_sizes, smoke_sizes in MODELS:
        if args.only and args.only not in name:
            continue
        src = ROOT / rel
        if not src.exists():
            results.append({"model": name, "error": f"{rel} not found"})
            continue
        if args.cpu_smoke:
            name = f"{name.split('_h2048')[0]}_cpu_smoke"  # tiny sizes: not the GPU model's name
        elif args.set:  # other sizes: not the model's own name
            name += "_" + "_".join(kv.replace("=", "") for kv in args.set)
        model_file = out / "models" / f"{name}.py"
        sizes = dict(smoke_sizes if args.cpu_smoke else gpu_sizes)
        sizes.update(dict(kv.split("=", 1) for kv in args.set))
        model_file.write_text(set_constants(src.read_text(), sizes))
        t0 = time.monotonic()
        row = {"model": name, "source": rel, "constants": sizes}
        try:
            task = load_task(model_file)
            model, inputs = build_target(task, device)
            opts = RunOptions(out=out / name, device=device, budget_s=parse_budget(args.budget),
                              max_experiments=args.max_experiments or (4 if args.cpu_smoke else None))
            res = run_pipeline(model, inputs, model_file, opts, console)
            del model, inputs
            e = res.end_to_end
            row.update({k: e.get(k) for k in (
                "tasks", "kernels", "check", "predicted_speedup", "predicted_from_measured",
                "speedup_vs_eager", "speedup_vs_compile", "answer_ms", "baseline_ms", "timing", "timing_mode", "flagged",
                "speedup_back_to_back", "answer_wall_ms", "baseline_wall_ms", "host_ms", "timing_notes")})
            row["report"] = str(res.report_path)
        except Exception as exc:  # one model failing must not hide the other's figures
            row["error"] = f"{type(exc).__name__}: {exc}"
        row["seconds"] = round(time.monotonic() - t0, 1)
        results.append(row)
        if device == "cuda":
            torch.cuda.empty_cache()

    import json

    (out / "e2e_models.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=str))
    lines = [
        f"# end-to-end: {gpu}, torch {meta['torch']}, triton {meta['triton']}, {meta['date']}",
        f"command: `{meta['command']}`",
        "",
        "| model | tasks | kernels | check | Amdahl (priors) | Amdahl (measured tasks) | vs eager | vs compile | ms (eager / compile / ours) | back to back vs eager / compile | host ms (ours) | s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def f(x, spec=".3f"):
        return "–" if x is None else format(x, spec)

    for r in results:
        if "error" in r:
            lines.append(f"| {r['model']} | error: {r['error'][:200]} |||||||||| {r.get('seconds', '')} |")
            continue
        b = r.get("baseline_ms") or {}
        b2b = r.get("speedup_back_to_back") or {}
        ms = f"{f(b.get('eager'))} / {f(b.get('compile'))} / {f(r.get('answer_ms'))}"
        lines.append(
            f"| {r['model']} | {r['tasks']} | {r['kernels']} | {str(r['check'])[:60]} | {f(r['predicted_speedup'])} | "
            f"{f(r['predicted_from_measured'])} | {f(r['speedup_vs_eager'])} | {f(r['speedup_vs_compile'])} | {ms} | "
            f"{f(b2b.get('eager'))} / {f(b2b.get('compile'))} | {f((r.get('host_ms') or {}).get('answer'))} | {r['seconds']} |"
        )
    table = "\n".join(lines) + "\n"
    (out / "e2e_models.md").write_text(table)
    print(table)
    print(f"results: {out}")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
