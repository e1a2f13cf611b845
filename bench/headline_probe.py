"""Why the headline ops miss (issue 6): per-kernel hardware counters and the timer's noise, on the GPU.

    python bench/headline_probe.py --answers JSON [--ops rmsnorm,layernorm] timer
        The judge's call pattern (input refill, 256 MB L2 flush, start event, call, end event,
        device sync), per call: event ms and host ms to enqueue, for our tuned answer, Liger and
        torch.compile (default). Then the same with a GPU sleep of --lead-us queued before the start
        event, which gives the host that much lead: if the spread vanishes there, the per-call
        timings were measuring the host arriving late, not the kernel.
    ncu --clock-control none --profile-from-start off --metrics M --csv \\
        python bench/headline_probe.py --answers JSON ncu
        One warm call of each implementation inside cudaProfilerStart/Stop, for Nsight Compute.

JSON: a templates_perf_*.json (its records carry each op's tuned answer source). The tasks are
bench/answers/headline/task_<op>.py. Prints tables; nothing is asserted.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

OPS = ["rmsnorm", "softmax", "layernorm", "cross_entropy"]


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def implementations(op: str, answers: dict, torch, with_compile: bool, extra: dict) -> tuple[dict, list]:
    """name -> callable on the op's inputs (cuda), and the inputs."""
    from kernelwright.judge.timer_worker import _liger_module

    task = load_module(HERE / "answers" / "headline" / f"task_{op}.py", f"task_{op}")
    torch.manual_seed(0)
    ref = task.Model(*task.get_init_inputs()).cuda()
    inputs = [x.cuda() for x in task.get_inputs()]
    impls = {}
    tmp = Path(tempfile.mkdtemp())
    sources = {"ours": answers.get(op)} | {k: v for k, v in extra.items() if k.startswith(op + ":")}
    for name, src in sources.items():
        if not src:
            continue
        f = tmp / f"ans_{name.replace(':', '_')}.py"
        f.write_text(src)
        mod = load_module(f, f"ans_{op}_{name.replace(':', '_')}")
        m = mod.ModelNew(*task.get_init_inputs()).cuda()
        m.load_state_dict(ref.state_dict())
        impls[name.split(":")[-1]] = m
    try:
        impls["liger"] = _liger_module(op, ref, torch)
    except Exception as exc:  # noqa: BLE001
        print(f"# {op}: no liger ({type(exc).__name__}: {exc})")
    impls["eager"] = ref
    if with_compile:
        impls["compile"] = torch.compile(ref)
    return impls, inputs


def timer_probe(op: str, impls: dict, inputs: list, torch, n: int, lead_us: float) -> None:
    flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    sets = [[x.clone() for x in inputs] for _ in range(2)]
    live = [x.clone() for x in inputs]
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    clock_mhz = 1980  # H100 SXM boost clock: torch.cuda._sleep counts cycles, the lead is approximate
    rows = []
    for lead in (0.0, lead_us):
        for name, fn in impls.items():
            if name == "eager" and op in ("rmsnorm", "cross_entropy"):
                continue  # 10x slower than the rest; not what is being compared
            ev, host = [], []
            with torch.no_grad():
                for i in range(n + 5):
                    for a, b in zip(live, sets[i % 2]):
                        a.copy_(b)
                    flush.zero_()
                    if lead:
                        torch.cuda._sleep(int(lead * clock_mhz))
                    start.record()
                    t0 = time.perf_counter()
                    fn(*live)
                    host.append((time.perf_counter() - t0) * 1e3)
                    end.record()
                    torch.cuda.synchronize()
                    ev.append(start.elapsed_time(end))
            ev, host = ev[5:], host[5:]
            q = statistics.quantiles(ev, n=10)
            slow = [h for e, h in zip(ev, host) if e > q[4]]
            fast = [h for e, h in zip(ev, host) if e <= q[4]]
            rows.append((op, name, lead, statistics.median(ev), q[1], q[7], statistics.median(host),
                         statistics.median(fast), statistics.median(slow)))
    print(f"{'op':<14}{'impl':<10}{'lead us':>8}{'median ms':>11}{'p20':>9}{'p80':>9}{'host ms':>9}"
          f"{'host|fast':>10}{'host|slow':>10}")
    for r in rows:
        print(f"{r[0]:<14}{r[1]:<10}{r[2]:>8.0f}{r[3]:>11.4f}{r[4]:>9.4f}{r[5]:>9.4f}{r[6]:>9.4f}{r[7]:>10.4f}{r[8]:>10.4f}")


def do_bench_rows(op: str, impls: dict, inputs: list, torch) -> None:
    import triton.testing

    for name, fn in impls.items():
        if name == "eager":
            continue
        with torch.no_grad():
            ms = triton.testing.do_bench(lambda: fn(*inputs), warmup=25, rep=200, return_mode="median")
        print(f"{op:<14}{name:<10} do_bench median {ms:.4f} ms")


def ncu_run(impls: dict, inputs: list, torch) -> None:
    with torch.no_grad():
        for fn in impls.values():
            fn(*inputs)
            fn(*inputs)
        torch.cuda.synchronize()
        for name, fn in impls.items():
            if name == "eager":
                continue
            torch.cuda.nvtx.range_push(name)
            torch.cuda.cudart().cudaProfilerStart()
            fn(*inputs)
            torch.cuda.synchronize()
            torch.cuda.cudart().cudaProfilerStop()
            torch.cuda.nvtx.range_pop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["timer", "ncu", "bench"])
    ap.add_argument("--answers", required=True, help="templates_perf_*.json with the tuned answers")
    ap.add_argument("--extra", default="", help="JSON {op:name: answer source} of more variants")
    ap.add_argument("--ops", default=",".join(OPS))
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--lead-us", type=float, default=300.0)
    ap.add_argument("--no-compile", action="store_true")
    a = ap.parse_args()
    import torch

    answers = {r["op"]: r.get("answer") for r in json.loads(Path(a.answers).read_text())["records"]}
    extra = json.loads(Path(a.extra).read_text()) if a.extra else {}
    print(f"# {torch.cuda.get_device_name()} torch {torch.__version__}; answers from {a.answers}")
    for op in a.ops.split(","):
        impls, inputs = implementations(op, answers, torch, not a.no_compile and a.mode != "ncu", extra)
        if a.mode == "timer":
            timer_probe(op, impls, inputs, torch, a.n, a.lead_us)
        elif a.mode == "bench":
            do_bench_rows(op, impls, inputs, torch)
        else:
            ncu_run(impls, inputs, torch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
