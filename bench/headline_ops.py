"""The four headline memory-bound ops at the sizes peers publish (bf16), timed through the timing
judge (kernelwright.judge.timer.time_answer: the code path of `kernelwright bench` after its check):
eager, torch.compile (default), compile max-autotune-no-cudagraphs, Liger-Kernel when importable,
and a simple honest one-row-per-program Triton answer from bench/answers/headline/.

    python bench/headline_ops.py                 # H100/H200: about 3-5 minutes (compiles dominate)
    python bench/headline_ops.py --ops softmax --no-max-autotune
    python bench/headline_ops.py --cpu-smoke     # tiny sizes, host clock, interpreter: plumbing only

Each row: median ms (p20-p80), GB/s = (inputs read once + outputs written once) / median, % of the
measured copy ceiling, the A/A spread (two interleaved timings of the same row), timing mode.
Results (raw JSON per op, the table, command, GPU, versions, date) go to $OUT (default
bench/results/). Sizes: RMSNorm 8192x8192, softmax 8192x8192, LayerNorm 8192x4096, cross-entropy
8192x32768 logits.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))  # run from a checkout without installing

OPS = ["rmsnorm", "softmax", "layernorm", "cross_entropy"]
ROWS = ["answer", "eager", "compile", "compile-max-autotune", "liger"]
SMOKE_SIZES = {"M": 6, "N": 37, "V": 45}  # --cpu-smoke: tiny, odd


# -- shared by the bench scripts -------------------------------------------------------------------

def out_dir() -> Path:
    d = Path(os.environ.get("OUT") or HERE / "results")
    d.mkdir(parents=True, exist_ok=True)
    return d


def env_info() -> dict:
    info = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name] + sys.argv), "host": platform.node()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.version.cuda
        info["gpu"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    except Exception as exc:  # noqa: BLE001 - recorded, not fatal
        info["torch"] = f"unavailable: {exc}"
    for mod in ("triton", "liger_kernel"):
        try:
            m = __import__(mod)
            info[mod] = getattr(m, "__version__", "installed")
        except Exception:
            info[mod] = "not installed"
    return info


def save(name: str, info: dict, records: list, table: str, stamp: str | None = None) -> Path:
    """Write NAME_STAMP.json (raw) and NAME_STAMP.txt (environment + table); same stamp = overwrite."""
    stamp = stamp or dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = out_dir() / f"{name}_{stamp}.json"
    path.write_text(json.dumps({"env": info, "records": records}, indent=2, default=str))
    (out_dir() / f"{name}_{stamp}.txt").write_text(
        "\n".join(f"{k}: {v}" for k, v in info.items()) + "\n\n" + table + "\n")
    return path


def fmt_table(header: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in header]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report_rows(label: str, rep) -> list[list]:
    """Table rows (one per timed variant) of a TimingReport."""
    stats = {"answer": rep.answer, **rep.baselines}
    out = []
    for name in [r for r in ROWS if r in stats]:
        st = stats[name]
        if st is None:
            out.append([label, name, "-", "", "", "", "", "", "not timed"])
            continue
        rates = rep.row_rates.get(name, {})
        aa = rep.aa_spread.get(name)
        pct = rates.get("pct_of_ceiling")
        out.append([
            label, name, f"{st.median_ms:.4f}", f"{st.p20_ms:.4f}-{st.p80_ms:.4f}",
            f"{rates['gbps']:.0f}" if rates.get("gbps") is not None else "",
            f"{pct:.1f}" if pct is not None else "", "" if aa is None else f"{100 * aa:.2f}",
            "1.00" if name == "answer" else (f"{rep.speedup[name]:.2f}" if name in rep.speedup else ""), st.mode,
        ])
    return out


HEADER = ["op", "row", "median ms", "p20-p80 ms", "GB/s", "% copy ceil", "A/A %", "ans speedup", "mode"]


# -- this script -----------------------------------------------------------------------------------

def kb_smoke_copy(task: Path, tmp: Path, most: int) -> Path:
    """A KernelBench task with every top-level int constant capped at `most` (the CPU interpreter
    cannot run real sizes), written to tmp."""
    src = re.sub(r"^([A-Za-z_]\w*) = (\d+)( \* \d+)?$", lambda m: f"{m.group(1)} = {min(int(m.group(2)), most)}",
                 task.read_text(), flags=re.M)
    out = tmp / task.name
    out.write_text(src)
    return out


def smoke_copy(task: Path, tmp: Path) -> Path:
    """The task with its size constants shrunk (the CPU interpreter cannot run 8192 x 8192)."""
    src = task.read_text()
    for k, v in SMOKE_SIZES.items():
        src = re.sub(rf"^{k} = \d+$", f"{k} = {v}", src, flags=re.M)
    out = tmp / task.name
    out.write_text(src)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ops", default=",".join(OPS), help=f"comma list of {OPS}")
    ap.add_argument("--no-max-autotune", action="store_true", help="skip compile max-autotune (saves minutes)")
    ap.add_argument("--no-compile", action="store_true", help="skip both torch.compile rows")
    ap.add_argument("--check", action="store_true", help="run the correctness check on each answer first")
    ap.add_argument("--rep-ms", type=float, default=100.0, help="timed milliseconds per row")
    ap.add_argument("--budget-s", type=float, default=540.0, help="stop starting new ops after this many seconds")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU (host clock): plumbing only")
    args = ap.parse_args()

    from kernelwright.config import JudgeConfig, TimerConfig
    from kernelwright.judge.timer import time_answer

    ops = [o for o in args.ops.split(",") if o]
    baselines = ["eager"]
    if not args.no_compile and not args.cpu_smoke:
        baselines += ["compile"] + ([] if args.no_max_autotune else ["compile-max-autotune"])
    if not args.cpu_smoke:
        baselines.append("liger")
    cfg = TimerConfig(device="cpu" if args.cpu_smoke else "cuda", rep_ms=args.rep_ms)
    if args.cpu_smoke:
        cfg.flush_l2_bytes, cfg.warmup_ms, cfg.rep_ms, cfg.max_reps = 1 << 16, 1.0, 2.0, 10
    info = env_info()
    print(f"# {info}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="kw-headline-"))
    rows, records = [], []
    t0 = time.monotonic()
    for op in ops:
        if time.monotonic() - t0 > args.budget_s:
            rows.append([op, "-", "skipped", "", "", "", "", "", f"over --budget-s {args.budget_s:g}"])
            continue
        task = HERE / "answers" / "headline" / f"task_{op}.py"
        answer = HERE / "answers" / "headline" / f"answer_{op}.py"
        if args.cpu_smoke:
            task = smoke_copy(task, tmp)
        t_op = time.monotonic()
        try:
            if args.check:
                from kernelwright.judge import check

                v = check(task, answer, JudgeConfig(device=cfg.device, max_variant_elements=1 << 20,
                                                    min_sweep_configs=4))
                if not v.accepted:
                    rows.append([op, "answer", "REJECTED", "", "", "", "", "", v.reason[:80]])
                    records.append({"op": op, "check": v.to_dict()})
                    continue
            rep = time_answer(task, answer, cfg, baselines=tuple(baselines), host_clock_ok=args.cpu_smoke)
        except Exception as exc:  # noqa: BLE001 - one op failing must not lose the others
            rows.append([op, "-", "ERROR", "", "", "", "", "", f"{type(exc).__name__}: {str(exc)[:100]}"])
            records.append({"op": op, "error": repr(exc)})
            continue
        rows.extend(report_rows(op, rep))
        if not rep.accepted:
            rows.append([op, "answer", "TIMING REJECTED", "", "", "", "", "", rep.reason[:100]])
        records.append({"op": op, "seconds": time.monotonic() - t_op, "report": rep.to_dict()})
        print(fmt_table(HEADER, report_rows(op, rep)), flush=True)
        for n in rep.notes + [f"FLAG {f}" for f in rep.flagged]:
            print(f"  {op}: {n}", flush=True)
        print(f"  {op}: ceiling {rep.ceiling_gbps and round(rep.ceiling_gbps)} GB/s ({rep.ceiling_source}); "
              f"{rep.bytes_moved / 1e6:.0f} MB moved; L2: {rep.l2}; {time.monotonic() - t_op:.0f} s", flush=True)
    table = fmt_table(HEADER, rows)
    path = save("headline_ops" + ("_cpu_smoke" if args.cpu_smoke else ""), info, records, table)
    print("\n" + table)
    print(f"\nresults: {path}  (total {time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
