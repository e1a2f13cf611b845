"""Matmul-family benchmark on one GPU: answers rendered by kernelwright's matmul template family
(the same path as the search proposer: capture -> region -> family.render -> assemble), each config
compiled and timed, the best kept ("autotune over the family's configs").

  1. square bf16 matmul 4096^3: best config vs torch.matmul (cuBLAS); TFLOP/s and % of the
     measured bf16 peak (torch.matmul 8192^3 on this GPU). Goal: within 10% of cuBLAS.
  2. fp32 matmul 4096^3 (TF32 off everywhere): "ieee" (exact fp32 FMA) vs "tf32x3" (3xTF32) -
     speed and error against a float64 reference, beside torch fp32 (cuBLAS, TF32 off).
  3. KernelBench level-2 .kb/KernelBench/level2/76_Gemm_Add_ReLU.py (fp32, its own sizes):
     best answer per precision vs eager and torch.compile, with the strict fp32 check.

Run:  python bench/matmul_perf.py            (H100, torch 2.11 / triton 3.6, no network)
      python bench/matmul_perf.py --cpu-smoke (tiny sizes under the Triton interpreter: logic only)
Expected runtime on an H100: about 2-3 minutes (~40 Triton compiles, torch.compile of one model).
Writes $OUT/matmul_perf.{json,txt} (default ./bench/results/): command, GPU, versions, date, the
table and every timed config.
"""
from __future__ import annotations

import os
import sys

SMOKE = "--cpu-smoke" in sys.argv
if SMOKE:  # must precede the first triton import
    os.environ["TRITON_INTERPRET"] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import triton  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from kernelwright.extract.graph import capture  # noqa: E402
from kernelwright.extract.regions import partition  # noqa: E402
from kernelwright.propose.search.family import device_spec, match_region  # noqa: E402
from kernelwright.propose.search.library import matmul  # noqa: E402
from kernelwright.propose.search.render import assemble  # noqa: E402
from kernelwright.task import load_task  # noqa: E402

LEVEL2 = ROOT / ".kb/KernelBench/level2/76_Gemm_Add_ReLU.py"
SQUARE_TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A, B):
        return torch.matmul(A, B)


M = 64
N = 64
K = 64


def get_inputs():
    return [torch.randn(M, K), torch.randn(K, N)]


def get_init_inputs():
    return []
