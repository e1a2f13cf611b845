"""`kernelwright check` as a user meets it: exit codes, --json, and clear errors for bad tasks."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kernelwright.judge.compare import compare_one
from kernelwright.task import load_task

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "tests" / "judge_zoo"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kernelwright.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def test_check_json_accepted():
    r = _cli("check", str(ZOO / "tasks/relu.py"), str(ZOO / "answers/honest_relu.py"), "--device", "cpu",
             "--timeout", "120", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)  # stdout holds exactly one JSON object
    assert out["accepted"] is True and out["stage"] == "integrity"
    assert set(out["max_abs_err"]) == {"load", "smoke", "sweep", "numerics", "determinism", "integrity"}
    assert out["seconds"] > 0 and out["reason"]


def test_check_json_rejected():
    r = _cli("check", str(ZOO / "tasks/relu.py"), str(ZOO / "answers/cheat_torch_only.py"), "--device", "cpu",
             "--json")
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["accepted"] is False and "no custom kernel ran" in out["reason"]


@pytest.mark.parametrize("bad,words", [
    ("syntax_error", "syntax error"),
    ("missing_init_inputs", "get_init_inputs"),
    ("inputs_raise", "get_inputs() of inputs_raise raised"),
    ("non_tensor_output", "not a tensor"),
])
def test_malformed_task_exit_2(bad, words):
    r = _cli("check", str(ZOO / f"bad_tasks/{bad}.py"), str(ZOO / "answers/honest_relu.py"), "--device", "cpu",
             "--json")
    assert r.returncode == 2, (r.stdout, r.stderr)
    out = json.loads(r.stdout)
    assert words in out["error"] and out["hint"]


def test_unreadable_paths_exit_2(tmp_path):
    r = _cli("check", str(tmp_path / "nope.py"), str(ZOO / "answers/honest_relu.py"), "--device", "cpu")
    assert r.returncode == 2 and "not found" in r.stderr
    r = _cli("check", str(ZOO / "tasks/relu.py"), str(tmp_path / "nope.py"), "--device", "cpu")
    assert r.returncode == 2 and "cannot read answer" in r.stderr


def test_cuda_without_gpu_is_a_usage_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    r = _cli("check", str(ZOO / "tasks/relu.py"), str(ZOO / "answers/honest_relu.py"), "--device", "cuda")
    assert r.returncode == 2 and "--device cpu" in r.stderr


def test_size_constants_found():
    t = load_task(ZOO / "tasks/sum_dim1.py")
    assert t.size_constants == {"B": 3, "M": 33, "N": 40}
    assert [x.shape for x in t.inputs({"N": 7})] == [(3, 7, 33)]
    assert t.module.N == 40  # overrides are temporary


def test_compare_nan_positions_and_tolerance():
    import torch

    ref = torch.tensor([1.0, float("nan"), 3.0])
    assert compare_one(ref.clone(), ref, ref.double(), "o").ok
    assert not compare_one(torch.tensor([1.0, 2.0, 3.0]), ref, ref.double(), "o").ok  # NaN hidden
    assert not compare_one(torch.full((3,), float("nan")), ref, ref.double(), "o").ok  # all NaN
    close = torch.tensor([1.0 + 5e-5, float("nan"), 3.0])
    assert compare_one(close, ref, ref.double(), "o").ok
    far = torch.tensor([1.0 + 1e-3, float("nan"), 3.0])
    assert not compare_one(far, ref, ref.double(), "o").ok
    assert not compare_one(ref.reshape(3, 1), ref, None, "o").ok  # no broadcasting passes
    assert not compare_one(ref.double(), ref, None, "o").ok  # dtype must match exactly


def test_sensitivity_term_widens_only_ill_conditioned_elements():
    import torch

    from kernelwright.judge.compare import Ref64, compare_outputs

    ref = torch.tensor([1.0, 1.0])
    cand = torch.tensor([1.0 + 5e-4, 1.0 + 5e-4])
    # Well conditioned: a one-ulp perturbation moves nothing, so 5e-4 is outside the fp32 bound.
    assert not compare_outputs([cand], [ref], Ref64([ref.double()], [torch.zeros(2, dtype=torch.float64)])).ok
    # Ill conditioned (the float64 answer moves by 3e-4 when inputs move by one ulp): allowed.
    assert compare_outputs([cand], [ref], Ref64([ref.double()], [torch.full((2,), 3e-4, dtype=torch.float64)])).ok
    # Only where it is ill conditioned.
    mixed = Ref64([ref.double()], [torch.tensor([3e-4, 0.0], dtype=torch.float64)])
    assert not compare_outputs([cand], [ref], mixed).ok
