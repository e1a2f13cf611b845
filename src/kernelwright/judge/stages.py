"""`check`: the correctness judgement of one answer, stage by stage; the first failure stops it.

  load         the answer parses and defines ModelNew (static; telemetry for the writer)
  smoke        the task's own shapes, one call: shape, dtype, device exact; every element compared
  sweep        >= 8 configurations: size constants rescaled (odd, non-power-of-two), declared dtypes
  numerics     judge-made contents: signed/non-zero mean, identical large, dynamic range, near-zero
               variance, long reductions; tolerance table per dtype against a float64 reference
  determinism  identical inputs three times: bitwise identical outputs
  integrity    same buffers with new contents, and an ablation run with the answer's kernels
               neutralised (its output must change)
Every call, in every stage, is also held to the integrity rules (threat groups A and C): an own
kernel ran, inputs unchanged, no output aliasing an input, plain tensors, no new threads, flags
unchanged. The reference runs here, in the judge's process; the answer only in the worker.
"""
from __future__ import annotations

import ast
import copy
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ..config import JudgeConfig
from ..errors import TaskError, UsageError
from ..pyparse import parse
from ..task import Task, load_task
from . import inputs as inp
from .compare import Ref64, compare_outputs
from .gate import NO_GATE, GpuGate
from .protocol import dtype_name
from .sandbox import Worker, WorkerDied, WorkerProtocolError, WorkerTimeout
from .tolerances import loosest_dtype
from .verdict import Rejection, StageResult, Verdict


def _flatten(out: Any) -> list[torch.Tensor] | None:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        flat: list[torch.Tensor] = []
        for v in out:
            f = _flatten(v)
            if f is None:
                return None
            flat.extend(f)
        return flat
    return None


