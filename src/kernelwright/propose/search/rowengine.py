"""The reduce-and-map engine behind the reduction, softmax, norm and loss families.

A region is lowered to a small IR over a *domain* tensor of shape S with reduced dims D:

    values are "full" (one per domain element: a [BLOCK_O, BLOCK_R] tile in the kernel) or
    "red" (one per kept index: a [BLOCK_O] vector);
    Load(input, layout)    an input broadcast to the domain ("full" layout, right-aligned) or given
                           in the reduced shape without the reduced dims ("drop": BN weights [C]);
    Pw(node)               an fx pointwise node (expr.py), at the level of its shape;
    Expr(key, fmt, args)   a synthetic elementwise op from a composite's lowering;
    Reduce(key, op, src)   full -> red: sum | max | min | prod | argmax | argmin.

Reductions that read other reductions run in later *stages*. The kernel views the domain as
[M kept, R reduced] (adjacent dims of one class merged, strides per input from the launcher),
and one program owns BLOCK_O kept indices:
  - ONE_PASS (R fits in BLOCK_R): the tile is loaded once, everything computed in registers;
  - looped: one sweep over R per stage (2D accumulators, reduced once at the end), then one sweep
    computing and storing the full-level outputs; a softmax-like sum(exp(x - max(x))) is folded
    into the max's sweep by the online (streaming) rescaling (`online_sums`), not a sweep of its own;
  - split (few rows, long R: a loss over everything, LayerNorm over [C, H, W] of a small batch):
    one launch per stage over (row blocks, R chunks) writing fp32 partials [M, SPLIT], combined
    in a fixed order by the next launch (deterministic, no atomics). Not for argmax/argmin. Variance is two-pass (mean first), softmax is
    max-subtracted; accumulation is fp32.
Composite ATen ops (softmax, layer_norm, var, batch_norm, losses ...) are lowered in LOWERINGS.

Measured pitfall: fp32 `/` in Triton is approximate on the GPU (div.full.f32, 2 ulp). A mean of a
constant row must be exact, or `x - mean` is not 0 and a near-zero-variance norm is off by far
more than 1e-4; every division by the reduced count is `tl.div_rn` (IEEE).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import fx

from ...extract.graph import Captured, meta_val, packet_name
from ...extract.regions import Region, _reduce_signature
from . import expr
from .codegen import dtype_expr, is_tensor, shape_key
from .family import Rendered, Unsupported

NEUTRAL = {"sum": "0.0", "max": 'float("-inf")', "min": 'float("inf")', "prod": "1.0",
           "argmax": 'float("-inf")', "argmin": 'float("inf")'}

# Triton combine functions for the final tile reductions (NaN propagates like torch).
ROW_HELPERS = {
    "_kw_max_nan": '''
@triton.jit
def _kw_max_nan(a, b):
    return tl.where((a > b) | (a != a), a, b)
''',
    "_kw_min_nan": '''
@triton.jit
def _kw_min_nan(a, b):
    return tl.where((a < b) | (a != a), a, b)
''',
    "_kw_mul": '''
@triton.jit
def _kw_mul(a, b):
    return a * b
''',
    "_kw_argmax_combine": '''
@triton.jit
def _kw_argmax_combine(av, ai, bv, bi):
    # larger value wins; ties and NaN (the largest) go to the first index, as torch.argmax
    a_nan = av != av
    b_nan = bv != bv
    a_wins = (av > bv) | ((av == bv) & (ai < bi)) | (a_nan & ~b_nan) | (a_nan & b_nan & (ai < bi))
    a_wins = a_wins & ~(b_nan & ~a_nan)
    return tl.where(a_wins, av, bv), tl.where(a_wins, ai, bi)
''',
    "_kw_argmin_combine": '''
@triton.jit
def _kw_argmin_combine(av, ai, bv, bi):
    # smaller value wins; ties go to the first index; NaN wins, as torch.argmin
    a_nan = av != av
    b_nan = bv != bv
    a_wins = (av < bv) | ((av == bv) & (ai < bi)) | (a_nan & ~b_nan) | (a_nan & b_nan & (ai < bi))
    a_wins = a_wins & ~(b_nan & ~a_nan)
    return tl.where(a_wins, av, bv), tl.where(a_wins, ai, bi)
''',
}

GROUP_STRIDES = '''
def _kw_group_strides(t, shape, groups):
    """Strides of t broadcast to shape, one per group of merged dims (None: not mergeable)."""
    e = t.expand(shape)
    out = []
    for dims in groups:
        ds = [d for d in dims if shape[d] != 1]
        for d0, d1 in zip(ds, ds[1:]):
            if e.stride(d0) != e.stride(d1) * shape[d1]:
                return None
        out.append(e.stride(ds[-1]) if ds else 0)
    return out
'''

UNDROP = '''
def _kw_undrop(t, red_dims, rank):
    """A tensor in the reduced shape without the reduced dims, reshaped to broadcast to the domain."""
    s = [1] * (rank - len(red_dims) - t.dim()) + list(t.shape)
    for d in sorted(red_dims):
        s.insert(d, 1)
    return t.reshape(s)
'''


@dataclass
class Load:
    key: Any
    arg: int  # index into the launcher's arguments
    level: str  # "full" | "red"
    layout: str  # "full" | "drop"
    dtype: torch.dtype


@dataclass
class Pw:
    key: fx.Node
    level: str


@dataclass
class Expr:
    key: Any
    level: str
    fmt: str  # "{0} - {1}" over args; RN is the reduced count as fp32
    args: list
    ct: str = "tl.float32"


@dataclass
class Reduce:
    key: Any
    op: str
    src: Any
    stage: int = 0


@dataclass
class OutSpec:
    node: fx.Node
    key: Any
    level: str  # "full" | "red"


@dataclass
class RowSpec:
    rank: int  # domain rank
    red_dims: tuple[int, ...]
    domain_arg: int | None  # launcher arg whose shape is the domain, or None (broadcast of full loads)
    ops: list = field(default_factory=list)  # Load | Pw | Expr | Reduce, in order
    outputs: list[OutSpec] = field(default_factory=list)
    nargs: int = 0
    scalar_args: list[int] = field(default_factory=list)  # launcher args passed as plain scalars
    red_shape_keep: dict = field(default_factory=dict)  # out node -> True if keepdim layout
    label: str = ""
    dim_attr: str | None = None  # the single reduced dim is read at run time from self.<dim_attr>
    # a template that views its inputs as another domain (GroupNorm: [B, C, *] as [B, G, C/G, S])
    # gives launcher lines that rebind in{i} and define `shape`, and how a full output is viewed back
    prelude: list[str] = field(default_factory=list)
    full_out_view: str = ""  # e.g. "{o}.view(in0.shape)"
    extra_params: dict = field(default_factory=dict)  # launcher keyword -> default (source text)
    call_kwargs: dict = field(default_factory=dict)  # launcher keyword -> forward expression

    @property
    def stages(self) -> int:
        return 1 + max([op.stage for op in self.ops if isinstance(op, Reduce)], default=-1)

    def groups(self) -> tuple[list[list[int]], list[list[int]]]:
        """Kept and reduced groups of adjacent domain dims (a run-time dim: [before, after], [dim])."""
        if self.dim_attr is not None:
            d = self.red_dims[0]
            return [list(range(0, d)), list(range(d + 1, self.rank))], [[d]]
        kept, red = [], []
        prev = None
        for d in range(self.rank):
            cls = d in self.red_dims
            target = red if cls else kept
            if prev is cls and target:
                target[-1].append(d)
            else:
                target.append([d])
            prev = cls
        return kept, red


class _Builder:
    """Lowers a region's nodes into a RowSpec."""

    def __init__(self, region: Region, domain: fx.Node, red_dims: tuple[int, ...]):
        self.region = region
        self.domain = domain
        self.rank = len(shape_key(domain))
        self.red_dims = red_dims
        self.full = shape_key(domain)
        self.keep = tuple("1" if i in red_dims else s for i, s in enumerate(self.full))
        self.drop = tuple(s for i, s in enumerate(self.full) if i not in red_dims)
        self.level: dict[Any, str] = {}
        self.ops: list = []
        self.stage_of: dict[Any, int] = {}  # value -> number of reductions it depends on
        self.args = list(region.inputs)
        self.loaded: dict[tuple, Any] = {}
        self.inside = set(region.nodes)
        self.multi: dict[tuple, Any] = {}  # (multi-output node, index) -> key
        self.n = 0

    # -- levels ------------------------------------------------------------------------------
    def level_of_shape(self, node) -> str:
        s = shape_key(node)
        if s == self.full:
            return "full"
        if s in (self.keep, self.drop) or s == ():
            return "red"
        # smaller broadcastable shapes: full if right-aligned to the domain varies along a reduced dim
        if len(s) <= self.rank:
            pad = ("1",) * (self.rank - len(s)) + s
            if all(p == "1" or p == f for p, f in zip(pad, self.full)):
                return "full" if any(pad[d] != "1" for d in self.red_dims) else "red"
        raise Unsupported(f"{getattr(node, 'name', node)} of shape {list(s)} does not fit the domain {list(self.full)}")

    def fresh(self, hint: str) -> str:
        self.n += 1
        return f"_{hint}{self.n}"

    def value(self, x, layout: str | None = None):
        """Key of x as a value in the kernel, loading it if it comes from outside."""
        if not isinstance(x, fx.Node):
            return x
        if x in self.inside or x in self.level:
            if x not in self.level:
                raise Unsupported(f"{x.name} used before it is computed")
            return x
        if not is_tensor(x):
            if x not in self.args:
                raise Unsupported(f"{x.name} is not an input of the region")
            return x  # scalar arg
        if layout is None:
            s = shape_key(x)
            layout = "drop" if (s == self.drop and s != self.keep and self.red_dims and len(s) != self.rank) else "full"
        k = (x, layout)
        if k not in self.loaded:
            if x not in self.args:
                raise Unsupported(f"{x.name} is not an input of the region")
            if layout == "drop":
                level = "red"
            else:
                level = self.level_of_shape(x)
            self.ops.append(Load(k, self.args.index(x), level, layout, expr.node_dtype(x)))
            self.level[k] = level
            self.stage_of[k] = 0
            self.loaded[k] = k
        return self.loaded[k]

    def _stage(self, args) -> int:
        return max([self.stage_of.get(a, 0) for a in args if a in self.stage_of], default=0)

    def _lvl(self, args) -> str:
        return "full" if any(self.level.get(a) == "full" for a in args) else "red"

    def e(self, fmt: str, *args, level: str | None = None, ct: str = "tl.float32", hint: str = "e"):
        key = self.fresh(hint)
        lv = level or self._lvl(args)
        self.ops.append(Expr(key, lv, fmt, list(args), ct))
        self.level[key] = lv
        self.stage_of[key] = self._stage(args)
        return key

    def reduce(self, op: str, src, hint: str = "r"):
        if self.level.get(src) != "full":
            raise Unsupported("a reduction of a value that is not on the domain")
        key = self.fresh(hint)
        st = self._stage([src])
        self.ops.append(Reduce(key, op, src, st))
        self.level[key] = "red"
        self.stage_of[key] = st + 1
        return key

    def pw(self, node: fx.Node):
        lv = self.level_of_shape(node)
        # a reduced value without its reduced dims ([B, C] of a [B, C, R] domain) reads its
        # inputs aligned to that shape, not to the domain
        drop = lv == "red" and len(shape_key(node)) < self.rank and bool(self.red_dims)
        for a in node.all_input_nodes:
            self.value(a, "drop" if drop and is_tensor(a) and a not in self.inside and a not in self.level else None)
        args = [a for a in node.all_input_nodes]
        self.ops.append(Pw(node, lv))
        self.level[node] = lv
        self.stage_of[node] = self._stage(args)
        return node

    def bind(self, node, key) -> None:
        """node's value is key (composites and getitems)."""
        self.ops.append(Expr(node, self.level[key], "{0}", [key], expr.compute_type(expr.node_dtype(node))
                             if isinstance(node, fx.Node) else "tl.float32"))
        self.level[node] = self.level[key]
        self.stage_of[node] = self.stage_of.get(key, 0)


