"""The loop with the real correctness judge on the CPU (Triton interpreter): proposer failures become
rows, an honest answer is kept, and a run killed with SIGKILL mid-way resumes to the same end.
Each check starts a worker process (~4 s here), so these tests keep the number of checks small."""
from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from kernelwright.config import JudgeConfig, LoopConfig
from kernelwright.judge import check
from kernelwright.loop.ledger import read_tsv
from kernelwright.loop.run import TaskTarget, optimize_tasks
from test_loop_support import Scripted, cand, good, resume_script, wrong, write_task

HERE = Path(__file__).resolve().parent
JUDGE = JudgeConfig(device="cpu", timeout_s=120)


def _rows(run_dir: Path) -> list[dict]:
    path = run_dir / "ledger.sqlite"
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)  # read-only: never creates it
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM experiments ORDER BY id")]
    except sqlite3.OperationalError:  # the table is not there yet
        return []
    finally:
        db.close()


def _independent_check(task: Path, answer: Path) -> None:
    v = check(task, answer, JUDGE)
    assert v.accepted, v.reason


def test_real_judge_failures_are_rows_and_the_honest_answer_is_kept(tmp_path):
    task = write_task(tmp_path)
    script = [
        cand("this is not python at all", "garbage"),
        RuntimeError("the model endpoint fell over"),
        None,  # returns nothing
        cand(wrong(0.1), "wrong"),
        cand(good(), "good"),
    ]
    buf = io.StringIO()
    out = optimize_tasks(
        [TaskTarget("relu", task)], tmp_path / "run", [Scripted(script)], device="cpu", judge_cfg=JUDGE,
        timer_cfg=None, loop_cfg=LoopConfig(candidates_per_round=1, repeat_limit=5), console=Console(file=buf, width=200),
    )
    rows = _rows(tmp_path / "run")
    assert [(r["label"], r["verdict"], r["stage"]) for r in rows] == [
        ("garbage", "error", "propose"),
        ("", "error", "propose"),
        ("", "error", "propose"),
        ("wrong", "rejected", "smoke"),
        ("good", "accepted", "integrity"),
    ]
    assert "fell over" in rows[1]["error"] and "NoneType" in rows[2]["error"]
    assert "outside tolerance" in rows[3]["error"]
    assert [int(r["id"]) for r in read_tsv(tmp_path / "run" / "results.tsv")] == [r["id"] for r in rows]
    o = out["relu"]
    assert (o.experiments, o.accepted, o.best_speedup) == (5, 1, None)
    assert o.stop_reason.startswith("cpu-correct")
    assert o.best_path.read_text() == good()
    assert "nothing is timed" in buf.getvalue().lower()


def _start(run_dir: Path, task: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, str(HERE / "test_loop_support.py"), str(run_dir), str(task)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
    )


def test_resume_after_sigkill_finishes_with_agreeing_counts(tmp_path):
    task = write_task(tmp_path)
    run_dir = tmp_path / "run"
    proc = _start(run_dir, task)
    deadline = time.monotonic() + 120
    try:
        while len(_rows(run_dir)) < 1:  # kill with the second experiment in flight
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the loop and its judge workers, as a crash would
        proc.wait()
    before = _rows(run_dir)
    assert 1 <= len(before) < len(resume_script())

    proc = _start(run_dir, task)
    log = proc.communicate(timeout=240)[0]
    assert proc.returncode == 0, log
    assert "OUTCOME cpu-correct" in log
    rows = _rows(run_dir)
    ids = [r["id"] for r in rows]
    assert ids == list(range(1, len(rows) + 1))  # no duplicate, none skipped
    assert rows[: len(before)] == before  # the first session's rows are untouched
    labels = [r["label"] for r in rows]
    assert labels == ["wrong1", "wrong2", "good"]  # nothing judged twice, nothing lost
    tsv = read_tsv(run_dir / "results.tsv")
    assert [int(t["id"]) for t in tsv] == ids and [t["verdict"] for t in tsv] == [r["verdict"] for r in rows]
    best = run_dir / "kernels" / "relu.py"
    assert best.read_text() == good()
    _independent_check(task, best)