def _static_load_check(src: str) -> None:
    try:
        tree = parse(src)
    except SyntaxError as exc:
        raise Rejection("load", f"the answer has a syntax error at line {exc.lineno}: {exc.msg}") from None
    names = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    names |= {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    if "ModelNew" not in names:
        raise Rejection("load", "the answer defines no ModelNew class")


class _WorkDtypes(TorchDispatchMode):
    """Records the dtype of every floating tensor that any op of the reference outputs: a task may
    narrow inside its forward (`.to(torch.float16).float()`), and then computes at that precision."""

    def __init__(self, seen: set):
        super().__init__()
        self.seen = seen

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                self.seen.add(t.dtype)
        return out


class _Reference:
    """The task's Model at one configuration, in its own dtype and (where it runs) in float64."""

    def __init__(self, task: Task, cfg: inp.ShapeConfig, device: str, seed: int):
        self.init_args = task.init_inputs(cfg.as_dict, seed=seed)
        model = task.build_model(self.init_args, seed=seed)
        if cfg.dtype is not None:
            model = model.to(cfg.dtype)
        self.state_dict = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        self.native = model.to(device)
        self.device = device
        self._ref64: torch.nn.Module | None = None
        self._ref64_failed = False
        self.mutates = False
        self.aliases = False
        self.work_dtypes: set[torch.dtype] = set()  # every floating dtype an op of the native run output

    def run(self, inputs: list, on_device: bool = False) -> tuple[list[torch.Tensor], Ref64 | None]:
        """Native outputs and the float64 companion; on the cpu unless on_device (the check compares
        on the GPU, where the float64 work on 64M-element outputs takes milliseconds, not seconds;
        the timer keeps its input sets' references on the cpu, out of the timed worker's memory)."""
        # a copy always: the reference may write its inputs, and the caller sends them on to the answer
        dev = [x.to(self.device, copy=True) if isinstance(x, torch.Tensor) else x for x in inputs]
        before = [x.clone() if isinstance(x, torch.Tensor) else None for x in dev]
        seen: set[torch.dtype] = set()
        try:
            with torch.no_grad(), _WorkDtypes(seen):
                out = self.native(*dev)
        except Exception:  # a task the dispatch mode breaks (or that fails anyway): run it plainly
            seen = set()
            dev = [b.clone() if b is not None else x for b, x in zip(before, dev)]
            with torch.no_grad():
                out = self.native(*dev)
        self.work_dtypes |= seen
        native = _flatten(out)
        if native is None:
            raise TaskError(
                f"the task's Model.forward returned a {type(out).__name__}, not a tensor or a tuple of tensors",
                "A task's forward must return tensors.",
            )
        self.mutates |= any(b is not None and not torch.equal(b, x) for b, x in zip(before, dev) if b is not None
                            and not b.isnan().any())
        self.aliases |= any(
            o.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
            for o in native for x in dev if isinstance(x, torch.Tensor) and o.numel() and x.numel()
        )
        native = [o.detach() if on_device else o.detach().cpu() for o in native]
        r64 = self._run64(before, on_device)
        if r64 is None and self.work_dtype is not None:  # no float64 run, but the working precision holds
            r64 = Ref64([None] * len(native), None, self.work_dtype)
        return native, r64

    @property
    def work_dtype(self) -> torch.dtype | None:
        """The least precise floating dtype the native reference computed in (its tolerance applies)."""
        return loosest_dtype(self.work_dtypes)

    def _run64(self, pristine: list, on_device: bool = False) -> Ref64 | None:
        """Float64 run on the pristine inputs, and again on inputs and weights perturbed by one ulp
        of their own dtype: the gap is the error any backward-stable algorithm in that dtype may make
        (compare.py). None when the op does not run in float64."""
        if self._ref64_failed:
            return None
        try:
            if self._ref64 is None:
                self._ref64 = copy.deepcopy(self.native).double()
                self._perturbed = copy.deepcopy(self.native).double()
                with torch.no_grad():  # weights move by one ulp of their own (native) dtype
                    for p, p0 in zip(self._perturbed.parameters(), self.native.parameters()):
                        if p0.is_floating_point():
                            p.copy_(_ulp_perturb(p0.detach()))
            args = [x.double() if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in pristine]
            pert = [_ulp_perturb(x) if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in pristine]
            with torch.no_grad():
                out = _flatten(self._ref64(*args))
                out_p = _flatten(self._perturbed(*pert))
            if out is None:
                return None
            values = [o.detach() if on_device else o.detach().cpu() for o in out]
            sens = None
            if out_p is not None and len(out_p) == len(values):
                sens = [(p.detach().to(v.device) - v).abs() if p.shape == v.shape and v.is_floating_point() else None
                        for p, v in zip(out_p, values)]
            return Ref64(values, sens, self.work_dtype)
        except Exception:
            self._ref64_failed = True
            self._ref64 = None
            return None


def _ulp_perturb(x: torch.Tensor) -> torch.Tensor:
    """x in float64, each element moved by up to one machine epsilon of x's own dtype (relative)."""
    eps = torch.finfo(x.dtype).eps
    u = torch.rand(x.shape, dtype=torch.float64, device=x.device) * 2 - 1
    return x.double() * (1 + eps * u)


class _Check:
    def __init__(self, task: Task, answer_src: str, cfg: JudgeConfig, gate: GpuGate = NO_GATE):
        self.gate = gate  # each GPU request (a call, a reference run) shares the GPU; timing waits for it
        self.task = task
        self.answer_src = answer_src
        self.cfg = cfg
        self.device = cfg.device
        self.seed = cfg.seed if cfg.seed is not None else int.from_bytes(os.urandom(6), "little")
        self.factory = inp.InputFactory(task, self.seed, device=self.device)
        self.cap = cfg.max_variant_elements or inp.DEFAULT_CAP.get(self.device, 1 << 16)
        self.worker: Worker | None = None
        self.answer_path = ""
        self.refs: dict[inp.ShapeConfig, _Reference] = {}
        self.built: inp.ShapeConfig | None = None
        self.kernels: set[str] = set()
        self.kernel_share: float | None = None
        self.stages: list[StageResult] = []
        self._stage = "load"
        self._t = 0.0
        self._n = 0
        self._abs = 0.0
        self._rel = 0.0

    # -- stage bookkeeping -----------------------------------------------------------------
    def begin(self, name: str) -> None:
        self._stage, self._t, self._n, self._abs, self._rel = name, time.monotonic(), 0, 0.0, 0.0

    def end(self, detail: str = "") -> None:
        self.stages.append(StageResult(self._stage, True, time.monotonic() - self._t, self._n,
                                       self._abs, self._rel, detail))

    def fail(self, r: Rejection) -> None:
        self.stages.append(StageResult(r.stage, False, time.monotonic() - self._t, self._n, r.abs_err, r.rel_err,
                                       r.reason))

    # -- reference and worker --------------------------------------------------------------
    def ref(self, cfg: inp.ShapeConfig) -> _Reference:
        if cfg not in self.refs:
            self.refs.clear()  # one configuration at a time keeps memory flat
            self.refs[cfg] = _Reference(self.task, cfg, self.device, seed=self.seed % (2**31))
        return self.refs[cfg]

    def build(self, cfg: inp.ShapeConfig) -> None:
        if self.built == cfg:
            return
        ref = self.ref(cfg)
        reply = self.request({
            "cmd": "build", "name": "answer", "kind": "answer", "path": self.answer_path,
            "init_args": ref.init_args, "state_dict": ref.state_dict, "seed": self.seed % (2**31),
            "dtype": dtype_name(cfg.dtype) if cfg.dtype is not None else None,
        })
        if "error" in reply:
            raise Rejection(self._stage, f"building ModelNew({cfg.label()}) raised: {reply['error']}"
                            + _tb(reply))
        self.built = cfg

    def request(self, body: dict) -> dict:
        assert self.worker is not None
        try:
            with self.gate.shared():
                return self.worker.request(body)
        except WorkerTimeout as exc:
            raise Rejection(self._stage, f"timed out after {exc.seconds:.0f} s (hang, or too slow for --timeout)")
        except WorkerDied as exc:
            raise Rejection(self._stage, exc.reason)
        except WorkerProtocolError as exc:
            raise Rejection("integrity", str(exc))

    def call(self, cfg: inp.ShapeConfig, inputs: list, *, reuse: bool = False, ablate: bool = False) -> dict:
        """One forward of the answer on these inputs, held to every integrity rule."""
        self.build(cfg)
        ref = self.ref(cfg)
        reply = self.request({
            "cmd": "call", "name": "answer", "inputs": [x.cpu() if isinstance(x, torch.Tensor) else x for x in inputs],
            "reuse": reuse, "ablate": ablate, "poison_bytes": getattr(ref, "out_bytes", []),
        })
        self._n += 1
        if "error" in reply:
            if ablate:
                return reply
            what = "ran out of memory" if reply.get("oom") else "raised"
            ctx = " (the CUDA context is now unusable; the next check runs in a fresh process)" \
                if reply.get("cuda_error") else ""
            raise Rejection(self._stage, f"the answer {what} on {cfg.label()}: {reply['error']}{ctx}" + _tb(reply))
        if not reply.get("exact_tensors"):
            raise Rejection("integrity", f"the answer returned a {reply.get('output_type', '?')}, not plain "
                                         "torch.Tensor(s): tensor subclasses and lazy outputs are not allowed")
        if ablate:
            return reply
        launched = reply.get("launches") or {}
        self.kernels.update(k for k, v in launched.items() if v)
        if self.cfg.require_custom_kernel and not any(launched.values()):
            raise Rejection("integrity", "no custom kernel ran: the forward launched no Triton kernel or CUDA "
                                         "extension function defined by the answer (an answer that only calls "
                                         "torch is a fallback to the reference)")
        if reply.get("threads_added", 0) > 0:
            raise Rejection("integrity", f"the answer left {reply['threads_added']} new thread(s) running after "
                                         f"its forward returned (deferred work): "
                                         f"{', '.join(reply.get('threads_new') or []) or '?'}")
        if reply.get("flags_changed") or not reply.get("flags_pinned", True):
            raise Rejection("integrity", f"the answer changed global numeric flags: {reply.get('flags_changed')} "
                                         "(TF32 / matmul precision are pinned for reference and answer alike)")
        if reply.get("inputs_changed") and not ref.mutates:
            raise Rejection("integrity", "the answer modified its input tensors (the reference does not)")
        if reply.get("aliases_input") and not ref.aliases:
            raise Rejection("integrity", "an output shares memory with an input (the reference's does not)")
        want = "cuda" if self.device == "cuda" else "cpu"
        devs = reply.get("output_devices") or []
        if any(d != want for d in devs):
            raise Rejection(self._stage, f"output on {devs}, expected {want}")
        return reply

    def expect(self, cfg: inp.ShapeConfig, inputs: list) -> tuple[list, list | None]:
        ref = self.ref(cfg)
        with self.gate.shared():
            native, r64 = ref.run(inputs, on_device=True)
        ref.out_bytes = [o.numel() * o.element_size() for o in native]
        return native, r64

    def on_device(self, outs: list) -> list:
        """The worker's outputs (cpu tensors off the wire) where the references are."""
        return [o.to(self.device) if isinstance(o, torch.Tensor) else o for o in outs]

    def judge_call(self, cfg: inp.ShapeConfig, inputs: list, what: str, *, reuse: bool = False) -> list:
        native, r64 = self.expect(cfg, inputs)
        reply = self.call(cfg, inputs, reuse=reuse)
        with self.gate.shared():
            m = compare_outputs(self.on_device(reply["outputs"]), native, r64)
        self._abs, self._rel = max(self._abs, m.max_abs_err), max(self._rel, m.max_rel_err)
        if not m.ok:
            raise Rejection(self._stage, f"wrong result on {what} [{cfg.label()}]: {m.reason}",
                            m.max_abs_err, m.max_rel_err)
        return reply["outputs"]

    # -- the stages -------------------------------------------------------------------------
    def run(self) -> str:
        self.begin("load")
        _static_load_check(self.answer_src)
        self.worker = Worker(self.device, self.cfg.timeout_s, self.cfg).start()
        self.answer_path = self.worker.put_file("answer.py", self.answer_src)
        self.end()

        # smoke: the task's own shapes (scaled down only when the interpreter could not finish them)
        self.begin("smoke")
        own: dict[str, int] = {}
        note = ""
        if self.device == "cpu" and not inp.fits(self.task, {}, self.cap * 64):
            own = inp.scaled_down(self.task, self.cap)
            note = f"task shapes too large for the CPU interpreter; smoke at {own}"
        base = inp.ShapeConfig(tuple(sorted(own.items())))
        try:
            x = self.factory.make(base, "task")
            self.expect(base, x)
        except TaskError:
            raise
        except Exception as exc:
            raise TaskError(f"the task's own Model fails on its own inputs: {type(exc).__name__}: {exc}",
                            "Fix the task file so that Model(*get_init_inputs())(*get_inputs()) runs.")
        self.judge_call(base, x, "the task's own inputs")
        self._probe_domain(base)
        self.end(note)

        # sweep: rescaled shapes and declared dtypes
        self.begin("sweep")
        want = self.cfg.min_sweep_configs
        configs = inp.sweep_configs(self.task, self.cap, want + 4)
        configs += [inp.ShapeConfig(c.overrides, d) for d in self.task.dtypes for c in [base] + configs[:1]]
        if not configs:  # no size constants: vary the contents only
            configs = [base] * want
        done, skipped = 0, []
        for cfg in configs:
            if done >= want + len(self.task.dtypes) * 2:
                break
            x = self.factory.make(cfg, "signed")
            try:
                self.expect(cfg, x)
            except Exception as exc:  # the reference itself fails here: not a valid variant
                skipped.append(f"{cfg.label()} ({type(exc).__name__})")
                continue
            self.judge_call(cfg, x, "rescaled shapes")
            done += 1
        self.end(f"{done} configurations" + (f"; skipped where the reference fails: {skipped}" if skipped else ""))

        # numerics: judge-made contents at the base shapes, then long reductions
        self.begin("numerics")
        ran = []
        for kind in inp.KINDS:
            x = self.factory.make(base, kind)
            try:
                self.expect(base, x)
            except Exception:
                continue
            self.judge_call(base, x, f"{kind} inputs ({inp.KINDS[kind]})")
            ran.append(kind)
        for cfg in inp.long_reduction_configs(self.task, base.as_dict or dict(self.task.size_constants), self.cap):
            x = self.factory.make(cfg, "signed")
            try:
                self.expect(cfg, x)
            except Exception:
                continue
            self.judge_call(cfg, x, "long dimensions")
            ran.append(cfg.label())
        self.end(", ".join(ran))

        # determinism: identical inputs, fresh buffers, bitwise identical outputs
        self.begin("determinism")
        x = self.factory.make(base, "signed")
        first = self.judge_call(base, x, "determinism run 1")
        from .protocol import tensor_to_bytes

        for i in range(1, self.cfg.determinism_runs):
            again = self.call(base, [t.clone() if isinstance(t, torch.Tensor) else t for t in x])["outputs"]
            if [tensor_to_bytes(t) for t in again] != [tensor_to_bytes(t) for t in first]:
                raise Rejection("determinism", f"run {i + 1} on identical inputs gave different bits than run 1 "
                                               "(a race, or reads of uninitialised memory)")
        self.end()

        # integrity: same buffers with new contents, then the ablation run
        self.begin("integrity")
        for kind in ("signed", "range"):
            x = self.factory.make(base, kind)
            self.judge_call(base, x, f"reused input buffers with new {kind} contents", reuse=True)
        if self.cfg.require_custom_kernel:
            x = self.factory.make(base, "signed")
            native, r64 = self.expect(base, x)
            reply = self.call(base, x, ablate=True)
            if "error" not in reply and reply.get("outputs") is not None:
                with self.gate.shared():
                    still_right = compare_outputs(self.on_device(reply["outputs"]), native, r64).ok
                if still_right:
                    raise Rejection("integrity", "with the answer's own kernels neutralised its output is still "
                                                 "correct: those kernels do not compute the result")
        self.end("reused buffers x2, ablation" if self.cfg.require_custom_kernel else "reused buffers x2")
        if self.device == "cuda" and self.cfg.kernel_share:
            x = self.factory.make(base, "signed")
            self.build(base)
            reply = self.request({"cmd": "share", "name": "answer", "inputs": [t.cpu() if isinstance(t, torch.Tensor)
                                                                                else t for t in x]})
            self.kernel_share = reply.get("share") if "error" not in reply else None
        return base.label()

    def _probe_domain(self, base: inp.ShapeConfig) -> None:
        """Inputs whose signed values make the reference NaN (log, sqrt ...) keep the task's domain."""
        x = self.factory.make(base, "signed")
        native, _ = self.expect(base, x)
        if not any(o.is_floating_point() and bool(o.isnan().any()) for o in native):
            return
        for i, t in enumerate(x):
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                self.factory.positive.add(i)


def _tb(reply: dict) -> str:
    tb = reply.get("traceback") or ""
    if not tb:
        return ""
    lines = [ln for ln in tb.strip().splitlines() if ln.strip()]
    return "\n" + "\n".join(lines[-8:])


def check(task_path: str | Path, answer_path: str | Path, config: JudgeConfig | None = None, *,
          gate: GpuGate = NO_GATE) -> Verdict:
    """Judge one answer. Raises TaskError (bad task) or UsageError (unreadable answer path).
    gate: held (shared) around each GPU request, so a timer can take the GPU alone between them."""
    cfg = config or JudgeConfig()
    t0 = time.monotonic()
    task = load_task(task_path)
    try:
        src = Path(answer_path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read answer file {answer_path}: {exc}", "Pass the path of an answer .py file.")
    c = _Check(task, src, cfg, gate)
    v = Verdict(accepted=False, stage="load", reason="", device=cfg.device)
    try:
        base = c.run()
        v.accepted, v.stage = True, "integrity"
        v.reason = f"accepted: {sum(s.configs for s in c.stages)} calls over {len(c.stages)} stages, base {base}"
    except Rejection as r:
        c.fail(r)
        v.stage, v.reason = r.stage, r.reason
    finally:
        if c.worker is not None:
            v.log_tail = c.worker.log_tail(2000)
            v.sandbox = c.worker.sandbox
            c.worker.close()
    v.stages = c.stages
    v.kernels = sorted(c.kernels)
    v.kernel_share = c.kernel_share
    v.seconds = time.monotonic() - t0
    return v
