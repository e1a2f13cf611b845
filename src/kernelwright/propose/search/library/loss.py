"""Loss family, through the row engine:
  - MSE, L1, smooth-L1, Huber, KL divergence (mean / sum / none): the pointwise loss reduced over
    every dim (a following `/ batch` for 'batchmean' is a fused epilogue);
  - cross-entropy (and NLL: the same without the logsumexp) over [B, C] logits with class
    targets (ignore_index honoured, mean or sum): one
    row kernel computes per row logsumexp - x[target] (max-subtracted; x[target] picked by a masked
    sum over the row) and a validity flag, then a one-program kernel sums the rows in a fixed
    order (deterministic) and divides by the number of valid targets.
"""
from __future__ import annotations

import torch
from torch import fx

from ....extract.graph import Captured, packet_name
from ....extract.regions import Region
from ..codegen import dtype_expr, shape_key
from ..family import Match, Rendered, Unsupported
from ..rowengine import ROW_CONFIGS, OutSpec, RowFamily, RowSpec, _arg, _Builder, render_row

CE = {"aten.cross_entropy_loss", "aten.nll_loss_nd", "aten.nll_loss"}

CE_FINISH = '''
@triton.jit
def {kname}(loss_ptr, valid_ptr, out_ptr, B, MEAN: tl.constexpr, BLOCK: tl.constexpr):
    # one program, fixed summation order: bitwise reproducible
    acc = tl.zeros([BLOCK], tl.float32)
    cnt = tl.zeros([BLOCK], tl.float32)
    for b0 in range(0, B, BLOCK):
        b = b0 + tl.arange(0, BLOCK)
        m = b < B
        acc += tl.load(loss_ptr + b, mask=m, other=0.0)
        cnt += tl.load(valid_ptr + b, mask=m, other=0.0)
    total = tl.sum(acc, 0)
    if MEAN:
        total = tl.div_rn(total, tl.sum(cnt, 0))
    tl.store(out_ptr, total)
'''


def _cast_source(prologue: list, x, region: Region):
    """The region input x is a float32 cast chain of (no prologue, or only `.float()`-style casts),
    so that x[t] is that input's element t cast to float32; None otherwise."""
    node = x
    for p in reversed(prologue):
        if node is not p or packet_name(p) != "aten._to_copy" or p.meta["val"].dtype != torch.float32:
            return None
        node = p.args[0]
    if not isinstance(node, fx.Node) or node not in region.inputs:
        return None
    if prologue and node.meta["val"].dtype not in (torch.float16, torch.bfloat16, torch.float32):
        return None
    return node


