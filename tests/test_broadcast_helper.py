"""The launchers' _kw_broadcast_shapes (a plain-Python stand-in for torch.broadcast_shapes, whose
symbolic checks run on every forward) agrees with torch on every case."""
import itertools

import pytest
import torch

from kernelwright.propose.search.expr import HELPERS, helpers_used


def _helper():
    ns = {"torch": torch}
    exec(HELPERS["_kw_broadcast_shapes"], ns)
    return ns["_kw_broadcast_shapes"]


def test_agrees_with_torch():
    bc = _helper()
    dims = [(), (1,), (3,), (0,), (2, 1), (1, 3), (2, 3), (4, 1, 3), (4, 2, 3), (1, 0), (5, 1, 1, 1)]
    for shapes in itertools.chain(itertools.combinations(dims, 2), itertools.combinations(dims, 3)):
        try:
            want = torch.broadcast_shapes(*shapes)
        except RuntimeError:
            with pytest.raises(RuntimeError):
                bc(*(torch.Size(s) for s in shapes))
            continue
        got = bc(*(torch.Size(s) for s in shapes))
        assert got == want and isinstance(got, torch.Size), shapes


def test_pasted_when_a_launcher_calls_it():
    assert "_kw_broadcast_shapes" in helpers_used("    shape = _kw_broadcast_shapes(in0.shape, in1.shape)")
    assert "_kw_broadcast_shapes" not in helpers_used("    shape = in0.shape")
