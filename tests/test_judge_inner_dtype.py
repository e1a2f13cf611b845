"""The tolerance is that of the least precise floating dtype the reference computes in, not only its
output's: `tanh(x * 0.5 + b).to(float16).float() * y` is an fp32 output at fp16 precision. An honest
tanh one fp32 ulp off torch's flips the fp16 rounding of about 1 element in 16000 (one fp16 ulp,
3e-4..9e-4), which the fp32 tolerance (1e-4) rejected; an inner dtype only ever loosens."""
from __future__ import annotations

import torch

from kernelwright.config import JudgeConfig
from kernelwright.judge import check
from kernelwright.judge.compare import Ref64, compare_one, compare_outputs

TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x, b, y):
        return (torch.tanh(x * 0.5 + b)).to(torch.float16).float() * y


batch = 64
dim = 256


def get_inputs():
    return [torch.randn(batch, dim), torch.randn(dim), torch.randn(batch, dim)]


def get_init_inputs():
    return []
'''

ANSWER = '''
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _k(x_ptr, b_ptr, y_ptr, o_ptr, n, dim, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    b = tl.load(b_ptr + offs % dim, mask=mask, other=0.0)
    y = tl.load(y_ptr + offs, mask=mask, other=0.0)
    z = x * 0.5 + b
    e = tl.exp(-2.0 * tl.abs(z))
    t = (1.0 - e) / (1.0 + e)
    t = tl.where(z < 0, -t, t)
{FINISH}
    tl.store(o_ptr + offs, r, mask=mask)


class ModelNew(nn.Module):
    def forward(self, x, b, y):
        x, b, y = x.contiguous(), b.contiguous(), y.contiguous()
        out = torch.empty_like(x)
        n = x.numel()
        _k[(triton.cdiv(n, 1024),)](x, b, y, out, n, b.numel(), BLOCK=1024)
        return out
'''

HONEST = ANSWER.replace("{FINISH}", "    r = t.to(tl.float16).to(tl.float32) * y")
# The whole chain at fp16 precision and 5% off: outside even the fp16 tolerance.
CHEAT = ANSWER.replace("{FINISH}", "    r = (t.to(tl.float16) * y.to(tl.float16) * 1.05).to(tl.float32)")


def test_inner_dtype_loosens_the_tolerance_and_only_loosens():
    ref = torch.linspace(0.5, 2.0, 64)
    cand = ref * (1 + 5e-4)
    r64 = ref.double()
    for work in (None, torch.float32):
        m = compare_outputs([cand], [ref], Ref64([r64], None, work))
        assert not m.ok and "torch.float32: atol 0.0001" in m.reason, m.reason
    assert compare_outputs([cand], [ref], Ref64([r64], None, torch.float16)).ok
    assert compare_one(cand, ref, r64, "o", None, torch.bfloat16).ok
    m = compare_one(ref * 1.05, ref, r64, "o", None, torch.float16)  # fp16's tolerance still holds
    assert not m.ok and "torch.float32 output computed through torch.float16: atol 0.01, rtol 0.01" in m.reason
    # float64 inside never tightens the fp32 tolerance
    assert compare_one(ref * (1 + 5e-5), ref, r64, "o", None, torch.float64).ok
    assert compare_one(ref * (1 + 5e-5), ref, r64, "o", None, None).ok
    # kept through .to (the timer moves its stored references), and without a float64 run
    assert Ref64([r64], None, torch.float16).to("cpu").work_dtype == torch.float16
    assert compare_outputs([cand], [ref], Ref64([None], None, torch.float16).to("cpu")).ok


def test_reference_records_its_working_dtypes(tmp_path):
    from kernelwright.judge import inputs as inp
    from kernelwright.judge.stages import _Reference
    from kernelwright.task import load_task

    p = tmp_path / "task.py"
    p.write_text(TASK)
    ref = _Reference(load_task(p), inp.ShapeConfig(), "cpu", seed=0)
    native, r64 = ref.run([torch.randn(4, 256), torch.randn(256), torch.randn(4, 256)])
    assert ref.work_dtypes >= {torch.float16, torch.float32}
    assert native[0].dtype == torch.float32 and r64 is not None and r64.work_dtype == torch.float16


def test_fp16_inside_an_fp32_task_honest_accepted_cheat_rejected(tmp_path):
    task = tmp_path / "tanh_fp16_inside.py"
    task.write_text(TASK)
    honest = tmp_path / "honest.py"
    honest.write_text(HONEST)
    cheat = tmp_path / "cheat.py"
    cheat.write_text(CHEAT)
    cfg = JudgeConfig(device="cpu", timeout_s=300)
    v = check(task, honest, cfg)
    assert v.accepted, f"{v.stage}: {v.reason}\n{v.log_tail}"
    v = check(task, cheat, cfg)
    assert not v.accepted and "outside tolerance" in v.reason, f"{v.stage}: {v.reason}"
    assert "computed through torch.float16" in v.reason, v.reason
