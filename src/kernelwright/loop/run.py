"""The optimization loop: for each task in turn, propose -> check -> time -> keep/revert, one
ledger row per experiment, until a move-on rule fires.

Run directory (the fixed contract in architecture.md):
    DIR/run.json          what was asked (targets, configs) and where it stands; resume reads it
    DIR/ledger.sqlite     every experiment (loop/ledger.py); results.tsv mirrors it row for row
    DIR/sources/<h>.py    every candidate's source, by hash
    DIR/kernels/<name>.py the best accepted answer of each task (the incumbent)
Resume: the same call on the same DIR goes on from the ledger. Every decision input (the tree,
the incumbent, the time spent, the counts the rules look at) is read back from ledger rows, so a
run killed at any instant loses at most the experiments in flight and repeats nothing.

Throughput: candidates are checked and then timed side by side, each in its own worker processes
(threads over judge.check and the task's judge.timer.TaskTimer), in a window of check_workers; the
next round is proposed once half the window is free, not after the slowest candidate of a round. The GPU is shared
through a judge.gate.GpuGate: checks' requests share it, a timed batch has it alone, so compiles,
checks and timings overlap everywhere except inside the timed calls. Decisions (keep/revert, the
ledger row) are made here, in the loop's thread, as each candidate's results arrive.

The budget is a deadline once the task has an accepted answer: the loop then waits for results no
longer than the task's budget lasts. When it is spent, candidates still in flight are abandoned, as
on Ctrl-C: they get no row (a resume judges them afresh), the gate stops their threads at their
next GPU request (judge.gate.Ticket) and the worker processes their threads started are killed, so
the task (and the process) ends within seconds of its budget. Before its first accepted answer a
task waits for the candidates in flight (at most one round, each bounded by the judge's timeout):
a model's short shares (13-50 s on an H100) were shorter than one full-size check, and every task
ended with nothing. Other move-on rules let the candidates in flight finish (within the
budget) and record them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from ..config import JudgeConfig, LoopConfig, TimerConfig
from ..errors import KernelwrightError, TaskError, UsageError
from ..judge.gate import GpuGate, Ticket
from ..propose.base import Candidate, Proposer
from . import search
from .ledger import Ledger, _atomic_write, dumps
from .live import LiveView
from .rules import EXHAUSTED, TaskState, active_rules, move_on_reason, share

CPU_NOTE = (
    "cpu: correctness only (Triton interpreter). Nothing is timed; the first accepted answer of "
    "each task is kept."
)
_MODELNEW = re.compile(r"\bclass\s+ModelNew\b|^\s*ModelNew\s*=", re.MULTILINE)


@dataclass
class TaskTarget:
    name: str
    path: Path  # a KernelBench-format task file
    weight: float = 1.0  # expected whole-model gain share (Amdahl); the budget is split by it


@dataclass
class TaskOutcome:
    name: str
    best_path: Path | None  # run_dir/kernels/<name>.py, or None when nothing was accepted
    best_speedup: float | None  # incumbent's speedup vs eager; None on cpu (nothing timed)
    experiments: int
    accepted: int
    stop_reason: str
    # The best answer timed once against every TimerConfig baseline when the task moved on
    # ({"eager": 1.4, "compile": 1.1, ...}); empty on cpu or when that timing failed.
    speedups: dict[str, float] = field(default_factory=dict)
    # Candidates in flight abandoned in this session (budget spent, Ctrl-C): judged by no row.
    abandoned: int = 0


class LoopInterrupted(KeyboardInterrupt):
    """Ctrl-C: the ledger is consistent and the run resumes with the same call; carries outcomes."""

    def __init__(self, outcomes: dict[str, TaskOutcome], run_dir: Path) -> None:
        super().__init__(f"interrupted; resume with the same command and --out {run_dir}")
        self.outcomes = outcomes
        self.run_dir = run_dir


@dataclass
class Judges:
    """The judge calls the loop makes. Tests may pass their own; the run imports the real ones."""

    check: Callable[..., Any]  # (task, answer, JudgeConfig, gate=GpuGate) -> judge.verdict.Verdict
    # (task, answer, TimerConfig) -> judge.timer.TimingReport: the best answer beside every baseline
    time: Callable[[Path, Path, TimerConfig], Any] | None = None
    # (task, TimerConfig, GpuGate) -> an object like judge.timer.TaskTimer, whose
    # .candidate(answer, incumbent_or_None) -> judge.timer.CandidateTiming
    timer: Callable[[Path, TimerConfig, GpuGate], Any] | None = None


def default_judges(device: str) -> Judges:
    from ..judge import check

    if device != "cuda":
        return Judges(check=check)
    from ..judge.timer import TaskTimer, time_answer  # imported only where there is a GPU to time on

    return Judges(check=check, time=time_answer, timer=lambda task, cfg, gate: TaskTimer(task, cfg, gate=gate))


def check_workers(device: str, cfg: LoopConfig) -> int:
    """How many candidates are checked side by side (LoopConfig.compile_workers, or its default)."""
    if cfg.compile_workers:
        return max(1, int(cfg.compile_workers))
    if device != "cuda":
        return 2
    return max(2, min(8, (os.cpu_count() or 4) // 2))


def candidates_per_round(device: str, cfg: LoopConfig) -> int:
    if cfg.candidates_per_round:
        return max(1, int(cfg.candidates_per_round))
    return 8 if device == "cuda" else 4


@dataclass
class Proposal:
    """One candidate to judge, or one proposer failure (candidate None) that costs a row."""

    parent: int  # node key; search.ROOT for the root
    proposer: str
    candidate: Candidate | None
    source_hash: str | None = None
    error: str = ""
    propose_s: float = 0.0


def optimize_tasks(
    targets: list[TaskTarget],
    run_dir: Path,
    proposers: list[Proposer],
    *,
    device: str,
    judge_cfg: JudgeConfig,
    timer_cfg: TimerConfig | None,
    loop_cfg: LoopConfig,
    console=None,
    judges: Judges | None = None,
) -> dict[str, TaskOutcome]:
    """Optimize each task in order (hottest first), resuming whatever DIR already holds."""
    _validate(targets, proposers, device, loop_cfg)
    for p in proposers:  # fail fast (missing key, endpoint down) before anything is written
        p.preflight()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "kernels").mkdir(exist_ok=True)
    runfile = RunFile.begin(run_dir, targets, proposers, device, judge_cfg, timer_cfg, loop_cfg)
    run = _Run(
        run_dir=run_dir,
        targets=targets,
        proposers=proposers,
        device=device,
        judge_cfg=judge_cfg,
        timer_cfg=(timer_cfg or TimerConfig()) if device == "cuda" else timer_cfg,
        cfg=loop_cfg,
        judges=judges or default_judges(device),
        view=LiveView(console, device),
        runfile=runfile,
    )
    return run.go()


def _validate(targets: list[TaskTarget], proposers: list[Proposer], device: str, cfg: LoopConfig) -> None:
    if device not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {device!r}", "Use cpu or cuda.")
    if not targets:
        raise UsageError("no tasks to optimize", "Pass at least one task file.")
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise UsageError(f"task names repeat: {names}", "Give each task a distinct name.")
    for t in targets:
        if not Path(t.path).is_file():
            raise TaskError(f"task file not found: {t.path}", "Pass the path of a KernelBench-format .py file.")
        if not t.weight > 0:
            raise UsageError(f"task {t.name} has weight {t.weight}", "Weights must be > 0 (expected gain shares).")
    if not proposers:
        raise UsageError("no proposers", "Use --proposer search, llm, or search,llm.")
    if (cfg.compile_workers is not None and cfg.compile_workers < 1) or cfg.beam_width < 1 or \
            (cfg.candidates_per_round is not None and cfg.candidates_per_round < 1):
        raise UsageError("compile_workers, beam_width and candidates_per_round must be >= 1 (or None: the default)",
                         "Fix the LoopConfig.")
    active_rules(cfg)  # unknown rule names fail here, before anything runs


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class RunFile:
    """DIR/run.json: what was asked (targets, configs) and where each task stands."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    @classmethod
    def begin(cls, run_dir, targets, proposers, device, judge_cfg, timer_cfg, loop_cfg) -> "RunFile":
        path = run_dir / "run.json"
        asked = [{"name": t.name, "path": str(t.path), "weight": t.weight, "sha256": _sha(t.path)} for t in targets]
        config = {
            "device": device,
            "proposers": [p.name for p in proposers],
            "loop": dataclasses.asdict(loop_cfg),
            "judge": dataclasses.asdict(judge_cfg),
            "timer": dataclasses.asdict(timer_cfg) if timer_cfg is not None else None,
        }
        if path.exists():
            data = json.loads(path.read_text())
            before = [(t["name"], t["sha256"]) for t in data.get("targets", [])]
            if before != [(t["name"], t["sha256"]) for t in asked]:
                raise UsageError(
                    f"{run_dir} holds a run of other tasks ({', '.join(n for n, _ in before)}), or their files changed",
                    "Resume with the same target unchanged, or pass a new --out directory.",
                )
            if data.get("device") != device:
                raise UsageError(
                    f"{run_dir} holds a {data.get('device')} run; this one asks for {device}",
                    f"Resume with --device {data.get('device')}, or pass a new --out directory.",
                )
            data["sessions"] = data.get("sessions", 1) + 1
        else:
            data = {"version": 1, "device": device, "created_at": _now(), "sessions": 1, "tasks": {}}
        # The latest call's configuration is what this session runs under (a resume may raise the budget).
        data.update(targets=asked, config=config, state="running", updated_at=_now())
        rf = cls(path, data)
        rf.save()
        return rf

    def task(self, name: str) -> dict[str, Any]:
        return self.data["tasks"].setdefault(name, {})

    def set_task(self, name: str, **fields: Any) -> None:
        self.task(name).update(fields)
        self.save()

    def set_state(self, state: str) -> None:
        self.data["state"] = state
        self.save()

    def save(self) -> None:
        self.data["updated_at"] = _now()
        _atomic_write(self.path, json.dumps(self.data, indent=2, default=str) + "\n")