def _lower_ce(region: Region) -> tuple[RowSpec, int]:
    n = next(x for x in region.nodes if packet_name(x) in CE)
    if region.nodes[-1] is not n:
        raise Unsupported("cross-entropy with a fused epilogue")
    prologue = region.nodes[:-1]  # pointwise ops on the logits (e.g. the cast of logits.float())
    x, t = n.args[0], n.args[1]
    weight = _arg(n, 2, "weight")
    reduction = int(_arg(n, 3, "reduction", 1))
    ignore = int(_arg(n, 4, "ignore_index", -100))
    smoothing = float(_arg(n, 5, "label_smoothing", 0.0))
    if packet_name(n) != "aten.cross_entropy_loss":  # nll_loss(_nd)(x, t, weight, reduction, ignore_index)
        smoothing = 0.0
    if weight is not None or smoothing != 0.0:
        raise Unsupported("cross-entropy with class weights or label smoothing")
    if len(shape_key(x)) != 2 or len(shape_key(t)) != 1:
        raise Unsupported("cross-entropy over other than [B, C] logits with [B] class targets")
    b = _Builder(region, x, (1,))
    for p in prologue:
        if shape_key(p) != shape_key(x):
            raise Unsupported("a cross-entropy prologue op of another shape than the logits")
        b.pw(p)
    xv = b.value(x)
    tv = b.value(t, "drop")
    raw = _cast_source(prologue, x, region)
    if raw is not None:
        # x[target] gathered: one load per row instead of a masked sum over every element (a
        # compare, a select and an add per logit, in the hot loop of a memory-bound kernel).
        # Targets out of [0, C) (ignore_index) read nothing and are masked out of the loss below.
        a = b.args.index(raw)
        b.value(raw)
        picked = b.e(f"tl.load(in{a}_ptr + in{a}_oo + {{0}} * in{a}_q0, mask=omask & ({{0}} >= 0) & ({{0}} < R), "
                     "other=0.0).to(tl.float32)", tv, hint="picked")
    else:
        picked = b.reduce("sum", b.e("tl.where(r[None, :] == {1}, {0}, 0.0)", xv, tv), hint="picked")
    if packet_name(n) == "aten.cross_entropy_loss":
        m = b.reduce("max", xv, hint="rowmax")
        s = b.reduce("sum", b.e("tl.exp({0} - {1})", xv, m), hint="rowsum")
        loss = b.e(f"tl.where({{2}} != {ignore}, tl.log({{1}}) + {{0}} - {{3}}, 0.0)", m, s, tv, picked, hint="rowloss")
    else:  # NLL: x already holds log-probabilities
        loss = b.e(f"tl.where({{0}} != {ignore}, -{{1}}, 0.0)", tv, picked, hint="rowloss")
    valid = b.e(f"tl.where({{0}} != {ignore}, 1.0, 0.0)", tv, hint="valid")
    spec = RowSpec(rank=2, red_dims=(1,), domain_arg=0, ops=b.ops, nargs=len(b.args))
    spec.outputs = [OutSpec(None, loss, "red"), OutSpec(None, valid, "red")]
    spec.label = f"cross-entropy rows over [B, C] (reduction {['none', 'mean', 'sum'][reduction]})"
    spec.label += f"; out dtype {n.meta['val'].dtype}"
    return spec, reduction


class LossFamily(RowFamily):
    name = "loss"
    kinds = ("loss",)
    anchors = frozenset({"aten.mse_loss", "aten.l1_loss", "aten.smooth_l1_loss", "aten.huber_loss", "aten.kl_div"})
    CONFIGS = ROW_CONFIGS

    def match(self, region: Region, captured: Captured):
        if any(packet_name(n) in CE for n in region.nodes):
            spec, reduction = _lower_ce(region)
            if reduction == 0:
                raise Unsupported("cross-entropy with reduction='none'")
            return Match(self.name, region, spec.label, {"row": spec, "layout": "rows", "ce": reduction})
        return super().match(region, captured)

    def render(self, match: Match, config: dict, prefix: str) -> Rendered:
        if "ce" not in match.spec:
            return super().render(match, config, prefix)
        rows = render_row(match.spec["row"], match.region, config, prefix, "ce_rows")
        ce = match.region.nodes[-1]
        dt = dtype_expr(ce, match.region.inputs, [f"in{i}" for i in range(len(match.region.inputs))])
        kname = f"_{prefix}_ce_finish_kernel"
        launcher = f"""
def {prefix}_cross_entropy(in0, in1):
    # logits in0: [B, C], targets in1: [B]; per-row losses, then their {'mean over valid targets' if match.spec['ce'] == 1 else 'sum'}
    rowloss, valid = {rows.launcher}(in0, in1)
    out = torch.empty((), dtype={dt}, device=in0.device)
    {kname}[(1,)](rowloss, valid, out, rowloss.numel(), MEAN={match.spec['ce'] == 1}, BLOCK=1024)
    return (out,)
"""
        src = rows.source + "\n\n" + CE_FINISH.format(kname=kname).strip() + "\n\n" + launcher
        return Rendered(f"{prefix}_cross_entropy", src, rows.helpers, rows.kernels + [kname])


FAMILY = LossFamily()