def _dims_arg(node: fx.Node, i: int, name: str, rank: int):
    d = node.args[i] if len(node.args) > i else node.kwargs.get(name)
    if d is None or d == [] or d == ():
        return tuple(range(rank))
    if isinstance(d, int):
        d = [d]
    return tuple(sorted(x % max(rank, 1) for x in d))


def _arg(node: fx.Node, i: int, name: str, default=None):
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


# ---- lowerings of composite ops: (builder, node) -> {output index or None: key} ----------------

def _low_sum(b: _Builder, n):
    return {None: b.reduce("sum", b.value(n.args[0]))}


def _low_mean(b, n):
    s = b.reduce("sum", b.value(n.args[0]))
    return {None: b.e("tl.div_rn({0}, RN)", s)}


def _low_amax(b, n):
    return {None: b.reduce("max", b.value(n.args[0]))}


def _low_amin(b, n):
    return {None: b.reduce("min", b.value(n.args[0]))}


def _low_maxdim(op):
    def f(b, n):
        x = b.value(n.args[0])
        if len(n.args) < 2 and "dim" not in n.kwargs:  # max.default: a full reduction, one value
            return {None: b.reduce(op, x)}
        return {0: b.reduce(op, x), 1: b.reduce("arg" + op, x)}

    return f


def _low_arg(op):
    return lambda b, n: {None: b.reduce(op, b.value(n.args[0]))}


def _low_prod(b, n):
    return {None: b.reduce("prod", b.value(n.args[0]))}


def _correction(n) -> float:
    if "correction" in n.kwargs and n.kwargs["correction"] is not None:
        return float(n.kwargs["correction"])
    name = str(n.target)
    if "correction" in name:
        return 1.0
    unbiased = _arg(n, 2, "unbiased", True)
    return 1.0 if unbiased else 0.0


def _var_parts(b, x, corr: float):
    """(mean, var) by the corrected two-pass algorithm: mean0 = sum(x)/n, then d = x - mean0 and
    mean = mean0 + sum(d)/n, var = (sum(d^2) - sum(d)^2/n) / (n - corr). The sum(d) term removes
    the fp32 rounding of mean0, which otherwise dominates on near-constant rows (3 + 1e-3 noise:
    an ulp of the mean times rstd ~ 300 is over 1e-4)."""
    s = b.reduce("sum", x)
    mean0 = b.e("tl.div_rn({0}, RN)", s, hint="mean0")
    d = b.e("{0} - {1}", x, mean0, hint="d")
    sd = b.reduce("sum", d, hint="sumd")
    ss = b.reduce("sum", b.e("{0} * {0}", d, hint="d2"))
    mean = b.e("{0} + tl.div_rn({1}, RN)", mean0, sd, hint="mean")
    var = b.e(f"tl.div_rn({{0}} - tl.div_rn({{1}} * {{1}}, RN), RN - {corr!r})", ss, sd, hint="var")
    return mean, var


def _low_var(std: bool, with_mean: bool):
    def f(b, n):
        mean, var = _var_parts(b, b.value(n.args[0]), _correction(n))
        out = b.e("tl.sqrt({0})", var) if std else var
        return {0: out, 1: mean} if with_mean else {None: out}

    return f


def _low_vnorm(b, n):
    x = b.value(n.args[0])
    ord_ = _arg(n, 1, "ord", 2)
    ord_ = float(ord_)
    if ord_ == 2.0:
        return {None: b.e("tl.sqrt({0})", b.reduce("sum", b.e("{0} * {0}", x)))}
    if ord_ == 1.0:
        return {None: b.reduce("sum", b.e("tl.abs({0})", x))}
    if ord_ == float("inf"):
        return {None: b.reduce("max", b.e("tl.abs({0})", x))}
    if ord_ == float("-inf"):
        return {None: b.reduce("min", b.e("tl.abs({0})", x))}
    if ord_ == 0.0:
        return {None: b.reduce("sum", b.e("tl.where({0} != 0, 1.0, 0.0)", x))}
    s = b.reduce("sum", b.e(f"_kw_pow(tl.abs({{0}}), {ord_!r})", x))
    return {None: b.e(f"_kw_pow({{0}}, {1.0 / ord_!r})", s)}


