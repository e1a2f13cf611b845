"""The optimization loop's logic with fake judges (fast, no worker processes): ledger and its TSV
mirror, keep/revert on noise, the tree a proposer sees, each move-on rule, the budget split,
proposer failures, Ctrl-C and resume. tests/test_loop_real.py runs the real judge."""
from __future__ import annotations

import io
import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from rich.console import Console

from kernelwright.config import JudgeConfig, LoopConfig, TimerConfig
from kernelwright.errors import UsageError
from kernelwright.loop import rules
from kernelwright.loop.ledger import NAMES, Ledger, read_tsv
from kernelwright.loop.run import LoopInterrupted, TaskTarget, optimize_tasks
from kernelwright.loop.search import ROOT, choose_parents
from test_loop_support import FakeJudges, Scripted, cand, fake_source, write_task

ALL_RULES = LoopConfig().move_on


def run(tmp_path, script, *, judges=None, device="cuda", targets=None, console=None, **cfg):
    """optimize_tasks on the ReLU task with a Scripted proposer (or several) and fake judges."""
    judges = judges or FakeJudges()
    targets = targets or [TaskTarget("relu", write_task(tmp_path))]
    proposers = script if isinstance(script, list) and script and hasattr(script[0], "propose") else [Scripted(script)]
    out = optimize_tasks(
        targets, tmp_path / "run", proposers, device=device, judge_cfg=JudgeConfig(device="cpu"), timer_cfg=None,
        loop_cfg=LoopConfig(**cfg), console=console or Console(file=io.StringIO()), judges=judges.judges(device),
    )
    return out, judges


def fc(label, wrong=False, **meta):
    return cand(fake_source(label, wrong), label, **meta)


def ledger_rows(run_dir: Path) -> list[dict]:
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute("SELECT * FROM experiments ORDER BY id")]
    db.close()
    return rows


def assert_mirror(run_dir: Path) -> list[dict]:
    """ledger rows == results.tsv rows, ids unique and increasing; returns the ledger rows."""
    rows = ledger_rows(run_dir)
    tsv = read_tsv(run_dir / "results.tsv")
    assert [int(r["id"]) for r in tsv] == [r["id"] for r in rows]
    assert [t["source_hash"] for t in tsv] == [r["source_hash"] or "" for r in rows]
    assert [t["verdict"] for t in tsv] == [r["verdict"] for r in rows]
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids) and ids == sorted(ids)
    return rows


# ---- ledger -------------------------------------------------------------------------------------
def test_ledger_mirrors_rows_and_repairs_a_torn_tsv(tmp_path):
    led = Ledger.open(tmp_path)
    for i in range(3):
        led.record({"task": "t", "verdict": "rejected", "error": f"bad\tthing\nline {i} [x]", "median_ms": 0.5 + i})
    assert_mirror(tmp_path)
    assert read_tsv(tmp_path / "results.tsv")[1]["error"] == "bad thing line 1 [x]"
    led.close()
    # A crash between the SQLite commit and the TSV append, or in the middle of the append.
    text = (tmp_path / "results.tsv").read_text()
    (tmp_path / "results.tsv").write_text(text[: text.rindex("\n", 0, -1) + 1] + "4\tt\tpartial")
    led = Ledger.open(tmp_path)
    assert (tmp_path / "results.tsv").read_text() == text
    row = led.record({"task": "t", "verdict": "accepted", "decision": "kept"})
    assert row["id"] == 4 and row["decision"] == "kept"
    assert len(assert_mirror(tmp_path)) == 4
    assert list(read_tsv(tmp_path / "results.tsv")[0]) == list(NAMES)
    with pytest.raises(KeyError):
        led.record({"task": "t", "no_such_column": 1})
    assert led.count() == 4  # a failed write adds nothing
    led.close()
    mode = sqlite3.connect(tmp_path / "ledger.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


# ---- rules --------------------------------------------------------------------------------------
def _state(**kw):
    base = dict(device="cuda", experiments=5, kept=1, since_improvement=2, spent_s=10.0, budget_s=100.0,
                max_experiments=None, best_speedup=1.2, best_ceiling=0.5)
    base.update(kw)
    return rules.TaskState(**base)


@pytest.mark.parametrize(
    "rule, state, cfg",
    [
        ("budget", _state(spent_s=100.0), {}),
        ("max-experiments", _state(max_experiments=5), {}),
        ("plateau", _state(since_improvement=4), {"max_consecutive_failures": 4}),
        ("roofline", _state(best_ceiling=0.93), {}),
        ("target", _state(best_speedup=2.0), {"target_speedup": 1.5}),
        ("cpu-correct", _state(device="cpu", best_speedup=None, best_ceiling=None), {}),
    ],
)
def test_each_rule_fires_only_when_in_force(rule, state, cfg):
    on = LoopConfig(**cfg)
    assert rules.move_on_reason(state, on).startswith(rule)
    off = LoopConfig(**cfg, move_on=tuple(r for r in ALL_RULES if r != rule))
    assert rules.move_on_reason(state, off) is None
    assert rules.move_on_reason(_state(), on) is None  # the baseline state fires nothing


def test_unknown_rule_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="move-on"):
        run(tmp_path, [fc("a")], move_on=("budget", "vibes"))