@dataclass
class _Run:
    run_dir: Path
    targets: list[TaskTarget]
    proposers: list[Proposer]
    device: str
    judge_cfg: JudgeConfig
    timer_cfg: TimerConfig | None
    cfg: LoopConfig
    judges: Judges
    view: LiveView
    runfile: RunFile

    def go(self) -> dict[str, TaskOutcome]:
        self.ledger = Ledger.open(self.run_dir)  # repairs results.tsv if a crash left it behind
        # The ledger records no kernel share: the loop's checks skip its profiler run.
        if dataclasses.is_dataclass(self.judge_cfg):
            self.judge_cfg = dataclasses.replace(self.judge_cfg, kernel_share=False)
        self.workers = check_workers(self.device, self.cfg)
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="kw-check")
        self.gpu = GpuGate(self.device == "cuda" and self.cfg.quiet_timing)
        if self.device == "cpu":
            self.view.note(CPU_NOTE)
        outcomes: dict[str, TaskOutcome] = {}
        current: _TaskRun | None = None
        try:
            for i, target in enumerate(self.targets):
                budget_s, max_exp = self._allowance(i)
                current = _TaskRun(self, target, budget_s, max_exp)
                outcomes[target.name] = current.go()
                current = None
            self.runfile.set_state("finished")
            self.view.summary(outcomes)
            if self.device == "cpu":
                self.view.note("Nothing was timed (cpu): speedups are unknown; time the kept answers on a GPU.")
            return outcomes
        except KeyboardInterrupt:
            self.view.stop()
            if current is not None:
                try:
                    current.abandon_all()  # their threads end and their workers die: the process can exit
                except KeyboardInterrupt:  # a second Ctrl-C: stop waiting for them
                    pass
            self.pool.shutdown(wait=False, cancel_futures=True)
            for t in self.targets:
                if t.name not in outcomes:
                    outcomes[t.name] = (current.outcome("interrupted") if current and current.target is t
                                        else self._untouched(t))
            if current is not None:
                self.runfile.set_task(current.target.name, status="interrupted")
            self.runfile.set_state("interrupted")
            n = self.ledger.count()
            self.view.note(
                f"Interrupted: the experiment(s) in flight were abandoned; {n} experiments are saved in "
                f"{self.run_dir / 'ledger.sqlite'}. To resume, run the same command again with --out {self.run_dir}."
            )
            raise LoopInterrupted(outcomes, self.run_dir) from None
        finally:
            if current is not None:  # an error stopped the task: leave no work running behind it
                current.abandon_all()
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.ledger.close()

    def _allowance(self, i: int) -> tuple[float, int | None]:
        """Task i's share of the run's wall time and experiment cap, split by weight (see rules.share)."""
        before = self.targets[:i]
        w_left = sum(t.weight for t in self.targets[i:])
        w = self.targets[i].weight
        used_s = sum(_elapsed(self.ledger.rows(t.name)) for t in before)
        budget_s = share(self.cfg.budget_s, used_s, w, w_left)
        if self.cfg.max_experiments is None or "max-experiments" not in self.cfg.move_on:
            return budget_s, None
        left = max(0, self.cfg.max_experiments - sum(self.ledger.count(t.name) for t in before))
        if i == len(self.targets) - 1:
            return budget_s, left
        return budget_s, min(left, max(1 if left else 0, round(share(left, 0, w, w_left))))

    def _untouched(self, t: TaskTarget) -> TaskOutcome:
        return _TaskRun(self, t, 0.0, None).outcome("not started")  # what earlier sessions left


