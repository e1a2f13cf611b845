"""`kernelwright profile MODEL` on the CPU: ops with shares that add up, targets ranked by Amdahl
gain, and the note that GPU time needs a GPU."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kernelwright.profile.rank import amdahl

MODEL = '''
import torch
import torch.nn as nn

N, D = 8, 32


class Model(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)

    def forward(self, x):
        return torch.softmax(self.norm(torch.relu(self.fc(x))), dim=-1)


def get_inputs():
    return [torch.randn(N, D)]


def get_init_inputs():
    return [D]
'''


def _profile(tmp_path, *extra):
    f = tmp_path / "m.py"
    f.write_text(MODEL)
    return subprocess.run([sys.executable, "-m", "kernelwright.cli", "profile", str(f), "--device", "cpu", *extra],
                          capture_output=True, text=True, env=os.environ, timeout=300)


def test_profile_json(tmp_path):
    r = _profile(tmp_path, "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert res["device"] == "cpu" and res["time_source"] == "cpu"
    ops = {o["op"] for o in res["ops"]}
    assert {"aten::addmm", "aten::relu"} <= ops or {"aten::linear", "aten::relu"} <= ops
    assert sum(o["share"] for o in res["ops"]) == pytest.approx(1.0, abs=1e-6)
    assert all(o["ms"] >= 0 and o["calls"] >= 1 for o in res["ops"])
    kinds = {t["kind"] for t in res["targets"]}
    assert "matmul" in kinds and len(res["targets"]) >= 2
    gains = [t["gain"] for t in res["targets"]]
    assert gains == sorted(gains, reverse=True)
    for t in res["targets"]:
        assert t["gain"] == pytest.approx(amdahl(t["share"], t["prior"]))


def test_profile_table_says_gpu_time_needs_a_gpu(tmp_path):
    r = _profile(tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    text = " ".join(r.stderr.split())  # rich wraps lines at the terminal width
    assert "GPU time needs a GPU" in text and "Amdahl" in text


def test_profile_bad_usage(tmp_path):
    r = subprocess.run([sys.executable, "-m", "kernelwright.cli", "profile", str(tmp_path / "none.py"), "--device", "cpu"],
                       capture_output=True, text=True, env=os.environ, timeout=300)
    assert r.returncode == 2
