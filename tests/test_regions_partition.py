"""capture() and partition(): regions of a small model, with invariants (every compute node in
exactly one region, glue outside, inputs/outputs consistent)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from kernelwright.extract.graph import INPUT, PARAMETER, capture
from kernelwright.extract.regions import classify, partition


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 6)
        self.ln = nn.LayerNorm(6)

    def forward(self, x, y):
        h = torch.relu(self.lin(x) * 2.0)  # matmul + epilogue
        h = self.ln(h)
        n = (h * h).sum(dim=1, keepdim=True)  # prologue mul fused into the reduction
        out = h / torch.sqrt(n + 1e-6)  # epilogue over the domain
        c = torch.cumsum(out.flip(1), 1).flip(1)  # reversed scan
        return c + torch.sigmoid(y), torch.exp(x) - 1


def _captured():
    return capture(_Net(), [torch.randn(3, 5, 8), torch.randn(5, 1)])


def test_capture_maps_placeholders_and_is_dynamic():
    cap = _captured()
    kinds = {n: s.kind for n, s in cap.placeholders.items()}
    assert kinds["p_lin_weight"] == PARAMETER and cap.placeholders["p_lin_weight"].target == "lin.weight"
    assert [n.name for n in cap.user_inputs()] == ["x", "y"]
    assert all(s.kind != INPUT or s.index in (0, 1) for s in cap.placeholders.values())
    assert cap.dynamic
    x = next(n for n in cap.graph.nodes if n.name == "x")
    assert not isinstance(x.meta["val"].shape[0], int)  # a symbol, not the captured 3


def test_partition_regions_and_invariants():
    cap = _captured()
    regions = partition(cap)
    kinds = [r.kind for r in regions]
    assert kinds.count("matmul") == 1 and "norm" in kinds and "scan" in kinds and "reduction" in kinds
    mm = next(r for r in regions if r.kind == "matmul")
    assert [o.split(".")[1] for o in mm.ops] == ["linear", "mul", "relu"]
    red = next(r for r in regions if r.kind == "reduction")
    assert [o.split(".")[1] for o in red.ops] == ["mul", "sum", "add", "sqrt"]
    # the division over the domain is the scan's prologue (its only user is the flip)
    scan = next(r for r in regions if r.kind == "scan")
    assert [o.split(".")[1] for o in scan.ops] == ["div", "flip", "cumsum", "flip", "add"]
    # every compute node in exactly one region; glue in none
    seen = {}
    for r in regions:
        for n in r.nodes:
            assert n not in seen
            seen[n] = r
    for n in cap.graph.nodes:
        if n.op == "call_function" and classify(n) != "glue":
            assert n in seen, n
    for r in regions:
        inside = set(r.nodes)
        assert all(i not in inside for i in r.inputs)
        assert all(o in inside for o in r.outputs) and r.outputs


def test_unfused_partition_has_one_compute_op_per_region():
    regions = partition(_captured(), fuse=False)
    for r in regions:
        compute = [o for o in r.ops if o != "getitem"]
        assert len(compute) == 1 or r.kind == "scan", r.ops
