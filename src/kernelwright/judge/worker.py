"""The worker: the only process that runs answer code. Started by judge/sandbox.py.

Everything in this process is untrusted once the answer is imported: what it reports is data
that the judge validates, never a verdict. It receives commands over a pipe
(judge/protocol.py) and replies with tensors as bytes plus telemetry:
  build  {name, kind: "answer"|"task", path, init_args, state_dict, seed, dtype}  -> {ok, missing, unexpected}
  call   {name, inputs, reuse, ablate, poison_bytes}                            -> {outputs, telemetry...}
  time   {...}  handled by judge/timer_worker.py (timing judge)
  exit
argv: read-fd write-fd device
"""
from __future__ import annotations

import hashlib
import os
import sys
import threading
import traceback
from typing import Any

ANSWER_MODULE = "kw_answer"


class State:
    """What the worker holds between commands."""

    def __init__(self, device: str):
        self.device = device
        self.models: dict[str, Any] = {}
        self.modules: dict[str, Any] = {}
        self.last_inputs: dict[str, list] = {}
        self.launches: dict[str, int] = {}  # answer kernel name -> launches since last reset
        self.ablate = False
        self.library_threads = _library_thread_types()

    def answer_kernels(self) -> list[str]:
        return sorted(k for k, v in self.launches.items() if v)


def _library_thread_types() -> tuple[type, ...]:
    """Thread classes a library starts on its own, once per process, that run none of the answer's
    code: tqdm's monitor (a daemon that only watches tqdm bars; torch.export with dynamic shapes
    starts it on a GPU machine: bench/probe_threads.py, H100, where it failed session 3's
    whole-model check). Imported here, before any answer loads, so an answer cannot swap the class
    the worker compares against; matched by identity, so a subclass or a look-alike still counts."""
    types: list[type] = []
    try:
        from tqdm._monitor import TMonitor

        types.append(TMonitor)
    except Exception:  # noqa: BLE001 - tqdm absent or changed: nothing to allow
        pass
    return tuple(types)