def _low_logsumexp(b, n):
    x = b.value(n.args[0])
    m = b.reduce("max", x)
    m0 = b.e("tl.where(tl.abs({0}) == float(\"inf\"), 0.0, {0})", m, hint="m")
    s = b.reduce("sum", b.e("tl.exp({0} - {1})", x, m0))
    return {None: b.e("tl.log({0}) + {1}", s, m0)}


def _softmax_parts(b, n):
    x = b.value(n.args[0])
    m = b.reduce("max", x, hint="rowmax")
    ex = b.e("tl.exp({0} - {1})", x, m, hint="ex")
    s = b.reduce("sum", ex, hint="rowsum")
    return x, m, ex, s


def _low_softmax(b, n):
    x, m, ex, s = _softmax_parts(b, n)
    return {None: b.e("{0} / {1}", ex, s)}


def _low_log_softmax(b, n):
    x, m, ex, s = _softmax_parts(b, n)
    return {None: b.e("{0} - {1} - tl.log({2})", x, m, s)}


def _affine(b, out, w, bias, layout: str):
    if isinstance(w, fx.Node):
        out = b.e("{0} * {1}", out, b.value(w, layout))
    if isinstance(bias, fx.Node):
        out = b.e("{0} + {1}", out, b.value(bias, layout))
    return out


def _low_layer_norm(native: bool):
    def f(b, n):
        x = b.value(n.args[0])
        w, bias = _arg(n, 2, "weight"), _arg(n, 3, "bias")
        eps = float(_arg(n, 4, "eps", 1e-5))
        mean, var = _var_parts(b, x, 0.0)
        rstd = b.e(f"1.0 / tl.sqrt({{0}} + {eps!r})", var, hint="rstd")
        out = _affine(b, b.e("({0} - {1}) * {2}", x, mean, rstd), w, bias, "full")
        return {0: out, 1: mean, 2: rstd} if native else {None: out}

    return f


def _low_rms_norm(b, n):
    x = b.value(n.args[0])
    w = _arg(n, 2, "weight")
    eps = _arg(n, 3, "eps")
    if eps is None:
        eps = torch.finfo(expr.node_dtype(n.args[0])).eps
    ms = b.e("tl.div_rn({0}, RN)", b.reduce("sum", b.e("{0} * {0}", x)))
    r = b.e(f"1.0 / tl.sqrt({{0}} + {float(eps)!r})", ms, hint="rrms")
    return {None: _affine(b, b.e("{0} * {1}", x, r), w, None, "full")}


def _low_bn_train(b, n):
    x = b.value(n.args[0])
    w, bias, rm, rv = (_arg(n, i, k) for i, k in ((1, "weight"), (2, "bias"), (3, "running_mean"), (4, "running_var")))
    training = _arg(n, 5, "training", True)
    momentum = float(_arg(n, 6, "momentum", 0.1))
    eps = float(_arg(n, 7, "eps", 1e-5))
    if not training:
        raise Unsupported("batch norm with training=False in the functional form")
    mean, var = _var_parts(b, x, 0.0)
    invstd = b.e(f"1.0 / tl.sqrt({{0}} + {eps!r})", var, hint="invstd")
    out = _affine(b, b.e("({0} - {1}) * {2}", x, mean, invstd), w, bias, "drop")
    res = {0: out, 1: mean, 2: invstd}
    if isinstance(rm, fx.Node):
        res[3] = b.e(f"{1 - momentum!r} * {{0}} + {momentum!r} * {{1}}", b.value(rm, "drop"), mean)
    if isinstance(rv, fx.Node):
        res[4] = b.e(f"{1 - momentum!r} * {{0}} + {momentum!r} * ({{1}} * RN / (RN - 1.0))", b.value(rv, "drop"), var)
    return res


def _low_bn_eval(b, n):
    x = b.value(n.args[0])
    w, bias, rm, rv = (_arg(n, i, k) for i, k in ((1, "weight"), (2, "bias"), (3, "running_mean"), (4, "running_var")))
    eps = float(_arg(n, 6, "eps", 1e-5))
    inv = b.e(f"1.0 / tl.sqrt({{0}} + {eps!r})", b.value(rv, "drop"))
    out = _affine(b, b.e("({0} - {1}) * {2}", x, b.value(rm, "drop"), inv), w, bias, "drop")
    return {0: out}


def _low_instance_norm(b, n):
    x = b.value(n.args[0])
    w, bias, rm, rv = (_arg(n, i, k) for i, k in ((1, "weight"), (2, "bias"), (3, "running_mean"), (4, "running_var")))
    use_input_stats = _arg(n, 5, "use_input_stats", True)
    eps = float(_arg(n, 7, "eps", 1e-5))
    if not use_input_stats or isinstance(rm, fx.Node) or isinstance(rv, fx.Node):
        raise Unsupported("instance norm with running statistics")
    mean, var = _var_parts(b, x, 0.0)
    rstd = b.e(f"1.0 / tl.sqrt({{0}} + {eps!r})", var)
    out = b.e("({0} - {1}) * {2}", x, mean, rstd)
    if isinstance(w, fx.Node) or isinstance(bias, fx.Node):
        raise Unsupported("affine instance norm")  # weights are per channel, not per (batch, channel)
    return {None: out}


def _reduction_mode(n, i: int) -> int:
    return int(_arg(n, i, "reduction", 1))


def _low_pair_loss(kind: str):
    def f(b, n):
        a, t = b.value(n.args[0]), b.value(n.args[1])
        d = b.e("{0} - {1}", a, t, hint="d")
        if kind == "mse":
            v = b.e("{0} * {0}", d)
        elif kind == "l1":
            v = b.e("tl.abs({0})", d)
        elif kind == "smooth_l1":
            beta = float(_arg(n, 3, "beta", 1.0))
            z = b.e("tl.abs({0})", d)
            v = b.e(f"tl.where({{0}} < {beta!r}, 0.5 * {{0}} * {{0}} / {beta!r}, {{0}} - {0.5 * beta!r})", z) if beta > 0 else z
        else:  # huber
            delta = float(_arg(n, 3, "delta", 1.0))
            z = b.e("tl.abs({0})", d)
            v = b.e(f"tl.where({{0}} < {delta!r}, 0.5 * {{0}} * {{0}}, {delta!r} * ({{0}} - {0.5 * delta!r}))", z)
        return _finish_loss(b, v, _reduction_mode(n, 2))

    return f


def _finish_loss(b, v, mode: int):
    if mode == 0:
        return {None: v}
    s = b.reduce("sum", v)
    return {None: b.e("tl.div_rn({0}, RN)", s) if mode == 1 else s}


def _low_kl_div(b, n):
    x, t = b.value(n.args[0]), b.value(n.args[1])
    log_target = bool(_arg(n, 3, "log_target", False))
    if log_target:
        v = b.e("tl.exp({1}) * ({1} - {0})", x, t)
    else:  # xlogy(t, t) - t * x, zero where t == 0
        v = b.e("tl.where({1} > 0, {1} * (tl.log(tl.where({1} > 0, {1}, 1.0)) - {0}), tl.where({1} == 0, 0.0 * {0}, float(\"nan\")))", x, t)
    return _finish_loss(b, v, _reduction_mode(n, 2))


