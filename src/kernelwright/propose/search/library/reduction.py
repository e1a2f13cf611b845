"""Reduction family: sum, mean, max/min (+ indices), argmax/argmin, prod, var/std, vector norms,
logsumexp over any dim or dims, with their pointwise prologue and epilogue (including maps back
over the domain, e.g. `x / x.norm(dim=1, keepdim=True)`), through the row engine."""
from __future__ import annotations

from ..rowengine import ROW_CONFIGS, RowFamily


class ReductionFamily(RowFamily):
    name = "reduction"
    kinds = ("reduction",)
    anchors = frozenset(
        "aten." + s
        for s in "sum nansum mean amax amin max min argmax argmin prod var std var_mean std_mean "
        "linalg_vector_norm logsumexp".split()
    )
    CONFIGS = ROW_CONFIGS


FAMILY = ReductionFamily()
