"""A single-op target: the target itself is the one task (DIR/tasks/<name>.py is a copy), and its
winner, being an answer for the target, is DIR/model_optimized.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

OP = '''
import torch
import torch.nn as nn

M, N = 33, 70


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.softmax(x, dim=-1)


def get_inputs():
    return [torch.randn(M, N)]


def get_init_inputs():
    return []
'''


@pytest.mark.slow
def test_single_op_target(tmp_path):
    task = tmp_path / "row_softmax.py"
    task.write_text(OP)
    out = tmp_path / "run"
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    r = subprocess.run([sys.executable, "-m", "kernelwright.cli", "optimize", str(task), "--device", "cpu",
                        "--out", str(out), "--max-experiments", "2", "--budget", "20m"],
                       env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-4000:])
    plan = json.loads((out / "pipeline.json").read_text())
    assert plan["mode"] == "single" and [t["name"] for t in plan["tasks"]] == ["row_softmax"]
    assert (out / "tasks" / "row_softmax.py").read_text() == OP
    winner = out / "kernels" / "row_softmax.py"
    assert winner.exists()
    assert (out / "model_optimized.py").read_text() == winner.read_text()
    e2e = json.loads((out / "end_to_end.json").read_text())
    assert e2e["check"] == "accepted" and e2e["kernels"] == 1
    assert "kernels_found: 1" in " ".join((r.stdout + r.stderr).split())