def _elapsed(rows: list[dict[str, Any]]) -> float:
    return float(rows[-1]["task_elapsed_s"] or 0.0) if rows else 0.0


def _fraction(pct: float | None) -> float | None:
    """TimingReport.pct_of_ceiling is a percentage (judge/roofline.py: 100 * rate / ceiling); the
    ledger and the rules use a fraction (LoopConfig.roofline_stop = 0.90)."""
    return None if pct is None else float(pct) / 100.0


def _bad_candidate(c: Any) -> str | None:
    if not isinstance(c, Candidate):
        return f"proposer returned a {type(c).__name__}, not a Candidate"
    if not isinstance(c.source, str):
        return f"candidate source is a {type(c.source).__name__}, not the text of an answer file"
    if not _MODELNEW.search(c.source):
        return "candidate source defines no ModelNew (not an answer file)"
    return None


class _TaskRun:
    """One task: rounds of (choose parents -> propose -> check in parallel -> time -> keep/revert)."""

    def __init__(self, run: _Run, target: TaskTarget, budget_s: float, max_exp: int | None) -> None:
        self.run = run
        self.target = target
        self.name = target.name
        self.task_path = Path(target.path)
        self.task_source = self.task_path.read_text()
        self.budget_s = budget_s
        self.max_exp = max_exp
        self.ledger = run.ledger
        self.cfg = run.cfg
        self.device = run.device
        self.rows = self.ledger.rows(self.name)
        self.seen = {r["source_hash"] for r in self.rows if r["source_hash"]}
        kept = [r for r in self.rows if r["decision"] == "kept"]
        self.incumbent: dict[str, Any] | None = kept[-1] if kept else None
        self.best_path = run.run_dir / "kernels" / f"{self.name}.py"
        self.spent_before = _elapsed(self.rows)
        self.t0 = time.monotonic()
        self.round = 0
        self.exhausted: set[int] = set()  # node keys no proposer has anything new for
        self.dead: set[tuple[int, str]] = set()  # (node, proposer) pairs that have nothing new
        self.misses: dict[tuple[int, str], int] = {}  # replies in a row with nothing new to judge
        # Candidates being checked/timed, in submission order: future -> (proposal, submitted at,
        # the ticket its thread works for). The next round is proposed while up to half the window
        # still runs (no round barrier).
        self.inflight: dict[Future, tuple[Proposal, float, _Work]] = {}
        self.stopped = False  # a move-on rule fired: nothing new is started
        self.abandoned = 0  # candidates in flight given up (budget spent, Ctrl-C): no rows
        # Candidates whose check ran out of GPU memory beside others: judged again, fewer at once.
        self.retry: list[Proposal] = []
        self.oom_retried: set[str] = set()  # source hashes judged again after running out of memory
        self._setup: tuple[threading.Thread, _Work] | None = None  # the timer's background preparation
        self._timer: Any = None  # the task's TaskTimer, made by the first candidate to need it
        self._timer_lock = threading.Lock()
        self.parallel = min(run.workers, _fits_in_memory(self.task_path, self.device))

    # ---- state the rules read ------------------------------------------------------------------
    def spent(self) -> float:
        return self.spent_before + (time.monotonic() - self.t0)

    def state(self) -> TaskState:
        kept_at = [i for i, r in enumerate(self.rows) if r["decision"] == "kept"]
        inc = self.incumbent or {}
        return TaskState(
            device=self.device,
            experiments=len(self.rows),
            kept=len(kept_at),
            since_improvement=len(self.rows) - 1 - kept_at[-1] if kept_at else len(self.rows),
            spent_s=self.spent(),
            budget_s=self.budget_s,
            max_experiments=self.max_exp,
            best_speedup=inc.get("speedup_eager"),
            best_ceiling=inc.get("pct_ceiling"),
        )

    def outcome(self, reason: str) -> TaskOutcome:
        inc = self.incumbent
        final = self.run.runfile.task(self.name).get("final") or {}
        fresh = inc is not None and final.get("source_hash") == inc["source_hash"]
        return TaskOutcome(
            name=self.name,
            best_path=self.best_path if inc else None,
            best_speedup=inc.get("speedup_eager") if inc else None,
            experiments=len(self.rows),
            accepted=sum(r["verdict"] == "accepted" for r in self.rows),
            stop_reason=reason,
            speedups=dict(final.get("speedup") or {}) if fresh else {},
            abandoned=self.abandoned,
        )

    # ---- the task's loop -----------------------------------------------------------------------
    def go(self) -> TaskOutcome:
        self._sync_best_file()
        rf = self.run.runfile
        rf.set_task(self.name, status="running", budget_s=self.budget_s, max_experiments=self.max_exp)
        view = self.run.view
        view.start_task(self.name, len(self.rows), self.max_exp, self.budget_s,
                        (self.incumbent or {}).get("speedup_eager"), self.state().kept)
        reason = EXHAUSTED if rf.task(self.name).get("stop_reason") == EXHAUSTED else None
        if reason is None and self.device == "cuda" and self.run.judges.timer is not None:
            # The task's timer (input sets, references, ceilings, the eager row) is made while the
            # first round is checked, not after its first check returns.
            work = _Work("the timer's preparation")
            setup = threading.Thread(target=self._prepare_timer, args=(work,), name="kw-timer-setup", daemon=True)
            self._setup = (setup, work)
            setup.start()
        while reason is None:
            reason = move_on_reason(self.state(), self.cfg)
            if reason is not None:
                break
            parents = search.choose_parents(self.rows, self.device, self.cfg, self.exhausted)
            if not parents:
                if self.retry:
                    self._judge([])
                    continue
                if self.inflight:  # their rows may open new parents
                    self._collect()
                    continue
                reason = EXHAUSTED
                break
            before = self._progress_mark()
            proposals = self._propose(parents)
            self._judge(proposals)
            self.round += 1
            if self._progress_mark() == before and not self.inflight and not self.retry \
                    and move_on_reason(self.state(), self.cfg) is None:  # never spin in place
                reason = f"{EXHAUSTED} (a round changed nothing)"
        while self.inflight:  # candidates still running get their rows (until the budget is spent)
            self._collect()
        self.abandon_all()  # nothing is in flight now; only a timer preparation may still run
        self._final_timing()
        out = self.outcome(reason)
        rf.set_task(self.name, status="done", stop_reason=reason, experiments=out.experiments,
                    accepted=out.accepted, best_speedup=out.best_speedup,
                    best_path=str(out.best_path) if out.best_path else None, spent_s=self.spent(),
                    abandoned=self.abandoned)
        view.end_task(self.name, reason)
        return out

    def _progress_mark(self) -> tuple[int, int, int, int]:
        return len(self.rows), len(self.exhausted), len(self.dead), sum(self.misses.values())

    def _final_timing(self) -> None:
        """Time the best answer once against every baseline of TimerConfig (compile, max-autotune,
        Liger ...): too slow to repeat for every candidate, needed once for the report."""
        if self.device != "cuda" or not self.cfg.final_timing or self.incumbent is None:
            return
        rf = self.run.runfile
        h = self.incumbent["source_hash"]
        if (rf.task(self.name).get("final") or {}).get("source_hash") == h:
            return  # timed in an earlier session
        path = self.ledger.sources / f"{h}.py"
        try:
            with self.run.gpu.alone():  # the task's checks are done: nothing else waits on the GPU
                rep = self.run.judges.time(self.task_path, path, self.run.timer_cfg)
        except KernelwrightError:
            raise
        except Exception as exc:
            rf.set_task(self.name, final={"source_hash": h, "error": f"{type(exc).__name__}: {exc}"})
            return
        full = _asdict(rep)
        _atomic_write(self.best_path.with_suffix(".timing.json"), json.dumps(full, indent=2, default=str) + "\n")
        rf.set_task(self.name, final={
            "source_hash": h, "speedup": dict(rep.speedup or {}), "gbps": rep.gbps, "tflops": rep.tflops,
            "pct_of_ceiling": rep.pct_of_ceiling, "accepted": rep.accepted, "flagged": list(rep.flagged or []),
            "reason": rep.reason,
        })

    def _room(self) -> int | None:
        return None if self.max_exp is None else max(0, self.max_exp - len(self.rows) - len(self.inflight))

    def _propose(self, parents: list[int]) -> list[Proposal]:
        """Ask proposers for candidates for each parent (in turn, rotating); failures become rows."""
        per_parent = math.ceil(candidates_per_round(self.device, self.cfg) / len(parents))
        props = self.run.proposers
        out: list[Proposal] = []
        for i, parent in enumerate(parents):
            got_any = False
            for k in range(len(props)):
                room = self._room()
                if room is not None and room - len(out) <= 0:
                    return out
                p = props[(self.round + i + k) % len(props)]
                if (parent, p.name) in self.dead:
                    continue
                n = per_parent if room is None else min(per_parent, room - len(out))
                new = self._ask(p, parent, n)
                if new:
                    out.extend(new)
                    got_any = True
                    break
            if not got_any and all((parent, p.name) in self.dead for p in props):
                self.exhausted.add(parent)
        return out

    def _ask(self, p: Proposer, parent: int, n: int) -> list[Proposal]:
        """One proposer call. Returns new candidates to judge; each failure is recorded here as a row.

        A reply of [] is the Proposer contract's "nothing more" for this parent (no row). A proposer
        that fails, or offers only garbage or only sources judged before, LoopConfig.repeat_limit
        times in a row for one parent is not asked about that parent again."""
        key = (parent, p.name)
        ctx = search.context(
            task_name=self.name, task_source=self.task_source, task_path=str(self.task_path),
            device=self.device, parent=parent, rows=self.rows, read_source=self.ledger.source,
            cfg=self.cfg, run_dir=str(self.run.run_dir),
        )
        t = time.monotonic()
        try:
            got = p.propose(ctx, n)
        except Exception as exc:  # any proposer failure costs one row; the run goes on
            self._record_failure(Proposal(parent, p.name, None, error=f"proposer raised {type(exc).__name__}: {exc}",
                                          propose_s=time.monotonic() - t))
            self._miss(key)
            return []
        spent = time.monotonic() - t
        if not isinstance(got, (list, tuple)):
            self._record_failure(Proposal(parent, p.name, None, propose_s=spent,
                                          error=f"proposer returned {type(got).__name__}, not a list of candidates"))
            self._miss(key)
            return []
        if not got:
            self.dead.add(key)
            return []
        out: list[Proposal] = []
        in_flight = {pr.source_hash for pr, *_ in self.inflight.values()}
        running = 0  # offered again because its result is not in yet: the proposer is not at fault
        each = spent / len(got)
        for c in list(got)[:n]:
            bad = _bad_candidate(c)
            if bad is not None:
                h = self.ledger.save_source(c.source)[0] if isinstance(getattr(c, "source", None), str) else None
                self._record_failure(Proposal(parent, p.name, c if isinstance(c, Candidate) else None,
                                              source_hash=h, error=bad, propose_s=each))
                continue
            h, _ = self.ledger.save_source(c.source)
            if h in self.seen:  # already judged (or being judged) for this task: nothing new
                running += h in in_flight
                continue
            self.seen.add(h)
            out.append(Proposal(parent, p.name, c, source_hash=h, propose_s=each))
        if out:
            self.misses.pop(key, None)
        elif not running:
            self._miss(key)
        return out

    def _miss(self, key: tuple[int, str]) -> None:
        self.misses[key] = self.misses.get(key, 0) + 1
        if self.misses[key] >= self.cfg.repeat_limit:
            self.dead.add(key)

    def _judge(self, proposals: list[Proposal]) -> None:
        """Check (and on cuda time) candidates side by side, at most self.parallel at once; decide
        each in this thread as its results return (in submission order among those done together).
        Returns once every new candidate is submitted, the task has a row, and at most half the
        window is still busy, so that the next round is proposed while the rest run; with nothing
        new, after one decision."""
        queue, self.retry = self.retry + list(proposals), []
        decided = 0
        while True:
            while queue and not self.stopped and len(self.inflight) < self.parallel:
                pr = queue.pop(0)
                work = _Work(pr.candidate.label if pr.candidate is not None else "a candidate")
                work.beside = len(self.inflight)  # checks running next to this one
                for _, _, other in self.inflight.values():
                    other.beside += 1
                self.inflight[self.run.pool.submit(self._check, pr, work)] = (pr, time.monotonic(), work)
            if self.stopped:
                queue.clear()
            if not self.inflight:
                return
            # Before the task's first row nothing is known to build on: the first round is waited
            # for (so --proposer search,llm hands the agents the template's answer, not the root).
            if not queue and len(self.inflight) <= self.parallel // 2 and (proposals or decided) and self.rows:
                return
            decided += self._collect()

    def _collect(self) -> int:
        """Wait for at least one candidate in flight, but not past the budget; decide every one
        done. Returns how many. Once the budget is spent, the rest are abandoned (no rows)."""
        left = self._time_left() if self._has_answer() else None
        done, _ = wait(set(self.inflight), timeout=None if left is None else max(0.0, left),
                       return_when=FIRST_COMPLETED)
        order = list(self.inflight)
        n = 0
        for fut in sorted(done, key=order.index):
            pr, submitted, work = self.inflight.pop(fut)
            if fut.cancelled():
                continue
            verdict, check_s, timed = fut.result()
            ran_beside = self.parallel > 1 or work.beside > 0
            if ran_beside and _out_of_memory(verdict) and pr.source_hash not in self.oom_retried:
                # Several full-size checks side by side did not fit (_fits_in_memory's estimate is
                # a guess): not the candidate's fault. Every check that ran beside others is judged
                # again, alone once the window has drained (the H100 MiniGPT run: with the window
                # already halved to 1, the two checks still in flight failed for memory and were
                # recorded as errors).
                self.parallel = max(1, self.parallel // 2)
                self.oom_retried.add(pr.source_hash)
                self.retry.append(pr)
                self.run.view.note(f"task {self.name}: GPU memory ran out with checks side by side; "
                                   f"now {self.parallel} at once, and the candidate is judged again")
                continue
            try:
                self._decide(pr, verdict, check_s, timed, time.monotonic() - submitted)
            except _Abandon:  # its second timing ran into the end of the budget: no row
                self.abandoned += 1
                continue
            n += 1
        if not self.stopped and move_on_reason(self.state(), self.cfg) is not None:
            self.stopped = True  # candidates not started are dropped; running ones still get their rows
            for fut in list(self.inflight):
                if fut.cancel():
                    del self.inflight[fut]
        if self.inflight and self._out_of_time():
            self.abandon_all()
        return n

    def _time_left(self) -> float | None:
        """Seconds of this task's budget left; None when the budget rule is not in force."""
        return self.budget_s - self.spent() if "budget" in self.cfg.move_on else None

    def _has_answer(self) -> bool:
        return any(r["verdict"] == "accepted" for r in self.rows)

    def _out_of_time(self) -> bool:
        """The budget is spent, and the task has an accepted answer: a task whose first checks
        outlast its share (a short budget, a big model's region at full size) waits for them until
        one is accepted or none is left, so every task gets a verdict; the overrun is at most its
        first round."""
        left = self._time_left()
        return left is not None and left <= 0 and self._has_answer()

    def abandon_all(self, grace_s: float = 10.0) -> None:
        """Give up every candidate in flight (and the timer's preparation): they get no rows; the
        gate stops their threads at their next GPU request; the worker processes those threads
        started are killed, again as new ones appear, until the threads are done (at most grace_s:
        work inside the judge's own process is not interrupted, only refused the GPU after)."""
        futures = []
        works = []
        for fut, (pr, _, work) in list(self.inflight.items()):
            del self.inflight[fut]
            if not fut.cancel():  # started: its thread must be stopped
                futures.append(fut)
                works.append(work)
        threads = []
        if self._setup is not None:
            setup, work = self._setup
            self._setup = None
            if setup.is_alive():
                threads.append(setup)
                works.append(work)
        if not works:
            return
        self.abandoned += len(futures)
        stopped = _stop(self.run.gpu, works, lambda: any(not f.done() for f in futures) or
                        any(t.is_alive() for t in threads), grace_s)
        if futures:
            self.run.view.note(
                f"task {self.name}: {len(futures)} candidate(s) in flight abandoned (no rows; a resume judges them "
                f"again); their worker processes were killed" + ("" if stopped else
                                                                 f" (some still ran after {grace_s:.0f} s)"))

    def _check(self, pr: Proposal, work: "_Work") -> tuple[Any, float, tuple[Any, float] | None]:
        """In a pool thread, for `work` (abandon_all may stop it): the correctness check, then
        (cuda, accepted) the candidate's timing."""
        with _working(self.run.gpu, work):
            path = self.ledger.sources / f"{pr.source_hash}.py"
            t = time.monotonic()
            try:
                verdict = self.run.judges.check(self.task_path, path, self.run.judge_cfg, gate=self.run.gpu)
            except TaskError:
                raise
            except Exception as exc:  # the judge itself failed: no verdict on this candidate
                verdict = exc
            check_s = time.monotonic() - t
            timed = None
            if self.device == "cuda" and not isinstance(verdict, BaseException) and verdict.accepted \
                    and not work.abandoned:
                timed = self._time(path)
            return verdict, check_s, timed

    def _task_timer(self) -> Any:
        with self._timer_lock:
            if self._timer is None:
                make = self.run.judges.timer
                if make is None:
                    raise UsageError("no timer to time candidates with on cuda", "Pass Judges(timer=...).")
                self._timer = make(self.task_path, self.run.timer_cfg, self.run.gpu)
            return self._timer

    def _prepare_timer(self, work: "_Work") -> None:
        """Best effort, in the background: a failure here is raised again, where it belongs, by the
        first candidate that needs the timer (_task_timer retries)."""
        try:
            with _working(self.run.gpu, work):
                t = self._task_timer()
                eager = getattr(t, "eager", None)
                if eager is not None:
                    eager("events")  # the mode of all but sub-20-us tasks; another mode is timed on demand
        except Exception:  # noqa: BLE001 - see the docstring
            pass

    def _time(self, path: Path) -> tuple[Any, float]:
        """The candidate timed interleaved with the incumbent of this moment: (CandidateTiming or the
        exception that stopped it, seconds)."""
        t = time.monotonic()
        inc = self.incumbent
        inc_path = self.ledger.sources / f"{inc['source_hash']}.py" if inc else None
        try:
            got = self._task_timer().candidate(path, inc_path)
        except KernelwrightError:  # the task or the setup is broken, not this candidate
            raise
        except Exception as exc:
            got = exc
        return got, time.monotonic() - t

    def _time_by_deadline(self, path: Path) -> tuple[Any, float]:
        """_time in the loop's own thread, abandoned (its worker killed) when the budget runs out
        meanwhile: raises _Abandon then, and the candidate gets no row."""
        left = self._time_left()
        if left is None:
            return self._time(path)
        if left <= 0:
            raise _Abandon
        work = _Work("a second timing")
        finished = threading.Event()

        def deadline() -> None:
            if not finished.wait(left):
                _stop(self.run.gpu, [work], lambda: not finished.is_set(), 10.0)

        dog = threading.Thread(target=deadline, name="kw-deadline", daemon=True)
        with _working(self.run.gpu, work):
            dog.start()
            try:
                got = self._time(path)
            finally:
                finished.set()
        dog.join()
        if work.abandoned:
            raise _Abandon
        return got

    # ---- rows ----------------------------------------------------------------------------------
    def _base(self, pr: Proposal) -> dict[str, Any]:
        c = pr.candidate
        meta = dict(c.meta) if c is not None and isinstance(c.meta, dict) else {}
        tokens, cost = meta.get("tokens"), meta.get("cost")
        return {
            "parent": pr.parent if pr.parent != search.ROOT else None,
            "proposer": pr.proposer,
            "label": getattr(c, "label", "") if c is not None else "",
            "source_hash": pr.source_hash,
            "tokens": int(tokens) if isinstance(tokens, (int, float)) else None,
            "cost": float(cost) if isinstance(cost, (int, float)) else None,
            "meta_json": dumps(meta) if meta else None,
        }

    def _record_failure(self, pr: Proposal) -> None:
        row = self._base(pr)
        row.update(verdict="error", decision="", stage="propose", error=pr.error, wall_s=pr.propose_s)
        self._record(row)

    def _decide(self, pr: Proposal, verdict: Any, check_s: float, timed: tuple[Any, float] | None,
                waited_s: float) -> None:
        row = self._base(pr)
        row.update(check_s=check_s)
        stages = getattr(verdict, "stages", None)
        if stages:  # where a check's time went, per judge stage (a full-size check can take minutes)
            meta = json.loads(row["meta_json"]) if row.get("meta_json") else {}
            meta["check_stage_s"] = {st.name: round(st.seconds, 2) for st in stages}
            row["meta_json"] = dumps(meta)
        if isinstance(verdict, BaseException):
            row.update(verdict="error", decision="", stage="judge",
                       error=f"judge failed: {type(verdict).__name__}: {verdict}")
        elif not verdict.accepted:
            row.update(verdict="rejected", decision="", stage=verdict.stage, error=verdict.reason)
        else:
            row.update(verdict="accepted", stage=verdict.stage, error="")
            if self.device == "cpu":
                row["decision"] = "kept" if self.incumbent is None else "untimed"
            else:
                self._keep_or_revert(pr, row, timed)
        row["wall_s"] = pr.propose_s + waited_s
        stored = self._record(row)
        if stored["decision"] == "kept":
            self.incumbent = stored
            self._sync_best_file()

    def _keep_or_revert(self, pr: Proposal, row: dict[str, Any], timed: tuple[Any, float] | None) -> None:
        """Keep/revert on cuda. The first cleanly timed answer becomes the incumbent; later ones
        replace it only when the side-by-side run with the incumbent says faster beyond its noise."""
        got, spent = timed if timed is not None else self._time(self.ledger.sources / f"{pr.source_hash}.py")
        if isinstance(got, BaseException):
            row.update(decision="time-error", error=f"timing failed: {type(got).__name__}: {got}", time_s=spent)
            return
        self._figures(row, got.report)
        inc = self.incumbent
        inc_path = str(self.ledger.sources / f"{inc['source_hash']}.py") if inc else None
        if inc is not None and got.incumbent != inc_path and self._clean(got.report) and _maybe_faster(row, inc):
            # Timed while an older incumbent (or none) stood, and it may beat the one standing now:
            # time it again beside this one (rare: only when candidates overtake each other).
            again, more = self._time_by_deadline(self.ledger.sources / f"{pr.source_hash}.py")
            spent += more
            if isinstance(again, BaseException):
                row.update(decision="time-error", error=f"timing failed: {type(again).__name__}: {again}",
                           time_s=spent)
                return
            got = again
            self._figures(row, got.report)
        rep, cmp = got.report, got.comparison
        timing = _asdict(rep)
        if not rep.accepted or rep.answer is None:
            row.update(decision="invalid", error=f"timing rejected: {rep.reason}")
        elif rep.flagged:  # the timer's "review before trusting it": an unattended run keeps none of these
            row.update(decision="flagged", error="timer flagged: " + "; ".join(map(str, rep.flagged)))
        elif inc is None:
            row["decision"] = "kept"
        elif cmp is None or got.incumbent != inc_path:
            row["decision"] = "reverted"  # slower in its own run than the incumbent: not worth a side-by-side
        else:
            timing["compare"] = _asdict(cmp)
            row.update(keep_gain=cmp.gain, keep_noise=cmp.noise)
            if not getattr(cmp, "accepted", True):
                row.update(decision="invalid", error=f"comparison rejected: {getattr(cmp, 'reason', '')}")
            elif getattr(cmp, "flagged", None):
                row.update(decision="flagged", error="comparison flagged: " + "; ".join(map(str, cmp.flagged)))
            else:
                row["decision"] = "kept" if cmp.faster else "reverted"
        row.update(time_s=spent, timing_json=dumps(timing))

    @staticmethod
    def _clean(rep: Any) -> bool:
        return bool(rep.accepted) and rep.answer is not None and not rep.flagged

    @staticmethod
    def _figures(row: dict[str, Any], rep: Any) -> None:
        a = rep.answer
        sp = rep.speedup or {}
        row.update(
            timing_mode=getattr(a, "mode", None), median_ms=getattr(a, "median_ms", None),
            p20_ms=getattr(a, "p20_ms", None), p80_ms=getattr(a, "p80_ms", None),
            min_ms=getattr(a, "min_ms", None), max_ms=getattr(a, "max_ms", None),
            speedup_eager=sp.get("eager"), speedup_compile=sp.get("compile"),
            speedup_max_autotune=sp.get("compile-max-autotune"), speedup_liger=sp.get("liger"),
            gbps=rep.gbps, tflops=rep.tflops, pct_ceiling=_fraction(rep.pct_of_ceiling), bound=rep.bound,
        )

    def _record(self, row: dict[str, Any]) -> dict[str, Any]:
        row.update(task=self.name, device=self.device, task_elapsed_s=self.spent(), finished_at=_now())
        row.setdefault("decision", "")
        stored = self.ledger.record(row)
        self.rows.append(stored)
        inc = self.incumbent if row["decision"] != "kept" else stored
        self.run.view.on_row(stored, (inc or {}).get("speedup_eager"), self.state().kept)
        return stored

    def _sync_best_file(self) -> None:
        """kernels/<name>.py holds the incumbent's source (rewritten from the ledger on resume)."""
        if self.incumbent is None:
            return
        src = self.ledger.source(self.incumbent["source_hash"])
        if not self.best_path.exists() or self.best_path.read_text() != src:
            _atomic_write(self.best_path, src)


class _Work(Ticket):
    """A judge.gate.Ticket that remembers the child processes of its thread when the work began:
    only those started later, for this work, are killed when it is abandoned."""

    children_before: frozenset[int] = frozenset()
    beside: int = 0  # candidates in flight at some time during this one (their memory was in use)


class _Abandon(Exception):
    """A candidate's decision ran into the end of the budget: abandoned, with no row."""


def _thread_children(native_id: int | None) -> set[int]:
    """Child processes started by one thread of this process (Linux /proc; empty where unknown)."""
    if native_id is None:
        return set()
    try:
        with open(f"/proc/self/task/{native_id}/children") as f:
            return {int(p) for p in f.read().split()}
    except (OSError, ValueError):
        return set()


@contextmanager
def _working(gate: GpuGate, work: _Work) -> Iterator[_Work]:
    """gate.working_for(work) in this thread, noting the child processes the thread already had:
    only those it starts from here on are work's (and killed when work is abandoned)."""
    with gate.working_for(work):
        work.children_before = frozenset(_thread_children(work.thread))
        yield work


def _kill_started_for(work: _Work) -> None:
    """SIGKILL the processes work's thread started for it (a judge worker leads its own process
    group, as judge/sandbox.py starts it: the whole group goes, as sandbox.Worker._kill does)."""
    for pid in _thread_children(work.thread) - work.children_before:
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _stop(gate: GpuGate, works: list[_Work], running: Callable[[], bool], grace_s: float) -> bool:
    """Abandon works (the gate refuses their threads the GPU from now on) and kill the processes
    their threads started for them, again as new ones appear, until running() turns False (True)
    or grace_s passes (False)."""
    gate.abandon(works)
    end = time.monotonic() + grace_s
    while True:
        for w in works:
            _kill_started_for(w)
        if not running():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(0.05)


def _out_of_memory(verdict: Any) -> bool:
    """The judge failed, or rejected the answer, because the GPU's memory ran out."""
    text = str(verdict) if isinstance(verdict, BaseException) else \
        ("" if verdict.accepted else f"{verdict.reason}")
    return "out of memory" in text.lower()


def _fits_in_memory(task_path: Path, device: str) -> int:
    """How many of this task's checks fit in GPU memory side by side (judge.inputs.count_footprint;
    the H100 MiniGPT run counted inputs only and put 8 checks of a 128x8x512x512 attention task side
    by side: 66 GB in the judge's process, every check out of memory)."""
    import torch

    if device != "cuda" or not torch.cuda.is_available():  # no GPU memory to share (fake judges)
        return 1 << 30
    try:
        from ..judge.inputs import count_footprint
        from ..task import load_task

        io, peak = count_footprint(load_task(task_path), {})
        return checks_that_fit(io, torch.cuda.get_device_properties(0).total_memory, peak)
    except Exception:  # a task that cannot be measured here: its checks say so themselves
        return 1


def checks_that_fit(elements: int, gpu_bytes: int, intermediates: int = 0) -> int:
    """A check holds the task's inputs, parameters and outputs in its worker and, in the judge, the
    native reference's and the float64 reference's twice (pristine and one-ulp perturbed): about 12
    fp32-sized copies of them (a guess that errs large); while a reference runs, its intermediates
    at their peak (`intermediates` elements: 4 bytes native, 8 float64, twice). Half the GPU is
    the room."""
    return max(1, int((gpu_bytes // 2) // check_bytes(elements, intermediates)))


def check_bytes(elements: int, intermediates: int = 0) -> int:
    """GPU bytes one check of a task holds at its peak (see checks_that_fit)."""
    return 12 * 4 * max(elements, 1) + 20 * max(intermediates, 0)


def _maybe_faster(row: dict[str, Any], inc: dict[str, Any]) -> bool:
    """Worth a side-by-side comparison? Uses the in-run ratio vs eager when both have one."""
    if row.get("speedup_eager") is not None and inc.get("speedup_eager") is not None:
        return row["speedup_eager"] > inc["speedup_eager"]
    if row.get("median_ms") is not None and inc.get("median_ms") is not None:
        return row["median_ms"] < inc["median_ms"]
    return True


def _asdict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return dict(vars(obj)) if hasattr(obj, "__dict__") else obj
