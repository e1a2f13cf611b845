"""Write regions of a captured model as KernelBench task files (DIR/tasks/<name>.py).

Each task is the region's ATen ops as a `Model.forward` at the model's real shapes and dtypes:
- the region's activations are forward arguments (`get_inputs` draws them at those shapes);
- the parameters, buffers and constants it reads are `Model` parameters/buffers named weight0,
  weight1, ... in first-use order, drawn with the real tensor's mean and std (integers in the real
  range), so magnitudes match the model without copying its weights;
- regions that compute the same thing at the same shapes (the norm of every layer) become one task,
  listing all its instances.

The integration (integrate/) relies on this contract: a winning answer's ModelNew is called as
`ModelNew()(*activations)` with weight<j> bound to the model's own tensors.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import fx

from .graph import BUFFER, CONSTANT, INPUT, PARAMETER, Captured, meta_val
from .regions import Region

_HEADER_IMPORTS = "import torch\nimport torch.nn as nn\nfrom torch import device  # FX writes device(type=...) literals\n"
_FX_GLOBALS_OK = {"torch", "device", "inf", "nan", "_operator", "operator", "math"}
# Definitions for the FX globals a forward may name (FX prints -inf as `-inf`, getitem via _operator).
_FX_GLOBAL_DEFS = {
    "inf": 'inf = float("inf")',
    "nan": 'nan = float("nan")',
    "_operator": "import operator as _operator",
    "operator": "import operator",
    "math": "import math",
}


@dataclass
class ValueStats:
    """What emit needs to know of a real tensor to draw a look-alike."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    mean: float = 0.0
    std: float = 1.0
    lo: float = 0.0
    hi: float = 1.0

    @classmethod
    def of(cls, t: torch.Tensor) -> "ValueStats":
        if t.dtype == torch.bool:
            return cls(tuple(t.shape), t.dtype, mean=float(t.float().mean()) if t.numel() else 0.5)
        if t.is_floating_point():
            # Statistics of the finite values: masked logits hold -inf, which a draw must not copy
            # (randn + -inf is all -inf); the task gets finite values of the same spread.
            f = t.detach().double()
            f = f[torch.isfinite(f)]
            return cls(
                tuple(t.shape), t.dtype,
                mean=float(f.mean()) if f.numel() else 0.0,
                std=float(f.std()) if f.numel() > 1 else 1.0,
            )
        if t.is_complex():
            raise TypeError("complex tensors are not extracted")
        lo, hi = (int(t.min()), int(t.max())) if t.numel() else (0, 1)
        return cls(tuple(t.shape), t.dtype, lo=lo, hi=hi)


@dataclass
class InputRole:
    """Where one region input comes from in the model: for the integration to rebind it."""

    kind: str  # "input" (forward arg), "node" (a graph node outside the region), "parameter", "buffer", "constant"
    target: str  # arg index as text, node key (integrate.runtime.kw_node_keys), parameter/buffer FQN, or constant name
    weight: str = ""  # "weight<j>" when the task holds it as a parameter/buffer; "" for activations
    dtype: str = ""  # "torch.float32": the runtime checks it found the same value again
    rank: int = -1


@dataclass
class EmittedRegion:
    region_index: int
    kind: str
    ops: list[str]
    nodes: list[tuple[str, str]]  # (node key "aten.mul.Tensor#3", node name) in graph order
    inputs: list[InputRole]
    outputs: list[str]  # node keys, in the order the task's forward returns them
    task: str = ""  # task name; "" when not extractable
    skipped: str = ""  # why this region has no task


@dataclass
class EmittedTask:
    name: str
    path: Path
    kind: str
    ops: list[str]
    instances: list[int] = field(default_factory=list)  # region indices
    source: str = ""


def _dtype_text(dt: torch.dtype) -> str:
    return str(dt)  # "torch.float32"


def _is_weight(cap: Captured, node: fx.Node) -> bool:
    return node.op == "placeholder" and cap.placeholders[node.name].kind in (PARAMETER, BUFFER, CONSTANT)


def _role(cap: Captured, node: fx.Node, keys: dict) -> InputRole:
    if node.op == "placeholder":
        src = cap.placeholders[node.name]
        if src.kind == INPUT:
            return InputRole("input", str(src.index))
        return InputRole(src.kind, src.target)
    if node not in keys:
        raise ValueError(f"input {node.name} is not a tensor op the runtime can find again")
    return InputRole("node", keys[node])


def _concrete(v) -> Any:
    """A literal for a non-tensor region input, or raise when it is symbolic (shape-dependent)."""
    if isinstance(v, (torch.SymInt, torch.SymFloat, torch.SymBool)):
        raise ValueError("reads a size computed at run time")
    if isinstance(v, (int, float, bool)) or v is None:
        return v
    raise ValueError(f"reads a {type(v).__name__} input")


