"""Cut a captured ATen graph into regions worth one kernel each.

A region is an *anchor* (a matmul, reduction, norm, softmax, loss, scan, attention or an op no
class covers) with the pointwise ops fused around it, or a chain of pointwise ops on its own:

- matmul / attention: the anchor plus its pointwise epilogue (bias, scale, activation, residual);
- reduction: one or more reductions over the same dims of the same domain, their pointwise
  prologue (ops on the domain, used only inside the region) and epilogue (ops on the reduced
  output, or on the domain combining it with the reduced values: `x / x.norm(dim=1, keepdim=True)`);
- norm / softmax / loss / scan: the anchor plus a pointwise prologue and epilogue;
- pointwise: connected elementwise ops with the same output shape.

View-like ops (view, reshape, permute, expand, getitem of a tuple, sym_size ...) stay outside
regions: the answer file runs them as torch glue. Classification is by tables of ATen overload
packets below (data, not branches).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import fx

from .graph import Captured, meta_val, packet_name

KINDS = ("pointwise", "reduction", "norm", "softmax", "loss", "scan", "matmul", "attention", "other")

# Elementwise ATen ops (overload packets). Families decide which of them they can render.
POINTWISE = frozenset(
    "aten." + s
    for s in """
    abs neg add sub rsub mul div true_divide floor_divide remainder fmod pow square sqrt rsqrt exp exp2
    expm1 log log2 log10 log1p sin cos tan asin acos atan atan2 sinh cosh tanh asinh acosh atanh
    sigmoid logit relu relu6 gelu silu mish softplus softsign elu selu celu leaky_relu hardtanh
    hardsigmoid hardswish hardshrink softshrink tanhshrink threshold clamp clamp_min clamp_max clip
    where maximum minimum fmax fmin reciprocal sign sgn floor ceil round trunc frac erf erfc erfinv
    eq ne lt le gt ge logical_and logical_or logical_not logical_xor bitwise_and bitwise_or
    bitwise_xor bitwise_not isnan isinf isfinite nan_to_num masked_fill lerp addcmul addcdiv
    _to_copy to clone contiguous copy alias lift_fresh_copy type_as xlogy heaviside hypot
    copysign signbit fill scalar_tensor zeros_like ones_like full_like log_sigmoid glu
    """.split()
)
REDUCTION = frozenset(
    "aten." + s
    for s in """
    sum mean amax amin max min argmax argmin prod var std var_mean std_mean linalg_vector_norm norm
    frobenius_norm logsumexp any all nansum count_nonzero aminmax
    """.split()
)
SOFTMAX = frozenset({"aten.softmax", "aten._softmax", "aten.log_softmax", "aten._log_softmax"})
NORM = frozenset(
    "aten." + s
    for s in """
    layer_norm native_layer_norm rms_norm _fused_rms_norm group_norm native_group_norm batch_norm
    native_batch_norm _native_batch_norm_legit _native_batch_norm_legit_functional
    _native_batch_norm_legit_no_training instance_norm
    """.split()
)
LOSS = frozenset(
    "aten." + s
    for s in """
    mse_loss l1_loss smooth_l1_loss huber_loss cross_entropy_loss nll_loss nll_loss_nd nll_loss_forward
    nll_loss2d nll_loss2d_forward kl_div binary_cross_entropy binary_cross_entropy_with_logits
    hinge_embedding_loss soft_margin_loss triplet_margin_loss margin_ranking_loss cosine_embedding_loss
    """.split()
)
SCAN = frozenset({"aten.cumsum", "aten.cumprod", "aten.logcumsumexp", "aten.cummax", "aten.cummin"})
MATMUL = frozenset(
    "aten." + s for s in "mm bmm addmm linear matmul baddbmm addbmm addmv mv dot einsum".split()
)
ATTENTION = frozenset(
    {
        "aten.scaled_dot_product_attention",
        "aten._scaled_dot_product_flash_attention",
        "aten._scaled_dot_product_efficient_attention",
        "aten._scaled_dot_product_flash_attention_for_cpu",
        "aten._scaled_dot_product_attention_math",
    }
)
# Run as torch glue outside any region: views, metadata, tuple access.
GLUE = frozenset(
    "aten." + s
    for s in """
    view reshape _unsafe_view unsqueeze squeeze expand permute t transpose flatten unflatten
    sym_size sym_numel sym_stride detach alias_copy view_as slice select narrow as_strided
    broadcast_tensors broadcast_to expand_as movedim split split_with_sizes chunk unbind
    """.split()
) | {"getitem", "sym_size", "sym_numel"}
# Checks export inserts (dtype/shape asserts, range constraints): no value, the answer drops them.
DROPPED = frozenset(
    "aten." + s
    for s in "_assert_tensor_metadata _assert_scalar _assert_async sym_constrain_range sym_constrain_range_for_size".split()
)

# Data movement a scan region absorbs next to its scan (reversed scans are flip-scan-flip).
SCAN_ADJACENT = frozenset({"aten.flip"})

_ANCHOR_KIND = [
    (MATMUL, "matmul"),
    (ATTENTION, "attention"),
    (SOFTMAX, "softmax"),
    (NORM, "norm"),
    (LOSS, "loss"),
    (SCAN, "scan"),
    (REDUCTION, "reduction"),
]


def classify(node: fx.Node) -> str:
    """'glue', 'pointwise', or one of KINDS for an anchor. Non-call nodes are 'glue'."""
    if node.op != "call_function":
        return "glue"
    name = packet_name(node)
    if name in GLUE or name in DROPPED or _is_sym_op(node):
        return "glue"
    if name in POINTWISE or _binary_minmax(node):
        return "pointwise"
    for table, kind in _ANCHOR_KIND:
        if name in table:
            return kind
    return "other"


def _binary_minmax(node: fx.Node) -> bool:
    """torch.max(a, b) / torch.min(a, b) are elementwise (aten.max.other), not reductions."""
    t = node.target
    return packet_name(node) in ("aten.max", "aten.min") and getattr(t, "_overloadname", "") == "other"


def _is_sym_op(node: fx.Node) -> bool:
    """Arithmetic on sizes (operator.mul of SymInts, sym_float ...) is shape glue."""
    v = meta_val(node)
    return isinstance(v, (torch.SymInt, torch.SymFloat, torch.SymBool, int, float, bool)) and not isinstance(
        v, torch.Tensor
    )


@dataclass(eq=False)
class Region:
    kind: str  # "pointwise"|"reduction"|"norm"|"softmax"|"loss"|"scan"|"matmul"|"attention"|"other"
    nodes: list[fx.Node]  # in graph order (anchor's getitem nodes included)
    inputs: list[fx.Node]  # nodes outside the region that region nodes read, in first-use order
    outputs: list[fx.Node]  # region nodes read outside it (or returned), in graph order
    ops: list[str]  # ATen names of the region's compute nodes ("aten.add.Tensor", ...)
    anchor: fx.Node | None = None  # the non-pointwise node the region grew around
    meta: dict = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.kind} region [{', '.join(self.ops)}]"


def _shape(node) -> tuple | None:
    v = meta_val(node)
    return tuple(v.shape) if isinstance(v, torch.Tensor) else None


def _same_shape(a, b) -> bool:
    sa, sb = _shape(a), _shape(b)
    if sa is None or sb is None or len(sa) != len(sb):
        return False
    return all(str(x) == str(y) for x, y in zip(sa, sb))


def _is_tensor(node) -> bool:
    return isinstance(meta_val(node), torch.Tensor)


def _tensor_inputs(node: fx.Node) -> list[fx.Node]:
    return [a for a in node.all_input_nodes if _is_tensor(a) or isinstance(meta_val(a), (list, tuple))]


def _reduce_signature(node: fx.Node):
    """(domain shape, reduced dims) of a reduction node, or None when the dims are not static."""
    src = node.args[0]
    shape = _shape(src)
    if shape is None:
        return None
    rank = len(shape)
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    if dims is None or dims == [] or dims == ():
        dims = list(range(rank))
    if isinstance(dims, int):
        dims = [dims]
    if not isinstance(dims, (list, tuple)) or not all(isinstance(d, int) for d in dims):
        return None
    dims = sorted(d % max(rank, 1) for d in dims)
    return tuple(str(s) for s in shape), tuple(dims)


def _broadcasts_to(s: tuple, domain: tuple) -> bool:
    """s (right-aligned) broadcasts to domain: a per-column weight [N] of a [M, N] domain."""
    return len(s) <= len(domain) and all(a in ("1", b) for a, b in zip(reversed(s), reversed(domain)))


def _reduced_shape(sig) -> tuple:
    shape, dims = sig
    return tuple(s for i, s in enumerate(shape) if i not in dims), tuple(
        "1" if i in dims else s for i, s in enumerate(shape)
    )


class _Partitioner:
    def __init__(self, captured: Captured, fuse: bool) -> None:
        self.cap = captured
        self.fuse = fuse
        self.order = {n: i for i, n in enumerate(captured.graph.nodes)}
        self.kind = {n: classify(n) for n in captured.graph.nodes}
        self.owner: dict[fx.Node, int] = {}  # node -> region id
        self.groups: list[list[fx.Node]] = []
        self.group_kind: list[str] = []
        self.group_anchor: list[fx.Node | None] = []
        self.group_sig: list = []
        out_node = next(n for n in captured.graph.nodes if n.op == "output")
        self.returned = set(out_node.all_input_nodes)
        self._anc: dict[fx.Node, frozenset] = {}

    # ancestors restricted to compute nodes; graphs are small (hundreds to a few thousand nodes)
    def ancestors(self, n: fx.Node) -> frozenset:
        if n in self._anc:
            return self._anc[n]
        acc: set = set()
        for a in n.all_input_nodes:
            acc.add(a)
            acc |= self.ancestors(a)
        self._anc[n] = frozenset(acc)
        return self._anc[n]

    def _creates_cycle(self, gid: int, node: fx.Node) -> bool:
        """Adding node to group gid is illegal if one of node's inputs lies outside the group but
        depends on it (the region would have to run both before and after that input)."""
        members = set(self.groups[gid])
        for a in node.all_input_nodes:
            if a in members:
                continue
            if members & self.ancestors(a):
                return True
        return False

    def _consumers_leave_ok(self, gid: int, node: fx.Node) -> bool:
        """Adding a producer (prologue) is legal only if all its users are already in the group."""
        members = set(self.groups[gid])
        return all(u in members for u in node.users) and node not in self.returned

    def _new(self, kind: str, nodes: list[fx.Node], anchor=None, sig=None) -> int:
        gid = len(self.groups)
        self.groups.append(list(nodes))
        self.group_kind.append(kind)
        self.group_anchor.append(anchor)
        self.group_sig.append(sig)
        for n in nodes:
            self.owner[n] = gid
        return gid

    def _add(self, gid: int, node: fx.Node) -> None:
        self.groups[gid].append(node)
        self.owner[node] = gid

    def _getitems(self, node: fx.Node) -> list[fx.Node]:
        return [u for u in node.users if u.op == "call_function" and packet_name(u) == "getitem"]

    def run(self) -> list[Region]:
        nodes = list(self.cap.graph.nodes)
        # 1. anchors, each with its tuple getitems
        for n in nodes:
            k = self.kind[n]
            if k in ("glue", "pointwise") or n in self.owner or packet_name(n) in SCAN_ADJACENT:
                continue
            sig = _reduce_signature(n) if k == "reduction" else None
            if k == "reduction" and self.fuse and sig is not None:
                gid = self._join_reduction(n, sig)
                if gid is not None:
                    self._add(gid, n)
                    for g in self._getitems(n):
                        self._add(gid, g)
                    continue
            self._new(k, [n, *self._getitems(n)], anchor=n, sig=sig)
        if self.fuse:
            # 2a. matmul/attention epilogues first: the product is never written unfused
            for n in nodes:
                if n not in self.owner and self.kind[n] == "pointwise":
                    gid = self._epilogue_group(n, only=("matmul", "attention"))
                    if gid is not None:
                        self._add(gid, n)
            # 2b/3. prologues (pointwise producers used only inside an anchored region, walked
            # backwards) and other epilogues (pointwise consumers, in graph order), repeated until
            # nothing moves: an epilogue can make a shared producer (x.float() read by both the
            # reduction and the map after it) a prologue.
            moved = True
            while moved:
                moved = False
                for n in reversed(nodes):
                    if n not in self.owner and (self.kind[n] == "pointwise" or packet_name(n) in SCAN_ADJACENT):
                        gid = self._prologue_group(n)
                        if gid is not None:
                            self._add(gid, n)
                            moved = True
                for n in nodes:
                    if n not in self.owner and (self.kind[n] == "pointwise" or packet_name(n) in SCAN_ADJACENT):
                        gid = self._epilogue_group(n)
                        if gid is not None:
                            self._add(gid, n)
                            moved = True
        for n in nodes:  # data movement no scan took is an op of its own
            if packet_name(n) in SCAN_ADJACENT and n not in self.owner:
                self._new(self.kind[n], [n], anchor=n)
        # 4. the remaining pointwise ops: chains of equal shape
        for n in nodes:
            if self.kind[n] != "pointwise" or n in self.owner:
                continue
            gid = None
            if self.fuse:
                for a in n.all_input_nodes:
                    g = self.owner.get(a)
                    if g is not None and self.group_kind[g] == "pointwise" and _same_shape(a, n):
                        if not self._creates_cycle(g, n):
                            gid = g
                            break
            if gid is None:
                self._new("pointwise", [n])
            else:
                self._add(gid, n)
        if self.fuse:
            self._merge_pointwise_producers()
            self._absorb_exclusive_scans()
        return [self._region(gid) for gid in range(len(self.groups)) if self.groups[gid]]

    def _absorb_exclusive_scans(self) -> None:
        """cat([zeros_like(..), cumsum(x[.., :-1])], dim): KernelBench's exclusive scan. The cat and
        its constant operand join the scan's region (the scan template shifts by one)."""
        for n in self.cap.graph.nodes:
            if packet_name(n) != "aten.cat" or n not in self.owner:
                continue
            parts = n.args[0]
            if not isinstance(parts, (list, tuple)) or len(parts) != 2:
                continue
            const, scanned = parts
            g_scan, g_const = self.owner.get(scanned), self.owner.get(const)
            if g_scan is None or g_const is None or self.group_kind[g_scan] != "scan":
                continue
            if self.groups[g_const] != [const] or packet_name(const) not in ("aten.zeros_like", "aten.ones_like", "aten.full_like"):
                continue
            if len(const.users) != 1 or len(self.groups[self.owner[n]]) != 1:
                continue
            for m in (const, n):
                self.groups[self.owner[m]] = []
                self._add(g_scan, m)

    def _merge_pointwise_producers(self) -> None:
        """A pointwise group read only by one other pointwise group is recomputed inside it (e.g.
        sigmoid(y) of a [M, 1] y feeding a [B, M, N] chain): one kernel instead of two."""
        changed = True
        while changed:
            changed = False
            for g in range(len(self.groups)):
                if self.group_kind[g] != "pointwise" or not self.groups[g]:
                    continue
                members = set(self.groups[g])
                if members & self.returned:
                    continue
                ext = {
                    self.owner.get(u)
                    for m in members
                    for u in m.users
                    if u not in members and packet_name(u) not in DROPPED
                }
                if len(ext) != 1:
                    continue
                h = ext.pop()
                if h is None or h == g or self.group_kind[h] != "pointwise":
                    continue
                for m in self.groups[g]:
                    self.owner[m] = h
                self.groups[h].extend(self.groups[g])
                self.groups[g] = []
                changed = True

    def _domain_ok(self, gid: int, node: fx.Node) -> bool:
        """For reduction-like groups: node's shape is the domain or the reduced output."""
        sig = self.group_sig[gid]
        anchor = self.group_anchor[gid]
        shape = _shape(node)
        if shape is None:
            return False
        s = tuple(str(x) for x in shape)
        if sig is not None:
            dropped, kept = _reduced_shape(sig)
            return s in (sig[0], dropped, kept) or _broadcasts_to(s, sig[0])
        if anchor is not None and self.group_kind[gid] in ("norm", "softmax", "scan", "loss"):
            dom = _shape(anchor.args[0])
            outs = [o for o in [anchor, *self._getitems(anchor)] if _is_tensor(o)]
            return (dom is not None and s == tuple(str(x) for x in dom)) or any(
                s == tuple(str(x) for x in _shape(o)) for o in outs
            )
        return False

    def _join_reduction(self, n: fx.Node, sig) -> int | None:
        """A reduction joins an earlier reduction group over the same domain and dims if its input
        is computed inside that group or is that group's domain input."""
        src = n.args[0]
        for gid in {self.owner.get(src), *(self.owner.get(a) for a in src.all_input_nodes)}:
            if gid is None or self.group_kind[gid] != "reduction" or self.group_sig[gid] != sig:
                continue
            if not self._creates_cycle(gid, n):
                return gid
        # same domain tensor reduced twice (x.mean and x.var of the same x)
        for gid, g_sig in enumerate(self.group_sig):
            if g_sig == sig and self.group_kind[gid] == "reduction":
                if any(m.args and m.args[0] is src for m in self.groups[gid] if self.kind[m] == "reduction"):
                    if not self._creates_cycle(gid, n):
                        return gid
        return None

    def _epilogue_group(self, n: fx.Node, only: tuple[str, ...] | None = None) -> int | None:
        for a in n.all_input_nodes:
            gid = self.owner.get(a)
            if gid is None:
                continue
            kind = self.group_kind[gid]
            if only is not None and kind not in only:
                continue
            if packet_name(n) in SCAN_ADJACENT and kind != "scan":
                continue
            if kind == "pointwise" or kind == "other":
                continue
            if kind in ("matmul", "attention"):
                anchor = self.group_anchor[gid]
                ok = _same_shape(n, anchor) or any(_same_shape(n, m) for m in self.groups[gid])
            else:
                ok = self._domain_ok(gid, n)
            if ok and not self._creates_cycle(gid, n):
                return gid
        return None

    def _prologue_group(self, n: fx.Node) -> int | None:
        users = list(n.users)
        if not users:
            return None
        gids = {self.owner.get(u) for u in users}
        if len(gids) != 1:
            return None
        gid = gids.pop()
        if gid is None or self.group_kind[gid] in ("pointwise", "other", "matmul", "attention"):
            return None
        if packet_name(n) in SCAN_ADJACENT and self.group_kind[gid] != "scan":
            return None
        if not self._consumers_leave_ok(gid, n) or not self._domain_ok(gid, n):
            return None
        return gid

    def _region(self, gid: int) -> Region:
        members = sorted(self.groups[gid], key=self.order.__getitem__)
        mset = set(members)
        inputs: list[fx.Node] = []
        for m in members:
            for a in m.all_input_nodes:
                if a not in mset and a not in inputs:
                    inputs.append(a)
        outputs = [
            m
            for m in members
            if (m in self.returned or any(u not in mset and packet_name(u) not in DROPPED for u in m.users))
            and (_is_tensor(m) or m in self.returned)
        ]
        ops = [_aten_name(m) for m in members if packet_name(m) != "getitem"]
        return Region(
            kind=self.group_kind[gid],
            nodes=members,
            inputs=inputs,
            outputs=outputs,
            ops=ops,
            anchor=self.group_anchor[gid],
            meta={"reduce_signature": self.group_sig[gid]} if self.group_sig[gid] else {},
        )


def _aten_name(node: fx.Node) -> str:
    from .graph import target_name

    return target_name(node)


def partition(captured: Captured, fuse: bool = True) -> list[Region]:
    """Regions in graph order. `fuse=False` gives one region per compute op (what a caller falls
    back to when no family covers a fused region)."""
    regions = _Partitioner(captured, fuse).run()
    order = {n: i for i, n in enumerate(captured.graph.nodes)}
    return sorted(regions, key=lambda r: order[r.nodes[0]])


def glue_nodes(captured: Captured, regions: list[Region]) -> list[fx.Node]:
    """call_function nodes in no region: run as torch in the answer's forward."""
    inside = {n for r in regions for n in r.nodes}
    return [n for n in captured.graph.nodes if n.op == "call_function" and n not in inside]