def _limit_resources(device: str) -> None:
    import resource

    gb = float(os.environ.get("KW_HOST_MEMORY_GB", "16"))
    if device == "cpu" and gb > 0:
        # CUDA reserves huge virtual ranges, so an address-space limit only works without it.
        lim = int(gb * 1024**3)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _pin_flags(torch) -> dict:
    """Strict fp32 everywhere, the same for reference and answer (threat B12 / A7)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    return _flags(torch)


def _flags(torch) -> dict:
    return {
        "matmul.allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn.allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "matmul.allow_fp16_reduced_precision_reduction": bool(
            torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction),
        "deterministic": bool(torch.are_deterministic_algorithms_enabled()),
    }


def _install_launch_hooks(state: State) -> None:
    """Count launches of the answer's own Triton kernels; under ablation, skip them.

    Every Triton launch (`k[grid](...)`, autotuned or not) ends in KernelInterface.run of a
    JITFunction (compiled) or InterpretedFunction (TRITON_INTERPRET=1). Hooked before the answer
    is imported, so kernels it defines are caught whatever name it gives them.
    """
    classes = []
    try:
        from triton.runtime.jit import JITFunction

        classes.append(JITFunction)
    except Exception:  # triton missing: answers using it fail to import anyway
        pass
    try:
        from triton.runtime.interpreter import InterpretedFunction

        classes.append(InterpretedFunction)
    except Exception:
        pass
    for cls in classes:
        orig = cls.run

        def run(self, *args, _orig=orig, **kwargs):
            fn = getattr(self, "fn", None)
            if fn is not None and getattr(fn, "__module__", None) == ANSWER_MODULE and not kwargs.get("warmup"):
                name = getattr(fn, "__qualname__", "kernel")
                state.launches[name] = state.launches.get(name, 0) + 1
                if state.ablate:
                    return None
            return _orig(self, *args, **kwargs)

        cls.run = run

    # CUDA C++ extensions built by the answer: wrap the functions of the module it gets back.
    try:
        import torch.utils.cpp_extension as cpp
    except Exception:
        return

    class _ExtProxy:
        def __init__(self, mod, tag):
            self._mod, self._tag = mod, tag

        def __getattr__(self, attr):
            val = getattr(self._mod, attr)
            if not callable(val):
                return val

            def call(*a, **k):
                key = f"ext:{self._tag}.{attr}"
                state.launches[key] = state.launches.get(key, 0) + 1
                if state.ablate:
                    raise RuntimeError("ablated extension function")
                return val(*a, **k)

            return call

    for loader in ("load_inline", "load"):
        orig_loader = getattr(cpp, loader)

        def wrapped(*a, _orig=orig_loader, **k):
            mod = _orig(*a, **k)
            return _ExtProxy(mod, k.get("name") or (a[0] if a else "ext"))

        setattr(cpp, loader, wrapped)


def _load_file(state: State, path: str, kind: str):
    import importlib.util

    key = f"{kind}:{path}"
    if key in state.modules:
        return state.modules[key]
    name = ANSWER_MODULE if kind == "answer" else "kw_task_ref"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # triton's interpreter and dataclasses look modules up by name
    spec.loader.exec_module(mod)
    state.modules[key] = mod
    return mod


def _to_device(x, device, torch):
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, (list, tuple)):
        return type(x)(_to_device(v, device, torch) for v in x)
    return x


def _digest(tensors, torch) -> str:
    h = hashlib.sha256()
    for t in tensors:
        if isinstance(t, torch.Tensor):
            from .protocol import tensor_to_bytes

            h.update(tensor_to_bytes(t))
    return h.hexdigest()


def _cmd_build(state: State, msg: dict, torch) -> dict:
    mod = _load_file(state, msg["path"], msg["kind"])
    cls_name = "ModelNew" if msg["kind"] == "answer" else "Model"
    cls = getattr(mod, cls_name, None)
    if cls is None:
        return {"error": f"the file defines no {cls_name}"}
    torch.manual_seed(int(msg.get("seed", 0)))
    model = cls(*_to_device(msg.get("init_args", []), "cpu", torch))
    if not isinstance(model, torch.nn.Module):
        return {"error": f"{cls_name} is not an nn.Module"}
    sd = msg.get("state_dict") or {}
    own = model.state_dict()
    usable = {k: v for k, v in sd.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    model.load_state_dict(usable, strict=False)
    model = model.to(state.device)
    if msg.get("dtype"):
        from .protocol import dtype_from_name

        model = model.to(dtype_from_name(msg["dtype"]))
    state.models[msg["name"]] = model
    return {
        "ok": True,
        "missing": sorted(set(sd) - set(usable)),  # reference params the answer does not hold
        "unexpected": sorted(set(own) - set(sd)),
    }


def _exact_tensors(out, torch) -> tuple[bool, list]:
    """Flatten the output; False when anything is not an exact torch.Tensor (threat B3)."""
    flat: list = []

    def walk(x):
        if type(x) is torch.Tensor:
            if x.__dict__:  # instance attributes/overrides on a tensor: lazy-output tricks
                return False
            flat.append(x)
            return True
        if isinstance(x, (list, tuple)) and type(x) in (list, tuple):
            return all(walk(v) for v in x)
        return False

    return walk(out), flat


def _overlaps(a, b) -> bool:
    if a.numel() == 0 or b.numel() == 0 or a.device != b.device:
        return False
    sa, sb = a.untyped_storage(), b.untyped_storage()
    a0, a1 = sa.data_ptr(), sa.data_ptr() + sa.nbytes()
    b0, b1 = sb.data_ptr(), sb.data_ptr() + sb.nbytes()
    return a0 < b1 and b0 < a1


def _poison(state: State, nbytes: list[int], torch) -> None:
    """Fill blocks of the sizes the outputs will need with 0xFF (NaN in every float dtype), then
    free them: an answer that returns torch.empty(...) without writing it sees NaN, not an old
    correct result left in the caching allocator (threat A1)."""
    keep = []
    for n in nbytes:
        if n > 0:
            t = torch.empty(int(n), dtype=torch.uint8, device=state.device)
            t.fill_(255)
            keep.append(t)
    if state.device == "cuda":
        torch.cuda.synchronize()
    del keep


def _sync(state: State, torch) -> None:
    if state.device == "cuda":
        torch.cuda.synchronize()


def _cmd_call(state: State, msg: dict, torch) -> dict:
    name = msg.get("name", "answer")
    model = state.models[name]
    inputs = msg["inputs"]
    prev = state.last_inputs.get(name)
    if msg.get("reuse") and prev is not None and len(prev) == len(inputs):
        # Same buffers, new contents: a cache keyed by data_ptr() or id() now returns stale data.
        live = []
        for old, new in zip(prev, inputs):
            if isinstance(old, torch.Tensor) and isinstance(new, torch.Tensor) and old.shape == new.shape \
                    and old.dtype == new.dtype:
                old.copy_(new)
                live.append(old)
            else:
                live.append(_to_device(new, state.device, torch))
    else:
        live = [_to_device(x, state.device, torch) for x in inputs]
    state.last_inputs[name] = live
    _sync(state, torch)
    before = _digest(live, torch)
    _poison(state, msg.get("poison_bytes", []), torch)
    flags_before = _flags(torch)
    threads_before = {t.ident for t in threading.enumerate()}
    state.launches.clear()
    state.ablate = bool(msg.get("ablate"))
    try:
        with torch.no_grad():
            out = model(*live)
        _sync(state, torch)
    finally:
        state.ablate = False
    added = [t for t in threading.enumerate() if t.ident not in threads_before]
    describe = lambda t: (f"{t.name} ({type(t).__module__}.{type(t).__qualname__}, target "  # noqa: E731
                          f"{getattr(getattr(t, '_target', None), '__qualname__', '?')})")
    new_threads = [describe(t) for t in added if type(t) not in state.library_threads]
    library_threads = [describe(t) for t in added if type(t) in state.library_threads]
    ok_types, flat = _exact_tensors(out, torch)
    reply: dict = {
        "launches": dict(state.launches),
        "threads_added": len(new_threads),
        "threads_new": new_threads,  # names say whose they are (the answer's, or a library's)
        "threads_library": library_threads,  # allowed: _library_thread_types
        "flags_changed": {k: v for k, v in _flags(torch).items() if flags_before.get(k) != v},
        "inputs_changed": _digest(live, torch) != before,
        "exact_tensors": ok_types,
    }
    if not ok_types:
        reply["outputs"] = None
        reply["output_type"] = type(out).__name__
        return reply
    reply["aliases_input"] = any(
        _overlaps(o, i) for o in flat for i in live if isinstance(i, torch.Tensor)
    )
    reply["output_devices"] = [o.device.type for o in flat]
    reply["outputs"] = flat  # flattened; the judge flattens the reference the same way
    reply["single"] = isinstance(out, torch.Tensor)
    return reply


def _cmd_share(state: State, msg: dict, torch) -> dict:
    """Share of GPU kernel time spent in the answer's own Triton kernels over one forward (cuda only).
    Reported, not judged: it tells a user how much of the op the answer really took over."""
    from torch.profiler import ProfilerActivity, profile

    model = state.models[msg.get("name", "answer")]
    live = [_to_device(x, state.device, torch) for x in msg["inputs"]]
    names = {k.split(".")[-1] for k in state.answer_kernels() if not k.startswith("ext:")}
    with torch.no_grad():
        model(*live)  # warm: compilation stays out of the profile
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            model(*live)
            torch.cuda.synchronize()
    total = own = 0.0
    for ev in prof.events():
        if ev.device_type.name != "CUDA":
            continue
        t = float(getattr(ev, "device_time", 0.0) or getattr(ev, "cuda_time", 0.0) or 0.0)
        total += t
        if any(ev.name == n or ev.name.startswith(n + "_") for n in names):
            own += t
    return {"share": (own / total) if total > 0 else None, "kernels": sorted(names)}


def _cuda_error(exc: BaseException) -> bool:
    text = str(exc)
    return any(s in text for s in ("CUDA error", "illegal memory access", "device-side assert", "cudaError"))


def main() -> None:
    rfd, wfd, device = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    _limit_resources(device)
    import torch

    from . import protocol

    state = State(device)
    baseline_flags = _pin_flags(torch)
    if device == "cuda":
        frac = float(os.environ.get("KW_GPU_MEMORY_FRACTION", "0.9"))
        torch.cuda.set_per_process_memory_fraction(frac)
        torch.cuda.init()
    # Start torch's thread pools now, so threads they create are not blamed on the answer.
    torch.ones(64, 64) @ torch.ones(64, 64)
    _install_launch_hooks(state)
    while True:
        try:
            msg = protocol.read_message(rfd)
        except protocol.ChannelClosed:
            return
        cmd = msg.get("cmd")
        if cmd == "exit":
            return
        try:
            if cmd == "build":
                reply = _cmd_build(state, msg, torch)
            elif cmd == "call":
                reply = _cmd_call(state, msg, torch)
            elif cmd == "share":
                reply = _cmd_share(state, msg, torch)
            elif cmd == "time":
                from . import timer_worker

                reply = timer_worker.handle(state, msg)
            else:
                reply = {"error": f"unknown command {cmd!r}"}
            now = _flags(torch)
            reply.setdefault("flags_pinned", now == baseline_flags)
            if now != baseline_flags:
                reply["flags_changed"] = {k: v for k, v in now.items() if baseline_flags.get(k) != v}
        except BaseException as exc:  # the answer raised: report it, the judge decides
            tb = traceback.format_exc(limit=20)
            oom = isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()
            reply = {"error": f"{type(exc).__name__}: {exc}", "traceback": tb[-6000:], "oom": oom,
                     "cuda_error": _cuda_error(exc)}
        try:
            protocol.write_message(wfd, reply)
        except TypeError as exc:  # the output held something the channel cannot carry
            protocol.write_message(wfd, {"error": f"unsendable result: {exc}"})
        if "error" in reply and reply.get("cuda_error"):
            return  # a poisoned CUDA context: this process is done (threat C5)


if __name__ == "__main__":
    main()
