"""The timing judge: how fast is an accepted answer, beside eager, torch.compile and Liger-Kernel.

Timing runs in sandboxed workers (timer_worker.py does the timed loop); everything that decides
runs here, in the judge's process, from data the worker sends back:
  - statistics from raw per-iteration times (stats.py), never from the worker (threat B7);
  - every timed output of the last pass over the input sets re-checked against the task's own
    Model, run here on pristine inputs (threats B4, B5, B11);
  - a physical floor from the measured ceilings (roofline.py, ceilings.py; threat B9);
  - the judge's own wall clock around each batch: the events cannot add up to more than it, and
    a batch of back-to-back calls cannot take much longer per call than the events say (B7);
  - telemetry that rejects or flags: deferred work, new threads, changed numeric flags, a
    persisting-L2 carve-out, replaced timing functions, work on other streams.
The answer and the baselines run in separate workers: the answer never shares a process with
the rows it is compared to (threat B12). compare() times incumbent and candidate interleaved in
one worker, as the keep rule needs.
"""
from __future__ import annotations

import math
import os
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import JudgeConfig, TimerConfig
from ..errors import UsageError
from ..task import Task, load_task
from . import ceilings as ceil_mod
from . import inputs as inp
from . import roofline
from .compare import compare_outputs
from .gate import NO_GATE, GpuGate
from .sandbox import Worker, WorkerDied, WorkerProtocolError, WorkerTimeout
from .stats import InvalidTimes, TimingStats, aa_spread, keep_rule, summarize

__all__ = ["TimingStats", "TimingReport", "Comparison", "CandidateTiming", "TaskTimer", "time_answer",
           "time_baselines", "compare", "liger_family"]

BASELINE_MODES = {"compile": None, "compile-max-autotune": "max-autotune-no-cudagraphs"}

# Liger-Kernel op families, matched against the task's source (lower case), first match wins.
# A match only proposes the row: its outputs are re-checked like the answer's and the row is
# dropped when they differ from the task's.
LIGER_FAMILIES: list[tuple[str, str]] = [
    ("cross_entropy", r"cross_entropy|crossentropyloss"),
    ("rmsnorm", r"rms_?norm|rsqrt\(.*pow\(2\)|\.pow\(2\)\.mean\(-1"),
    ("layernorm", r"layer_?norm"),
    ("softmax", r"(?<!log_)softmax"),
]


@dataclass
class TimingReport:
    answer: TimingStats | None
    baselines: dict[str, TimingStats | None]  # "eager", "compile", "compile-max-autotune", "liger"
    speedup: dict[str, float]  # baseline median / answer median (> 1: the answer is faster)
    gbps: float | None
    tflops: float | None
    pct_of_ceiling: float | None
    bound: str  # "memory" | "compute"
    ceiling_source: str  # "measured" | "datasheet (fallback)" | "unknown GPU: no ceiling"
    flagged: list[str]  # reasons for human review; a flagged result must not be kept blindly
    accepted: bool  # False: the timing is invalid (wrong timed outputs, impossible times, cheats)
    reason: str
    device_name: str
    aa_spread: dict[str, float] = field(default_factory=dict)  # per row: |median A - median B| / median
    notes: list[str] = field(default_factory=list)  # why a row is missing, mode fallbacks ...
    mode: str = ""  # timing mode of the run ("events" | "graph")
    input_sets: int = 0  # rotating input sets
    bytes_moved: int = 0
    flops: int = 0
    floor_ms: float | None = None
    ceiling_gbps: float | None = None
    ceiling_tflops: float | None = None
    l2: str = ""  # how persisting L2 was reset
    wall_ms_per_call: float | None = None  # the judge's wall clock over back-to-back answer calls
    # The same for each baseline (GPU only): back to back, launches overlap the GPU's work, as in a
    # loop of forwards; the medians above time each call alone (flushed L2, synced, lead_us of GPU
    # work queued ahead so the events time the GPU, not the host's enqueueing up to that much).
    baseline_wall_ms: dict[str, float | None] = field(default_factory=dict)
    host_ms: dict[str, float] = field(default_factory=dict)  # row -> median host ms to enqueue one call
    row_rates: dict[str, dict[str, float | None]] = field(default_factory=dict)  # row -> gbps/tflops/pct
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def speedup_back_to_back(self) -> dict[str, float]:
        """baseline / answer of the judge's back-to-back wall clock per call, where both were measured."""
        a = self.wall_ms_per_call
        return {k: v / a for k, v in self.baseline_wall_ms.items() if v and a}


# An answer whose host needs this share of its measured time to enqueue a call is host-bound there.
HOST_BOUND_SHARE = 0.8


def host_bound_note(row: str, host_ms: float | None, median_ms: float | None) -> str:
    """A note when a row's per-call time is mostly its host's enqueueing ('' otherwise)."""
    if not host_ms or not median_ms or host_ms < HOST_BOUND_SHARE * median_ms:
        return ""
    return (f"{row}: host-bound: enqueueing one call takes {host_ms:.3f} ms against {median_ms:.3f} ms of GPU "
            "time; beyond the GPU work queued ahead of each timed call the host's lateness is in the events, "
            "and back to back (wall_ms_per_call) the host sets the pace")