def _draw_tensor(st: ValueStats) -> str:
    shape = ", ".join(str(s) for s in st.shape)
    shape_t = f"({shape},)" if len(st.shape) == 1 else f"({shape})"
    dt = _dtype_text(st.dtype)
    if st.dtype == torch.bool:
        return f"torch.rand({shape_t}) < {min(max(st.mean, 0.05), 0.95):.3f}"
    if st.dtype.is_floating_point and st.std < 1e-6:  # a constant tensor (norm weights at init)
        return f"torch.full({shape_t}, {st.mean:.6g}, dtype={dt})"
    if st.dtype.is_floating_point:
        expr = f"torch.randn({shape_t}, dtype={dt})"
        if abs(st.std - 1.0) > 1e-3:
            expr = f"{expr} * {st.std:.4g}"
        if abs(st.mean) > 1e-3:
            expr = f"{expr} + {st.mean:.4g}"
        return expr
    return f"torch.randint({int(st.lo)}, {int(st.hi) + 1}, {shape_t}, dtype={dt})"


class _Codegen:
    """One region -> (forward source, activations, weights); canonical so equal regions compare equal."""

    def __init__(self, cap: Captured, region: Region, stats: dict[str, ValueStats]):
        self.cap, self.region, self.stats = cap, region, stats

    def build(self) -> tuple[str, list[fx.Node], list[fx.Node]]:
        g = fx.Graph()
        env: dict[fx.Node, Any] = {}
        acts, weights = [], []
        for a in self.region.inputs:
            v = meta_val(a)
            if isinstance(v, torch.Tensor):
                if _is_weight(self.cap, a):
                    env[a] = g.get_attr(f"weight{len(weights)}")
                    weights.append(a)
                else:
                    env[a] = g.placeholder(f"x{len(acts)}")
                    acts.append(a)
            else:
                env[a] = _concrete(v)
        for n in self.region.nodes:
            args = fx.map_arg(n.args, lambda x: env[x])
            kwargs = fx.map_arg(n.kwargs, lambda x: env[x])
            env[n] = g.create_node(n.op, n.target, args, kwargs)  # canonical names (mul, mul_1 ...)
        outs = [env[o] for o in self.region.outputs]
        g.output(outs[0] if len(outs) == 1 else tuple(outs))
        root = torch.nn.Module()
        for j, w in enumerate(weights):
            root.register_buffer(f"weight{j}", torch.empty(0))
        code = fx.GraphModule(root, g).code
        pc = g.python_code(root_module="self")
        # FX lists globals it may need (pytree helpers ...); only those the code names matter.
        unknown = {k for k in set(pc.globals) - _FX_GLOBALS_OK if re.search(rf"\b{re.escape(k)}\b", code)}
        if unknown:
            raise ValueError(f"its code needs globals {sorted(unknown)}")
        return code, acts, weights


def _indent_forward(code: str) -> str:
    """FX's `def forward(self, x0, ...)` body, indented as a method; drops FX's blank/comment lines."""
    lines = [ln for ln in code.strip("\n").splitlines() if ln.strip()]
    return "\n".join("    " + ln for ln in lines)


def _task_body(forward: str, act_stats: list[ValueStats], weight_stats: list[tuple[ValueStats, bool]]) -> str:
    init = ["    def __init__(self):", "        super().__init__()"]
    for j, (st, is_param) in enumerate(weight_stats):
        draw = _draw_tensor(st)
        if is_param and st.dtype.is_floating_point:
            init.append(f"        self.weight{j} = nn.Parameter({draw})")
        else:
            init.append(f'        self.register_buffer("weight{j}", {draw})')
    inputs = ",\n        ".join(_draw_tensor(st) for st in act_stats)
    return (
        "class Model(nn.Module):\n"
        + "\n".join(init)
        + "\n\n"
        + _indent_forward(forward)
        + "\n\n\ndef get_inputs():\n"
        + (f"    return [\n        {inputs},\n    ]\n" if act_stats else "    return []\n")
        + "\n\ndef get_init_inputs():\n    return []\n"
    )


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "model"


