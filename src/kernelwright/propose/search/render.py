"""Assemble a standalone answer file from a captured graph and one rendered kernel per region.

The answer file:
  - imports torch, torch.nn, triton and triton.language (plus what the task file itself imports);
  - carries the task's `Model` class verbatim: `ModelNew(Model)` inherits its constructor, so its
    parameters, buffers, state_dict keys and initialisation are the task's own;
  - defines the rendered kernels and launchers, one launcher per region;
  - overrides `forward` with straight-line code: launcher calls for regions, torch glue (views,
    sym sizes, buffer updates) for the rest, in graph order.
Nothing in it refers to the captured shapes except where export itself specialized a size.
"""
from __future__ import annotations

import ast
import inspect
import operator
import textwrap
from typing import Any

import torch
from torch import fx

from ...errors import TaskError
from ...extract.graph import BUFFER, INPUT, PARAMETER, Captured, packet_name
from ...extract.regions import DROPPED, Region
from ...pyparse import parse
from .expr import helpers_used
from .family import Rendered, Unsupported
from .initargs import INIT_ARG_HELPER, INIT_SCALAR, InitScalar, init_source

HEADER = '''import torch
import torch.nn as nn
import triton
import triton.language as tl
'''

_OPERATORS = {
    operator.add: "+",
    operator.sub: "-",
    operator.mul: "*",
    operator.floordiv: "//",
    operator.truediv: "/",
    operator.mod: "%",
    operator.pow: "**",
}


