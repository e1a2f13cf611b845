"""Row engine EVICT knob: on the one-pass path the domain-sized input streams (evict_first) and a
broadcast operand (a norm's weight) stays in L2 (evict_last); the looped path is unchanged (its
sweeps re-read the row from L2). The answer still computes the task (interpreter, subprocess)."""
from __future__ import annotations

import textwrap

from kernelwright.config import JudgeConfig, SearchConfig
from kernelwright.judge import check
from kernelwright.propose.search.proposer import build_plan, render_point

TASK = textwrap.dedent('''
    import torch
    import torch.nn as nn

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(1.0 + 0.1 * torch.randn(96))

        def forward(self, x):
            xf = x.float()
            return xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight

    def get_inputs():
        return [torch.randn(10, 96)]

    def get_init_inputs():
        return []
''')

ONE = {"ONE_PASS_MAX": 1024, "BLOCK_O": 2, "BLOCK_R": 32, "TILE": 8192, "num_warps": 4, "EVICT": "evict_first"}
LOOP = dict(ONE, ONE_PASS_MAX=0)


def _render(tmp_path, config):
    p = tmp_path / "task.py"
    p.write_text(TASK)
    plan = build_plan(str(p), "cpu", SearchConfig())
    plan.regions[0].configs[:] = [config]
    src, label = render_point(plan, (0,))
    return p, src, label


def test_one_pass_loads_carry_the_policy_and_the_answer_is_right(tmp_path):
    task, src, label = _render(tmp_path, ONE)
    assert "EVICT=evict_first" in label
    kernel = src.split("if ONE_PASS:")[1].split("for r0 in range")[0]  # the one-pass branch
    assert 'eviction_policy="evict_first"' in kernel and 'eviction_policy="evict_last"' in kernel
    assert src.count("eviction_policy") == 2  # one-pass loads only; the looped sweeps have none
    ans = tmp_path / "answer.py"
    ans.write_text(src)
    v = check(task, ans, JudgeConfig(device="cpu", timeout_s=300.0))
    assert v.accepted, (v.stage, v.reason)


def test_effective_tells_evict_apart_on_one_pass_only(tmp_path):
    from kernelwright.propose.search.rowengine import ROW_CONFIGS

    task, _, _ = _render(tmp_path, ONE)
    plan = build_plan(str(task), "cpu", SearchConfig())
    from kernelwright.propose.search.library.reduction import FAMILY as fam

    match = plan.regions[0].match
    plain = {k: v for k, v in ONE.items() if k != "EVICT"}
    assert fam.effective(match, ONE, 960) != fam.effective(match, plain, 960)
    assert any(c.get("EVICT") for c in ROW_CONFIGS["rows"])