LOWERINGS: dict[str, Callable] = {
    "aten.sum": _low_sum,
    "aten.nansum": _low_sum,
    "aten.mean": _low_mean,
    "aten.amax": _low_amax,
    "aten.amin": _low_amin,
    "aten.max": _low_maxdim("max"),
    "aten.min": _low_maxdim("min"),
    "aten.argmax": _low_arg("argmax"),
    "aten.argmin": _low_arg("argmin"),
    "aten.prod": _low_prod,
    "aten.var": _low_var(False, False),
    "aten.std": _low_var(True, False),
    "aten.var_mean": _low_var(False, True),
    "aten.std_mean": _low_var(True, True),
    "aten.linalg_vector_norm": _low_vnorm,
    "aten.logsumexp": _low_logsumexp,
    "aten.softmax": _low_softmax,
    "aten._softmax": _low_softmax,
    "aten.log_softmax": _low_log_softmax,
    "aten._log_softmax": _low_log_softmax,
    "aten.layer_norm": _low_layer_norm(False),
    "aten.native_layer_norm": _low_layer_norm(True),
    "aten.rms_norm": _low_rms_norm,
    "aten._native_batch_norm_legit_functional": _low_bn_train,
    "aten._native_batch_norm_legit_no_training": _low_bn_eval,
    "aten.instance_norm": _low_instance_norm,
    "aten.mse_loss": _low_pair_loss("mse"),
    "aten.l1_loss": _low_pair_loss("l1"),
    "aten.smooth_l1_loss": _low_pair_loss("smooth_l1"),
    "aten.huber_loss": _low_pair_loss("huber"),
    "aten.kl_div": _low_kl_div,
}


def anchor_dims(node: fx.Node) -> tuple[int, ...]:
    """The domain dims a composite op reduces over."""
    name = packet_name(node)
    rank = len(shape_key(node.args[0]))
    if name in ("aten.softmax", "aten._softmax", "aten.log_softmax", "aten._log_softmax"):
        return ((_arg(node, 1, "dim")) % rank,)
    if name in ("aten.layer_norm", "aten.native_layer_norm", "aten.rms_norm"):
        k = len(_arg(node, 1, "normalized_shape"))
        return tuple(range(rank - k, rank))
    if name.startswith("aten._native_batch_norm") or name == "aten.native_batch_norm":
        return tuple(d for d in range(rank) if d != 1)
    if name == "aten.instance_norm":
        return tuple(range(2, rank))
    if name in ("aten.mse_loss", "aten.l1_loss", "aten.smooth_l1_loss", "aten.huber_loss", "aten.kl_div"):
        mode = _reduction_mode(node, 2)
        return tuple(range(rank)) if mode else ()
    if name in ("aten.argmax", "aten.argmin"):
        d = _arg(node, 1, "dim")
        return tuple(range(rank)) if d is None else (d % rank,)
    if name in ("aten.max", "aten.min") and len(node.args) < 2 and "dim" not in node.kwargs:
        return tuple(range(rank))
    if name in ("aten.linalg_vector_norm",):
        return _dims_arg(node, 2, "dim", rank)
    if name in ("aten.var", "aten.std", "aten.var_mean", "aten.std_mean", "aten.sum", "aten.mean", "aten.amax",
                "aten.amin", "aten.max", "aten.min", "aten.prod", "aten.logsumexp", "aten.nansum"):
        return _dims_arg(node, 1, "dim", rank)
    raise Unsupported(f"no lowering for {name}")


def lower_region(region: Region, captured: Captured) -> RowSpec:
    """RowSpec of a reduction/softmax/norm/loss region; raises Unsupported naming what is missing."""
    anchors = [n for n in region.nodes if packet_name(n) in LOWERINGS]
    if not anchors:
        raise Unsupported(f"no lowering for {region.ops}")
    first = anchors[0]
    domain = first.args[0]
    dims = anchor_dims(first)
    for a in anchors[1:]:
        if shape_key(a.args[0]) != shape_key(domain) or anchor_dims(a) != dims:
            raise Unsupported("reductions over different domains or dims in one region")
    b = _Builder(region, domain, dims)
    for n in region.nodes:
        name = packet_name(n)
        if name == "getitem":
            src, idx = n.args
            key = b.multi.get((src, idx))
            if key is None:
                raise Unsupported(f"output {idx} of {src.target} is not computed by the template")
            b.bind(n, key)
            continue
        if name in LOWERINGS:
            res = LOWERINGS[name](b, n)
            if None in res:
                b.bind(n, res[None])
            else:
                for i, k in res.items():
                    b.multi[(n, i)] = k
            continue
        if expr.supported(n):
            b.pw(n)
            continue
        raise Unsupported(f"{name} inside a {region.kind} region")
    spec = RowSpec(rank=b.rank, red_dims=dims, domain_arg=None, ops=b.ops, nargs=len(b.args))
    for i, a in enumerate(b.args):
        if not is_tensor(a):
            spec.scalar_args.append(i)
        elif shape_key(a) == b.full and spec.domain_arg is None:
            spec.domain_arg = i
    for o in region.outputs:
        if o not in b.level:
            raise Unsupported(f"output {o.name} is not computed by the template")
        lv = b.level[o]
        if lv == "red":
            s = shape_key(o)
            spec.red_shape_keep[o] = len(s) == b.rank
        spec.outputs.append(OutSpec(o, o, lv))
    if not any(isinstance(op, Reduce) for op in b.ops) and not dims:
        pass
    spec.label = f"{region.kind} over dims {list(dims)} of rank-{b.rank} domain, {spec.stages} stage(s)"
    attr = captured.bindings.get(first.name)
    if attr is not None and len(dims) == 1:
        spec.dim_attr = attr
        spec.label += f", dim from self.{attr} at run time"
    return spec


# ------------------------------------------------------------------------------------------
# rendering


class _Emitter:
    def __init__(self, spec: RowSpec, region: Region):
        self.spec = spec
        self.region = region
        self.names: dict[Any, str] = {}
        self.evict: dict[int, str] = {}  # launcher arg -> eviction policy of its full loads (one-pass)
        self.level: dict[Any, str] = {}
        self.ct: dict[Any, str] = {}
        for i, op in enumerate(spec.ops):
            key = op.key
            base = key.name if isinstance(key, fx.Node) else (key if isinstance(key, str) else f"ld{op.arg}")
            self.names[key] = f"{base.strip('_')}_{i}"
            self.level[key] = op.level if not isinstance(op, Reduce) else "red"

    def ref(self, key, consumer_level: str) -> str:
        if not isinstance(key, (fx.Node, str, tuple)):
            return expr.literal(key)
        if isinstance(key, fx.Node) and key not in self.names:  # scalar launcher arg
            return f"in{self.region.inputs.index(key)}"
        name = self.names[key]
        if consumer_level == "full" and self.level[key] == "red":
            return f"{name}[:, None]"
        return name

    def op_line(self, op) -> str:
        name = self.names[op.key]
        if isinstance(op, Load):
            ct = expr.compute_type(op.dtype)
            i = op.arg
            if op.level == "full":
                ev = f', eviction_policy="{self.evict[i]}"' if i in self.evict else ""
                return f"{name} = tl.load(in{i}_ptr + in{i}_oo[:, None] + in{i}_ro[None, :], mask=m2, other=0{ev}).to({ct})"
            return f"{name} = tl.load(in{i}_ptr + in{i}_oo, mask=omask, other=0).to({ct})"
        if isinstance(op, Pw):
            n = op.key

            def arg(x):
                if isinstance(x, fx.Node):
                    key = x
                    if x not in self.names:
                        # an input loaded under (node, layout)
                        key = next((k for k in self.names if isinstance(k, tuple) and k[0] is x), x)
                    return self.ref(key, op.level)
                return expr.literal(x)

            e = expr.lower(n, arg)
            return f"{name} = ({e}).to({expr.compute_type(expr.node_dtype(n))})"
        if isinstance(op, Expr):
            args = [self.ref(a, op.level) for a in op.args]
            return f"{name} = ({op.fmt.format(*args)}).to({op.ct})"
        raise TypeError(op)

    def deps(self, key) -> set:
        """All ops (keys) a value needs, through full and red values."""
        out: set = set()
        stack = [key]
        by_key = {op.key: op for op in self.spec.ops}
        while stack:
            k = stack.pop()
            if k in out or k not in by_key:
                continue
            out.add(k)
            op = by_key[k]
            if isinstance(op, Pw):
                for a in op.key.all_input_nodes:
                    stack.append(a if a in by_key else next((kk for kk in by_key if isinstance(kk, tuple) and kk[0] is a), a))
            elif isinstance(op, Expr):
                stack.extend(a for a in op.args if isinstance(a, (fx.Node, str, tuple)))
            elif isinstance(op, Reduce):
                stack.append(op.src)
        return out