def test_share_splits_by_weight_and_hands_on_what_is_left():
    assert rules.share(400, 0, 3, 4) == pytest.approx(300)
    assert rules.share(400, 100, 1, 1) == pytest.approx(300)  # the last task gets all that is left
    assert rules.share(400, 500, 1, 1) == 0.0


# ---- keep / revert and the tree -----------------------------------------------------------------
def test_keep_revert_keeps_nothing_on_noise(tmp_path):
    j = FakeJudges(speed={"a": 1.2, "b": 1.22, "c": 1.5, "d": 1.0, "e": 30.0, "f": 9.0}, flagged={"e"},
                   invalid={"f"}, noise=0.05)
    script = [fc("a"), fc("b"), fc("c"), fc("d"), fc("e"), fc("f")]
    out, j = run(tmp_path, script, judges=j, candidates_per_round=1, compile_workers=1)
    rows = assert_mirror(tmp_path / "run")
    assert [(r["label"], r["decision"]) for r in rows] == [
        ("a", "kept"), ("b", "reverted"), ("c", "kept"), ("d", "reverted"), ("e", "flagged"), ("f", "invalid")]
    # Every candidate timed while an incumbent stands runs beside it: b is faster than a by 1.7%
    # < noise: reverted; d is slower than c: reverted. e (flagged for review) and f (timing
    # rejected) are never kept, however fast they look.
    assert j.compared == [("a", "b"), ("a", "c"), ("c", "d")]
    assert "too fast" in rows[4]["error"] and "invalid [fake]" in rows[5]["error"]
    assert rows[1]["keep_gain"] == pytest.approx(1.22 / 1.2 - 1) and rows[1]["keep_noise"] == 0.05
    o = out["relu"]
    assert o.best_speedup == pytest.approx(1.5) and o.accepted == 6
    assert o.best_path.read_text() == fake_source("c")
    assert rows[2]["pct_ceiling"] == pytest.approx(0.10) and rows[2]["median_ms"] == pytest.approx(1 / 1.5)
    assert json.loads(rows[2]["timing_json"])["speedup"]["eager"] == pytest.approx(1.5)
    # Each candidate is timed by the task's timer (eager once per task); the best answer once
    # beside every baseline.
    full = TimerConfig().baselines
    assert j.timed == [(x, ("eager",)) for x in "abcdef"] + [("c", full)]
    assert o.speedups == {"eager": pytest.approx(1.5), "compile": pytest.approx(0.75)}
    assert json.loads((tmp_path / "run" / "kernels" / "relu.timing.json").read_text())["speedup"]["eager"] == 1.5
    again, j2 = run(tmp_path, script, judges=FakeJudges(speed=j.speed), candidates_per_round=1)
    assert j2.timed == [] and again["relu"].speedups == o.speedups  # a resume does not time it again


