"""Attention family: F.scaled_dot_product_attention rendered as a flash-attention kernel, checked
under the Triton CPU interpreter against a float64 reference (causal and not, explicit scale,
Lq != Lk, grouped-query heads, head dims 16..128 including non-powers of two, a fused epilogue)
and by the real judge."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_matmul_family_support import TASKS, answer_for, run_cases  # noqa: E402

TF32X3 = dict(BLOCK_M=16, BLOCK_N=32, num_warps=4, num_stages=2, PRECISION="tf32x3")

CASES = [
    ("sdpa_causal", 0, "float32", None),
    ("sdpa_causal", 1, "float32", {"seq": 70}),  # several key blocks, diagonal block partly masked
    ("sdpa_causal", 0, "float16", None),
    ("sdpa_causal", TF32X3, "float32", {"head_dim": 128, "seq": 20}),
    ("sdpa_scaled_cross", 0, "float32", None),  # scale=0.3, Lq=19, Lk=45, head_dim 24
    ("sdpa_scaled_cross", 1, "float16", {"head_dim": 80}),
    ("sdpa_gqa_epilogue", 0, "float32", None),  # GQA, causal with Lk > Lq, sigmoid * 2 + q
    ("attention_explicit", 0, "float32", None),  # matmul / softmax / matmul regions
]


@pytest.fixture(scope="module")
def results():
    return run_cases(
        [{"task": str(TASKS / f"{t}.py"), "config": c, "dtype": d, "overrides": o} for t, c, d, o in CASES]
    )


@pytest.mark.parametrize("i", range(len(CASES)), ids=[f"{c[0]}-{c[2]}-{i}" for i, c in enumerate(CASES)])
def test_attention_matches_float64_reference(results, i):
    r = results[i]
    if CASES[i][0].startswith("sdpa"):
        assert r["families"] == ["attention"], r["families"]
    assert r["shape"] == r["expect_shape"]
    assert r["dtype"] == f"torch.{CASES[i][2]}"
    assert r["finite"]
    assert r["within_tol"], f"{r['task']}: max abs err {r['max_abs_err']:.3g}"
    assert r["deterministic"]


def test_match_reads_sdpa_arguments():
    (m,) = answer_for(TASKS / "sdpa_scaled_cross.py")[1]
    s = m.spec["attention"]
    assert (s.causal, s.scale, s.Lq, s.Lk, s.E, s.H, s.B) == (False, 0.3, 19, 45, 24, 2, 2)
    (m,) = answer_for(TASKS / "sdpa_gqa_epilogue.py")[1]
    s = m.spec["attention"]
    assert s.causal and s.scale is None and s.operands  # q is read again by the epilogue


def test_configs_never_plain_tf32_and_model_prefers_tensor_cores():
    from kernelwright.propose.search.family import DEVICES
    from kernelwright.propose.search.library import attention

    for c in attention.CONFIGS["fp32"] + attention.CONFIGS["tc"]:
        assert c["PRECISION"] in ("ieee", "tf32x3")
    (m,) = answer_for(TASKS / "sdpa_causal.py")[1]
    s = m.spec["attention"]
    big = type(s)(**{**s.__dict__, "B": 4, "H": 16, "Lq": 4096, "Lk": 4096, "E": 64, "EV": 64})
    mb = type(m)(m.family, m.region, m.label, {"attention": big})
    cfgs = attention.FAMILY.configs(mb, DEVICES["h100"])
    assert {c["PRECISION"] for c in cfgs} == {"ieee", "tf32x3"}
    est = {c["PRECISION"]: attention.FAMILY.estimate(mb, c, DEVICES["h100"]) for c in cfgs if c["BLOCK_M"] == 64 and c["BLOCK_N"] == 64}
    assert est["tf32x3"] < est["ieee"]


def test_mask_and_dropout_are_declined_with_a_reason():
    import torch
    import torch.nn.functional as F

    from kernelwright.extract.graph import capture
    from kernelwright.extract.regions import partition
    from kernelwright.propose.search.family import Unsupported
    from kernelwright.propose.search.library.attention import FAMILY

    class Masked(torch.nn.Module):
        def forward(self, q, k, v, mask):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    x = torch.randn(1, 2, 5, 16)
    cap = capture(Masked(), [x, x, x, torch.zeros(5, 5)])
    (r,) = [r for r in partition(cap) if r.kind == "attention"]
    with pytest.raises(Unsupported, match="attn_mask"):
        FAMILY.match(r, cap)


@pytest.mark.parametrize("task", ["sdpa_causal", "sdpa_gqa_epilogue"])
def test_judge_accepts_flash_attention(task, tmp_path):
    from kernelwright.config import JudgeConfig
    from kernelwright.judge import check

    src, _ = answer_for(TASKS / f"{task}.py", 0)
    path = tmp_path / f"{task}_answer.py"
    path.write_text(src)
    v = check(str(TASKS / f"{task}.py"), str(path), JudgeConfig(device="cpu", timeout_s=120))
    assert v.accepted, f"{v.stage}: {v.reason}\n{v.log_tail}"
    assert v.kernels == ["_k0_flash_attention_kernel"]
