"""Softmax family: softmax and log-softmax over any dim, max-subtracted (two reductions: row max,
then the sum of exp(x - max)), with prologue and epilogue, through the row engine."""
from __future__ import annotations

from ..rowengine import ROW_CONFIGS, RowFamily


class SoftmaxFamily(RowFamily):
    name = "softmax"
    kinds = ("softmax",)
    anchors = frozenset({"aten.softmax", "aten._softmax", "aten.log_softmax", "aten._log_softmax"})
    CONFIGS = ROW_CONFIGS


FAMILY = SoftmaxFamily()