def test_proposer_sees_parent_siblings_and_rejections(tmp_path):
    j = FakeJudges(speed={"a": 1.1, "b": 1.3})
    p = Scripted([fc("a"), fc("bad", wrong=True), fc("b"), fc("c")], by_history=True)
    run(tmp_path, [p], judges=j, candidates_per_round=1, compile_workers=1, beam_width=1, diversity_slots=0)
    rows = ledger_rows(tmp_path / "run")
    ctxs = p.contexts
    assert ctxs[0].parent is None and ctxs[0].history_size == 0
    # After a was kept, the beam (width 1) expands a: the next candidates are its children.
    assert ctxs[1].parent.label == "a" and ctxs[1].parent.speedup == pytest.approx(1.1)
    assert "1.10x vs eager" in ctxs[1].diagnosis
    assert rows[1]["parent"] == rows[0]["id"]
    assert [(a.label, a.stage, a.message) for a in ctxs[2].rejected] == [("bad", "smoke", "wrong result [fake]")]
    # b (1.3x) beat a: the beam moves to b.
    assert ctxs[3].parent.label == "b" and rows[3]["parent"] == rows[2]["id"]


def test_choose_parents_by_speed_then_diversity():
    def node(i, fam, s):
        return {"id": i, "verdict": "accepted", "decision": "reverted", "speedup_eager": s, "median_ms": 1 / s,
                "proposer": "search", "label": f"{fam}/cfg{i}", "meta_json": None}

    rows = [node(1, "looped", 1.5), node(2, "looped", 1.4), node(3, "looped", 1.3), node(4, "onepass", 1.1),
            {"id": 5, "verdict": "rejected", "decision": "", "proposer": "search", "label": "x", "meta_json": None}]
    cfg = LoopConfig(beam_width=3, diversity_slots=1)
    assert choose_parents(rows, "cuda", cfg, set()) == [1, 2, 4]  # the 3rd slot goes to another family
    assert choose_parents(rows, "cuda", LoopConfig(beam_width=3, diversity_slots=0), set()) == [1, 2, 3]
    assert choose_parents(rows, "cuda", cfg, {1}) == [2, 3, 4]
    assert choose_parents(rows, "cuda", LoopConfig(beam_width=6), set()) == [1, 2, 3, 4, ROOT]
    assert choose_parents([], "cuda", cfg, set()) == [ROOT]
    assert choose_parents([], "cuda", cfg, {ROOT}) == []


# ---- move-on rules change what the loop does ----------------------------------------------------
def _without(rule):
    return tuple(r for r in ALL_RULES if r != rule)


def test_plateau_rule(tmp_path):
    script = [fc(f"w{i}", wrong=True) for i in range(8)]
    on, _ = run(tmp_path / "on", script, max_consecutive_failures=3, max_experiments=6)
    off, _ = run(tmp_path / "off", script, max_consecutive_failures=3, max_experiments=6, move_on=_without("plateau"))
    assert (on["relu"].experiments, on["relu"].stop_reason.split(":")[0]) == (3, "plateau")
    assert (off["relu"].experiments, off["relu"].stop_reason.split(":")[0]) == (6, "max-experiments")


def test_roofline_and_target_rules(tmp_path):
    script = [fc("a"), fc("b"), fc("c")]
    j = dict(speed={"a": 1.6, "b": 1.8, "c": 2.0}, ceiling={"a": 95.0})
    kw = dict(candidates_per_round=1, compile_workers=1)
    on, _ = run(tmp_path / "r1", script, judges=FakeJudges(**j), **kw)
    assert (on["relu"].experiments, on["relu"].stop_reason.split(":")[0]) == (1, "roofline")
    off, _ = run(tmp_path / "r2", script, judges=FakeJudges(**j), move_on=_without("roofline"), **kw)
    assert off["relu"].experiments == 3 and off["relu"].best_speedup == pytest.approx(2.0)
    on, _ = run(tmp_path / "t1", script, judges=FakeJudges(speed=j["speed"]), target_speedup=1.7, **kw)
    assert (on["relu"].experiments, on["relu"].stop_reason.split(":")[0]) == (2, "target")
    off, _ = run(tmp_path / "t2", script, judges=FakeJudges(speed=j["speed"]), target_speedup=1.7,
                 move_on=_without("target"), **kw)
    assert off["relu"].experiments == 3