def _reduce_final(op: Reduce, acc: str, idx: str | None = None) -> str:
    if op.op == "sum":
        return f"tl.sum({acc}, 1)"
    if op.op == "max":
        return f"tl.reduce({acc}, 1, _kw_max_nan)"
    if op.op == "min":
        return f"tl.reduce({acc}, 1, _kw_min_nan)"
    if op.op == "prod":
        return f"tl.reduce({acc}, 1, _kw_mul)"
    raise ValueError(op.op)


def _acc_update(op: Reduce, acc: str, v: str) -> str:
    if op.op == "sum":
        return f"{acc} = {acc} + tl.where(m2, {v}, 0.0)"
    if op.op == "prod":
        return f"{acc} = {acc} * tl.where(m2, {v}, 1.0)"
    if op.op == "max":
        return f"{acc} = _kw_max_nan({acc}, tl.where(m2, {v}, float(\"-inf\")))"
    if op.op == "min":
        return f"{acc} = _kw_min_nan({acc}, tl.where(m2, {v}, float(\"inf\")))"
    raise ValueError(op.op)


ONLINE_EXP = "tl.exp({0} - {1})"


def online_sums(spec: RowSpec) -> dict:
    """{key of S: the Reduce M} for each `S = sum(exp(X - M))` with `M = max(X)` of the same X at the
    stage before (softmax, log_softmax, cross-entropy lower to exactly this). The looped mode
    computes such an S in M's sweep by online rescaling. Only this exact pattern: logsumexp's guarded
    shift (m0) and anything else stay two-pass. Other consumers of exp(X - M) do not prevent it:
    they are computed from the final M in their own sweep, as before."""
    by_key = {op.key: op for op in spec.ops}
    out = {}
    for s in spec.ops:
        if not (isinstance(s, Reduce) and s.op == "sum"):
            continue
        e = by_key.get(s.src)
        if not (isinstance(e, Expr) and e.fmt == ONLINE_EXP and e.level == "full" and len(e.args) == 2):
            continue
        x, mk = e.args
        m = by_key.get(mk) if isinstance(mk, (fx.Node, str, tuple)) else None
        if isinstance(m, Reduce) and m.op == "max" and m.src == x and s.stage == m.stage + 1:
            out[s.key] = m
    return out


def looped_sweeps(spec: RowSpec) -> int:
    """Sweeps over R of the looped mode before the store sweep: one per stage that keeps a
    reduction after the online fusion (a stage made only of fused sums has none)."""
    fused = online_sums(spec)
    return len({op.stage for op in spec.ops if isinstance(op, Reduce) and op.key not in fused})


