"""The timing half of the worker: `{"cmd": "time", "op": ...}` messages land in handle().

Runs inside the sandboxed worker, next to answer code, so nothing it reports is trusted: it
returns raw per-iteration times, the last outputs for each input set and telemetry; the judge
(timer.py) computes the statistics, re-checks the outputs against its own reference and
cross-checks the times against its own wall clock.

ops:
  load     {sets: [[inputs...] x K]}             keep K input sets on the device; one live buffer set
  compile  {name, mode}                          wrap state.models[name] in torch.compile(mode=...)
  liger    {name, family}                        replace state.models[name] (a task Model) by the
                                                 Liger-Kernel op of that family, with its weights
  run      {slots, mode, warmup_ms, rep_ms, min_reps, max_reps, flush_bytes, graph_below_us}
           -> {mode, times: [[ms...] per slot], outputs: {name: [[tensors] per set]}, telemetry}
  wall     {name, reps}                          reps back-to-back calls, then a device sync (the
                                                 judge times the round trip with its own clock)

One timed call (events mode), every iteration alike, warm-up included (threat B6):
  persisting-L2 reset | copy input set k into the live buffers | write flush_bytes (cold L2)
  | start event | forward | end event on the current stream | device-wide sync | all-streams event
The time is start->end, plus whatever the all-streams event shows beyond the sync latency
calibrated on empty windows: work hidden on another stream is counted (threat B1) without adding
the sync latency to honest kernels. Graph mode (calls under graph_below_us): the judge captures
one forward in its own CUDA graph and replays it between the events; the input buffers keep their
addresses, so each iteration still sees new contents.
"""
from __future__ import annotations

import collections
import ctypes
import math
import os
import threading
import time
from typing import Any

# Held between ops of one worker: the input sets (on the device), the live input buffers the
# answer sees, and the judge's graphs from the last run (reused by "wall").
_HELD: dict[str, Any] = {"sets": [], "bufs": [], "graphs": {}}

PERSISTING_L2_LIMIT = 0x06  # cudaLimitPersistingL2CacheSize


def handle(state, body: dict) -> dict:
    import torch

    op = body.get("op")
    ops = {"load": _op_load, "compile": _op_compile, "liger": _op_liger, "warm": _op_warm, "run": _op_run,
           "wall": _op_wall}
    if op not in ops:
        return {"error": f"unknown timing op {op!r}"}
    return ops[op](state, body, torch)


# -- input sets -----------------------------------------------------------------------------------

def _op_load(state, body: dict, torch) -> dict:
    _HELD["sets"], _HELD["bufs"], _HELD["graphs"] = [], [], {}
    sets = [[x.to(state.device) if isinstance(x, torch.Tensor) else x for x in s] for s in body["sets"]]
    if not sets:
        return {"error": "no input sets"}
    _HELD["sets"] = sets
    # The live buffers: fresh storage the answer has never seen, refilled before every call.
    _HELD["bufs"] = [x.clone() if isinstance(x, torch.Tensor) else x for x in sets[0]]
    _sync(state, torch)
    return {"ok": True, "sets": len(sets)}


def _refill(k: int) -> None:
    for buf, src in zip(_HELD["bufs"], _HELD["sets"][k]):
        if hasattr(buf, "copy_"):
            buf.copy_(src)


# -- baselines built from the task's Model --------------------------------------------------------

def _op_compile(state, body: dict, torch) -> dict:
    name, mode = body["name"], body.get("mode")
    state.models[name] = torch.compile(state.models[name], mode=mode)
    return {"ok": True}


def _first_module(model, cls):
    return next((m for m in model.modules() if isinstance(m, cls)), None)


def _norm_params(model, torch, cls):
    """(weight, bias, eps) of the task's norm: its nn.<cls> submodule, else its own attributes."""
    sub = _first_module(model, cls) if cls is not None else None
    src = sub if sub is not None else model
    weight = getattr(src, "weight", None)
    bias = getattr(src, "bias", None)
    eps = getattr(src, "eps", None)
    weight = weight if isinstance(weight, torch.Tensor) and weight.dim() == 1 else None
    bias = bias if isinstance(bias, torch.Tensor) and bias.dim() == 1 else None
    return weight, bias, eps