def test_budget_and_max_experiments_rules(tmp_path):
    script = [fc("w1", wrong=True), fc("w2", wrong=True), fc("w3", wrong=True)]
    on, _ = run(tmp_path / "b1", script, budget_s=0.0)
    assert (on["relu"].experiments, on["relu"].stop_reason.split(":")[0]) == (0, "budget")
    off, _ = run(tmp_path / "b2", script, budget_s=0.0, max_experiments=2, move_on=_without("budget"))
    assert off["relu"].experiments == 2
    off, _ = run(tmp_path / "m2", script, max_experiments=2, move_on=_without("max-experiments"))
    assert off["relu"].stop_reason.startswith("exhausted") and off["relu"].experiments == 3


def test_cpu_keeps_the_first_accepted_answer_and_says_nothing_was_timed(tmp_path):
    script = [fc("w", wrong=True), fc("a"), fc("b")]
    buf = io.StringIO()
    on, _ = run(tmp_path / "on", script, device="cpu", candidates_per_round=1, console=Console(file=buf, width=200))
    assert (on["relu"].experiments, on["relu"].stop_reason.split(":")[0]) == (2, "cpu-correct")
    assert on["relu"].best_speedup is None and on["relu"].best_path.read_text() == fake_source("a")
    assert "Nothing is timed" in buf.getvalue() and "Nothing was timed" in buf.getvalue()
    off, _ = run(tmp_path / "off", script, device="cpu", candidates_per_round=1, move_on=_without("cpu-correct"))
    rows = ledger_rows(tmp_path / "off" / "run")
    assert [r["decision"] for r in rows[:3]] == ["", "kept", "untimed"]
    assert off["relu"].best_path.read_text() == fake_source("a")  # the first accepted stays


def test_budget_split_by_weight(tmp_path):
    a, b = write_task(tmp_path, "a"), write_task(tmp_path, "b")
    script = [fc(f"w{i}", wrong=True) for i in range(12)]
    targets = [TaskTarget("a", a, weight=3.0), TaskTarget("b", b, weight=1.0)]
    out, _ = run(tmp_path, script, targets=targets, max_experiments=8, budget_s=400.0, move_on=_without("plateau"))
    assert (out["a"].experiments, out["b"].experiments) == (6, 2)
    state = json.loads((tmp_path / "run" / "run.json").read_text())
    assert state["tasks"]["a"]["budget_s"] == pytest.approx(300.0)
    assert state["tasks"]["a"]["max_experiments"] == 6
    # b gets everything a left: the 100 s of its own share plus what a did not spend.
    assert 300.0 < state["tasks"]["b"]["budget_s"] <= 400.0
    out, _ = run(tmp_path / "swap", script, targets=targets[::-1], max_experiments=8, move_on=_without("plateau"))
    assert (out["b"].experiments, out["a"].experiments) == (2, 6)


# ---- proposer failures, resume, Ctrl-C ----------------------------------------------------------
class _Odd:
    """Proposes nonsense in every way a proposer can, once each, then a correct answer."""

    name = "odd"

    def __init__(self):
        self.n = 0
        self.preflights = 0

    def preflight(self):
        self.preflights += 1

    def propose(self, ctx, n):
        self.n += 1
        return {1: lambda: None, 2: lambda: "not a list", 3: lambda: [42], 4: lambda: [cand(b"bytes", "bytes")],
                5: lambda: [cand("print('hi')", "no-modelnew")], 6: lambda: 1 / 0,
                7: lambda: [fc("good")]}.get(self.n, lambda: [])()


def test_proposer_failures_cost_one_row_each(tmp_path):
    p = _Odd()
    out, j = run(tmp_path, [p], device="cpu", candidates_per_round=1, repeat_limit=10)
    rows = assert_mirror(tmp_path / "run")
    assert p.preflights == 1
    assert [r["verdict"] for r in rows] == ["error"] * 6 + ["accepted"]
    errors = [r["error"] for r in rows[:6]]
    for want, got in zip(["NoneType", "str", "int, not a Candidate", "bytes", "no ModelNew", "ZeroDivisionError"], errors):
        assert want in got
    assert all(r["stage"] == "propose" for r in rows[:6])
    assert j.checked == ["good"]  # nothing that failed before the judge reached it
    assert out["relu"].best_path is not None
    # With the default repeat_limit (3), a proposer failing 3 times in a row for the root is not
    # asked again: the task moves on instead of burning rows until the plateau rule.
    out, _ = run(tmp_path / "limit", [_Odd()], device="cpu", candidates_per_round=1)
    assert out["relu"].experiments == 3 and out["relu"].stop_reason.startswith("exhausted")


