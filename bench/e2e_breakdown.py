"""Where an optimized whole model spends its time, beside the original: per forward, the GPU time of
each kernel (torch.profiler, summed by kernel name), the kernels' total, and the wall time per
forward (CUDA events around back-to-back calls: host overhead shows as wall above the GPU total).

    python bench/e2e_breakdown.py RUN_DIR_OR_TGZ [--model NAME] [--timer]

--timer also prints the host time to enqueue one forward (train and eval mode; a forward whose host
time exceeds its GPU time is host-bound when timed one call at a time, as the timing judge does)
and the timing judge's own figures (kernelwright.judge.timer.time_answer beside eager).

RUN_DIR_OR_TGZ: a directory written by bench/e2e_models.py (or its .tgz) holding models/<name>.py
and <name>/model_optimized.py. Prints two tables (original, optimized) and the top differences.
"""
from __future__ import annotations

import argparse
import sys
import tarfile
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def kernel_times(fn, iters: int = 5) -> dict[str, tuple[float, int]]:
    """kernel name -> (GPU ms per forward, launches per forward)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
    acc: dict[str, list] = defaultdict(lambda: [0.0, 0])
    for e in prof.events():
        if e.device_type.name == "CUDA":
            acc[e.name][0] += e.device_time_total / 1e3 / iters if hasattr(e, "device_time_total") else e.cuda_time_total / 1e3 / iters
            acc[e.name][1] += 1
    return {k: (v[0], v[1] // iters) for k, v in acc.items()}


def wall_ms(fn, iters: int = 20) -> float:
    import torch

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(iters):
        fn()
    b.record()
    torch.cuda.synchronize()
    return a.elapsed_time(b) / iters


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run")
    ap.add_argument("--model", default="", help="the model's name (default: the first under models/)")
    ap.add_argument("--timer", action="store_true", help="host enqueue time per forward, and time_answer's figures")
    ap.add_argument("--baselines", default="eager", help="time_answer's baselines, comma list (e.g. eager,compile)")
    ap.add_argument("--no-profile", action="store_true", help="skip the per-kernel tables")
    args = ap.parse_args()
    import torch

    from kernelwright.task import load_module, load_task

    run = Path(args.run)
    if run.suffix == ".tgz":
        tmp = Path(tempfile.mkdtemp(prefix="kw-breakdown-"))
        with tarfile.open(run) as tf:
            tf.extractall(tmp)
        run = next(tmp.glob("e2e_models_*"), tmp)
    models = sorted((run / "models").glob("*.py"))
    src = next(m for m in models if args.model in m.stem)
    opt = run / src.stem / "model_optimized.py"
    task = load_task(src)
    init = task.init_inputs(seed=0)
    ref = task.build_model(init, seed=1).cuda().eval()
    new = load_module(opt, "kw_model_optimized").ModelNew(*init).cuda().eval()
    new.load_state_dict(ref.state_dict())
    xs = [x.cuda() if torch.is_tensor(x) else x for x in task.inputs(seed=2)]
    rows = {}
    with torch.no_grad():
        out_ref, out_new = ref(*xs), new(*xs)
        print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}; {src.stem}; max |diff| "
              f"{(out_ref.float() - out_new.float()).abs().max().item():.4g}")
        for label, m in (() if args.no_profile else (("original", ref), ("optimized", new))):
            kt = kernel_times(lambda: m(*xs))
            total = sum(v[0] for v in kt.values())
            rows[label] = kt
            print(f"\n## {label}: wall {wall_ms(lambda: m(*xs)):.3f} ms/forward, kernels {total:.3f} ms, "
                  f"{sum(v[1] for v in kt.values())} launches")
            for name, (ms, n) in sorted(kt.items(), key=lambda kv: -kv[1][0])[:25]:
                print(f"  {ms:8.4f} ms  x{n:<3d} {name[:110]}")
    if rows:
        names = set(rows["original"]) | set(rows["optimized"])
        diff = sorted(((rows["optimized"].get(k, (0, 0))[0] - rows["original"].get(k, (0, 0))[0], k) for k in names))
        print("\n## optimized minus original, by kernel (ms per forward)")
        for d, k in diff[:10] + [("...", "")] + diff[-12:] if len(diff) > 22 else diff:
            print(f"  {d if isinstance(d, str) else f'{d:+8.4f}'}  {k[:110]}")
    if args.timer:
        import time

        print("\n## host time to enqueue one forward (ms; synchronized before each, median of 15)")
        for label, m in (("original", ref), ("optimized", new)):
            for mode in ("eval", "train"):
                m.train(mode == "train")
                hs = []
                with torch.no_grad():
                    for _ in range(15):
                        torch.cuda.synchronize()
                        t = time.perf_counter()
                        m(*xs)
                        hs.append((time.perf_counter() - t) * 1e3)
                        torch.cuda.synchronize()
                print(f"  {label:9s} {mode:5s} host {sorted(hs)[7]:.3f} ms")
        from kernelwright.config import TimerConfig
        from kernelwright.judge.timer import time_answer

        rep = time_answer(src, opt, TimerConfig(device="cuda"), baselines=tuple(args.baselines.split(",")))
        a = rep.answer.median_ms if rep.answer else None
        base = {k: (v.median_ms if v else None) for k, v in rep.baselines.items()}
        print(f"\n## time_answer: accepted={rep.accepted} {rep.reason or ''} answer {a} ms, baselines {base} ms, "
              f"speedups {rep.speedup}, mode {rep.mode}, wall per call {rep.wall_ms_per_call}, flagged "
              f"{rep.flagged}, notes {rep.notes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