def render_row(spec: RowSpec, region: Region, config: dict, prefix: str, tag: str) -> Rendered:
    em = _Emitter(spec, region)
    kept, red = spec.groups()
    KG, RG = len(kept), len(red)
    loads = [op for op in spec.ops if isinstance(op, Load)]
    tensor_args = sorted({op.arg for op in loads})
    full_outs = [o for o in spec.outputs if o.level == "full"]
    red_outs = [o for o in spec.outputs if o.level == "red"]
    reduces = [op for op in spec.ops if isinstance(op, Reduce)]
    S = spec.stages
    kname = f"_{prefix}_{tag}_kernel"

    params = []
    for i in range(spec.nargs):
        if i in spec.scalar_args:
            params.append(f"in{i}")
        elif i in tensor_args:
            params += [f"in{i}_ptr"] + [f"in{i}_k{g}" for g in range(KG)] + [f"in{i}_q{g}" for g in range(RG)]
    for j, o in enumerate(spec.outputs):
        params.append(f"out{j}_ptr")
        if o.level == "full":
            params += [f"out{j}_k{g}" for g in range(KG)] + [f"out{j}_q{g}" for g in range(RG)]
    params += ["M", "R", "RN"] + [f"K{g}" for g in range(KG)] + [f"Q{g}" for g in range(RG)]
    params += ["ONE_PASS: tl.constexpr", "BIG: tl.constexpr", "BLOCK_O: tl.constexpr", "BLOCK_R: tl.constexpr"]

    B: list[str] = [
        "pid = tl.program_id(0)",
        "if BIG:",
        "    o = pid.to(tl.int64) * BLOCK_O + tl.arange(0, BLOCK_O)",
        "else:",
        "    o = pid * BLOCK_O + tl.arange(0, BLOCK_O)",
        "omask = o < M",
        "# kept coordinates of each row",
        "rem = o",
    ]
    for g in reversed(range(KG)):
        B += [f"kc{g} = rem % K{g}", f"rem = rem // K{g}"] if g > 0 else [f"kc{g} = rem"]
    if KG == 0:
        B.append("kc_none = o * 0")
    users = [(f"in{i}", i) for i in tensor_args] + [(f"out{j}", None) for j, o in enumerate(spec.outputs) if o.level == "full"]
    for nm, _ in users:
        B.append(f"{nm}_oo = " + (" + ".join(f"kc{g} * {nm}_k{g}" for g in range(KG)) if KG else "kc_none"))

    def rblock(start: str, bound: str = "R") -> list[str]:
        lines = [f"r = {start} + tl.arange(0, BLOCK_R)", f"rmask = r < {bound}", "m2 = omask[:, None] & rmask[None, :]",
                 "rem_r = r"]
        for g in reversed(range(RG)):
            lines += [f"rc{g} = rem_r % Q{g}", f"rem_r = rem_r // Q{g}"] if g > 0 else [f"rc{g} = rem_r"]
        if RG == 0:
            lines.append("rc_none = r * 0")
        for nm, _ in users:
            lines.append(f"{nm}_ro = " + (" + ".join(f"rc{g} * {nm}_q{g}" for g in range(RG)) if RG else "rc_none"))
        return lines

    def compute(keys: set, done: set, level_filter=None) -> list[str]:
        lines = []
        for op in spec.ops:
            if op.key in keys and op.key not in done and not isinstance(op, Reduce):
                if level_filter and em.level[op.key] != level_filter:
                    continue
                lines.append(em.op_line(op))
                done.add(op.key)
        return lines

    def store_full(done: set) -> list[str]:
        lines = []
        for j, o in enumerate(spec.outputs):
            if o.level == "full":
                lines.append(f"tl.store(out{j}_ptr + out{j}_oo[:, None] + out{j}_ro[None, :], {em.names[o.key]}, mask=m2)")
        return lines

    # red-level values that need no reduction (loads of drop-layout inputs, their exprs)
    red_pre = {op.key for op in spec.ops if em.level[op.key] == "red" and not (em.deps(op.key) & {r.key for r in reduces})}

    # ---- one pass ----
    # EVICT: the domain-sized input streams through once (evict_first); broadcast operands (a
    # norm's weight [N], read by every row) stay in L2 (evict_last). One-pass only: the looped
    # sweeps re-read the row from L2.
    if config.get("EVICT"):
        em.evict = {op.arg: (config["EVICT"] if op.arg == spec.domain_arg else "evict_last")
                    for op in loads if op.level == "full"}
    one: list[str] = rblock("0")
    done: set = set()
    one += compute(red_pre, done)
    for st in range(S + 1):
        stage_red = [r for r in reduces if r.stage == st]
        for r in stage_red:
            one += compute(em.deps(r.src), done)
            nm = em.names[r.key]
            src = em.names[r.src]
            if r.op in ("argmax", "argmin"):
                neutral = NEUTRAL[r.op]
                one += [f"{nm}_v, {nm} = tl.reduce((tl.where(m2, {src}, {neutral}), (r[None, :] + o[:, None] * 0).to(tl.int64)), 1, _kw_{r.op}_combine)"]
            else:
                one.append(f"{nm} = {_reduce_final(r, f'tl.where(m2, {src}, {NEUTRAL[r.op]})')}")
            done.add(r.key)
    all_keys = set()
    for o in spec.outputs:
        all_keys |= em.deps(o.key)
    one += compute(all_keys, done)
    one += store_full(done)
    em.evict = {}

    # ---- looped ----
    # Online log-sum-exp: S = sum(exp(X - M)) of the stage after M = max(X) is accumulated in M's
    # sweep, rescaled whenever the running max grows, so the row is read once for both instead of
    # twice (on an H100, cross-entropy over bf16 [8192, 32768] logits ran looped two-pass at 63% of
    # the copy bandwidth). M keeps a running max [BLOCK_O] (a tile max per sweep step, NaN
    # propagating as _kw_max_nan: M is the two-pass M), S a [BLOCK_O, BLOCK_R] accumulator; one exp
    # per element, the rescale exp is per row and tile. A stage left with no reduction of its own
    # has no sweep; its red-level follow-ups are computed after M's sweep (the `ready` step).
    fused = online_sums(spec)  # key of S -> Reduce M
    fused_of: dict[Any, list[Reduce]] = {}  # key of M -> its fused sums
    for r in reduces:
        if r.key in fused:
            fused_of.setdefault(fused[r.key].key, []).append(r)
    by_key = {op.key: op for op in spec.ops}
    lp: list[str] = []
    ldone: set = set()
    lp += compute(red_pre, ldone, "red")
    for st in range(S):
        stage_red = [r for r in reduces if r.stage == st and r.key not in fused]
        if not stage_red:
            continue
        for r in stage_red:
            nm = em.names[r.key]
            if r.op in ("argmax", "argmin"):
                lp += [f"{nm}_av = tl.full([BLOCK_O, BLOCK_R], {NEUTRAL[r.op]}, tl.float32)",
                       f"{nm}_ai = tl.zeros([BLOCK_O, BLOCK_R], tl.int64)"]
            elif r.key in fused_of:
                lp.append(f"{nm}_run = tl.full([BLOCK_O], float(\"-inf\"), tl.float32)")
                lp += [f"{em.names[s.key]}_acc = tl.zeros([BLOCK_O, BLOCK_R], tl.float32)" for s in fused_of[r.key]]
            else:
                lp.append(f"{nm}_acc = tl.full([BLOCK_O, BLOCK_R], {NEUTRAL[r.op]}, tl.float32)")
        lp.append("for r0 in range(0, R, BLOCK_R):")
        body = rblock("r0")
        inner_done = set(k for k in ldone if em.level[k] == "red")
        for r in stage_red:
            body += compute(em.deps(r.src), inner_done)
            nm, src = em.names[r.key], em.names[r.src]
            if r.op in ("argmax", "argmin"):
                cmp = ">" if r.op == "argmax" else "<"
                neutral = NEUTRAL[r.op]
                body += [f"{nm}_x = tl.where(m2, {src}, {neutral})",
                         f"{nm}_take = ({nm}_x {cmp} {nm}_av) | (({nm}_x != {nm}_x) & ({nm}_av == {nm}_av))",
                         f"{nm}_av = tl.where({nm}_take, {nm}_x, {nm}_av)",
                         f"{nm}_ai = tl.where({nm}_take, (r[None, :] + o[:, None] * 0).to(tl.int64), {nm}_ai)"]
            elif r.key in fused_of:
                # the shift is 0 while the running max is -inf (a row whose first tiles are all
                # -inf), so no -inf - -inf = NaN; the row's sum stays 0 until a finite value comes
                body += [f"{nm}_t = tl.reduce(tl.where(m2, {src}, float(\"-inf\")), 1, _kw_max_nan).to(tl.float32)",
                         f"{nm}_new = _kw_max_nan({nm}_run, {nm}_t)",
                         f"{nm}_safe = tl.where({nm}_new == float(\"-inf\"), 0.0, {nm}_new)",
                         f"{nm}_alpha = tl.where({nm}_run == {nm}_new, 1.0, tl.exp({nm}_run - {nm}_safe))"]
                for s in fused_of[r.key]:
                    e = by_key[s.src]
                    sn = em.names[s.key]
                    term = f"({e.fmt.format(src, nm + '_safe[:, None]')}).to({e.ct})"
                    body.append(f"{sn}_acc = {sn}_acc * {nm}_alpha[:, None] + tl.where(m2, {term}, 0.0)")
                body.append(f"{nm}_run = {nm}_new")
            else:
                body.append(_acc_update(r, f"{nm}_acc", src))
        lp += ["    " + x for x in body]
        for r in stage_red:
            nm = em.names[r.key]
            if r.op in ("argmax", "argmin"):
                lp.append(f"{nm}_v, {nm} = tl.reduce(({nm}_av, {nm}_ai), 1, _kw_{r.op}_combine)")
            elif r.key in fused_of:
                lp.append(f"{nm} = {nm}_run")
                for s in fused_of[r.key]:
                    lp.append(f"{em.names[s.key]} = tl.sum({em.names[s.key]}_acc, 1)")
                    ldone.add(s.key)
            else:
                lp.append(f"{nm} = {_reduce_final(r, nm + '_acc')}")
            ldone.add(r.key)
        # red-level values computable now
        reduce_keys = {r.key for r in reduces}
        ready = {k for k in all_keys | {r.src for r in reduces} if em.level[k] == "red"
                 and all(d in ldone for d in (em.deps(k) & reduce_keys) - {k})}
        lp += compute(ready, ldone, "red")
    lp += compute({k for k in all_keys if em.level[k] == "red"}, ldone, "red")
    if full_outs:
        lp.append("for r0 in range(0, R, BLOCK_R):")
        body = rblock("r0")
        inner = set(k for k in ldone if em.level[k] == "red")
        body += compute(all_keys, inner)
        body += store_full(inner)
        lp += ["    " + x for x in body]

    red_store = []
    for j, o in enumerate(spec.outputs):
        if o.level == "red":
            red_store.append(f"tl.store(out{j}_ptr + o, {em.names[o.key]}, mask=omask)")

    B.append("if ONE_PASS:")
    B += ["    " + x for x in one + red_store]
    B.append("else:")
    B += ["    " + x for x in lp + red_store]
    kernel = "@triton.jit\ndef {}(\n    {},\n):\n".format(kname, ",\n    ".join(params)) + "\n".join("    " + x for x in B)

    # ---- split: few rows, long reductions. One launch per stage over (row blocks, R chunks):
    # each program reduces its chunk into fp32 partials [M, SPLIT]; the next launch combines them
    # (fixed order: deterministic) before its own stage; the last computes the outputs.
    can_split = bool(reduces) and not any(r.op in ("argmax", "argmin") for r in reduces)
    split_kname = f"_{prefix}_{tag}_split_kernel"
    if can_split:
        sparams = [p for p in params if not p.startswith("ONE_PASS")]
        sparams = sparams[:-3] + [f"part_{em.names[r.key]}_ptr" for r in reduces] + [
            "SPLIT", "CH", "SPLIT_P2: tl.constexpr", "STAGE: tl.constexpr"] + sparams[-3:]
        SB = B[: B.index("if ONE_PASS:")]
        SB += ["sid = tl.program_id(1)", "r_lo = sid * CH", "r_hi = tl.minimum(r_lo + CH, R)",
               "sp = tl.arange(0, SPLIT_P2)", "pmask = omask[:, None] & (sp < SPLIT)[None, :]"]
        for st in range(S + 1):
            blk: list[str] = []
            sdone: set = set()
            blk += compute(red_pre, sdone, "red")
            for prev in range(st):  # combine the partials of finished stages
                for r in [r for r in reduces if r.stage == prev]:
                    nm = em.names[r.key]
                    blk.append(f"{nm}_p = tl.load(part_{nm}_ptr + o[:, None] * SPLIT + sp[None, :], mask=pmask, "
                               f"other={NEUTRAL[r.op]})")
                    blk.append(f"{nm} = {_reduce_final(r, nm + '_p')}")
                    sdone.add(r.key)
                reduce_keys = {r.key for r in reduces}
                ready = {k for k in all_keys | {r.src for r in reduces} if em.level[k] == "red"
                         and all(d in sdone for d in (em.deps(k) & reduce_keys) - {k})}
                blk += compute(ready, sdone, "red")
            if st < S:
                stage_red = [r for r in reduces if r.stage == st]
                for r in stage_red:
                    blk.append(f"{em.names[r.key]}_acc = tl.full([BLOCK_O, BLOCK_R], {NEUTRAL[r.op]}, tl.float32)")
                blk.append("for r0 in range(r_lo, r_hi, BLOCK_R):")
                body = rblock("r0", "r_hi")
                inner = set(k for k in sdone if em.level[k] == "red")
                for r in stage_red:
                    body += compute(em.deps(r.src), inner)
                    body.append(_acc_update(r, f"{em.names[r.key]}_acc", em.names[r.src]))
                blk += ["    " + x for x in body]
                for r in stage_red:
                    nm = em.names[r.key]
                    blk.append(f"tl.store(part_{nm}_ptr + o * SPLIT + sid, {_reduce_final(r, nm + '_acc')}, mask=omask)")
            else:
                blk += compute({k for k in all_keys if em.level[k] == "red"}, sdone, "red")
                if full_outs:
                    blk.append("for r0 in range(r_lo, r_hi, BLOCK_R):")
                    body = rblock("r0", "r_hi")
                    inner = set(k for k in sdone if em.level[k] == "red")
                    body += compute(all_keys, inner)
                    body += store_full(inner)
                    blk += ["    " + x for x in body]
                for j, o in enumerate(spec.outputs):
                    if o.level == "red":
                        blk.append(f"tl.store(out{j}_ptr + o, {em.names[o.key]}, mask=omask & (o * 0 + sid == 0))")
            SB.append(f"if STAGE == {st}:")
            SB += ["    " + x for x in blk]
        kernel += "\n\n\n@triton.jit\ndef {}(\n    {},\n):\n".format(split_kname, ",\n    ".join(sparams)) + \
            "\n".join("    " + x for x in SB)

    # ---- launcher ----
    ins = [f"in{i}" for i in range(spec.nargs)]
    sig = ", ".join(ins + ([f"dim={spec.red_dims[0]}"] if spec.dim_attr is not None else [])
                    + [f"{k}={v}" for k, v in spec.extra_params.items()])
    L = [f"def {prefix}_{tag}({sig}):", f"    # region: {', '.join(region.ops)}"]
    L.append(f"    # domain rank {spec.rank}, reduced dims {list(spec.red_dims)}; kept groups {kept}, reduced groups {red}")
    if spec.dim_attr is not None:
        L.append(f"    d = dim % {spec.rank}  # the reduced dim, read from the module at run time")
        red_set = "[d]"
    else:
        red_set = str(list(spec.red_dims))
    views = {}
    for op in loads:
        nm = f"in{op.arg}" + ("_d" if op.layout == "drop" else "")
        if op.layout == "drop" and nm not in views:
            L.append(f"    {nm} = _kw_undrop(in{op.arg}, {red_set}, {spec.rank})")
        views[(op.arg, op.layout)] = nm
    if spec.prelude:
        L += ["    " + x for x in spec.prelude]
    elif spec.domain_arg is not None:
        L.append(f"    shape = tuple(in{spec.domain_arg}.shape)")
    else:
        full = sorted({v for (a, lay), v in views.items()})
        L.append(f"    shape = tuple(_kw_broadcast_shapes({', '.join(x + '.shape' for x in full)}))")
        L.append(f"    shape = (1,) * ({spec.rank} - len(shape)) + shape")
    dev = f"in{tensor_args[0]}.device"
    if spec.dim_attr is not None:
        L.append(f"    kept_groups, red_groups = [list(range(0, d)), list(range(d + 1, {spec.rank}))], [[d]]")
    else:
        L.append(f"    kept_groups, red_groups = {kept}, {red}")
    L.append("    Ks = [_kw_prod([shape[d] for d in g]) for g in kept_groups]")
    L.append("    Qs = [_kw_prod([shape[d] for d in g]) for g in red_groups]")
    L.append("    M, R = _kw_prod(Ks), _kw_prod(Qs)")
    if spec.dim_attr is not None:
        red_drop = "[s for i, s in enumerate(shape) if i != d]"
        red_keep = "[1 if i == d else s for i, s in enumerate(shape)]"
    else:
        red_drop = "[" + ", ".join(f"shape[{d}]" for d in range(spec.rank) if d not in spec.red_dims) + "]"
        red_keep = "[" + ", ".join("1" if d in spec.red_dims else f"shape[{d}]" for d in range(spec.rank)) + "]"
    outs = []
    for j, o in enumerate(spec.outputs):
        if o.node is None:  # an internal result of a multi-kernel template (fp32 scratch)
            dt = "torch.float32"
        elif expr.node_dtype(o.node) == torch.int64:
            dt = "torch.int64"
        else:
            dt = dtype_expr(o.node, region.inputs, ins)
        if o.level == "full":
            L.append(f"    out{j} = torch.empty(shape, dtype={dt}, device={dev})")
        else:
            shp = red_keep if spec.red_shape_keep.get(o.node) else red_drop
            L.append(f"    out{j} = torch.empty({shp}, dtype={dt}, device={dev})")
        outs.append(f"out{j}")
    L.append(f"    if M == 0:\n        return ({', '.join(outs)},)")
    args = []
    for i in range(spec.nargs):
        if i in spec.scalar_args:
            args.append(f"in{i}")
        elif i in tensor_args:
            lays = [lay for (a, lay) in views if a == i]
            if len(lays) > 1:
                raise Unsupported(f"input {i} read in two layouts")
            v = views[(i, lays[0])]
            L.append(f"    {v}_st = _kw_group_strides({v}, shape, kept_groups + red_groups)")
            L.append(f"    if {v}_st is None:  # a layout whose dims do not merge: copy once")
            L.append(f"        {v} = {v}.expand(shape).contiguous()")
            L.append(f"        {v}_st = _kw_group_strides({v}, shape, kept_groups + red_groups)")
            args += [v, f"*{v}_st"]
    for j, o in enumerate(spec.outputs):
        args.append(f"out{j}")
        if o.level == "full":
            L.append(f"    out{j}_st = _kw_group_strides(out{j}, shape, kept_groups + red_groups)")
            args.append(f"*out{j}_st")
    one_max = config["ONE_PASS_MAX"]
    L.append(f"    one_pass = R <= {one_max}")
    L.append(f"    block_r = triton.next_power_of_2(R) if one_pass else {config['BLOCK_R']}")
    L.append(f"    block_o = max(1, min({config['BLOCK_O']}, {config.get('TILE', 16384)} // block_r))")
    args += ["M", "R", "float(R)", "*Ks", "*Qs"]
    args += ["ONE_PASS=one_pass", "BIG=M * R >= 2**31 - 2**20", "BLOCK_O=block_o", "BLOCK_R=block_r"]
    args += [f"num_warps={config['num_warps']}"]
    if config.get("num_stages"):
        args.append(f"num_stages={config['num_stages']}")
    split_below = config.get("SPLIT_BELOW_M", 0) if can_split else 0
    ind = ""
    if split_below:
        L.append(f"    split = 1 if one_pass or M >= {split_below} else "
                 f"min(triton.cdiv(R, block_r), max(1, {config.get('SPLIT_PROGRAMS', 1024)} // triton.cdiv(M, block_o)))")
        L.append("    if split > 1:  # few rows, long reductions: spread each row over `split` programs")
        L.append("        ch = triton.cdiv(triton.cdiv(R, split), block_r) * block_r")
        L.append("        split = triton.cdiv(R, ch)")
        parts = [f"part_{em.names[r.key]}" for r in reduces]
        for pn in parts:
            L.append(f"        {pn} = torch.empty((M, split), dtype=torch.float32, device={dev})")
        sargs = [a for a in args if not a.startswith("ONE_PASS")]
        cut = sargs.index("BIG=M * R >= 2**31 - 2**20")
        sargs = sargs[:cut] + parts + ["split", "ch", "SPLIT_P2=triton.next_power_of_2(split)", "STAGE=stage"] + sargs[cut:]
        last_grid = "split" if full_outs else "1"
        L.append(f"        for stage in range({S + 1}):")
        L.append(f"            sgrid = (triton.cdiv(M, block_o), split if stage < {S} else {last_grid})")
        L.append(f"            {split_kname}[sgrid](\n                " + ",\n                ".join(sargs) + ",\n            )")
        L.append("    else:")
        ind = "    "
    L.append(f"    {ind}grid = (triton.cdiv(M, block_o),)")
    L.append(f"    {ind}{kname}[grid](\n        {ind}" + f",\n        {ind}".join(args) + f",\n    {ind})")
    if spec.full_out_view:
        outs = [spec.full_out_view.format(o=o) if spec.outputs[j].level == "full" else o for j, o in enumerate(outs)]
    L.append(f"    return ({', '.join(outs)},)")
    helpers = {"_kw_group_strides": GROUP_STRIDES, "_kw_undrop": UNDROP, "_kw_prod": PROD}
    code = kernel + "\n\n\n" + "\n".join(L) + "\n"
    for name, src in ROW_HELPERS.items():
        if name + "(" in code or name + ")" in code or name + "," in code:
            helpers[name] = src
    kw = {"dim": f"self.{spec.dim_attr}"} if spec.dim_attr is not None else {}
    kw.update(spec.call_kwargs)
    return Rendered(launcher=f"{prefix}_{tag}", source=code, helpers=helpers, kernels=[kname], call_kwargs=kw)


