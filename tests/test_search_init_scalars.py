"""Search proposer: numbers the forward reads from the task's init args stay init args in the answer.

torch.export bakes `x * self.scale` and `nn.Hardtanh(lo, hi)` into the graph as literals with the
values of get_init_inputs(); a checker builds ModelNew with other init args (the judge varies the int
ones like any size constant). The answer must read them from its own init args, and leave literals of
the task's code alone even where one equals an init arg's value (`+ 3.0` here, with HI = 3).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernelwright.config import JudgeConfig, SearchConfig
from kernelwright.propose.search.proposer import build_plan, render_point

ROOT = Path(__file__).resolve().parent.parent

TASK = '''import torch
import torch.nn as nn


class Model(nn.Module):
    """Linear, a scale, a shift derived from it, a hardtanh: numbers from the init args."""

    def __init__(self, in_features, out_features, scale, lo, hi):
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)
        self.scale = scale
        self.shift = 2.0 * scale + 1.0
        self.act = nn.Hardtanh(min_val=lo, max_val=hi)

    def forward(self, x):
        x = self.fc(x) * self.scale
        x = self.act(x - self.shift)
        return x + 3.0


B = 5
IN = 7
OUT = 6
SCALE = 0.5
LO = -1
HI = 3


def get_inputs():
    return [torch.randn(B, IN)]


def get_init_inputs():
    return [IN, OUT, SCALE, LO, HI]
'''

# ModelNew built with init args other than get_init_inputs()'s, positionally and by keyword, against
# Model built with the same ones (same weights); run under the interpreter in a subprocess.
_RUN = """
import json, sys, torch
sys.path.insert(0, "src")
from kernelwright.task import load_module, load_task
task = load_task(sys.argv[1])
ans = load_module(sys.argv[2], name="kw_init_scalars_answer")
out = []
for args, kwargs in [((7, 6, 0.5, -1, 3), {}), ((7, 6, 1.25, 1, 9), {}), ((7, 6), dict(scale=-0.75, lo=-4, hi=2))]:
    torch.manual_seed(0)
    ref = task.module.Model(*args, **kwargs)
    new = ans.ModelNew(*args, **kwargs)
    new.load_state_dict(ref.state_dict())
    x = 3 * torch.randn(11, 7)
    with torch.no_grad():
        want, got = ref(x), new(x)
    out.append({"args": [list(args), kwargs], "err": (want - got).abs().max().item()})
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    d = tmp_path_factory.mktemp("init_scalars")
    task = d / "linear_scale_hardtanh.py"
    task.write_text(TASK)
    plan = build_plan(str(task), "cpu", SearchConfig())
    src, _ = render_point(plan, tuple(0 for _ in plan.regions))
    ans = d / "answer.py"
    ans.write_text(src)
    return task, ans, plan, src


def test_init_arg_numbers_are_found_by_cause(rendered):
    _, _, plan, src = rendered
    formulas = sorted((s.index, s.formula) for s in plan.init_scalars)
    # scale (float), shift = 2 * scale + 1 (derived), lo and hi (ints, read by float math)
    assert formulas == [(2, "float(2 * {a} + 1)"), (2, "float({a})"), (3, "float({a})"), (4, "float({a})")], formulas
    assert "import kernelwright" not in src and "from kernelwright" not in src
    assert "+ 3.0" in src  # the task's own literal stays one (HI is 3 too)


def test_answer_follows_its_own_init_args(rendered):
    task, ans, _, _ = rendered
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-c", _RUN, str(task), str(ans)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == 3 and all(r["err"] < 1e-4 for r in results), results


def test_answer_passes_the_judge(rendered):
    from kernelwright.judge import check

    task, ans, _, _ = rendered
    v = check(str(task), str(ans), JudgeConfig(device="cpu", timeout_s=300))
    assert v.accepted, (v.stage, v.reason, v.log_tail[-1500:])