def _liger_module(family: str, ref, torch):
    """A module computing the task with Liger-Kernel's op of this family (last-dim ops only).

    Whether it really computes the task is not assumed: the judge re-checks its outputs like any
    row's and drops the row when they differ.
    """
    import torch.nn as nn
    from liger_kernel.transformers import functional as LF

    class LigerRow(nn.Module):
        def __init__(self):
            super().__init__()
            self.ref = ref  # holds the task's weights
            cls = {"rmsnorm": getattr(nn, "RMSNorm", None), "layernorm": nn.LayerNorm}.get(family)
            self.w, self.b, eps = _norm_params(ref, torch, cls)
            self.eps = float(eps) if isinstance(eps, (int, float)) else (1e-6 if family == "rmsnorm" else 1e-5)
            self._ones: dict = {}

        def _weight(self, x):  # liger's norms need a weight; a task without one scales by 1
            if self.w is not None:
                return self.w
            key = (x.shape[-1], x.dtype, x.device)
            if key not in self._ones:
                self._ones[key] = torch.ones(x.shape[-1], dtype=x.dtype, device=x.device)
            return self._ones[key]

        def forward(self, x, *rest):
            if family == "rmsnorm":
                return LF.liger_rms_norm(x, self._weight(x), self.eps)
            if family == "layernorm":
                b = self.b if self.b is not None else torch.zeros_like(self._weight(x))
                return LF.liger_layer_norm(x, self._weight(x), b, self.eps)
            if family == "softmax":
                fn = getattr(LF, "liger_softmax", None)
                if fn is None:  # older releases: only the autograd Function
                    from liger_kernel.ops.softmax import LigerSoftmaxFunction

                    fn = LigerSoftmaxFunction.apply
                return fn(x)
            if family == "cross_entropy":
                out = LF.liger_cross_entropy(x, rest[0])
                return out[0] if isinstance(out, tuple) else out
            raise ValueError(f"no Liger-Kernel op for {family!r}")

    return LigerRow()


def _op_liger(state, body: dict, torch) -> dict:
    try:
        import liger_kernel  # noqa: F401
    except Exception as exc:
        return {"unavailable": f"liger-kernel not importable ({type(exc).__name__})"}
    try:
        state.models[body["name"]] = _liger_module(body["family"], state.models[body["name"]], torch)
    except Exception as exc:
        return {"unavailable": f"no Liger-Kernel op for {body['family']}: {type(exc).__name__}: {exc}"}
    return {"ok": True}


# -- clocks ------------------------------------------------------------------------------------------

