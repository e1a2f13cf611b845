"""Norm family: LayerNorm, RMSNorm, BatchNorm (training: batch statistics and the running-stat
update; eval: running statistics) and InstanceNorm, through the row engine. Variance is
two-pass (mean first) in fp32."""
from __future__ import annotations

from torch import fx

from ....extract.graph import Captured, packet_name
from ....extract.regions import Region
from .. import expr
from ..codegen import is_tensor, shape_key
from ..family import Match, Unsupported
from ..rowengine import ROW_CONFIGS, Load, OutSpec, RowFamily, RowSpec, _arg, _Builder, _var_parts


def _lower_group_norm(region: Region, captured: Captured) -> RowSpec:
    """GroupNorm over x [B, C, *]: the launcher views x as [B, G, C/G, S] and reduces dims (2, 3);
    weight and bias [C] are viewed as [1, G, C/G, 1]. Epilogue ops may read x-shaped tensors."""
    n = region.nodes[0]
    if packet_name(n) != "aten.group_norm":
        raise Unsupported("a prologue before group norm")
    x, groups = n.args[0], int(n.args[1])
    w, bias = _arg(n, 2, "weight"), _arg(n, 3, "bias")
    eps = float(_arg(n, 4, "eps", 1e-5))
    xs = shape_key(x)
    for m in region.nodes[1:]:
        if not expr.supported(m) or shape_key(m) != xs:
            raise Unsupported("a group-norm epilogue op of another shape")
    for a in region.inputs:
        if is_tensor(a) and a is not x and a is not w and a is not bias and shape_key(a) != xs:
            raise Unsupported("a group-norm epilogue input of another shape")
    b = _Builder(region, x, (2, 3))
    b.rank, b.red_dims, b.full = 4, (2, 3), xs  # x-shaped values are on the (viewed) domain
    xv = b.value(x)
    mean, var = _var_parts(b, xv, 0.0)
    rstd = b.e(f"1.0 / tl.sqrt({{0}} + {eps!r})", var, hint="rstd")
    out = b.e("({0} - {1}) * {2}", xv, mean, rstd)
    views = []
    for p, hint in ((w, "gamma"), (bias, "beta")):
        if isinstance(p, fx.Node):
            k = (p, "gn")
            b.ops.append(Load(k, b.args.index(p), "full", "full", expr.node_dtype(p)))
            b.level[k], b.stage_of[k] = "full", 0
            out = b.e("{0} * {1}" if hint == "gamma" else "{0} + {1}", out, k)
            views.append(b.args.index(p))
    b.bind(n, out)
    for m in region.nodes[1:]:
        b.pw(m)
    xi = b.args.index(x)
    spec = RowSpec(rank=4, red_dims=(2, 3), domain_arg=None, ops=b.ops, nargs=len(b.args))
    spec.outputs = [OutSpec(o, o, "full") for o in region.outputs]
    spec.prelude = [
        f"xshape = tuple(in{xi}.shape)",
        "G = groups",
        "shape = (xshape[0], G, xshape[1] // G, _kw_prod(xshape[2:]))  # [B, G, C/G, S]",
    ]
    for i, a in enumerate(b.args):
        if not is_tensor(a):
            continue
        if i in views:
            spec.prelude.append(f"in{i} = in{i}.reshape(1, G, xshape[1] // G, 1)")
        else:
            spec.prelude.append(f"in{i} = in{i}.expand(xshape).reshape(shape)")
    spec.full_out_view = "{o}.view(xshape)"
    spec.extra_params = {"groups": str(groups)}
    attr = captured.bindings.get(n.name)
    if attr is not None:  # the module's num_groups, read at run time
        spec.call_kwargs = {"groups": f"self.{attr}"}
    spec.label = f"group norm ({groups} groups) as [B, G, C/G, S], two-pass variance"
    return spec


class NormFamily(RowFamily):
    name = "norm"
    kinds = ("norm",)
    anchors = frozenset(
        {
            "aten.layer_norm",
            "aten.native_layer_norm",
            "aten.rms_norm",
            "aten._native_batch_norm_legit_functional",
            "aten._native_batch_norm_legit_no_training",
            "aten.instance_norm",
        }
    )
    CONFIGS = ROW_CONFIGS

    def match(self, region: Region, captured: Captured):
        if any(packet_name(n) == "aten.group_norm" for n in region.nodes):
            return Match(self.name, region, "group norm", {"row": _lower_group_norm(region, captured), "layout": "rows"})
        return super().match(region, captured)


FAMILY = NormFamily()