def emit_tasks(
    cap: Captured,
    regions: list[Region],
    stats: dict[str, ValueStats],
    out_dir: Path,
    model_name: str,
    keep: set[int] | None = None,
) -> tuple[list[EmittedTask], list[EmittedRegion]]:
    """Write one task per distinct region (those in `keep`, all when None) into out_dir.

    `stats` maps node names (placeholders included) to the real values' statistics, from one run of
    the captured graph on the model's inputs. Returns the tasks and, for every region, how it maps.
    """
    from ..integrate.runtime import kw_node_keys

    keys = kw_node_keys(cap.graph)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_key: dict[str, EmittedTask] = {}
    emitted: list[EmittedRegion] = []
    prefix = _safe(model_name)
    for i, r in enumerate(regions):
        er = EmittedRegion(
            region_index=i,
            kind=r.kind,
            ops=list(r.ops),
            nodes=[(keys.get(n, ""), n.name) for n in r.nodes],
            inputs=[],
            outputs=[keys.get(o, "") for o in r.outputs],
        )
        emitted.append(er)
        if keep is not None and i not in keep:
            er.skipped = "not among the ranked targets"
            continue
        if not r.ops:
            er.skipped = "no compute op"
            continue
        if not all(k for k, _ in er.nodes) or not all(er.outputs):
            er.skipped = "not extractable: a node is not a tensor op the runtime can find again"
            continue
        try:
            forward, acts, weights = _Codegen(cap, r, stats).build()
            act_stats = [stats[a.name] for a in acts]
            w_stats = [(stats[w.name], cap.placeholders[w.name].kind == PARAMETER) for w in weights]
        except (ValueError, KeyError, TypeError) as exc:
            er.skipped = f"not extractable: {exc}"
            continue
        if any(not isinstance(meta_val(o), torch.Tensor) for o in r.outputs) or not r.outputs:
            er.skipped = "not extractable: an output is not a tensor"
            continue
        wnames = {w.name: f"weight{j}" for j, w in enumerate(weights)}
        act_pos = {a.name: str(k) for k, a in enumerate(acts)}
        try:
            for a in r.inputs:
                if a.name in wnames or a.name in act_pos:
                    role = _role(cap, a, keys)
                    role.weight = wnames.get(a.name, "")
                    role.dtype, role.rank = str(meta_val(a).dtype), meta_val(a).dim()
                    er.inputs.append(role)
        except ValueError as exc:
            er.skipped = f"not extractable: {exc}"
            er.inputs = []
            continue
        # Equal code at equal shapes and dtypes is one task, whatever the values' statistics.
        plain = _task_body(
            forward,
            [ValueStats(s.shape, s.dtype) for s in act_stats],
            [(ValueStats(s.shape, s.dtype), p) for s, p in w_stats],
        )
        key = hashlib.sha256(plain.encode()).hexdigest()
        task = by_key.get(key)
        if task is None:
            name = f"{prefix}_{len(by_key):02d}_{r.kind}"
            real_body = _task_body(forward, act_stats, w_stats)
            task = EmittedTask(name=name, path=out_dir / f"{name}.py", kind=r.kind, ops=list(r.ops))
            task.source = real_body
            by_key[key] = task
        task.instances.append(i)
        er.task = task.name
    tasks = list(by_key.values())
    for t in tasks:
        doc = (
            f'"""{t.kind} region of {model_name}, extracted by kernelwright: {", ".join(_short(o) for o in t.ops)}.\n\n'
            f"Appears {len(t.instances)} time(s) in the model (regions {', '.join(map(str, t.instances))}). "
            "Shapes and dtypes are the model's own;\nweights are drawn with the real tensors' mean and std. "
            "An answer's ModelNew() takes no constructor arguments\nand must keep the parameter names "
            'weight0, weight1, ... (the integration binds the model\'s tensors to them).\n"""\n'
        )
        extra = [d for name, d in _FX_GLOBAL_DEFS.items() if re.search(rf"\b{name}\b", _forward_of(t.source))]
        t.path.write_text(doc + _HEADER_IMPORTS + "".join(e + "\n" for e in extra) + "\n\n" + t.source)
    return tasks, emitted


def _forward_of(body: str) -> str:
    return body[body.index("    def forward("):body.index("def get_inputs")]


def _short(op: str) -> str:
    return op.removeprefix("aten.").rsplit(".", 1)[0]


def value_stats(cap: Captured, args: list, names: set[str]) -> dict[str, ValueStats]:
    """Run the captured graph once on real values; statistics of the nodes named in `names`."""
    stats: dict[str, ValueStats] = {}

    class _Recorder(fx.Interpreter):
        def run_node(self, n):
            v = super().run_node(n)
            if n.name in names and isinstance(v, torch.Tensor):
                try:
                    stats[n.name] = ValueStats.of(v)
                except TypeError:
                    pass
            return v

    with torch.no_grad():
        _Recorder(cap.gm).run(*args)
    return stats


def placeholder_args(cap: Captured, model: torch.nn.Module, inputs: list) -> list:
    """The values of the captured graph's placeholders, in order, taken from the live model."""
    args = []
    for n in cap.gm.graph.nodes:
        if n.op != "placeholder":
            continue
        src = cap.placeholders[n.name]
        if src.kind == PARAMETER:
            args.append(model.get_parameter(src.target))
        elif src.kind == BUFFER:
            args.append(model.get_buffer(src.target))
        elif src.kind == INPUT:
            args.append(inputs[src.index])
        else:
            args.append(cap.constants[src.target])
    return args