@dataclass
class Comparison:
    faster: bool
    gain: float  # incumbent median / candidate median - 1
    noise: float  # the bar: max(keep_min_gain, incumbent A/A spread)
    incumbent: TimingStats | None
    candidate: TimingStats | None
    accepted: bool = True  # False: the candidate's timing is invalid (see reason); never keep it
    flagged: list[str] = field(default_factory=list)
    reason: str = ""


def liger_family(task_source: str) -> str | None:
    src = task_source.lower()
    for family, pattern in LIGER_FAMILIES:
        if re.search(pattern, src):
            return family
    return None


# -- what is timed: inputs, references, work -------------------------------------------------------

@dataclass
class _Plan:
    task: Task
    seed: int
    init_args: list
    state_dict: dict
    sets: list[list]  # K input sets (cpu)
    refs: list[tuple[list, list | None]]  # per set: (native outputs, float64 outputs or None), cpu
    ref_mutates: bool
    work: roofline.Work


def _set_count(set_bytes: int, cfg: TimerConfig) -> int:
    return max(2, min(cfg.input_sets, cfg.max_input_bytes // max(set_bytes, 1)))


def _prepare(task: Task, cfg: TimerConfig, device: str) -> _Plan:
    """Input sets from the judge's input factory and the task's own outputs on them, here."""
    from .stages import _Reference  # the check's reference: same seeding, same float64 companion

    seed = int.from_bytes(os.urandom(4), "little")
    base = inp.ShapeConfig()
    factory = inp.InputFactory(task, seed, device=device)
    ref = _Reference(task, base, device, seed=seed % (2**31))
    first = factory.make(base, "signed")
    native, r64 = ref.run(first)
    if any(o.is_floating_point() and bool(o.isnan().any()) for o in native):
        # The task's domain is non-negative (log, sqrt ...): keep it, as the check does.
        factory.positive = {i for i, t in enumerate(first) if isinstance(t, torch.Tensor) and t.is_floating_point()}
        first = factory.make(base, "signed")
        native, r64 = ref.run(first)
    host = lambda xs: [x.cpu() if isinstance(x, torch.Tensor) else x for x in xs]  # noqa: E731 - sets live on the host
    sets, refs = [host(first)], [(native, r64)]
    for _ in range(_set_count(roofline.tensor_bytes(first), cfg) - 1):
        x = factory.make(base, "signed")
        sets.append(host(x))
        refs.append(ref.run(x))
    dev_inputs = [t.to(device) if isinstance(t, torch.Tensor) else t for t in first]
    with torch.no_grad():
        out, flops = roofline.run_counting_flops(lambda: ref.native(*dev_inputs))
    params = list(ref.native.parameters()) + list(ref.native.buffers())
    work = roofline.Work(
        bytes_moved=roofline.tensor_bytes(dev_inputs, params) + roofline.tensor_bytes(out),
        flops=flops,
        dtype=roofline.main_dtype(dev_inputs, params),
    )
    plan = _Plan(task, seed, ref.init_args, ref.state_dict, sets, refs, ref.mutates, work)
    del ref, dev_inputs, out, params
    if device == "cuda":
        torch.cuda.empty_cache()
    return plan


def _plan_and_ceilings(task: Task, cfg: TimerConfig, device: str, gate: GpuGate) -> tuple[_Plan, ceil_mod.Ceilings]:
    """The task's input sets and references (beside other threads' GPU requests), then the GPU's
    ceilings (measured alone the first time, cached after)."""
    with gate.shared():
        plan = _prepare(task, cfg, device)
    with gate.alone():
        return plan, _ceilings(cfg, device)


def _ceilings(cfg: TimerConfig, device: str) -> ceil_mod.Ceilings:
    path = Path(cfg.ceilings_cache) if cfg.ceilings_cache else None
    if device != "cuda":
        return ceil_mod.Ceilings("cpu", None, {}, ceil_mod.UNKNOWN)
    name = torch.cuda.get_device_name()
    return ceil_mod.get_ceilings(name, lambda: ceil_mod.measure(device), path)


# -- one worker timing some rows -------------------------------------------------------------------

@dataclass
class _Row:
    name: str  # row label and the model's name in the worker
    kind: str  # "answer" | "task"
    source: str  # file text
    wrap: tuple | None = None  # ("compile", mode) | ("liger", family)


@dataclass
class _RowResult:
    stats: TimingStats | None = None
    slots: list[list[float]] = field(default_factory=list)
    aa: float | None = None
    error: str = ""  # why the row has no valid time
    rejected: bool = False  # the row's own fault (wrong outputs, cheats), not the harness's
    flags: list[str] = field(default_factory=list)
    mode: str = ""
    reply: dict = field(default_factory=dict)
    wall_ms: float = 0.0
    wall_per_call: float | None = None


def _judge_cfg(cfg: TimerConfig, device: str) -> JudgeConfig:
    return JudgeConfig(device=device, timeout_s=cfg.timeout_s)


def _run_body(cfg: TimerConfig, slots: list[str], mode: str) -> dict:
    return {
        "cmd": "time", "op": "run", "slots": slots, "mode": mode, "warmup_ms": cfg.warmup_ms,
        "rep_ms": cfg.rep_ms, "min_reps": cfg.min_reps, "max_reps": cfg.max_reps,
        "flush_bytes": cfg.flush_l2_bytes, "graph_below_us": cfg.graph_below_us, "lead_us": cfg.lead_us,
    }


class _Session:
    """A worker holding the plan's input sets; builds rows and times them."""

    def __init__(self, plan: _Plan, cfg: TimerConfig, device: str, label: str, gate: GpuGate = NO_GATE):
        self.plan, self.cfg, self.device, self.gate = plan, cfg, device, gate
        self.worker = Worker(device, cfg.timeout_s, _judge_cfg(cfg, device), label=label).start()
        self.task_path = self.worker.put_file("task.py", plan.task.source)
        reply = self.worker.request({"cmd": "time", "op": "load", "sets": plan.sets})
        if "error" in reply:
            raise RuntimeError(f"loading the input sets failed: {reply['error']}")

    def close(self) -> None:
        self.worker.close()

    def build(self, row: _Row) -> str:
        """'' when built, else why not (the row gets no time)."""
        path = self.task_path if row.kind == "task" else self.worker.put_file(f"{row.name}.py", row.source)
        with self.gate.shared():
            reply = self.worker.request({
                "cmd": "build", "name": row.name, "kind": row.kind, "path": path, "init_args": self.plan.init_args,
                "state_dict": self.plan.state_dict, "seed": self.plan.seed % (2**31), "dtype": None,
            })
            if "error" in reply:
                return f"building {row.name} raised: {reply['error']}"
            if row.wrap is None:
                return ""
            op, arg = row.wrap
            body = {"cmd": "time", "op": op, "name": row.name}
            body.update({"mode": arg} if op == "compile" else {"family": arg})
            reply = self.worker.request(body)
        return reply.get("error") or reply.get("unavailable") or ""

    def warm(self, names: list[str]) -> str:
        """First calls (compiles, autotuning) outside the quiet window; '' or the error."""
        with self.gate.shared():
            reply = self.worker.request({"cmd": "time", "op": "warm", "names": names})
        return reply.get("error", "")

    def run(self, slots: list[str], mode: str) -> tuple[dict, float]:
        with self.gate.alone():
            t0 = time.perf_counter()
            reply = self.worker.request(_run_body(self.cfg, slots, mode))
            return reply, (time.perf_counter() - t0) * 1e3

    def wall_per_call(self, name: str, median_ms: float) -> float:
        """The judge's clock over back-to-back calls, less the round trip of an empty request;
        the lower of two tries (a busy host only ever makes the wall clock longer)."""
        reps = int(min(max(math.ceil(50.0 / max(median_ms, 1e-3)), 5), 2000))
        best = math.inf
        with self.gate.alone():
            for _ in range(2):
                t0 = time.perf_counter()
                self.worker.request({"cmd": "time", "op": "wall", "name": name, "reps": 0})
                t1 = time.perf_counter()
                self.worker.request({"cmd": "time", "op": "wall", "name": name, "reps": reps})
                t2 = time.perf_counter()
                best = min(best, max((t2 - t1) - (t1 - t0), 0.0) * 1e3 / reps)
        return best


def _recheck(plan: _Plan, outputs: list[list], device: str, same_dtype: bool = True) -> str:
    """'' when every returned output matches the reference for its input set, else the first mismatch.

    same_dtype False (trusted baselines only: a library may return fp32 where the task returns
    bf16) compares values in the reference's dtype; an answer must match the dtype exactly.
    """
    if len(outputs) != len(plan.refs):
        return f"{len(outputs)} output set(s) returned for {len(plan.refs)} input sets"
    for k, (outs, (native, r64)) in enumerate(zip(outputs, plan.refs)):
        nat = [o.to(device) for o in native]
        cand = [o.to(device) for o in outs]
        if not same_dtype and len(cand) == len(nat):
            cand = [c.to(n.dtype) if c.shape == n.shape else c for c, n in zip(cand, nat)]
        r = r64.to(device) if r64 is not None else None
        m = compare_outputs(cand, nat, r)
        if not m.ok:
            return f"input set {k}: {m.reason}"
    return ""


# Work past the current stream, as a share of the on-stream time, that flags a row (with the pattern).
OFF_STREAM_SHARE = 0.10


def _telemetry(reply: dict, res: _RowResult, run_wall_ms: float, slots: list[str], trusted: bool = False) -> None:
    """Reject or flag from what the worker saw (its data, validated here where possible). The
    off-stream pattern is judged per model of the run's slots: a candidate hiding work on another
    stream in every one of its calls must not hide behind an honest incumbent's calls."""
    if reply.get("deferred"):
        res.rejected = True
        res.error = ("outputs changed after the call returned (deferred work, threats B2/B5): "
                     + ", ".join(reply["deferred"]))
    elif reply.get("threads_added", 0) > 0 and trusted:
        # A baseline is torch's own code: torch.compile max-autotune started a thread of its own
        # during timed calls (H100, level2/24_Conv3d_Min_Softmax). Its outputs are still re-checked.
        res.flags.append(f"{reply['threads_added']} new thread(s) appeared during the timed calls (a baseline: "
                         "noted, not rejected)")
    elif reply.get("threads_added", 0) > 0:
        res.rejected = True
        res.error = f"{reply['threads_added']} new thread(s) appeared during the timed calls (threat B2)"
    elif not reply.get("flags_pinned", True):
        res.rejected = True
        res.error = "global numeric flags (TF32, matmul precision) changed during timing (threat B12)"
    offs = reply.get("off_stream") or {}
    off_ms = reply.get("off_stream_ms") or {}
    calls = {n: int(reply.get("n_cycles", 0)) * slots.count(n) for n in set(slots)}
    timed = {n: sum(sum(t) for t, m in zip(res.slots, slots) if m == n) for n in set(slots)}
    for n, c in sorted(calls.items()):
        count, excess = int(offs.get(n, 0)), float(off_ms.get(n, 0.0))
        on_stream = max(timed.get(n, 0.0) - excess, 1e-9)
        # Both a pattern and a size. Host jitter (a late wake-up after the sync) showed in up to ~25%
        # of an honest single-stream kernel's calls on an H200 (471 of 2000, bench/results/
        # timing_cheats_*), and in every call of honest ms-long kernels on an H100 (a few % past the
        # stream: bench/results/h100-2026-11-22-s3/kernelbench_search_*), while work hidden on another
        # stream shows in every call and outlasts the current stream by about all of its time. The
        # time counts it either way; the flag (which bars a keep) needs both.
        if count > max(2, 0.9 * c) and excess > OFF_STREAM_SHARE * on_stream:
            res.flags.append(f"work outlasting the current stream in {count} of {c} calls of {n}, by "
                             f"{1e3 * excess / max(count, 1):.1f} us per call ({100 * excess / on_stream:.0f}% of "
                             "its on-stream time): counted through the device-wide sync (threat B1)")
    if reply.get("l2_persist_set"):
        res.flags.append(f"a persisting-L2 carve-out was set before {reply['l2_persist_set']} call(s); the judge "
                         "zeroed it each time (threat B10)")
    if reply.get("timer_patched"):
        res.flags.append(f"timing functions replaced in the worker: {', '.join(reply['timer_patched'])} "
                         "(the judge does not use them; threat B7)")
    event_sum = sum(sum(s) for s in res.slots)
    if event_sum > run_wall_ms * 1.05 + 1.0:
        res.rejected = True
        res.error = (f"the events add up to {event_sum:.1f} ms, more than the {run_wall_ms:.1f} ms the judge's "
                     "clock saw for the whole batch (forged times, threat B7)")


def _time_row(s: _Session, row: _Row, mode: str, cfg: TimerConfig) -> _RowResult:
    res = _RowResult()
    why = s.build(row)
    if why:
        res.error = why
        res.rejected = row.kind == "answer"
        return res
    why = s.warm([row.name])
    if why:
        res.error, res.rejected = f"raised on its first call: {why}", row.kind == "answer"
        return res
    reply, wall_ms = s.run([row.name, row.name], mode)
    res.reply, res.wall_ms = reply, wall_ms
    if "error" in reply or "rejected" in reply:
        res.rejected = row.kind == "answer" or "rejected" in reply
        res.error = reply.get("rejected") or f"raised while timed: {reply['error']}"
        return res
    res.mode = reply.get("mode", "")
    try:
        res.slots = [list(map(float, t)) for t in reply["times"]]
        res.stats = summarize(res.slots[0] + res.slots[1], res.mode)
        res.aa = aa_spread(res.slots[0], res.slots[1])
    except (InvalidTimes, KeyError, TypeError, IndexError) as exc:
        res.rejected, res.error, res.stats = True, f"invalid raw times: {exc}", None
        return res
    _telemetry(reply, res, wall_ms, [row.name, row.name], trusted=row.kind == "task")
    if res.rejected:
        res.stats = None
        return res
    bad = _recheck(s.plan, reply["outputs"].get(row.name, []), s.device, same_dtype=row.kind == "answer")
    if bad:
        res.rejected = True
        res.error = f"timed outputs differ from the reference ({bad}) (threats B4/B5/B11)"
        res.stats = None
    return res


def _liger_row(task: Task) -> _Row | None:
    fam = liger_family(task.source)
    return _Row("liger", "task", task.source, ("liger", fam)) if fam else None


def _baseline_rows(task: Task, names: tuple[str, ...]) -> tuple[list[_Row], list[str]]:
    rows, notes = [], []
    for b in names:
        if b == "eager":
            rows.append(_Row("eager", "task", task.source))
        elif b in BASELINE_MODES:
            rows.append(_Row(b, "task", task.source, ("compile", BASELINE_MODES[b])))
        elif b == "liger":
            r = _liger_row(task)
            if r is None:
                notes.append("liger: no Liger-Kernel op for this task")
            else:
                rows.append(r)
        else:
            raise UsageError(f"unknown baseline {b!r}", f"Use some of: eager, {', '.join(BASELINE_MODES)}, liger.")
    return rows, notes


def _resolve(cfg: TimerConfig, host_clock_ok: bool) -> str:
    device = cfg.device.lower()
    if device == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("timing needs a CUDA GPU and a CUDA build of torch; none is available here",
                             "Run on a machine with an NVIDIA GPU (kernelwright check --device cpu checks "
                             "correctness without one).")
        return "cuda"
    if device == "cpu" and host_clock_ok:
        return "cpu"
    raise UsageError(f"timing needs device cuda, not {cfg.device!r}",
                     "Time on a GPU: times measured under the CPU interpreter mean nothing.")


def time_answer(task_path, answer_path, cfg: TimerConfig | None = None, baselines=None, *,
                host_clock_ok: bool = False, gate: GpuGate = NO_GATE) -> TimingReport:
    """Time an (already checked) answer beside the baselines, in one run.

    baselines: names among eager, compile, compile-max-autotune, liger (default cfg.baselines).
    host_clock_ok: allow cfg.device "cpu" with a host clock (tests of the plumbing only; such
    figures mean nothing and are labelled mode "host").
    gate: as in time_baselines (several answers timed from threads at once: builds and compiles
    share the GPU, each timed batch has it alone).
    """
    t_start = time.monotonic()
    cfg = cfg or TimerConfig()
    device = _resolve(cfg, host_clock_ok)
    names = tuple(cfg.baselines if baselines is None else baselines)
    task = load_task(task_path)
    try:
        answer_src = Path(answer_path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read answer file {answer_path}: {exc}", "Pass the path of an answer .py file.")
    rows, notes = _baseline_rows(task, names)
    plan, ceil = _plan_and_ceilings(task, cfg, device, gate)
    rep = _new_report(plan, ceil, notes, accepted=False, reason="")

    # The answer, alone in its worker.
    ans = _time_answer_row(plan, cfg, device, answer_src, ceil, rep, gate)
    if ans is None:
        rep.seconds = time.monotonic() - t_start
        return rep

    # The baselines, in another worker, in the answer's timing mode (like with like).
    if rows:
        _time_baselines(plan, cfg, device, rows, ans.mode, rep, gate)
    eager = rep.baselines.get("eager")
    if eager is not None and eager.median_ms / ans.stats.median_ms > cfg.suspect_speedup:
        rep.flagged.append(f"{eager.median_ms / ans.stats.median_ms:.1f}x faster than eager (over "
                           f"{cfg.suspect_speedup:g}x): review before trusting it")
    _baseline_rates(plan, ceil, rep)
    rep.accepted = True
    rep.reason = f"timed in {ans.mode} mode over {len(plan.sets)} rotating input sets; every timed output re-checked"
    rep.seconds = time.monotonic() - t_start
    return rep


def _new_report(plan: _Plan, ceil: ceil_mod.Ceilings, notes: list, *, accepted: bool, reason: str) -> TimingReport:
    """A report with the task's work, floor and ceilings filled in and no rows timed yet."""
    return TimingReport(
        answer=None, baselines={}, speedup={}, gbps=None, tflops=None, pct_of_ceiling=None,
        bound=roofline.bound(plan.work, ceil), ceiling_source=ceil.source, flagged=[], accepted=accepted,
        reason=reason, device_name=ceil.device_name, notes=notes, input_sets=len(plan.sets),
        bytes_moved=plan.work.bytes_moved, flops=plan.work.flops, floor_ms=roofline.floor_ms(plan.work, ceil),
        ceiling_gbps=ceil.copy_gbps, ceiling_tflops=ceil.matmul_for(plan.work.dtype),
    )


def _baseline_rates(plan: _Plan, ceil: ceil_mod.Ceilings, rep: TimingReport) -> None:
    for name, st in rep.baselines.items():
        if st is None:
            continue
        if rep.answer is not None:
            rep.speedup[name] = st.median_ms / rep.answer.median_ms
        gbps, tflops = roofline.rates(plan.work, st.median_ms)
        rep.row_rates[name] = {"gbps": gbps, "tflops": tflops,
                               "pct_of_ceiling": roofline.pct_of_ceiling(plan.work, st.median_ms, ceil)}


def time_baselines(task_path, cfg: TimerConfig | None = None, baselines=None, *,
                   host_clock_ok: bool = False, gate: GpuGate = NO_GATE) -> TimingReport:
    """The baseline rows alone, at the task's own sizes (no answer): the timing mode is the
    first row's, kept for the others. `answer` is None and `speedup` empty in the report.
    gate: several tasks' baselines may be timed from threads at once; builds and compiles share
    the GPU, each timed batch has it alone."""
    t_start = time.monotonic()
    cfg = cfg or TimerConfig()
    device = _resolve(cfg, host_clock_ok)
    task = load_task(task_path)
    rows, notes = _baseline_rows(task, tuple(cfg.baselines if baselines is None else baselines))
    plan, ceil = _plan_and_ceilings(task, cfg, device, gate)
    rep = _new_report(plan, ceil, notes, accepted=True, reason="baselines only")
    if rows:
        _time_baselines(plan, cfg, device, rows, "auto", rep, gate)
    _baseline_rates(plan, ceil, rep)
    rep.seconds = time.monotonic() - t_start
    return rep


def _time_answer_row(plan: _Plan, cfg: TimerConfig, device: str, answer_src: str, ceil: ceil_mod.Ceilings,
                     rep: TimingReport, gate: GpuGate = NO_GATE) -> _RowResult | None:
    """Times the answer into rep; None (rep.reason set) when its timing is rejected."""
    try:
        s = _Session(plan, cfg, device, "answer", gate)
    except (WorkerDied, WorkerTimeout, WorkerProtocolError, RuntimeError) as exc:
        rep.reason = f"the timing worker failed to start: {exc}"
        return None
    try:
        res = _time_row(s, _Row("answer", "answer", answer_src), "auto", cfg)
        if res.stats is not None and res.mode != "host":  # a host clock needs no cross-check
            res.wall_per_call = s.wall_per_call("answer", res.stats.median_ms)
    except WorkerTimeout as exc:
        res = _RowResult(error=f"timed out after {exc.seconds:.0f} s", rejected=True)
    except (WorkerDied, WorkerProtocolError) as exc:
        res = _RowResult(error=getattr(exc, "reason", str(exc)), rejected=True)
    finally:
        s.close()
    return _fill_answer(rep, res, plan, cfg, ceil)


def _fill_answer(rep: TimingReport, res: _RowResult, plan: _Plan, cfg: TimerConfig, ceil: ceil_mod.Ceilings
                 ) -> _RowResult | None:
    """The answer's timed row into rep, held to the judge's clock and the physical floor; None (and
    rep.reason) when its timing is not valid."""
    rep.mode = res.mode
    rep.flagged.extend(res.flags)
    rep.l2 = res.reply.get("l2", "")
    rep.device_name = res.reply.get("device_name", rep.device_name)
    if res.reply.get("note"):
        rep.notes.append(f"answer: {res.reply['note']}")
    if res.stats is None:
        rep.reason = f"answer: {res.error}"
        return None
    st = res.stats
    rep.wall_ms_per_call = res.wall_per_call
    if res.wall_per_call is not None and res.wall_per_call > 3.0 * st.median_ms + cfg.wall_margin_ms:
        rep.reason = (f"answer: the judge's wall clock saw {res.wall_per_call:.3f} ms per back-to-back call, the "
                      f"events {st.median_ms:.3f} ms: the event times are not the calls' (threat B7)")
        return None
    if roofline.below_floor(st.median_ms, plan.work, ceil, cfg.floor_slack):
        rep.reason = (f"answer: median {st.median_ms * 1e3:.2f} us is below the physical floor "
                      f"{rep.floor_ms * 1e3:.2f} us (bytes / copy bandwidth, FLOPs / matmul rate; threat B9)")
        return None
    rep.answer = st
    rep.aa_spread["answer"] = res.aa
    host = res.reply.get("host_ms", {}).get("answer")
    if host is not None:
        rep.host_ms["answer"] = float(host)
        note = host_bound_note("answer", float(host), st.median_ms)
        if note:
            rep.notes.append(note)
    rep.gbps, rep.tflops = roofline.rates(plan.work, st.median_ms)
    rep.pct_of_ceiling = roofline.pct_of_ceiling(plan.work, st.median_ms, ceil)
    rep.row_rates["answer"] = {"gbps": rep.gbps, "tflops": rep.tflops, "pct_of_ceiling": rep.pct_of_ceiling}
    return res


def _time_baselines(plan: _Plan, cfg: TimerConfig, device: str, rows: list[_Row], mode: str,
                    rep: TimingReport, gate: GpuGate = NO_GATE) -> None:
    try:
        s = _Session(plan, cfg, device, "baselines", gate)
    except (WorkerDied, WorkerTimeout, WorkerProtocolError, RuntimeError) as exc:
        for r in rows:
            rep.baselines[r.name] = None
        rep.notes.append(f"baselines: the worker failed to start: {exc}")
        return
    try:
        for row in rows:
            try:
                res = _time_row(s, row, mode, cfg)
            except (WorkerDied, WorkerTimeout, WorkerProtocolError) as exc:
                res = _RowResult(error=getattr(exc, "reason", str(exc)))
                rep.baselines[row.name] = None
                rep.notes.append(f"{row.name}: {res.error}; later baselines not timed")
                break
            rep.baselines[row.name] = res.stats
            if res.reply.get("host_ms", {}).get(row.name) is not None:
                rep.host_ms[row.name] = float(res.reply["host_ms"][row.name])
            if res.stats is not None and res.mode not in ("", "host"):
                try:
                    rep.baseline_wall_ms[row.name] = s.wall_per_call(row.name, res.stats.median_ms)
                except (WorkerDied, WorkerTimeout, WorkerProtocolError) as exc:
                    rep.notes.append(f"{row.name}: back-to-back wall clock not measured: {exc}")
            if mode == "auto" and res.mode:  # time_baselines: the first row picks the mode
                mode = rep.mode = res.mode
                rep.l2 = res.reply.get("l2", "")
                rep.device_name = res.reply.get("device_name", rep.device_name)
            rep.notes.extend(f"{row.name}: {f}" for f in res.flags)
            if res.stats is not None:
                rep.aa_spread[row.name] = res.aa
                if res.mode != mode:
                    rep.notes.append(f"{row.name}: timed in {res.mode} mode ({res.reply.get('note', '')})")
            else:
                rep.notes.append(f"{row.name}: {res.error}")
    finally:
        s.close()
    for row in rows:
        rep.baselines.setdefault(row.name, None)


def compare(task_path, incumbent_path, candidate_path, cfg: TimerConfig | None = None, *,
            host_clock_ok: bool = False) -> Comparison:
    """Incumbent and candidate timed interleaved in one worker (slots inc, cand, inc, rotated each
    cycle). The two incumbent slots give its A/A spread; "faster" only when the candidate's median
    gain exceeds max(cfg.keep_min_gain, that spread)."""
    cfg = cfg or TimerConfig()
    device = _resolve(cfg, host_clock_ok)
    task = load_task(task_path)
    try:
        inc_src, cand_src = Path(incumbent_path).read_text(), Path(candidate_path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read an answer file: {exc}", "Pass paths of answer .py files.")
    plan = _prepare(task, cfg, device)
    ceil = _ceilings(cfg, device)
    bad = Comparison(False, 0.0, cfg.keep_min_gain, None, None, accepted=False)
    try:
        s = _Session(plan, cfg, device, "compare")
    except (WorkerDied, WorkerTimeout, WorkerProtocolError, RuntimeError) as exc:
        bad.reason = f"the timing worker failed to start: {exc}"
        return bad
    try:
        for name, src in (("incumbent", inc_src), ("candidate", cand_src)):
            why = s.build(_Row(name, "answer", src))
            if why:
                bad.reason = f"{name}: {why}"
                return bad
        s.warm(["incumbent", "candidate"])
        reply, wall_ms = s.run(["incumbent", "candidate", "incumbent"], "auto")
        if "error" in reply or "rejected" in reply:
            bad.reason = reply.get("rejected") or f"raised while timed: {reply['error']}"
            return bad
        slots = [list(map(float, t)) for t in reply["times"]]
        inc = summarize(slots[0] + slots[2], reply["mode"])
        cand = summarize(slots[1], reply["mode"])
        res = _RowResult(slots=slots)
        _telemetry(reply, res, wall_ms, ["incumbent", "candidate", "incumbent"])
        for name in ("incumbent", "candidate"):
            mism = _recheck(plan, reply["outputs"].get(name, []), device)
            if mism and not res.rejected:
                res.rejected, res.error = True, f"{name}'s timed outputs differ from the reference ({mism})"
        if not res.rejected and roofline.below_floor(cand.median_ms, plan.work, ceil, cfg.floor_slack):
            res.rejected, res.error = True, "candidate: median below the physical floor (threat B9)"
        wall = s.wall_per_call("candidate", cand.median_ms) if reply["mode"] != "host" else 0.0
        if not res.rejected and wall > 3.0 * cand.median_ms + cfg.wall_margin_ms:
            res.rejected, res.error = True, "candidate: the judge's wall clock disagrees with its event times (B7)"
    except InvalidTimes as exc:
        bad.reason = f"invalid raw times: {exc}"
        return bad
    except WorkerTimeout as exc:
        bad.reason = f"timed out after {exc.seconds:.0f} s"
        return bad
    except (WorkerDied, WorkerProtocolError) as exc:
        bad.reason = getattr(exc, "reason", str(exc))
        return bad
    finally:
        s.close()
    d = keep_rule(slots[0] + slots[2], slots[1], aa_spread(slots[0], slots[2]), cfg.keep_min_gain)
    return Comparison(
        faster=d.faster and not res.rejected and not res.flags,
        gain=d.gain, noise=d.noise, incumbent=inc, candidate=cand, accepted=not res.rejected,
        flagged=res.flags, reason=res.error or (f"gain {d.gain:+.1%} vs noise bar {d.noise:.1%} ({reply['mode']})"),
    )


# -- the loop's timing: one task, many candidates --------------------------------------------------

@dataclass
class CandidateTiming:
    report: TimingReport  # the candidate's own figures; speedup["eager"] against the task's eager row
    comparison: Comparison | None  # against `incumbent`, interleaved in the same run; None without one
    incumbent: str | None = None  # path of the answer it was compared with


class TaskTimer:
    """Timing of one task's candidates, as the optimization loop needs it.

    What does not change between candidates is made once: the input sets and their references,
    the ceilings, and the eager row (timed once per timing mode, in a worker of its own). Each
    candidate gets a fresh worker that never held another candidate; when there is an incumbent it
    is built beside the candidate and the two are timed interleaved (slots inc, cand, inc, cand,
    rotated per cycle), which gives the keep rule and the candidate's own figures in one run. The
    same validity rules as time_answer apply to the candidate: raw times judged here, telemetry,
    timed outputs re-checked, the judge's wall clock, the physical floor.

    gate: the timed batches hold gate.alone(); building, warming (compiles) and re-checks hold
    gate.shared(), so the loop's checks share the GPU until the timed calls start. Safe to use from
    several threads (the eager row is timed once per mode, under a lock)."""

    def __init__(self, task_path, cfg: TimerConfig | None = None, *, gate: GpuGate = NO_GATE,
                 host_clock_ok: bool = False):
        self.cfg = cfg or TimerConfig()
        self.device = _resolve(self.cfg, host_clock_ok)
        self.task = load_task(task_path)
        self.gate = gate
        with gate.shared():
            self.plan = _prepare(self.task, self.cfg, self.device)
        with gate.alone():  # measured once per GPU model (then cached): needs the GPU to itself
            self.ceil = _ceilings(self.cfg, self.device)
        self._eager: dict[str, tuple[TimingStats | None, float | None, str]] = {}  # mode -> (stats, aa, note)
        self._lock = threading.Lock()

    def eager(self, mode: str) -> tuple[TimingStats | None, float | None, str]:
        """The task's eager row in this timing mode: (stats, A/A spread, why missing)."""
        with self._lock:
            if mode not in self._eager:
                rep = _new_report(self.plan, self.ceil, [], accepted=True, reason="")
                _time_baselines(self.plan, self.cfg, self.device, [_Row("eager", "task", self.task.source)], mode,
                                rep, self.gate)
                self._eager[mode] = (rep.baselines.get("eager"), rep.aa_spread.get("eager"), "; ".join(rep.notes))
            return self._eager[mode]

    def candidate(self, candidate_path, incumbent_path=None) -> CandidateTiming:
        t_start = time.monotonic()
        try:
            src = Path(candidate_path).read_text()
            inc_src = Path(incumbent_path).read_text() if incumbent_path else None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read an answer file: {exc}", "Pass paths of answer .py files.")
        rep = _new_report(self.plan, self.ceil, [], accepted=False, reason="")
        out = CandidateTiming(rep, None, str(incumbent_path) if inc_src is not None else None)
        try:
            s = _Session(self.plan, self.cfg, self.device, "candidate", self.gate)
        except (WorkerDied, WorkerTimeout, WorkerProtocolError, RuntimeError) as exc:
            rep.reason = f"the timing worker failed to start: {exc}"
            return out
        res = _RowResult()
        try:
            self._run(s, src, inc_src, res, out)
        except WorkerTimeout as exc:
            res.stats, res.error = None, f"timed out after {exc.seconds:.0f} s"
        except (WorkerDied, WorkerProtocolError) as exc:
            res.stats, res.error = None, getattr(exc, "reason", str(exc))
        except InvalidTimes as exc:
            res.stats, res.error = None, f"invalid raw times: {exc}"
        finally:
            s.close()
        if _fill_answer(rep, res, self.plan, self.cfg, self.ceil) is None:
            out.comparison = None
        else:
            eager, aa, note = self.eager(res.mode)
            if eager is not None:
                rep.baselines["eager"] = eager
                rep.aa_spread["eager"] = aa
                rep.notes.append("eager: timed once for the task, in its own worker")
                if eager.median_ms / res.stats.median_ms > self.cfg.suspect_speedup:
                    rep.flagged.append(f"{eager.median_ms / res.stats.median_ms:.1f}x faster than eager (over "
                                       f"{self.cfg.suspect_speedup:g}x): review before trusting it")
            elif note:
                rep.notes.append(note)
            _baseline_rates(self.plan, self.ceil, rep)
            rep.accepted = True
            rep.reason = (f"timed in {res.mode} mode over {len(self.plan.sets)} rotating input sets"
                          + (" interleaved with the incumbent" if inc_src is not None else "")
                          + "; every timed output re-checked")
        rep.seconds = time.monotonic() - t_start
        return out

    def _run(self, s: _Session, src: str, inc_src: str | None, res: _RowResult, out: CandidateTiming) -> None:
        """Build, warm and time; fills res (the candidate's row) and out.comparison."""
        why = s.build(_Row("candidate", "answer", src))
        if why:
            res.error = why
            return
        names = ["candidate"]
        if inc_src is not None:
            why = s.build(_Row("incumbent", "answer", inc_src))
            if why:  # the incumbent was accepted before: a harness failure, not the candidate's
                out.report.notes.append(f"incumbent: {why}; timed alone")
                inc_src, out.incumbent = None, None
            else:
                names.append("incumbent")
        why = s.warm(names)
        if why:
            res.error = f"raised on its first call: {why}"
            return
        slots = ["candidate", "candidate"] if inc_src is None else ["incumbent", "candidate", "incumbent", "candidate"]
        reply, wall_ms = s.run(slots, "auto")
        res.reply, res.wall_ms = reply, wall_ms
        if "error" in reply or "rejected" in reply:
            res.error = reply.get("rejected") or f"raised while timed: {reply['error']}"
            return
        res.mode = reply.get("mode", "")
        res.slots = [list(map(float, t)) for t in reply["times"]]
        mine = [res.slots[i] for i, n in enumerate(slots) if n == "candidate"]
        res.stats = summarize(mine[0] + mine[1], res.mode)
        res.aa = aa_spread(mine[0], mine[1])
        _telemetry(reply, res, wall_ms, slots)
        if res.rejected:
            res.stats = None
            return
        for name in names:
            with self.gate.shared():
                bad = _recheck(self.plan, reply["outputs"].get(name, []), self.device)
            if bad:
                res.stats = None
                res.error = f"{name}'s timed outputs differ from the reference ({bad}) (threats B4/B5/B11)"
                return
        if res.mode != "host":
            res.wall_per_call = s.wall_per_call("candidate", res.stats.median_ms)
        if inc_src is not None:
            inc_slots = [res.slots[i] for i, n in enumerate(slots) if n == "incumbent"]
            d = keep_rule(inc_slots[0] + inc_slots[1], mine[0] + mine[1], aa_spread(inc_slots[0], inc_slots[1]),
                          self.cfg.keep_min_gain)
            inc = summarize(inc_slots[0] + inc_slots[1], res.mode)
            out.comparison = Comparison(
                faster=d.faster and not res.flags, gain=d.gain, noise=d.noise, incumbent=inc, candidate=res.stats,
                accepted=True, flagged=list(res.flags),
                reason=f"gain {d.gain:+.1%} vs noise bar {d.noise:.1%} ({res.mode})")
