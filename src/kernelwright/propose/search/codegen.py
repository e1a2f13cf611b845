"""Pieces of generated code that several families share: naming, runtime helpers, dtype choice,
and the body of an elementwise expression DAG.

Runtime helpers (plain Python, pasted into the answer once) go in `Rendered.helpers` under their
name; Triton helpers used by expressions come from expr.HELPERS automatically.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import fx

from ...extract.graph import meta_val, packet_name
from . import expr
from .family import Unsupported

# Python helper used by launchers: strides of `t` broadcast to `shape`, padded to `rank` (>= 1).
BCAST_STRIDES = '''
def _kw_bcast_strides(t, shape, rank):
    """Strides of t viewed as broadcast to shape (0 on broadcast dims), left-padded to rank."""
    st = list(t.expand(shape).stride()) if len(shape) else []
    return [0] * (rank - len(st)) + st
'''

# Python helper: view a tensor broadcast to `shape` as [outer, red, inner] strides, where the dims
# [a, b) are reduced; None when the broadcast view cannot be collapsed that way.
COLLAPSE3 = '''
def _kw_strides3(t, shape, a, b):
    """(s_outer, s_red, s_inner) of t broadcast to shape with dims [a, b) reduced, or None if the
    dims of a group cannot be merged into one stride (then the caller makes t contiguous)."""
    e = t.expand(shape)
    sizes, strides = list(e.shape), list(e.stride())
    out = []
    for lo, hi in ((0, a), (a, b), (b, len(sizes))):
        dims = [d for d in range(lo, hi) if sizes[d] != 1]
        if not dims:
            out.append(0)
            continue
        for d0, d1 in zip(dims, dims[1:]):
            if strides[d0] != strides[d1] * sizes[d1]:
                return None
        out.append(strides[dims[-1]])
    return out
'''


def is_tensor(x: Any) -> bool:
    return isinstance(meta_val(x), torch.Tensor)


def shape_of(x: Any) -> tuple:
    v = meta_val(x)
    return tuple(v.shape) if isinstance(v, torch.Tensor) else ()


def shape_key(x: Any) -> tuple[str, ...]:
    return tuple(str(s) for s in shape_of(x))


def dtype_expr(node: fx.Node, inputs: list[fx.Node], names: list[str]) -> str:
    """Runtime dtype of an output: an input's dtype when the graph says they match (so a task
    run in fp16 gets fp16 out), else the literal dtype."""
    dt = expr.node_dtype(node)
    for a, nm in zip(inputs, names):
        if is_tensor(a) and expr.node_dtype(a) == dt:
            return f"{nm}.dtype"
    return str(dt)


def emit_chain(
    nodes: list[fx.Node],
    value: dict[fx.Node, str],
    lines: list[str],
    prefix: str = "v",
    broadcast: Callable[[fx.Node, fx.Node, str], str] | None = None,
) -> None:
    """Append `v_i = expr` lines for pointwise `nodes` (in order); `value` maps already available
    nodes to their Triton names and gains the new ones. `broadcast(consumer, arg, name)` may
    rewrite how an argument is read (e.g. a reduced value read as `name[:, None]`)."""
    for i, n in enumerate(nodes):
        if not expr.supported(n):
            raise Unsupported(f"pointwise op {packet_name(n)} has no template")

        def arg(x, _n=n):
            if isinstance(x, fx.Node):
                if x not in value:
                    raise Unsupported(f"{_n.name} reads {x.name}, which the kernel does not hold")
                name = value[x]
                return broadcast(_n, x, name) if broadcast else name
            return expr.literal(x)

        e = expr.lower(n, arg)
        name = f"{prefix}{len(value)}_{n.name}"[:48]
        lines.append(f"{name} = ({e}).to({expr.compute_type(expr.node_dtype(n))})")
        value[n] = name
