"""The adversarial zoo: honest answers must be accepted, every cheat rejected, on the CPU.

Each cheat (tests/judge_zoo/answers/cheat_*.py) launches a Triton kernel of its own on every
forward, so that it gets past "no custom kernel ran" and reaches the defense it targets; the
expected failing stage says which defense caught it.
"""
from __future__ import annotations

import hashlib
import socket
import threading
from pathlib import Path

import pytest

from kernelwright.config import JudgeConfig
from kernelwright.judge import check

ZOO = Path(__file__).parent / "judge_zoo"
T = ZOO / "tasks"
A = ZOO / "answers"

HONEST = [
    ("relu", "honest_relu"),
    ("relu", "honest_relu_tqdm"),  # tqdm's monitor thread is a library's, allowed by class identity
    ("rowsum", "honest_rowsum"),
    ("sum_dim1", "honest_sum_dim1"),
    ("softmax", "honest_softmax"),
    ("layernorm", "honest_layernorm"),
    ("layernorm", "honest_layernorm_plain"),
    ("matmul", "honest_matmul"),
]

# (task, cheat, stages where the rejection may land, words the reason must hold)
CHEATS = [
    ("relu", "cheat_empty_like", {"smoke"}, "wrong result"),
    ("relu", "cheat_identity", {"smoke", "integrity"}, ""),
    ("relu", "cheat_copy", {"sweep"}, "wrong result"),  # passes on the task's own [0, 1) inputs
    ("relu", "cheat_mutate_input", {"integrity", "smoke"}, ""),
    ("relu", "cheat_inplace", {"integrity"}, ""),
    ("mean_near_zero", "cheat_zeros", {"smoke"}, "wrong result"),
    ("relu", "cheat_no_tail", {"smoke", "sweep"}, "wrong result"),
    ("relu", "cheat_uninit_read", {"smoke", "sweep", "numerics", "determinism"}, ""),
    ("matmul", "cheat_fp16_matmul", {"smoke", "sweep", "numerics"}, "outside tolerance"),
    ("relu", "cheat_nan", {"smoke"}, "NaN"),
    ("layernorm", "cheat_naive_variance", {"numerics"}, "near-zero variance"),
    ("relu", "cheat_seed_replay", {"smoke"}, "wrong result"),
    ("relu", "cheat_lazy_subclass", {"integrity"}, "not plain"),
    ("relu", "cheat_ptr_cache", {"numerics", "determinism", "integrity"}, ""),  # where an address repeats first
    ("relu", "cheat_phase", {"sweep", "numerics", "determinism", "integrity"}, "wrong result"),
    ("relu", "cheat_thread", {"integrity", "smoke"}, "target ModelNew.forward.<locals>.work"),  # names whose thread
    ("relu", "cheat_thread_lookalike", {"integrity", "smoke"}, "_Worker"),  # a TMonitor subclass still counts
    ("relu", "cheat_tf32_flag", {"integrity"}, "flags"),
    ("relu", "cheat_patch_allclose", {"smoke"}, "wrong result"),
    ("relu", "cheat_fake_pass", {"smoke"}, "exited with code 0"),
    ("relu", "cheat_segfault", {"smoke"}, "SIGSEGV"),
    ("relu", "cheat_torch_only", {"integrity"}, "no custom kernel ran"),
    ("relu", "cheat_dead_kernel", {"integrity"}, "neutralised"),
]


def _cfg(**kw) -> JudgeConfig:
    kw.setdefault("timeout_s", 120.0)
    return JudgeConfig(device="cpu", **kw)


@pytest.mark.parametrize("task,answer", HONEST)
def test_honest_answers_are_accepted(task, answer):
    v = check(T / f"{task}.py", A / f"{answer}.py", _cfg())
    assert v.accepted, f"{answer}: {v.stage}: {v.reason}\n{v.log_tail}"
    assert [s.name for s in v.stages] == ["load", "smoke", "sweep", "numerics", "determinism", "integrity"]
    assert all(s.passed for s in v.stages)
    sweep = next(s for s in v.stages if s.name == "sweep")
    assert sweep.configs >= 8
    assert v.kernels, "the answer's own kernel must be seen running"


@pytest.mark.parametrize("task,answer,stages,words", CHEATS)
def test_cheats_are_rejected(task, answer, stages, words):
    v = check(T / f"{task}.py", A / f"{answer}.py", _cfg())
    assert not v.accepted, f"{answer} was accepted"
    assert v.stage in stages, f"{answer}: rejected at {v.stage} ({v.reason}), expected one of {stages}"
    assert words in v.reason, f"{answer}: {v.reason!r} lacks {words!r}"


def test_fake_verdict_on_stdout_is_ignored():
    v = check(T / "relu.py", A / "cheat_fake_pass.py", _cfg())
    assert not v.accepted
    assert "PASS" in v.log_tail  # it did print its fake verdict; nobody listened


def test_hang_is_killed_at_the_deadline():
    v = check(T / "relu.py", A / "cheat_hang.py", _cfg(timeout_s=20.0))
    assert not v.accepted and "timed out after 20 s" in v.reason  # the deadline fired, not a crash


def test_memory_hog_is_rejected_and_the_next_check_still_works():
    v = check(T / "relu.py", A / "cheat_oom.py", _cfg(host_memory_gb=3.0))
    assert not v.accepted
    assert "memory" in v.reason.lower() or "SIGKILL" in v.reason or "died" in v.reason
    assert check(T / "relu.py", A / "honest_relu.py", _cfg()).accepted  # a fresh process after it


def test_harness_cannot_be_edited_from_an_answer(tmp_path):
    import kernelwright.judge.compare as cmp

    target = Path(cmp.__file__)
    before = hashlib.sha256(target.read_bytes()).hexdigest()
    v = check(T / "relu.py", A / "cheat_harness_edit.py", _cfg())
    assert not v.accepted
    assert hashlib.sha256(target.read_bytes()).hexdigest() == before
    assert not (Path.cwd() / "torch.py").exists()


def test_secrets_never_reach_the_answer(monkeypatch, tmp_path):
    secret = "kw-s3cr3t-" + hashlib.sha1(str(tmp_path).encode()).hexdigest()
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "MY_SERVICE_TOKEN", "DB_PASSWORD", "AWS_ACCESS_KEY_ID",
                 "GOOGLE_APPLICATION_CREDENTIALS", "SOME_SECRET"):
        monkeypatch.setenv(name, secret)
    got: list[bytes] = []
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(0.5)
    monkeypatch.setenv("KW_ZOO_PORT", str(srv.getsockname()[1]))
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            got.append(conn.recv(1 << 20))
            conn.close()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    leak = Path("/tmp/kw_zoo_leak.txt")
    leak.unlink(missing_ok=True)
    try:
        v = check(T / "relu.py", A / "cheat_secrets.py", _cfg())
    finally:
        stop.set()
        th.join(timeout=5)
        srv.close()
    assert not v.accepted
    assert secret not in v.reason and secret not in v.log_tail
    assert leak.exists(), "the cheat should have run and written what it found"
    assert secret not in leak.read_text()
    assert not any(secret.encode() in g for g in got)
    leak.unlink(missing_ok=True)