@pytest.mark.slow  # ~25 s alone, ~50 s on a shared CPU: two checks, three timings, one comparison
def test_real_timer_glue_on_the_cpu_host_clock(tmp_path):
    """The cuda path (TaskTimer: eager once, each candidate interleaved with the incumbent; final timing) with the real timing
    judge on a host clock: the figures mean nothing, the plumbing between loop and timer is real."""
    from functools import partial

    from kernelwright.config import TimerConfig
    from kernelwright.judge.timer import TaskTimer, time_answer
    from kernelwright.loop.run import Judges

    task = write_task(tmp_path)
    timer = TimerConfig(device="cpu", baselines=("eager",), warmup_ms=1, rep_ms=5, min_reps=3, max_reps=10,
                        input_sets=2)
    judges = Judges(check=check, time=partial(time_answer, host_clock_ok=True),
                    timer=lambda task, cfg, gate: TaskTimer(task, cfg, gate=gate, host_clock_ok=True))
    out = optimize_tasks(
        [TaskTarget("relu", task)], tmp_path / "run", [Scripted([cand(good(256), "b256"), cand(good(128), "b128")])],
        device="cuda", judge_cfg=JUDGE, timer_cfg=timer, judges=judges, console=Console(file=io.StringIO()),
        loop_cfg=LoopConfig(candidates_per_round=1, beam_width=1, compile_workers=1),
    )["relu"]
    rows = _rows(tmp_path / "run")
    assert [(r["label"], r["verdict"]) for r in rows] == [("b256", "accepted"), ("b128", "accepted")]
    first, second = rows
    assert first["decision"] == "kept" and first["timing_mode"] == "host"
    assert first["p20_ms"] <= first["median_ms"] <= first["p80_ms"] and first["speedup_eager"] > 0
    assert second["decision"] in ("kept", "reverted")
    # timed interleaved with the incumbent in one run: gain and noise recorded; eager timed once
    assert second["keep_gain"] is not None and second["keep_noise"] >= 0.02
    t1, t2 = (json.loads(r["timing_json"]) for r in rows)
    assert t1["baselines"]["eager"] == t2["baselines"]["eager"] and "compare" in t2
    if second["decision"] == "kept":
        assert second["keep_gain"] > second["keep_noise"]
    assert out.speedups.keys() == {"eager"} and (tmp_path / "run" / "kernels" / "relu.timing.json").exists()


def _judge_workers() -> list[int]:
    """Live processes of this one's children that are judge workers (or their unshare wrappers)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"kernelwright.judge.worker" in cmd:
            out.append(int(d.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_budget_spent_before_any_answer_waits_for_the_judge_then_leaves_no_worker(tmp_path):
    """A task with no accepted answer yet waits past its budget for its first candidates (a short
    budget must not leave every task of a model empty-handed: H100, 13-50 s shares against 40-60 s
    full-size checks), so the overrun is bounded by the judge's own timeout: a forward that never
    returns is killed at the check's timeout (8 s here, on a 2 s budget) and gets a row saying so,
    and no judge worker of this process is left running. (Abandoning candidates in flight once the
    task has an answer is test_loop.py's budget test.)"""
    import dataclasses

    task = write_task(tmp_path)
    hang = good().replace("        x = x.contiguous()\n", "        while True:\n            pass\n")
    assert hang != good()
    t0 = time.monotonic()
    out = optimize_tasks(
        [TaskTarget("relu", task)], tmp_path / "run", [Scripted([cand(hang, "hang")])], device="cpu",
        judge_cfg=dataclasses.replace(JUDGE, timeout_s=8.0), timer_cfg=None,
        loop_cfg=LoopConfig(candidates_per_round=1, budget_s=2.0, move_on=("budget",)),
        console=Console(file=io.StringIO()),
    )["relu"]
    took = time.monotonic() - t0
    deadline = time.monotonic() + 5
    while _judge_workers() and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _judge_workers()
    for pid in left:  # never leave one behind, whatever the test says
        os.killpg(pid, signal.SIGKILL)
    assert 8.0 <= took < 8.0 + 20, f"returned {took:.1f} s after starting (budget 2 s, judge timeout 8 s)"
    assert left == []
    assert (out.experiments, out.abandoned) == (1, 0) and out.stop_reason.startswith("budget")
    (row,) = _rows(tmp_path / "run")
    assert row["verdict"] == "rejected" and "timed out" in (row["error"] or "").lower(), row
    assert len(read_tsv(tmp_path / "run" / "results.tsv")) == 1