def test_tokens_and_cost_land_in_the_ledger(tmp_path):
    run(tmp_path, [fc("a", tokens=1234, cost=0.05, family="looped")], device="cpu")
    row = ledger_rows(tmp_path / "run")[0]
    assert (row["tokens"], row["cost"]) == (1234, 0.05)
    assert json.loads(row["meta_json"])["family"] == "looped"


def test_resume_of_a_finished_run_adds_nothing_and_other_tasks_are_refused(tmp_path):
    script = [fc("w1", wrong=True), fc("a"), fc("b"), fc("c")]
    first, _ = run(tmp_path, script, candidates_per_round=1, max_experiments=3)
    again, j = run(tmp_path, script, candidates_per_round=1, max_experiments=3)
    assert again == first and j.checked == []
    assert len(assert_mirror(tmp_path / "run")) == 3
    more, _ = run(tmp_path, script, candidates_per_round=1, max_experiments=4)  # a resume may raise the cap
    assert more["relu"].experiments == 4
    other = write_task(tmp_path, "other")
    other.write_text(other.read_text() + "\n# changed\n")
    with pytest.raises(UsageError, match="other tasks"):
        run(tmp_path, script, targets=[TaskTarget("relu", other)])


class _Interrupting(Scripted):
    """A Scripted proposer whose k-th call raises KeyboardInterrupt (a user's Ctrl-C)."""

    def __init__(self, script, at):
        super().__init__(script)
        self.at = at

    def propose(self, ctx, n):
        if self.calls + 1 == self.at:
            self.calls += 1
            raise KeyboardInterrupt
        return super().propose(ctx, n)


def test_ctrl_c_stops_cleanly_and_the_run_resumes(tmp_path):
    script = [fc("w1", wrong=True), fc("w2", wrong=True), fc("w3", wrong=True), fc("a")]
    buf = io.StringIO()
    with pytest.raises(LoopInterrupted) as exc:
        # one candidate at a time (no overlap between rounds): where Ctrl-C lands is then exact
        run(tmp_path, [_Interrupting(script, at=3)], device="cpu", candidates_per_round=1, compile_workers=1,
            console=Console(file=buf, width=300))
    assert "To resume, run the same command again with --out" in buf.getvalue()
    assert exc.value.outcomes["relu"].stop_reason == "interrupted"
    state = json.loads((tmp_path / "run" / "run.json").read_text())
    assert state["state"] == "interrupted" and len(assert_mirror(tmp_path / "run")) == 2
    out, j = run(tmp_path, script, device="cpu", candidates_per_round=1)
    rows = assert_mirror(tmp_path / "run")
    assert [r["label"] for r in rows] == ["w1", "w2", "w3", "a"] and j.checked == ["w3", "a"]
    assert out["relu"].best_path.read_text() == fake_source("a")
    assert json.loads((tmp_path / "run" / "run.json").read_text())["state"] == "finished"


def test_a_resumed_proposer_that_repeats_itself_is_not_judged_twice(tmp_path):
    script = [fc("w1", wrong=True), fc("w2", wrong=True), fc("a")]
    run(tmp_path, script, device="cpu", candidates_per_round=1, max_experiments=2)
    # A proposer with no memory of the first session starts its script from the top.
    out, j = run(tmp_path, [Scripted(script, by_history=False)], device="cpu", candidates_per_round=1)
    assert j.checked == ["a"] and out["relu"].experiments == 3