def task_model_source(task_source: str) -> str:
    """The task file minus get_inputs/get_init_inputs and size constants nobody in it reads."""
    tree = parse(task_source)
    keep: list[ast.stmt] = []
    drop_fns = {"get_inputs", "get_init_inputs"}
    used: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name not in drop_fns:
            used |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if ast.unparse(node) not in HEADER.splitlines():
                keep.append(node)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            if node.name not in drop_fns:
                keep.append(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
            if names & used:
                keep.append(node)
    return "\n\n".join(ast.get_source_segment(task_source, n) or ast.unparse(n) for n in keep) + "\n"


def _attr_path(fqn: str) -> str:
    parts = fqn.split(".")
    if all(p.isidentifier() for p in parts):
        return "self." + fqn
    return None  # type: ignore[return-value]


def _source_expr(src) -> str:
    if src.kind == PARAMETER:
        return _attr_path(src.target) or f"self.get_parameter({src.target!r})"
    if src.kind == BUFFER:
        return _attr_path(src.target) or f"self.get_buffer({src.target!r})"
    if src.kind == INIT_SCALAR:
        return f"self.{src.target}"  # set by ModelNew.__init__ from its init args
    raise Unsupported(f"lifted tensor constant {src.target} (a tensor created inside forward from data)")


class _Raw(str):
    """Source text placed as is (an attribute read)."""


class _NodeView:
    """A node with substituted args, for rendering only."""

    def __init__(self, node: fx.Node, args: tuple):
        self.target, self.args, self.kwargs, self.name = node.target, args, node.kwargs, node.name


def _literal(x: Any, name_of) -> str:
    if isinstance(x, _Raw):
        return str(x)
    if isinstance(x, fx.Node):
        return name_of(x)
    if isinstance(x, (list, tuple)):
        inner = ", ".join(_literal(v, name_of) for v in x)
        return f"[{inner}]" if isinstance(x, list) else f"({inner}{',' if len(x) == 1 else ''})"
    if isinstance(x, torch.dtype):
        return str(x)
    if isinstance(x, torch.device):
        raise Unsupported("a device literal in glue code")
    if isinstance(x, torch.memory_format):
        return str(x)
    if isinstance(x, torch.layout):
        return str(x)
    if isinstance(x, float):
        return repr(x) if x == x and abs(x) != float("inf") else f"float({str(x)!r})"
    return repr(x)


def _glue_line(node: fx.Node, name_of, bound: tuple[str, list] | None = None) -> str:
    """One torch call; `bound` = (attribute, positions) renders those args as self.<attribute>."""
    t = node.target
    if bound is not None:
        attr, positions = bound
        from ...extract.graph import _full_args

        args = [list(a) if isinstance(a, (list, tuple)) else a for a in _full_args(node)]
        for p in positions:
            if isinstance(p, tuple):
                args[p[0]][p[1]] = _Raw(f"self.{attr}")
            else:
                args[p] = _Raw(f"self.{attr}")
        node = _NodeView(node, tuple(args))
        t = node.target
    if t is operator.getitem:
        return f"{node.name} = {name_of(node.args[0])}[{node.args[1]!r}]"
    if t in _OPERATORS:
        a, b = (_literal(x, name_of) for x in node.args)
        return f"{node.name} = {a} {_OPERATORS[t]} {b}"
    if isinstance(t, torch._ops.OpOverload):
        ns = t.namespace
        overload = t._overloadname
        op = t._schema.name.split("::")[-1]
        args = [_literal(a, name_of) for a in node.args]
        args += [f"{k}={_literal(v, name_of)}" for k, v in node.kwargs.items()]
        return f"{node.name} = torch.ops.{ns}.{op}.{overload}({', '.join(args)})"
    raise Unsupported(f"glue call {t}")


def _forward_params(model_cls: type) -> list[str]:
    sig = inspect.signature(model_cls.forward)
    params = list(sig.parameters.values())[1:]
    return [str(p) for p in params]


def _render_out(spec, leaves: list[str]) -> str:
    """Rebuild the forward's return structure from a pytree spec."""
    it = iter(leaves)

    def walk(s) -> str:
        if s.is_leaf():
            return next(it)
        kids = [walk(c) for c in s.children_specs]
        if s.type is tuple:
            return "(" + ", ".join(kids) + ("," if len(kids) == 1 else "") + ")"
        if s.type is list:
            return "[" + ", ".join(kids) + "]"
        if s.type is dict:
            return "{" + ", ".join(f"{k!r}: {v}" for k, v in zip(s.context, kids)) + "}"
        raise Unsupported(f"forward returns a {s.type.__name__}")

    return walk(spec)


def _units_in_order(captured: Captured, regions: list[Region]) -> list:
    """Regions and glue nodes in a dependency-respecting order (graph order where free)."""
    order = {n: i for i, n in enumerate(captured.graph.nodes)}
    owner = {n: r for r in regions for n in r.nodes}
    units: list = []
    seen: set = set()
    for n in captured.graph.nodes:
        if n.op != "call_function":
            continue
        u = owner.get(n, n)
        if id(u) not in seen:
            seen.add(id(u))
            units.append(u)

    def deps(u) -> set:
        nodes = u.nodes if isinstance(u, Region) else [u]
        mine = set(nodes)
        return {owner.get(a, a) for m in nodes for a in m.all_input_nodes if a not in mine and a.op == "call_function"}

    done: list = []
    placed: set = set()
    pending = sorted(units, key=lambda u: order[u.nodes[0]] if isinstance(u, Region) else order[u])
    while pending:
        for i, u in enumerate(pending):
            if all(id(d) in placed for d in deps(u)):
                done.append(u)
                placed.add(id(u))
                pending.pop(i)
                break
        else:
            raise TaskError("regions of the captured graph form a cycle", "This is a bug in extract/regions.py.")
    return done


def assemble(
    task_source: str,
    model_cls: type,
    captured: Captured,
    parts: list[tuple[Region, Rendered, str]],
    title: str,
    init_scalars: list[InitScalar] | None = None,
) -> str:
    """The answer file text. `parts`: (region, rendered, one-line description) per region;
    `init_scalars`: numbers ModelNew.__init__ computes from its init args (placeholders of kind
    INIT_SCALAR in the graph read them)."""
    regions = [r for r, _, _ in parts]
    launcher_of = {id(r): rd.launcher for r, rd, _ in parts}
    kwargs_of = {id(r): "".join(f", {k}={v}" for k, v in rd.call_kwargs.items()) for r, rd, _ in parts}
    params = _forward_params(model_cls)
    pnames = [p.split(":")[0].split("=")[0].strip().lstrip("*") for p in params]
    names: dict[fx.Node, str] = {}
    body: list[str] = []
    for n in captured.graph.nodes:
        if n.op != "placeholder":
            continue
        src = captured.placeholders[n.name]
        if src.kind == INPUT:
            if src.index >= len(pnames):
                raise Unsupported("forward takes *args; cannot map inputs")
            names[n] = pnames[src.index]
        else:
            names[n] = n.name
            body.append(f"{n.name} = {_source_expr(src)}")

    def name_of(x: fx.Node) -> str:
        return names.get(x, x.name)

    for u in _units_in_order(captured, regions):
        if isinstance(u, Region):
            ins = ", ".join(name_of(a) for a in u.inputs)
            outs = ", ".join(o.name for o in u.outputs)
            body.append(f"({outs},) = {launcher_of[id(u)]}({ins}{kwargs_of[id(u)]})")
        elif packet_name(u) not in DROPPED:
            bound = None
            if u.name in captured.bindings:
                bound = (captured.bindings[u.name], captured.binding_positions.get(u.name, []))
            body.append(_glue_line(u, name_of, bound))
    leaves: list[str] = []
    for out in captured.outputs:
        val = name_of(out.node) if out.node is not None else repr(out.value)
        if out.kind == "buffer_mutation":
            target = _attr_path(out.target) or f"self.get_buffer({out.target!r})"
            body.append(f"{target}.copy_({val})")  # the reference updates this buffer in place
        else:
            leaves.append(val)
    spec = captured.exported.call_spec.out_spec if captured.exported is not None else None
    ret = _render_out(spec, leaves) if spec is not None else ", ".join(leaves)
    body.append(f"return {ret}")

    helpers: dict[str, str] = {}
    code_parts = []
    for r, rd, desc in parts:
        for k, v in rd.helpers.items():
            helpers.setdefault(k, v)
        code_parts.append(f"# ---- {desc} ----\n{rd.source.strip()}\n")
    all_code = "\n".join(code_parts)
    for k, v in helpers_used(all_code + "\n".join(helpers.values())).items():
        helpers.setdefault(k, v)
    if init_scalars:
        helpers.setdefault("_kw_init_arg", INIT_ARG_HELPER)
    out = [
        f'"""{title}"""',
        HEADER,
        "# ---- the task's Model: ModelNew inherits its constructor (same parameters, buffers, state_dict keys) ----",
        task_model_source(task_source),
    ]
    if helpers:
        out.append("# ---- shared helpers ----")
        out.extend(textwrap.dedent(v).strip() + "\n" for v in helpers.values())
    out.extend(code_parts)
    sig = ", ".join(["self", *params])
    init = textwrap.indent(init_source(init_scalars), " " * 4) + "\n\n" if init_scalars else ""
    out.append(f"class ModelNew(Model):\n{init}    def forward({sig}):\n" + textwrap.indent("\n".join(body), " " * 8) + "\n")
    return "\n\n".join(out)
