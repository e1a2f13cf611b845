"""`kernelwright bench` error paths on a CPU machine: no GPU -> exit 2; rejected -> exit 1, untimed."""
import json

import pytest
import torch
from typer.testing import CliRunner

from kernelwright.cli import app
from kernelwright.judge.verdict import Verdict

TASK = """
import torch
import torch.nn as nn
class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x)
N = 37
def get_inputs():
    return [torch.randn(N)]
def get_init_inputs():
    return []
"""
NO_MODELNEW = "import torch\nclass Other(torch.nn.Module):\n    pass\n"

runner = CliRunner()


@pytest.fixture
def files(tmp_path):
    task = tmp_path / "task.py"
    task.write_text(TASK)
    bad = tmp_path / "bad.py"
    bad.write_text(NO_MODELNEW)
    return task, bad


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path")
def test_no_gpu_exits_2_with_what_is_needed(files):
    task, bad = files
    r = runner.invoke(app, ["bench", str(task), str(bad)])
    assert r.exit_code == 2
    assert "cuda" in r.output.lower() and "gpu" in r.output.lower()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path")
def test_no_gpu_json_is_one_object(files):
    task, bad = files
    r = runner.invoke(app, ["bench", str(task), str(bad), "--json"])
    assert r.exit_code == 2
    obj = json.loads(r.stdout.strip().splitlines()[-1])
    assert obj["accepted"] is False and "cuda" in obj["error"]


def test_rejected_answer_exits_1_and_is_not_timed(files, monkeypatch):
    task, bad = files
    import kernelwright.judge.timer as timer

    def never(*a, **k):
        raise AssertionError("a rejected answer must not be timed")

    monkeypatch.setattr(timer, "time_answer", never)
    r = runner.invoke(app, ["bench", str(task), str(bad), "--device", "cpu", "--json"])
    assert r.exit_code == 1, r.output
    obj = json.loads(r.stdout.strip().splitlines()[-1])
    assert obj["accepted"] is False and obj["timed"] is False and obj["stage"] == "load"


def test_accepted_on_cpu_says_timing_needs_cuda(files, monkeypatch):
    task, bad = files
    import kernelwright.judge as judge

    monkeypatch.setattr(judge, "check", lambda *a, **k: Verdict(accepted=True, stage="integrity", reason="ok"))
    r = runner.invoke(app, ["bench", str(task), str(bad), "--device", "cpu"])
    assert r.exit_code == 2
    assert "timing needs a CUDA" in " ".join(r.output.split())


def test_unreadable_task_exits_2(tmp_path, files):
    _, bad = files
    r = runner.invoke(app, ["bench", str(tmp_path / "missing.py"), str(bad), "--device", "cpu"])
    assert r.exit_code == 2


def test_unknown_device_exits_2(files):
    task, bad = files
    r = runner.invoke(app, ["bench", str(task), str(bad), "--device", "tpu"])
    assert r.exit_code == 2


def test_time_answer_refuses_cpu_without_host_clock(files):
    from kernelwright.config import TimerConfig
    from kernelwright.errors import UsageError
    from kernelwright.judge.timer import time_answer

    task, bad = files
    with pytest.raises(UsageError, match="timing needs"):
        time_answer(task, bad, TimerConfig(device="cpu"))