# ---- what the user sees -------------------------------------------------------------------------
def test_live_view_plain_lines_off_a_terminal_and_a_panel_on_one(tmp_path):
    buf = io.StringIO()
    run(tmp_path / "plain", [fc("w", wrong=True), fc("a")], device="cpu", candidates_per_round=1,
        console=Console(file=buf, width=80))
    lines = buf.getvalue().splitlines()
    exp = [ln for ln in lines if ln.startswith("exp ")]
    assert len(exp) == 2 and "verdict=rejected at smoke (wrong result [fake])" in exp[0]
    assert "verdict=accepted/kept" in exp[1] and "exp/h=" in exp[1]
    assert any("optimization summary" in ln for ln in lines)
    tty = io.StringIO()
    run(tmp_path / "tty", [fc("a")], console=Console(file=tty, force_terminal=True, width=100),
        judges=FakeJudges(speed={"a": 1.4}))
    assert "1.40x" in tty.getvalue() and "optimization summary" in tty.getvalue()


def test_gpu_gate_times_alone():
    import threading
    import time as _time

    from kernelwright.judge.gate import GpuGate

    gpu = GpuGate(enabled=True)
    log: list[str] = []
    release = threading.Event()

    def check(name):
        with gpu.shared():
            log.append(f"{name}+")
            release.wait(5)
            log.append(f"{name}-")

    first = threading.Thread(target=check, args=("c1",))
    first.start()
    while "c1+" not in log:
        _time.sleep(0.01)

    def timer():
        with gpu.alone():
            log.append("T+")
            _time.sleep(0.05)
            log.append("T-")

    t = threading.Thread(target=timer)
    t.start()
    _time.sleep(0.05)
    second = threading.Thread(target=check, args=("c2",))  # asks while the timer waits: must wait too
    second.start()
    _time.sleep(0.05)
    assert log == ["c1+"]  # the timer waits for the request in flight; a new one waits for the timer
    release.set()
    for th in (first, t, second):
        th.join(5)
    assert log == ["c1+", "c1-", "T+", "T-", "c2+", "c2-"]
    off = GpuGate(enabled=False)
    with off.shared(), off.alone():  # overlap allowed: no waiting at all
        pass


def test_next_round_is_proposed_while_the_last_one_runs(tmp_path):
    """No round barrier: with a window of 4, the next round of 2 is proposed while the first
    round's candidates are still being judged; nothing is judged twice, every candidate gets its row."""
    import time as _time

    class SlowJudges(FakeJudges):
        def check(self, task_path, answer_path, cfg, gate=None):
            # c1 outlasts c0 by far: c0's row is in, c1 still runs when the next round is asked for
            _time.sleep(1.5 if self._label(answer_path) == "c1" else 0.1)
            return super().check(task_path, answer_path, cfg, gate)

    j = SlowJudges(speed={f"c{i}": 1.0 + i / 10 for i in range(6)})
    p = Scripted([[fc("c0"), fc("c1")], [fc("c2"), fc("c3")], [fc("c4"), fc("c5")]], by_history=False)
    out, _ = run(tmp_path, [p], judges=j, candidates_per_round=2, compile_workers=4, beam_width=1,
                 diversity_slots=0)
    rows = assert_mirror(tmp_path / "run")
    assert sorted(r["label"] for r in rows) == [f"c{i}" for i in range(6)]
    assert sorted(j.checked) == [f"c{i}" for i in range(6)]  # each once
    assert out["relu"].experiments == 6 and [r["id"] for r in rows] == list(range(1, 7))
    # The second round was asked for after c0's row, while c1 was still being checked.
    assert p.contexts[1].history_size == 1


def test_checks_out_of_gpu_memory_side_by_side_are_judged_again_fewer_at_once(tmp_path):
    """A check that ran out of GPU memory beside others is not the candidate's fault: no row for
    it, the task's window halves, and the candidate is judged again; every candidate gets one row."""

    class Crowded(FakeJudges):
        def check(self, task_path, answer_path, cfg, gate=None):
            label = self._label(answer_path)
            if label == "c1" and self.checked.count("c1") == 0:
                self.checked.append(label)
                raise RuntimeError("CUDA out of memory. Tried to allocate 1.12 GiB [fake]")
            return super().check(task_path, answer_path, cfg, gate)

    j = Crowded(speed={f"c{i}": 1.0 + i / 10 for i in range(4)})
    p = Scripted([[fc("c0"), fc("c1"), fc("c2"), fc("c3")]], by_history=False)
    out, _ = run(tmp_path, [p], judges=j, candidates_per_round=4, compile_workers=4)
    rows = assert_mirror(tmp_path / "run")
    assert sorted(r["label"] for r in rows) == ["c0", "c1", "c2", "c3"]
    assert all(r["verdict"] == "accepted" for r in rows), [(r["label"], r["error"]) for r in rows]
    assert j.checked.count("c1") == 2 and out["relu"].experiments == 4