class _CudaClock:
    """Three events per call: start, end (current stream), all (after a device-wide sync).

    The C-level methods of torch._C._CudaEventBase are called directly: it is an immutable type,
    so an answer replacing torch.cuda.Event.elapsed_time or .record (threat B7) changes nothing here.
    """

    def __init__(self, torch):
        self.torch = torch
        self.base = torch._C._CudaEventBase
        self.sync = torch._C._cuda_synchronize
        self.start, self.end, self.all = (torch.cuda.Event(enable_timing=True) for _ in range(3))
        self.bias_ms, self.slack_ms = 0.0, 0.0
        self.recent: collections.deque = collections.deque(maxlen=31)  # recent empty-window gaps, ms

    def begin(self) -> None:
        self.base.record(self.start, self.torch.cuda.current_stream())

    def finish(self) -> None:
        self.base.record(self.end, self.torch.cuda.current_stream())
        self.sync()
        self.base.record(self.all, self.torch.cuda.current_stream())
        self.base.synchronize(self.all)

    def read(self) -> tuple[float, float]:
        """(ms, excess ms): excess > 0 when work outside the current stream outlasted it (counted in ms)."""
        t = self.base.elapsed_time(self.start, self.end)
        excess = self.base.elapsed_time(self.end, self.all) - self._bias()
        if excess > self.slack_ms:
            return t + excess, excess
        return t, 0.0

    def _bias(self) -> float:
        """The sync latency of an empty window now: the median of the recent probes. The host's
        wake-up after the sync moves with its load (a run with 7 candidates compiling beside the
        timing worker saw every call of an honest single-stream GEMM 31 us past its stream, over
        a bias calibrated before the load came, and flagged it as threat B1)."""
        if not self.recent:
            return self.bias_ms
        g = sorted(self.recent)
        return g[len(g) // 2]

    def probe(self) -> None:
        """One empty window (no work between the events), after a timed call: tracks the bias.
        Work hidden on another stream by the call has landed by then (the call's window synced the
        device), so it cannot raise the probe: it still shows as excess over it."""
        self.begin()
        self.finish()
        self.recent.append(self.base.elapsed_time(self.end, self.all))

    def calibrate(self, n: int = 25) -> None:
        """The sync latency an empty window shows between the end and all-streams events."""
        gaps = []
        for _ in range(n):
            self.begin()
            self.finish()
            gaps.append(self.base.elapsed_time(self.end, self.all))
        gaps.sort()
        self.bias_ms = gaps[len(gaps) // 2]
        p90 = gaps[int(0.9 * (len(gaps) - 1))]
        self.slack_ms = max(0.004, 3.0 * (p90 - self.bias_ms))
        self.recent.clear()
        self.recent.extend(gaps)  # the deque keeps the last maxlen


class _HostClock:
    """CPU only (tests of the plumbing): a host clock around a synchronous call. Not a GPU timing."""

    def begin(self) -> None:
        self.t0 = time.perf_counter()

    def finish(self) -> None:
        self.t1 = time.perf_counter()

    def read(self) -> tuple[float, float]:
        return (self.t1 - self.t0) * 1e3, 0.0

    def calibrate(self, n: int = 0) -> None:
        pass

    def probe(self) -> None:
        pass


# -- persisting L2 (threat B10) ------------------------------------------------------------------

class _PersistingL2:
    """cudaCtxResetPersistingL2Cache + a zero persisting carve-out before every timed call."""

    def __init__(self, device: str):
        self.lib = None
        self.seen_set = 0  # calls before which the carve-out was found non-zero (set by the answer)
        if device != "cuda":
            self.status = "n/a (cpu)"
            return
        path, why = _find_cudart()
        if path is None:
            self.status = f"unavailable: {why}"
            return
        try:
            lib = ctypes.CDLL(path)
            lib.cudaCtxResetPersistingL2Cache.restype = ctypes.c_int
            lib.cudaDeviceSetLimit.argtypes = [ctypes.c_int, ctypes.c_size_t]
            lib.cudaDeviceGetLimit.argtypes = [ctypes.POINTER(ctypes.c_size_t), ctypes.c_int]
        except (OSError, AttributeError) as exc:
            self.status = f"unavailable: {path}: {exc}"
            return
        rc = lib.cudaDeviceSetLimit(PERSISTING_L2_LIMIT, 0)
        rc2 = lib.cudaCtxResetPersistingL2Cache()
        if rc2 != 0:
            self.status = f"unavailable: cudaCtxResetPersistingL2Cache returned error {rc2}"
            return
        self.lib = lib
        self.limit_ok = rc == 0
        self.status = f"reset before every call via {os.path.basename(path)}" + (
            "" if rc == 0 else f" (cudaDeviceSetLimit(PersistingL2CacheSize) error {rc}: carve-out not zeroed)")

    def reset(self) -> None:
        if self.lib is None:
            return
        if self.limit_ok:
            v = ctypes.c_size_t(0)
            if self.lib.cudaDeviceGetLimit(ctypes.byref(v), PERSISTING_L2_LIMIT) == 0 and v.value:
                self.seen_set += 1
                self.lib.cudaDeviceSetLimit(PERSISTING_L2_LIMIT, 0)
        self.lib.cudaCtxResetPersistingL2Cache()


def _find_cudart() -> tuple[str | None, str]:
    """The libcudart this process already loaded (torch's), else one the loader can find."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                if "libcudart.so" in line:
                    return line.split()[-1], ""
    except OSError:
        pass
    for name in ("libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0"):
        try:
            ctypes.CDLL(name)
            return name, ""
        except OSError:
            continue
    return None, "libcudart not loaded by torch and not on the loader path (torch may link it statically)"


# -- output integrity ------------------------------------------------------------------------------

def _flat_outputs(out, torch) -> list | None:
    """Flatten to exact torch.Tensors; None when anything else is returned (threat B3)."""
    flat: list = []

    def walk(x) -> bool:
        if type(x) is torch.Tensor:
            if x.__dict__:  # instance overrides (a lazy .cpu / .detach)
                return False
            flat.append(x)
            return True
        if type(x) in (list, tuple):
            return all(walk(v) for v in x)
        return False

    return flat if walk(out) else None


_BITS = {1: "uint8", 2: "int16", 4: "int32", 8: "int64"}


def _fingerprint(ts: list, torch):
    """Two int64 sums of each output's raw bits, computed on the stream (no host sync)."""
    parts = []
    for t in ts:
        flat = t.detach().reshape(-1)
        if flat.is_complex():
            flat = torch.view_as_real(flat).reshape(-1)
        if flat.numel() == 0:
            parts.append(torch.zeros(2, dtype=torch.int64, device=t.device))
            continue
        bits = flat.view(getattr(torch, _BITS[flat.element_size()])) if flat.dtype != torch.bool else \
            flat.view(torch.uint8)
        parts.append(torch.stack([bits.sum(dtype=torch.int64), bits[::7].sum(dtype=torch.int64)]))
    return torch.cat(parts) if parts else None


def _overlaps_any(t, bufs, torch) -> bool:
    if t.numel() == 0:
        return False
    s = t.untyped_storage()
    a0, a1 = s.data_ptr(), s.data_ptr() + s.nbytes()
    for b in bufs:
        if isinstance(b, torch.Tensor) and b.numel() and b.device == t.device:
            sb = b.untyped_storage()
            if a0 < sb.data_ptr() + sb.nbytes() and sb.data_ptr() < a1:
                return True
    return False


def _timer_patches(torch) -> list[str]:
    """Timing functions an answer replaced (telemetry: this module does not use them, threat B7)."""
    out = []
    event_module = torch.cuda.Event.__module__  # where torch defines the class (torch.cuda.streams)
    checks = [
        ("torch.cuda.Event.elapsed_time", getattr(torch.cuda.Event, "elapsed_time", None), event_module),
        ("torch.cuda.Event.record", getattr(torch.cuda.Event, "record", None), event_module),
        ("torch.cuda.synchronize", torch.cuda.synchronize, "torch.cuda"),
    ]
    for label, fn, module in checks:
        if getattr(fn, "__module__", None) != module:
            out.append(label)
    builtins = [("time.perf_counter", time.perf_counter),
                ("torch._C._cuda_synchronize", getattr(torch._C, "_cuda_synchronize", None))]
    for label, fn in builtins:
        if fn is not None and type(fn).__name__ != "builtin_function_or_method":
            out.append(label)
    return out


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _sync(state, torch) -> None:
    if state.device == "cuda":
        torch._C._cuda_synchronize()


# -- the timed run -------------------------------------------------------------------------------

class _Runner:
    def __init__(self, state, body: dict, torch):
        self.state, self.torch, self.body = state, torch, body
        self.cuda = state.device == "cuda"
        self.clock = _CudaClock(torch) if self.cuda else _HostClock()
        self.l2 = _PersistingL2(state.device)
        self.flush = torch.empty(int(body.get("flush_bytes", 256 << 20)), dtype=torch.uint8, device=state.device)
        self.graphs: dict[str, tuple] = {}
        # GPU work queued ahead of each call's start event, so that the events time the GPU's work
        # and not the host arriving late with the launch (H100: a LayerNorm answer needing 0.1 ms
        # of host per call after 0.13 ms of refill and flush read 0.053 ms median but 0.159 ms p80
        # without it, 0.050 / 0.050 ms with 0.3 ms of lead). The host's own time is host_ms.
        self.lead_cycles = _lead_cycles(torch, float(body.get("lead_us", 0.0))) if self.cuda else 0
        self.off_stream: dict[str, int] = {}  # model name -> calls whose work outlasted the current stream
        self.off_stream_ms: dict[str, float] = {}  # model name -> total ms by which it outlasted it
        self.host_ms: dict[str, list[float]] = {}  # model name -> host ms to enqueue each call

    def call(self, name: str, k: int):
        """One timed call of model `name` on input set k; returns (outputs, ms)."""
        self.l2.reset()
        _refill(k)
        self.flush.zero_()  # evicts the inputs just written, and the previous call's data
        if self.lead_cycles:
            self.torch.cuda._sleep(self.lead_cycles)
        self.clock.begin()
        t0 = time.perf_counter()
        if name in self.graphs:
            self.graphs[name][0].replay()
            out = self.graphs[name][1]
        else:
            out = self.state.models[name](*_HELD["bufs"])
        # Host time to enqueue the call: beyond the lead, a call's events measure the host (H100, the
        # optimized transformer block: 1.5-2.7 ms of host for 1.9 ms of kernels).
        self.host_ms.setdefault(name, []).append((time.perf_counter() - t0) * 1e3)
        self.clock.finish()
        ms, off = self.clock.read()
        self.clock.probe()
        if off > 0:
            self.off_stream[name] = self.off_stream.get(name, 0) + 1
            self.off_stream_ms[name] = self.off_stream_ms.get(name, 0.0) + off
        return out, ms

    def capture(self, name: str) -> None:
        """The judge's CUDA graph of one forward on the live buffers (answer kernels already warm)."""
        torch = self.torch
        model = self.state.models[name]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                model(*_HELD["bufs"])
        torch.cuda.current_stream().wait_stream(side)
        _sync(self.state, torch)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = model(*_HELD["bufs"])
        _sync(self.state, torch)
        self.graphs[name] = (graph, out)


_CYCLES_PER_US: list[float] = []  # the GPU's spin rate, measured once per worker


def _lead_cycles(torch, lead_us: float) -> int:
    """Spin cycles of torch.cuda._sleep that take about lead_us on this GPU (0: no lead)."""
    if lead_us <= 0 or not hasattr(torch.cuda, "_sleep"):
        return 0
    if not _CYCLES_PER_US:
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        n, rates = 1_000_000, []
        for _ in range(3):
            a.record()
            torch.cuda._sleep(n)
            b.record()
            b.synchronize()
            rates.append(n / max(a.elapsed_time(b) * 1e3, 1e-3))
        _CYCLES_PER_US.append(sorted(rates)[1])
    return int(lead_us * _CYCLES_PER_US[0])


def _op_run(state, body: dict, torch) -> dict:
    """The timed run with Python's cyclic garbage collector off (as timeit does): a collection
    landing inside one row's call would be that row's time, and an answer's launcher that makes
    more temporary objects than a baseline's would trigger more of them."""
    import gc

    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        return _run_timed(state, body, torch)
    finally:
        if was:
            gc.enable()


def _run_timed(state, body: dict, torch) -> dict:
    slots: list[str] = list(body["slots"])
    K = len(_HELD["sets"])
    if not K:
        return {"error": "no input sets loaded"}
    missing = [n for n in slots if n not in state.models]
    if missing:
        return {"error": f"no model named {missing}"}
    names = list(dict.fromkeys(slots))
    r = _Runner(state, body, torch)
    note = []
    with torch.no_grad():
        # First calls: compilation, autotuning, allocator growth. Then warm-up iterations exactly
        # like timed ones, for warmup_ms, which also estimate each model's time.
        warm: dict[str, list[float]] = {n: [] for n in names}
        for n in names:
            out, _ = r.call(n, 0)
            if _flat_outputs(out, torch) is None:
                return {"rejected": f"{n} returned a {type(out).__name__}, not plain torch.Tensor(s) (lazy or "
                                    "subclassed outputs are not allowed)"}
        r.clock.calibrate()
        t0 = time.perf_counter()
        cycle = 0
        while cycle < 3 or (time.perf_counter() - t0) * 1e3 < float(body.get("warmup_ms", 25.0)):
            for n in names:
                _, ms = r.call(n, cycle % K)
                warm[n].append(ms)
            cycle += 1
            if cycle >= 10_000:
                break
        est = {n: sorted(v)[len(v) // 2] for n, v in warm.items()}
        mode = body.get("mode", "auto")
        if mode == "auto":
            mode = "graph" if r.cuda and min(est.values()) * 1e3 < float(body.get("graph_below_us", 20.0)) \
                else "events"
        if mode == "graph":
            if not r.cuda:
                mode = "host"
            else:
                try:
                    for n in names:
                        r.capture(n)
                    for n in names:  # warm replays, same pattern as the timed ones
                        for i in range(3):
                            r.call(n, i % K)
                except Exception as exc:
                    r.graphs.clear()
                    torch.cuda.synchronize()
                    mode = "events"
                    note.append(f"graph capture failed ({type(exc).__name__}: {str(exc)[:200]}); events mode")
        elif not r.cuda:
            mode = "host"
        r.off_stream.clear()
        r.off_stream_ms.clear()
        r.host_ms.clear()

        # Timed iterations: n cycles over the slots, rotated each cycle; input set = cycle % K.
        slowest = max(est.values())
        n_cycles = int(min(max(math.ceil(float(body.get("rep_ms", 100.0)) / max(slowest, 1e-4)),
                               int(body.get("min_reps", 10)), K), max(int(body.get("max_reps", 1000)), K)))
        times: list[list[float]] = [[] for _ in slots]
        kept: dict[tuple[str, int], tuple] = {}
        threads_before = _threads()
        for c in range(n_cycles):
            k = c % K
            order = [(i + c) % len(slots) for i in range(len(slots))]
            for i in order:
                name = slots[i]
                out, ms = r.call(name, k)
                times[i].append(ms)
                if c >= n_cycles - K:
                    flat = _flat_outputs(out, torch)
                    if flat is None:
                        return {"rejected": f"{name} returned a {type(out).__name__}, not plain torch.Tensor(s)"}
                    # A copy for the judge's re-check; the original is fingerprinted now and again
                    # after the loop: a change means work still landing after return (B2, B5).
                    copy = [t.detach().clone() for t in flat]
                    watch = name not in r.graphs and not any(_overlaps_any(t, _HELD["bufs"], torch) for t in flat)
                    kept[(name, k)] = (copy, flat if watch else None, _fingerprint(flat, torch) if watch else None)
        time.sleep(0.05)  # a background thread or a late launch gets time to land
        _sync(state, torch)
        threads_after = _threads()
        deferred = []
        for (name, k), (_, orig, fp) in kept.items():
            if orig is not None and fp is not None and not torch.equal(_fingerprint(orig, torch), fp):
                deferred.append(f"{name} (input set {k})")

    _HELD["graphs"] = {n: g for n, (g, _) in r.graphs.items()}
    outputs = {n: [kept[(n, k)][0] for k in range(K) if (n, k) in kept] for n in names}
    return {
        "mode": mode,
        "times": times,
        "outputs": outputs,
        "n_cycles": n_cycles,
        "calls": n_cycles * len(slots),
        "sets": K,
        "deferred": deferred,
        "threads_added": threads_after - threads_before,
        "off_stream": dict(r.off_stream),
        "off_stream_ms": dict(r.off_stream_ms),
        "host_ms": {n: sorted(v)[len(v) // 2] for n, v in r.host_ms.items() if v},  # medians
        "l2": r.l2.status,
        "l2_persist_set": r.l2.seen_set,
        "timer_patched": _timer_patches(torch) if r.cuda else [],
        "answer_kernels": list(state.answer_kernels()) if hasattr(state, "answer_kernels") else [],
        "device_name": torch.cuda.get_device_name() if r.cuda else "cpu",
        "bias_ms": getattr(r.clock, "bias_ms", 0.0),
        "lead_us": r.lead_cycles / _CYCLES_PER_US[0] if r.lead_cycles else 0.0,
        "note": "; ".join(note),
    }


def _op_warm(state, body: dict, torch) -> dict:
    """One untimed call of each named model: JIT compilation and autotuning happen here, before the
    judge takes the GPU for itself (the run's own first calls then find the kernels compiled)."""
    names = [n for n in body.get("names", []) if n in state.models]
    with torch.no_grad():
        for n in names:
            _refill(0)
            state.models[n](*_HELD["bufs"])
    _sync(state, torch)
    return {"ok": True, "warmed": names}


def _op_wall(state, body: dict, torch) -> dict:
    """reps back-to-back calls (graph replays when the last run used graphs), one final sync."""
    name, reps = body["name"], int(body.get("reps", 0))
    graph = _HELD["graphs"].get(name)
    with torch.no_grad():
        for _ in range(reps):
            if graph is not None:
                graph.replay()
            else:
                state.models[name](*_HELD["bufs"])
    _sync(state, torch)
    return {"ok": True}
