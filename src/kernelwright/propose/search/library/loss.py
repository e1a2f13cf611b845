"""Loss family: MSE, L1, smooth-L1, Huber and KL divergence (mean / sum / none) through the row
engine, as a reduction over every dim of the pointwise loss."""
from __future__ import annotations

from ..rowengine import ROW_CONFIGS, RowFamily


class LossFamily(RowFamily):
    name = "loss"
    kinds = ("loss",)
    anchors = frozenset({"aten.mse_loss", "aten.l1_loss", "aten.smooth_l1_loss", "aten.huber_loss", "aten.kl_div"})
    CONFIGS = ROW_CONFIGS


FAMILY = LossFamily()
