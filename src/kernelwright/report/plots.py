"""The report's plots, drawn with matplotlib (Agg) and returned as base64 PNG for inlining."""
from __future__ import annotations

import base64
import io
import math
from collections import defaultdict

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _by_task(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        out[r["task"]].append(r)
    return out


def progress(rows: list[dict], timed: bool) -> str | None:
    """Per task against experiment number: the best speedup vs eager so far (AutoKernel's chart) on a
    timed run; on a CPU run, where nothing is timed, each experiment's verdict instead."""
    if not rows:
        return None
    return _progress_timed(rows) if timed else _verdict_strip(rows)


def _progress_timed(rows: list[dict]) -> str:
    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    for k, (task, rs) in enumerate(sorted(_by_task(rows).items())):
        c = _COLORS[k % len(_COLORS)]
        xs = list(range(1, len(rs) + 1))
        best, ys = None, []
        for r in rs:
            s = r.get("speedup_eager")
            if r.get("verdict") == "accepted" and s and r.get("decision") == "kept":
                best = s if best is None else max(best, s)
            ys.append(best if best is not None else math.nan)
        ax.step(xs, ys, where="post", color=c, label=task, lw=1.8)
        pts = [(x, r["speedup_eager"]) for x, r in zip(xs, rs) if r.get("verdict") == "accepted" and r.get("speedup_eager")]
        if pts:
            ax.scatter(*zip(*pts), color=c, s=14, alpha=0.45)
    ax.axhline(1.0, color="#888", lw=0.8, ls="--")
    ax.set_ylabel("best kept speedup vs eager")
    ax.set_xlabel("experiment number (per task); dots: every accepted candidate")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _png(fig)


_VERDICT_STYLE = {"accepted": ("o", "#2ca02c"), "rejected": ("x", "#d62728"), "error": ("s", "#999999")}


def _verdict_strip(rows: list[dict]) -> str:
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    tasks = sorted(_by_task(rows).items())
    fig, ax = plt.subplots(figsize=(8.5, 0.5 + 0.42 * len(tasks)))
    for y, (task, rs) in enumerate(tasks):
        for x, r in enumerate(rs, 1):
            m, c = _VERDICT_STYLE.get(r.get("verdict"), ("s", "#999999"))
            ax.scatter([x], [y], marker=m, color=c, s=36)
    ax.set_yticks(range(len(tasks)))
    ax.set_yticklabels([t for t, _ in tasks], fontsize=8)
    ax.set_ylim(-0.6, len(tasks) - 0.4)
    ax.invert_yaxis()
    # Whole experiment numbers only; a run of one experiment per task would otherwise get 0.945..1.05.
    n = max(len(rs) for _, rs in tasks)
    ax.set_xlim(0.5, n + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel("experiment number (per task): nothing timed on a CPU run, so verdicts only")
    ax.grid(alpha=0.3, axis="x")
    handles = [Line2D([], [], marker=m, color=c, ls="", label=v) for v, (m, c) in _VERDICT_STYLE.items()]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _png(fig)


def roofline(rows: list[dict], ceilings: dict) -> str | None:
    """Accepted, timed candidates: attained FLOP/s against arithmetic intensity, under the measured
    roofs (left), and each one's fraction of its ceiling by task (right)."""
    pts = [r for r in rows if r.get("verdict") == "accepted" and (r.get("gbps") or r.get("tflops"))]
    if not pts:
        return None
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.2, 1]})
    tasks = sorted({r["task"] for r in pts})
    color = {t: _COLORS[i % len(_COLORS)] for i, t in enumerate(tasks)}
    roof = [r for r in pts if r.get("tflops") and r.get("gbps")]
    for r in roof:
        ai = r["tflops"] * 1e12 / (r["gbps"] * 1e9)
        a1.scatter(ai, r["tflops"], color=color[r["task"]], s=18, alpha=0.7)
    bw, peak = ceilings.get("gbps"), ceilings.get("tflops")
    if bw and peak:
        xs = [10 ** (e / 10) for e in range(-20, 41)]
        a1.plot(xs, [min(peak, bw * 1e9 * x / 1e12) for x in xs], color="#444", lw=1.2, label="measured roofline")
        a1.legend(fontsize=7, frameon=False)
    if roof:
        a1.set_xscale("log")
        a1.set_yscale("log")
    else:
        a1.text(0.5, 0.5, "no candidate with FLOPs\n(memory-bound tasks: see right)", ha="center", va="center",
                transform=a1.transAxes, color="#666")
    a1.set_xlabel("arithmetic intensity (FLOP / byte)")
    a1.set_ylabel("TFLOP/s")
    a1.grid(alpha=0.3, which="both")
    for i, t in enumerate(tasks):
        ys = [r["pct_ceiling"] for r in pts if r["task"] == t and r.get("pct_ceiling") is not None]
        a2.scatter([i] * len(ys), ys, color=color[t], s=18, alpha=0.7)
    a2.set_xticks(range(len(tasks)))
    a2.set_xticklabels(tasks, rotation=30, ha="right", fontsize=7)
    a2.set_ylim(0, 1.05)
    a2.axhline(1.0, color="#444", lw=0.8)
    a2.set_ylabel("fraction of the measured ceiling")
    a2.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def end_to_end(e2e: dict) -> str | None:
    """Median forward time: eager, torch.compile, optimized; Amdahl's prediction as a dashed line."""
    base = e2e.get("baseline_ms") or {}
    ans = e2e.get("answer_ms")
    if not ans or not base.get("eager"):
        return None
    plt = _plt()
    labels = ["eager"] + (["torch.compile"] if base.get("compile") else []) + ["kernelwright"]
    vals = [base["eager"]] + ([base["compile"]] if base.get("compile") else []) + [ans]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.barh(labels, vals, color=["#999", "#6a9fd1", "#2ca02c"][-len(vals):] if len(vals) == 3 else ["#999", "#2ca02c"])
    pred = e2e.get("predicted_from_measured") or e2e.get("predicted_speedup")
    if pred:
        ax.axvline(base["eager"] / pred, color="#d62728", ls="--", lw=1.2, label=f"Amdahl prediction ({pred:.2f}x over eager)")
        ax.legend(fontsize=7, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    ax.set_xlabel("median ms per forward")
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)