'''
TMP = Path(tempfile.mkdtemp(prefix="kw_matmul_perf_"))
LOG: list[str] = []


def say(line: str = "") -> None:
    print(line, flush=True)
    LOG.append(line)


def bench_ms(fn) -> float:
    """Median ms (triton.testing.do_bench: warm-up, L2 flush between reps). Interpreter: one call."""
    if SMOKE:
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) * 1e3
    return float(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median"))


def plan(task_path: Path):
    """(task, captured graph, its single matmul region, the family's match)."""
    task = load_task(task_path)
    model = task.build_model(task.init_inputs(seed=0), seed=0)
    cap = capture(model, task.inputs(seed=0))
    (region,) = [r for r in partition(cap) if r.kind == "matmul"]
    match, why = match_region(region, cap)
    assert match is not None and match.family == "matmul", why
    return task, cap, region, match


def load_answer(task, cap, region, match, cfg: dict, tag: str):
    """Render, assemble and import one answer file (a real file: Triton's JIT reads the source)."""
    rendered = matmul.FAMILY.render(match, cfg, "k0")
    src = assemble(task.source, task.module.Model, cap, [(region, rendered, f"k0: {match.label}")], f"matmul_perf {tag}")
    path = TMP / f"answer_{tag}.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(f"kw_answer_{tag}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def autotune(task, cap, region, match, configs, make_inputs, init, state, tag, flops):
    """Time every config; returns rows sorted fastest first (failures recorded, not hidden)."""
    rows = []
    dev = "cpu" if SMOKE else "cuda"
    for i, cfg in enumerate(configs):
        knobs = " ".join(f"{k}={v}" for k, v in cfg.items())
        try:
            mod = load_answer(task, cap, region, match, cfg, f"{tag}_{i}")
            model = mod.ModelNew(*init).to(dev)
            if state is not None:
                model.load_state_dict(state)
            xs = make_inputs()
            with torch.no_grad():
                model(*xs)  # compile
                ms = bench_ms(lambda: model(*xs))
            rows.append({"config": cfg, "knobs": knobs, "ms": ms, "tflops": flops / ms / 1e9, "model": model})
        except Exception as exc:  # a config that fails to compile/launch is a data point
            rows.append({"config": cfg, "knobs": knobs, "ms": None, "error": f"{type(exc).__name__}: {exc}"[:300]})
    ok = sorted([r for r in rows if r["ms"] is not None], key=lambda r: r["ms"])
    for r in ok[1:]:
        r.pop("model")  # keep one copy of the weights alive, the winner's
    return ok, [r for r in rows if r["ms"] is None]


def rel_err(got: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """(max |got - ref|, max |got - ref| / (1 + |ref|)): the second is what atol=rtol checks see."""
    d = (got.double() - ref).abs()
    return d.max().item(), (d / (1 + ref.abs())).max().item()


def top(configs, match, spec, dev, n):
    """The n configs the family's model ranks best for this spec."""
    m2 = type(match)(match.family, match.region, match.label, {"matmul": spec})
    return sorted(configs, key=lambda c: matmul.FAMILY.estimate(m2, c, dev))[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny sizes under the Triton interpreter")
    ap.add_argument("--size", type=int, default=4096, help="square matmul size")
    ap.add_argument("--fp32-configs", type=int, default=6, help="fp32 configs timed per precision (model-ranked)")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile in part 3")
    args = ap.parse_args()
    dev = "cpu" if SMOKE else "cuda"
    size = 96 if SMOKE else args.size
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32: TF32 off for torch too
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    gpu = "interpreter (cpu smoke)" if SMOKE else torch.cuda.get_device_name()
    devspec = device_spec(dev)
    if not SMOKE:
        devspec = replace(devspec, sm_count=torch.cuda.get_device_properties(0).multi_processor_count)
    results: dict = {
        "command": " ".join([sys.executable, *sys.argv]),
        "gpu": gpu,
        "torch": torch.__version__,
        "triton": triton.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "parts": {},
    }
    t_start = time.time()
    say(f"# matmul family benchmark on {gpu}; torch {torch.__version__}, triton {triton.__version__}")

    # ---- peak: bf16 matmul 8192^3 through torch (measurement.md's ceiling) ----
    p = 128 if SMOKE else 8192
    a = torch.randn(p, p, device=dev, dtype=torch.bfloat16)
    peak = 2 * p**3 / bench_ms(lambda: a @ a) / 1e9
    del a
    say(f"measured bf16 peak (torch.matmul {p}^3): {peak:.0f} TFLOP/s")
    results["bf16_peak_tflops"] = peak

    # ---- part 1: square bf16 ----
    sq = TMP / "square_task.py"
    sq.write_text(SQUARE_TASK)
    task, cap, region, match = plan(sq)
    s0 = match.spec["matmul"]
    n = size
    spec = replace(s0, M=n, N=n, K=n, dtype=torch.bfloat16)
    match.spec["matmul"] = spec
    configs = matmul.CONFIGS["cpu"] if SMOKE else matmul.prune_configs(spec, devspec.sm_count)
    flops = 2.0 * n**3
    A = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    B = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    ok, bad = autotune(task, cap, region, match, configs, lambda: [A, B], [], None, "bf16", flops)
    torch_ms = bench_ms(lambda: A @ B)
    best = ok[0]
    got = best["model"](A, B)
    err = rel_err(got, A.double() @ B.double())
    ref_err = rel_err(A @ B, A.double() @ B.double())
    part1 = {
        "size": n,
        "torch_ms": torch_ms,
        "torch_tflops": flops / torch_ms / 1e9,
        "best": {k: v for k, v in best.items() if k != "model"},
        "ratio_vs_cublas": torch_ms / best["ms"],
        "pct_of_peak": 100 * best["tflops"] / peak,
        "err_vs_fp64": err,
        "torch_err_vs_fp64": ref_err,
        "all": [{k: v for k, v in r.items() if k != "model"} for r in ok + bad],
    }
    results["parts"]["bf16_square"] = part1
    say(f"\n## 1. bf16 matmul {n}^3 ({len(ok)} configs ok, {len(bad)} failed)")
    say("| kernel | ms | TFLOP/s | % of bf16 peak | vs cuBLAS | max err/(1+|ref|) |")
    say("|---|---|---|---|---|---|")
    say(f"| torch.matmul (cuBLAS) | {torch_ms:.3f} | {flops / torch_ms / 1e9:.0f} | {100 * flops / torch_ms / 1e9 / peak:.0f}% | 1.00x | {ref_err[1]:.2e} |")
    for r in ok[:5]:
        e = f"{err[1]:.2e}" if r is best else "-"
        say(f"| triton {r['knobs']} | {r['ms']:.3f} | {r['tflops']:.0f} | {100 * r['tflops'] / peak:.0f}% | {torch_ms / r['ms']:.2f}x | {e} |")
    goal = part1["ratio_vs_cublas"] >= 0.90
    say(f"goal (within 10% of cuBLAS): {'MET' if goal else 'MISSED'} - best is {part1['ratio_vs_cublas']:.2f}x cuBLAS")
    del A, B, ok

    # ---- part 2: fp32 square, ieee vs tf32x3 ----
    spec32 = replace(s0, M=n, N=n, K=n, dtype=torch.float32)
    match.spec["matmul"] = spec32
    A = torch.randn(n, n, device=dev)
    B = torch.randn(n, n, device=dev)
    ref = A.double() @ B.double()
    torch_ms = bench_ms(lambda: A @ B)
    torch_err = rel_err(A @ B, ref)
    say(f"\n## 2. fp32 matmul {n}^3, TF32 off (torch: {torch_ms:.3f} ms, {flops / torch_ms / 1e9:.1f} TFLOP/s, err {torch_err[1]:.2e})")
    say("| precision | best config | ms | TFLOP/s | vs torch fp32 | max abs err | max err/(1+|ref|) | passes 1e-4 |")
    say("|---|---|---|---|---|---|---|---|")
    part2 = {"torch_ms": torch_ms, "torch_err_vs_fp64": torch_err, "by_precision": {}}
    all32 = matmul.CONFIGS["cpu"] if SMOKE else matmul.prune_configs(spec32, devspec.sm_count)
    for prec in matmul.FP32_PRECISIONS:
        cands = [dict(c, PRECISION=prec) for c in all32] if SMOKE else top([c for c in all32 if c["PRECISION"] == prec], match, spec32, devspec, args.fp32_configs)
        ok, bad = autotune(task, cap, region, match, cands, lambda: [A, B], [], None, f"fp32_{prec}", flops)
        if not ok:
            say(f"| {prec} | all {len(bad)} configs failed: {bad[0]['error']} | | | | | | |")
            part2["by_precision"][prec] = {"errors": bad}
            continue
        b = ok[0]
        e = rel_err(b["model"](A, B), ref)
        say(f"| {prec} | {b['knobs']} | {b['ms']:.3f} | {b['tflops']:.1f} | {torch_ms / b['ms']:.2f}x | {e[0]:.2e} | {e[1]:.2e} | {'yes' if e[1] <= 1e-4 else 'NO'} |")
        part2["by_precision"][prec] = {
            "best": {k: v for k, v in b.items() if k != "model"},
            "err_vs_fp64": e,
            "all": [{k: v for k, v in r.items() if k != "model"} for r in ok + bad],
        }
    results["parts"]["fp32_square"] = part2
    del A, B, ref

    # ---- part 3: KernelBench level-2 matmul + epilogue ----
    path3 = LEVEL2 if not SMOKE else ROOT / "tests/tasks_matmul/gemm_add_relu.py"
    say(f"\n## 3. {path3.relative_to(ROOT)} (fp32, its own sizes, TF32 off)")
    if not path3.is_file():
        say(f"skipped: {path3} not found (the lead carries .kb/ to the GPU)")
    else:
        task, cap, region, match = plan(path3)
        s3 = match.spec["matmul"]
        init = task.init_inputs(seed=0)
        ref_model = task.build_model(init, seed=1).to(dev)
        xs = [x.to(dev) for x in task.inputs(seed=2)]
        flops3 = 2.0 * s3.M * s3.N * s3.K
        with torch.no_grad():
            expect = ref_model.double()(*[x.double() for x in xs])
            ref_model = ref_model.float()
            eager_ms = bench_ms(lambda: ref_model(*xs))
            rows3 = [("eager (cuBLAS fp32)", eager_ms, rel_err(ref_model(*xs), expect))]
            if not args.no_compile and not SMOKE:
                compiled = torch.compile(ref_model)
                compiled(*xs)
                rows3.append(("torch.compile", bench_ms(lambda: compiled(*xs)), rel_err(compiled(*xs), expect)))
            part3 = {"task": str(path3.relative_to(ROOT)), "M": s3.M, "N": s3.N, "K": s3.K, "by_precision": {}}
            all3 = matmul.FAMILY.configs(match, devspec)
            for prec in matmul.FP32_PRECISIONS:
                cands = [dict(c, PRECISION=prec) for c in all3] if SMOKE else top([c for c in all3 if c["PRECISION"] == prec], match, s3, devspec, args.fp32_configs)
                ok, bad = autotune(task, cap, region, match, cands, lambda: xs, init, ref_model.state_dict(), f"l2_{prec}", flops3)
                if ok:
                    b = ok[0]
                    e = rel_err(b["model"](*xs), expect)
                    rows3.append((f"triton {prec} {b['knobs']}", b["ms"], e))
                    part3["by_precision"][prec] = {"best": {k: v for k, v in b.items() if k != "model"}, "err_vs_fp64": e,
                                                   "all": [{k: v for k, v in r.items() if k != "model"} for r in ok + bad]}
                else:
                    part3["by_precision"][prec] = {"errors": bad}
        best_base = min(ms for name, ms, _ in rows3 if not name.startswith("triton"))
        say("| implementation | ms | TFLOP/s | speedup vs best of eager/compile | max err/(1+|ref|) | passes 1e-4 |")
        say("|---|---|---|---|---|---|")
        for name, ms, e in rows3:
            say(f"| {name} | {ms:.3f} | {flops3 / ms / 1e9:.1f} | {best_base / ms:.2f}x | {e[1]:.2e} | {'yes' if e[1] <= 1e-4 else 'NO'} |")
        part3["rows"] = [{"name": nm, "ms": ms, "err": e} for nm, ms, e in rows3]
        results["parts"]["level2"] = part3

    results["seconds"] = time.time() - t_start
    say(f"\ntotal {results['seconds']:.0f} s")
    out = Path(os.environ.get("OUT", ROOT / "bench/results"))
    out.mkdir(parents=True, exist_ok=True)
    stem = "matmul_perf_smoke" if SMOKE else "matmul_perf"
    (out / f"{stem}.json").write_text(json.dumps(results, indent=1, default=str))
    (out / f"{stem}.txt").write_text("\n".join(LOG) + "\n")
    say(f"wrote {out / stem}.json and .txt")


if __name__ == "__main__":
    main()
