"""Norm family: LayerNorm, RMSNorm, BatchNorm (training: batch statistics and the running-stat
update; eval: running statistics) and InstanceNorm, through the row engine. Variance is
two-pass (mean first) in fp32."""
from __future__ import annotations

from ..rowengine import ROW_CONFIGS, RowFamily


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


FAMILY = NormFamily()
