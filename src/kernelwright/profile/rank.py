"""Rank targets by Amdahl's law: the whole-model speedup if one target alone got faster.

gain = 1 / ((1 - p) + p / s), p = the target's share of the model's time, s = the speedup we expect
for its op class (PipelineConfig.speedup_priors: a prior until the knowledge base measures better).
The combined prediction for several targets is the same law over all of them at once.
"""
from __future__ import annotations

from typing import Iterable

# ATen overload packets -> op class. Anything not listed is "pointwise" when it is elementwise
# (the common case of an unlisted aten op) or "other"; the tables are data, not branches.
OP_CLASSES: dict[str, tuple[str, ...]] = {
    "attention": (
        "aten.scaled_dot_product_attention", "aten._scaled_dot_product_flash_attention",
        "aten._scaled_dot_product_efficient_attention", "aten._scaled_dot_product_cudnn_attention",
        "aten._flash_attention_forward", "aten._efficient_attention_forward",
    ),
    "matmul": (
        "aten.mm", "aten.addmm", "aten.bmm", "aten.baddbmm", "aten.matmul", "aten.linear", "aten.einsum",
        "aten.convolution", "aten.conv1d", "aten.conv2d", "aten.conv3d", "aten._convolution",
        "aten.cudnn_convolution", "aten.addmv", "aten.mv", "aten.dot", "aten._addmm_activation",
    ),
    "softmax": ("aten._softmax", "aten.softmax", "aten._log_softmax", "aten.log_softmax"),
    "norm": (
        "aten.native_layer_norm", "aten.layer_norm", "aten.rms_norm", "aten._fused_rms_norm",
        "aten.native_batch_norm", "aten._native_batch_norm_legit", "aten._native_batch_norm_legit_functional",
        "aten._native_batch_norm_legit_no_training", "aten.batch_norm", "aten.native_group_norm",
        "aten.group_norm", "aten.instance_norm", "aten.cudnn_batch_norm",
    ),
    "loss": ("aten.cross_entropy_loss", "aten.nll_loss_forward", "aten.nll_loss", "aten.mse_loss",
             "aten.binary_cross_entropy", "aten.kl_div", "aten.smooth_l1_loss", "aten.huber_loss"),
    "scan": ("aten.cumsum", "aten.cumprod", "aten.logcumsumexp", "aten.cummax", "aten.cummin"),
    "reduction": (
        "aten.sum", "aten.mean", "aten.amax", "aten.amin", "aten.max", "aten.min", "aten.var", "aten.std",
        "aten.var_mean", "aten.argmax", "aten.argmin", "aten.prod", "aten.norm", "aten.linalg_vector_norm",
        "aten.logsumexp", "aten.any", "aten.all",
    ),
    # Data movement and pooling are not pointwise; a prior of 1 keeps them out of the ranking's top.
    "other": (
        "aten.max_pool2d_with_indices", "aten.avg_pool2d", "aten.adaptive_avg_pool2d", "aten._adaptive_avg_pool2d",
        "aten.embedding", "aten.index", "aten.gather", "aten.scatter", "aten.index_select", "aten.cat",
        "aten.copy_", "aten.clone", "aten._to_copy", "aten.lstm", "aten.gru", "aten.rnn_tanh",
        "aten.max_pool1d", "aten.max_pool3d_with_indices", "aten.upsample_nearest2d", "aten.upsample_bilinear2d",
        "aten.sort", "aten.topk", "aten.nonzero",
    ),
}
_CLASS_OF = {op: cls for cls, ops in OP_CLASSES.items() for op in ops}
# Classes that win when a region holds several: attention beats matmul beats norm ...
CLASS_PRECEDENCE = ("attention", "matmul", "loss", "softmax", "norm", "scan", "reduction", "pointwise", "other")


def op_class(packet: str) -> str:
    """'aten.mm' -> 'matmul'; profiler names ('aten::mm') are accepted too."""
    packet = packet.replace("::", ".")
    if packet.count(".") > 1:  # 'aten.add.Tensor' -> 'aten.add'
        packet = ".".join(packet.split(".")[:2])
    if packet in _CLASS_OF:
        return _CLASS_OF[packet]
    return "pointwise" if packet.startswith("aten.") else "other"


def class_of_ops(packets: Iterable[str]) -> str:
    """The dominant class of a set of ops (the one that decides which kernel a region needs)."""
    classes = {op_class(p) for p in packets}
    for c in CLASS_PRECEDENCE:
        if c in classes:
            return c
    return "other"


def amdahl(share: float, speedup: float) -> float:
    """Whole-model speedup when a part holding `share` of the time runs `speedup` times faster."""
    share = min(max(share, 0.0), 1.0)
    return 1.0 / ((1.0 - share) + share / speedup)


def combined(parts: Iterable[tuple[float, float]]) -> float:
    """Amdahl over several disjoint parts [(share, speedup), ...] at once."""
    parts = list(parts)
    rest = 1.0 - sum(p for p, _ in parts)
    return 1.0 / (max(rest, 0.0) + sum(p / s for p, s in parts))


def prior(priors: dict[str, float], cls: str) -> float:
    return float(priors.get(cls, priors.get("other", 1.0)))