# ---- abandoning candidates in flight: budget spent, Ctrl-C --------------------------------------
@dataclass
class _Hanging(FakeJudges):
    """Fake judges whose candidates labelled hang-check* hang in their check and hang-time* in their
    timing, each waiting on a child process of its thread, as the real judges wait on their worker
    processes: only killing that process ends them (20 s otherwise); then comes the judge's next
    GPU request, through the gate."""

    procs: list = field(default_factory=list)  # the child processes the hanging judges waited on

    def _hang(self, gate):
        import subprocess
        import sys

        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(20)"], start_new_session=True)
        self.procs.append(p)
        p.wait()
        with gate.shared():
            pass

    def check(self, task_path, answer_path, cfg, gate=None):
        if self._label(answer_path).startswith("hang-check"):
            self._hang(gate)
        return super().check(task_path, answer_path, cfg, gate)

    def timer(self, task_path, cfg, gate):
        inner, fake = super().timer(task_path, cfg, gate), self

        class _Timer:
            def candidate(self, path, incumbent=None):
                if fake._label(path).startswith("hang-time"):
                    fake._hang(gate)
                return inner.candidate(path, incumbent)

        return _Timer()


def _check_threads_end(within_s: float = 3.0) -> list[str]:
    """Names of the loop's pool threads still alive after within_s (they exit once idle)."""
    import threading
    import time as _time

    end = _time.monotonic() + within_s
    while True:
        busy = [t.name for t in threading.enumerate() if t.name.startswith("kw-check")]
        if not busy or _time.monotonic() > end:
            return busy
        _time.sleep(0.05)


def _reap(procs) -> list:
    """Return codes of the hanging judges' processes (None: still running; killed then, by the test)."""
    codes = [p.poll() for p in procs]
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    return codes


def test_budget_spent_abandons_candidates_in_flight_and_kills_their_workers(tmp_path):
    """The budget is a deadline: with one candidate hanging in its check and one in its timing when
    it runs out, the loop returns within seconds of it, not when they finish. They get no row,
    their processes are killed, the loop's threads end (nothing keeps the process alive), and a
    resume judges them afresh: nothing judged twice, ids unique, results.tsv agrees."""
    import time as _time

    j = _Hanging(speed={"a": 1.2, "hang-check": 2.0, "hang-time": 3.0})
    script = [[fc("a"), fc("hang-check"), fc("hang-time")]]
    t0 = _time.monotonic()
    try:
        out, _ = run(tmp_path, [Scripted(script, by_history=False)], judges=j, candidates_per_round=3,
                     compile_workers=3, budget_s=1.5, move_on=("budget",))
        took = _time.monotonic() - t0
        busy = _check_threads_end()
    finally:
        codes = _reap(j.procs)
    assert took < 1.5 + 6, f"the loop returned {took:.1f} s after starting on a 1.5 s budget"
    assert len(codes) == 2 and codes == [-9, -9], codes  # both killed (SIGKILL), not left to run
    assert busy == []
    o = out["relu"]
    assert o.stop_reason.startswith("budget") and o.abandoned == 2
    rows = assert_mirror(tmp_path / "run")
    assert [(r["label"], r["decision"]) for r in rows] == [("a", "kept")]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["tasks"]["relu"]["abandoned"] == 2
    # The resume judges the abandoned candidates (they have no rows) and not a again.
    again, j2 = run(tmp_path, [Scripted(script, by_history=False)], judges=FakeJudges(speed=j.speed),
                    candidates_per_round=3, compile_workers=3, move_on=("budget",), beam_width=1, diversity_slots=0)
    rows = assert_mirror(tmp_path / "run")
    assert sorted(j2.checked) == ["hang-check", "hang-time"]
    assert [r["label"] for r in rows][0] == "a" and sorted(r["label"] for r in rows) == ["a", "hang-check", "hang-time"]
    assert [r["id"] for r in rows] == [1, 2, 3] and again["relu"].best_speedup == pytest.approx(3.0)


