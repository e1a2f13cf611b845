"""Cross-entropy's x[target]: gathered with one load per row when the logits reach the loss through
float32 casts only (the masked sum over every logit it replaces cost a compare, a select and an add
per element); any other prologue keeps the masked sum. Judged under the interpreter, split mode
included, with an ignore_index target."""
from __future__ import annotations

import textwrap

from kernelwright.config import JudgeConfig, SearchConfig
from kernelwright.judge import check
from kernelwright.propose.search.proposer import build_plan, render_point

GATHER = "tl.load(in0_ptr + in0_oo + "


def _task(tmp_path, expr: str) -> str:
    p = tmp_path / "task.py"
    p.write_text(textwrap.dedent(f'''
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        class Model(nn.Module):
            def forward(self, logits, target):
                return {expr}

        def get_inputs():
            t = torch.randint(0, 300, (6,))
            t[2] = -100
            return [torch.randn(6, 300, dtype=torch.bfloat16), t]

        def get_init_inputs():
            return []
    '''))
    return str(p)


def test_cast_prologue_gathers_and_every_mode_is_right(tmp_path):
    task = _task(tmp_path, "F.cross_entropy(logits.float(), target)")
    plan = build_plan(task, "cpu", SearchConfig())
    configs = plan.regions[0].configs
    split = next(i for i, c in enumerate(configs) if c.get("SPLIT_BELOW_M"))
    for i in range(len(configs)):
        src, _ = render_point(plan, (i,))
        assert GATHER in src and "r[None, :] ==" not in src
    src, _ = render_point(plan, (split,))
    (tmp_path / "answer.py").write_text(src)
    v = check(task, tmp_path / "answer.py", JudgeConfig(device="cpu", timeout_s=600.0))
    assert v.accepted, (v.stage, v.reason)


def test_other_prologues_keep_the_masked_sum(tmp_path):
    task = _task(tmp_path, "F.cross_entropy(logits.float() * 2.0, target)")
    plan = build_plan(task, "cpu", SearchConfig())
    src, _ = render_point(plan, (0,))
    assert GATHER not in src and "r[None, :] ==" in src