PROD = '''
def _kw_prod(xs):
    p = 1
    for x in xs:
        p *= x
    return p
'''


# ------------------------------------------------------------------------------------------
# the family base the reduction, softmax, norm and loss families share


def _pow2ceil(x: int) -> int:
    p = 1
    while p < x:
        p *= 2
    return p


class RowFamily:
    """A family over the row engine: subclasses set name, kinds, anchors (ATen packets they own)
    and CONFIGS = {"cpu": [...], "rows": [...], "inner": [...]} (rows: the reduced dims are the
    innermost; inner: a kept dim is innermost, e.g. a sum over dim 1 of [B, R, N])."""

    name = "row"
    kinds: tuple[str, ...] = ()
    anchors: frozenset = frozenset()
    CONFIGS: dict[str, list[dict]] = {}

    def match(self, region: Region, captured: Captured):
        from .family import Match

        names = {packet_name(n) for n in region.nodes}
        if not names & self.anchors:
            return None
        spec = lower_region(region, captured)
        inner_kept = spec.rank - 1 not in spec.red_dims and spec.rank > 0
        return Match(self.name, region, spec.label, {"row": spec, "layout": "inner" if inner_kept else "rows"})

    def render(self, match, config: dict, prefix: str) -> Rendered:
        return render_row(match.spec["row"], match.region, config, prefix, self.name)

    def configs(self, match, device) -> list[dict]:
        key = "cpu" if device.kind == "cpu" else match.spec["layout"]
        return [dict(c) for c in self.CONFIGS[key]]

    def estimate(self, match, config: dict, device, numel: int, bytes_moved: int) -> float:
        """DRAM bytes x passes over the input, scaled up when too few programs fill the GPU or a
        one-pass tile spills registers."""
        spec: RowSpec = match.spec["row"]
        R, M, one, block_r, block_o, split = _geometry(match, config, numel)
        store = 1 if any(o.level == "full" for o in spec.outputs) else 0
        # split mode: one launch per stage; looped: a sum folded into its max's sweep is no sweep
        passes = 1 if one else (spec.stages if split else looped_sweeps(spec)) + store
        programs = -(-M // block_o)
        if split:  # rows spread over R chunks
            programs = max(programs, min(config.get("SPLIT_PROGRAMS", 1024), programs * -(-R // block_r)))
        per_thread = block_o * block_r / (32 * config["num_warps"])
        t = bytes_moved * passes / (device.bandwidth_gbs * 1e9)
        fill = min(1.0, programs / (2 * device.sm_count))
        t /= max(fill, 1e-3)
        if per_thread > 64:
            t *= per_thread / 64
        return t + 4e-6

    def effective(self, match, config: dict, numel: int) -> tuple:
        """What the config changes in the generated kernel at the captured shapes: configs that
        differ only in knobs unused there (BLOCK_R and TILE on the one-pass path ...) time alike."""
        _, _, one, block_r, block_o, split = _geometry(match, config, numel)
        if one:
            return ("one", block_o, config["num_warps"], config.get("EVICT", ""))
        return ("loop", block_o, block_r, config["num_warps"], split and config.get("SPLIT_PROGRAMS"))


def _geometry(match, config: dict, numel: int) -> tuple[int, int, bool, int, int, bool]:
    """(R reduced elements per row, M rows, one-pass?, BLOCK_R, rows per program, split rows?) of
    a config at the captured shapes (numel = M * R), as render_row's launcher picks them."""
    R = max(1, _red_guess(match))
    M = max(1, numel // R)
    one = R <= config["ONE_PASS_MAX"]
    block_r = _pow2ceil(R) if one else config["BLOCK_R"]
    block_o = max(1, min(config["BLOCK_O"], config.get("TILE", 16384) // block_r))
    split = not one and M < config.get("SPLIT_BELOW_M", 0)
    return R, M, one, block_r, block_o, split


def _red_guess(match) -> int:
    """Reduced count at the captured shapes (for the model only)."""
    from .tune import _hint

    spec: RowSpec = match.spec["row"]
    region = match.region
    dom = None
    for a in region.inputs:
        v = meta_val(a)
        if isinstance(v, torch.Tensor) and len(v.shape) == spec.rank:
            dom = v
            break
    if dom is None:
        return 1
    r = 1
    for d in spec.red_dims:
        r *= _hint(dom.shape[d])
    return r


# configs shared by the row families (a family may override)
ROW_CONFIGS = {
    # interpreter: one config that takes the one-pass path on small rows, one that loops
    "cpu": [
        {"ONE_PASS_MAX": 1024, "BLOCK_O": 16, "BLOCK_R": 128, "TILE": 8192, "num_warps": 4},
        {"ONE_PASS_MAX": 0, "BLOCK_O": 8, "BLOCK_R": 32, "TILE": 8192, "num_warps": 4},
        {"ONE_PASS_MAX": 0, "BLOCK_O": 4, "BLOCK_R": 16, "TILE": 8192, "num_warps": 4, "SPLIT_BELOW_M": 1 << 30,
         "SPLIT_PROGRAMS": 8},
    ],
    "rows": [
        {"ONE_PASS_MAX": op, "BLOCK_O": bo, "BLOCK_R": br, "TILE": tile, "num_warps": w} | ({"EVICT": ev} if ev else {})
        for op in (32768, 16384, 4096)
        for bo in (1, 2, 4)
        for br in (2048, 4096)
        for tile in (16384, 32768)
        for w in (4, 8, 16, 32)
        # streaming-load eviction on the one-row-per-program tiles (RMSNorm, softmax 8192 wide),
        # next to the plain ones so the tuner's first configs include both; the tuner decides (H100,
        # session 5: no gain on RMSNorm, 0.0953 ms with evict_first vs 0.0945 without)
        for ev in ("", "evict_first")
        if not (w >= 16 and bo > 1)
        and (not ev or (op == 32768 and bo == 1 and br == 2048 and tile == 16384 and w in (8, 16)))
        # 32 warps: a whole 32K-wide row in one tile at 32 fp32 per thread (Liger's cross-entropy
        # tile). H100, CE 8192x32768 bf16: 0.31 ms at 32 warps, 0.40-0.45 at 16, 0.26 looped online
        and (w < 32 or (op == 32768 and bo == 1 and br == 2048 and tile == 16384 and not ev))
    ] + [
        # few long rows (LayerNorm over [C, H, W] of a small batch, a loss over everything)
        {"ONE_PASS_MAX": 0, "BLOCK_O": 1, "BLOCK_R": br, "TILE": 16384, "num_warps": w,
         "SPLIT_BELOW_M": 264, "SPLIT_PROGRAMS": sp}
        for br in (2048, 4096)
        for w in (4, 8)
        for sp in (528, 1056)
    ],
    "inner": [
        {"ONE_PASS_MAX": op, "BLOCK_O": bo, "BLOCK_R": br, "TILE": 8192, "num_warps": w}
        for op in (64, 0)
        for bo in (32, 64, 128)
        for br in (8, 16, 32, 64)
        for w in (4, 8)
    ],
}