def test_ctrl_c_kills_the_candidates_in_flight(tmp_path):
    """Ctrl-C with a candidate hanging in its check: LoopInterrupted comes at once and that
    candidate's process is killed and its thread ends (before, the interpreter's exit waited for it)."""
    import time as _time

    j = _Hanging(speed={"a": 1.2})
    t0 = _time.monotonic()
    try:
        with pytest.raises(LoopInterrupted) as exc:
            run(tmp_path, [_Interrupting([[fc("a"), fc("hang-check")]], at=2)], judges=j, candidates_per_round=2,
                compile_workers=2)
        took = _time.monotonic() - t0
        busy = _check_threads_end()
    finally:
        codes = _reap(j.procs)
    assert took < 6 and codes == [-9] and busy == [], (took, codes, busy)
    assert exc.value.outcomes["relu"].abandoned == 1
    assert [r["label"] for r in assert_mirror(tmp_path / "run")] == ["a"]


def test_gpu_gate_refuses_abandoned_work():
    import threading

    from kernelwright.judge.gate import Abandoned, GpuGate, Ticket

    for enabled in (True, False):
        gpu = GpuGate(enabled=enabled)
        mine, other = Ticket("mine"), Ticket("other")
        got: list[str] = []

        def work(ticket):
            try:
                with gpu.working_for(ticket):
                    with gpu.shared():  # waits while the timer below holds the GPU alone (enabled)
                        got.append(f"{ticket.label} ran")
            except Abandoned:
                got.append(f"{ticket.label} abandoned")

        with gpu.alone():
            threads = [threading.Thread(target=work, args=(t,)) for t in (mine, other)]
            for th in threads:
                th.start()
            if enabled:
                threading.Event().wait(0.1)
                assert got == []  # both wait for the GPU
            else:
                for th in threads:
                    th.join(5)
            gpu.abandon([mine])  # no effect on work already done (disabled gate)
        for th in threads:
            th.join(5)
        if enabled:
            assert sorted(got) == ["mine abandoned", "other ran"]
        with pytest.raises(Abandoned):  # abandoned before it starts: refused at once
            with gpu.working_for(mine):
                pass
        with gpu.working_for(other), gpu.shared():  # other work goes on
            pass
        with gpu.alone():  # the gate is free again: nothing was left holding it or waiting
            pass


def test_every_check_that_ran_beside_others_and_ran_out_of_memory_is_judged_again(tmp_path):
    """The H100 MiniGPT run: with 2+ checks in flight, the first out-of-memory halved the window to
    1 and the others, already running beside it, failed for memory too and were recorded as errors.
    Each is judged again, alone; a second out-of-memory alone is the candidate's row."""

    class Crowded(FakeJudges):
        def check(self, task_path, answer_path, cfg, gate=None):
            label = self._label(answer_path)
            if label in ("c0", "c1", "c2") and self.checked.count(label) == 0:
                self.checked.append(label)
                time.sleep(0.2)  # all three in flight together
                raise RuntimeError("CUDA out of memory. Tried to allocate 1.12 GiB [fake]")
            if label == "c3":
                self.checked.append(label)
                raise RuntimeError("CUDA out of memory. Tried to allocate 9 GiB [fake, alone too]")
            return super().check(task_path, answer_path, cfg, gate)

    j = Crowded(speed={f"c{i}": 1.0 + i / 10 for i in range(4)})
    p = Scripted([[fc("c0"), fc("c1"), fc("c2")], [fc("c3")]], by_history=False)
    out, _ = run(tmp_path, [p], judges=j, candidates_per_round=3, compile_workers=3)
    rows = {r["label"]: r for r in assert_mirror(tmp_path / "run")}
    assert all(rows[c]["verdict"] == "accepted" for c in ("c0", "c1", "c2")), rows
    assert [j.checked.count(c) for c in ("c0", "c1", "c2")] == [2, 2, 2]
    assert rows["c3"]["verdict"] == "error" and "out of memory" in rows["c3"]["error"]
    assert j.checked.count("c3") == 1  # alone: judged once, not retried forever
